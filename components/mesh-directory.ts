// The mesh directory: who is in the stack right now, published as signed DNS TXT records that
// every node's agent reads (render/directory-agent.ts). A node's user-data holds only the
// directory's public key, so adding or removing a node changes DNS records and no server's
// boot (DESIGN decision 1). The signing key is generated here and kept in state as a secret;
// signatures are Ed25519 (deterministic), so an unchanged stack re-signs to the same records.
// The index carries a generation kept in state (as a desired state's), raised when its content
// changes: nodes take the newest index in DNS and never go back below one they applied.
import * as command from "@pulumi/command";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { DIGEST_ENV } from "./desired-state";
import { GENERATION_COMMAND, parseGeneration } from "./desired-state-records";
import { directoryIndexName, directoryRecordName, ed25519PublicKey, indexParts, memberSetDigest, signIndexPart, signNodeRecord, txtContent } from "./directory-records";
import { NODE_RECORD_TTL } from "./node-records";
import { nodesDomain, StackPlan } from "./plan";

export interface MeshDirectoryArgs {
    plan: StackPlan;
    /** Each node's WireGuard public key, by node name. */
    wireguardKeys: Record<string, pulumi.Output<string>>;
    /** Mark the index deliberate (components/directory-removal.ts): nodes apply it whatever members it drops. */
    deliberateRemoval: boolean;
}

export class MeshDirectory extends pulumi.ComponentResource {
    /** The raw Ed25519 public key (base64) every node verifies the records with. */
    readonly publicKey: pulumi.Output<string>;
    /** The signing key (secret): the release record (app-release.ts) is signed with it too. */
    readonly signingKey: pulumi.Output<string>;
    /** The index's generation: the time (ms) its content last changed, above every earlier one. */
    readonly generation: pulumi.Output<number>;

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
        const names = plan.nodes.map((n) => n.name);
        // Runs again only when the index's content changes; the provider hands it the previous
        // generation, so the next one is above it even when this machine's clock is behind.
        const generation = new command.local.Command(`${name}-index-generation`, {
            create: GENERATION_COMMAND,
            update: GENERATION_COMMAND,
            environment: { [DIGEST_ENV]: `${memberSetDigest(names)} ${args.deliberateRemoval ? "deliberate" : "bounded"}` },
            addPreviousOutputInEnv: true,
        }, { parent: this });
        this.generation = generation.stdout.apply((out) => parseGeneration("directory index", out));
        const parts = indexParts(names, 1, args.deliberateRemoval).length;
        for (let i = 0; i < parts; i++) {
            const content = pulumi.all([signingKey, this.generation]).apply(([pem, g]) => txtContent(signIndexPart(index, indexParts(names, g, args.deliberateRemoval)[i], pem)));
            txt(index, `${name}-index-${i + 1}`, pulumi.unsecret(content));
        }
        this.registerOutputs({ publicKey: this.publicKey, generation: this.generation });
    }
}
