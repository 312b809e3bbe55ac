// The mesh directory: who is in the stack right now, published as signed DNS TXT records that
// every node's agent reads (render/directory-agent.ts). A node's user-data holds only the
// directory's public key, so adding or removing a node changes DNS records and no server's
// boot (DESIGN decision 1). The signing key is generated here and kept in state as a secret;
// signatures are Ed25519 (deterministic), so an unchanged stack re-signs to the same records.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { directoryIndexName, directoryRecordName, ed25519PublicKey, indexParts, signIndexPart, signNodeRecord, txtContent } from "./directory-records";
import { NODE_RECORD_TTL } from "./node-records";
import { nodesDomain, StackPlan } from "./plan";

export interface MeshDirectoryArgs {
    plan: StackPlan;
    /** Each node's WireGuard public key, by node name. */
    wireguardKeys: Record<string, pulumi.Output<string>>;
}

export class MeshDirectory extends pulumi.ComponentResource {
    /** The raw Ed25519 public key (base64) every node verifies the records with. */
    readonly publicKey: pulumi.Output<string>;
    /** The signing key (secret): the release record (app-release.ts) is signed with it too. */
    readonly signingKey: pulumi.Output<string>;

    constructor(name: string, args: MeshDirectoryArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:MeshDirectory", name, {}, opts);
        const { plan } = args;
        const key = new tls.PrivateKey(`${name}-signing-key`, { algorithm: "ED25519" }, { parent: this });
        const signingKey = pulumi.secret(key.privateKeyPem);
        this.signingKey = signingKey;
        this.publicKey = key.publicKeyPem.apply(ed25519PublicKey);
        const zoneId = plan.config.cloudflare.zoneId;
        // DNS-only, short TTL: a change reaches every node within a TTL and one agent round.
        const txt = (recordName: string, resourceName: string, content: pulumi.Output<string>) =>
            new cloudflare.DnsRecord(resourceName, { zoneId, name: recordName, type: "TXT", content, ttl: NODE_RECORD_TTL, proxied: false }, { parent: this });

        for (const node of plan.nodes) {
            const owner = directoryRecordName(node.dnsName);
            const content = pulumi.all([signingKey, args.wireguardKeys[node.name]]).apply(([pem, wireguardKey]) =>
                txtContent(signNodeRecord(owner, { name: node.name, role: node.role, meshAddress: node.meshAddress, wireguardKey, dnsName: node.dnsName }, pem)));
            // A signature reveals nothing of the key: kept readable, so a diff shows what changed.
            txt(owner, `${name}-${node.name}`, pulumi.unsecret(content));
        }
        const index = directoryIndexName(nodesDomain(plan.config));
        for (const part of indexParts(plan.nodes.map((n) => n.name))) {
            txt(index, `${name}-index-${part.part}`, pulumi.unsecret(signingKey.apply((pem) => txtContent(signIndexPart(index, part, pem)))));
        }
        this.registerOutputs({ publicKey: this.publicKey });
    }
}
