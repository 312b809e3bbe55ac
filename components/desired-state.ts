// One node's desired state, published: its document (desired-state-records.ts) signed with the
// stack's signing key, sealed to the node's own WireGuard key and cut into DNS TXT records beside
// the node's name. A change of content changes these records, never the node's user-data; the
// node's agent (node-agent/vpsha/desired.py) verifies, opens and applies it.
import * as command from "@pulumi/command";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { txtContent } from "./directory-records";
import {
    buildDesiredRecords, buildSharedRecords, contentDigest, DesiredContent, desiredChunkName, desiredHeadName, DesiredFile, GENERATION_COMMAND, parseGeneration,
    sharedChunkName, sharedDigest, sharedHeadName,
} from "./desired-state-records";
import { NODE_RECORD_TTL } from "./node-records";

/** The generation command's environment variable holding the content digest (mocks read it too). */
export const DIGEST_ENV = "VPSHA_DESIRED_DIGEST";

export interface DesiredStateArgs {
    /** The stack's name: signed into the document, so another stack's document never verifies. */
    stack: string;
    /** The node's name, as its bootstrap names it. */
    node: string;
    /** The node's DNS name: the records are `_desired.<dnsName>` and `_desired-<k>.<dnsName>`. */
    dnsName: string;
    /** The Cloudflare zone of the node names. */
    zoneId: pulumi.Input<string>;
    /** The node's WireGuard public key (base64): only the node's own private key opens the document. */
    wireguardKey: pulumi.Input<string>;
    /** Ed25519 private key, PEM (secret): the mesh directory's, whose public key every node holds. */
    signingKey: pulumi.Input<string>;
    /** What the node must hold; may carry secrets (they leave the program sealed only). */
    content: pulumi.Input<DesiredContent>;
    /** Chunk records to publish (chunksFor): known before any secret is, so a preview shows the records `up` makes. */
    chunks: number;
}

export class DesiredState extends pulumi.ComponentResource {
    /** The document's generation: the time (ms) its content last changed, above every earlier one. */
    readonly generation: pulumi.Output<number>;

    constructor(name: string, args: DesiredStateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:DesiredState", name, {}, opts);
        // Seeds the seal's ephemeral keys and keys the content digest; lives in state only.
        const seed = new random.RandomBytes(`${name}-seal-seed`, { length: 32 }, { parent: this });
        // Base64 inside Outputs: pulumi.all would take a Buffer apart into a plain object.
        const seedBase64 = pulumi.secret(seed.base64);
        const bytes = (b: string) => Buffer.from(b, "base64");
        const content = pulumi.output(args.content);
        // An HMAC under a secret seed says nothing of the content: kept readable so a diff shows that it changed.
        const digest = pulumi.unsecret(pulumi.all([seedBase64, content]).apply(([s, c]) => contentDigest(bytes(s), args.stack, args.node, c)));
        // Runs again only when the digest changes (an update, not a replacement: only `triggers`
        // replace); the provider hands it the previous generation, so the next one is above it even
        // when this machine's clock is behind. A preview shows the previous generation; `up` the new one.
        const generation = new command.local.Command(`${name}-generation`, {
            create: GENERATION_COMMAND,
            update: GENERATION_COMMAND,
            environment: { [DIGEST_ENV]: digest },
            addPreviousOutputInEnv: true,
        }, { parent: this });
        this.generation = generation.stdout.apply((out) => parseGeneration(args.node, out));
        const records = pulumi.all([args.signingKey, args.wireguardKey, seedBase64, content, this.generation]).apply(([pem, recipient, s, c, g]) =>
            buildDesiredRecords({ stack: args.stack, node: args.node, generation: g, content: c, recipient, signingKeyPem: pem, seed: bytes(s), chunks: args.chunks }));
        // Sealed and signed: nothing in them needs hiding, and a readable diff shows which changed.
        const plain = pulumi.unsecret(records);
        const txt = (resourceName: string, recordName: string, value: pulumi.Output<string>, dependsOn: pulumi.Resource[] = []) =>
            new cloudflare.DnsRecord(resourceName, { zoneId: args.zoneId, name: recordName, type: "TXT", content: value.apply(txtContent), ttl: NODE_RECORD_TTL, proxied: false }, { parent: this, dependsOn });
        const chunks = Array.from({ length: args.chunks }, (_, i) => txt(`${name}-chunk-${i + 1}`, desiredChunkName(args.dnsName, i + 1), plain.apply((r) => r.chunks[i])));
        // The head last: a node that sees a new head finds its chunks (a DNS cache may still lag; the reader waits then).
        txt(`${name}-head`, desiredHeadName(args.dnsName), plain.apply((r) => r.head), chunks);
        this.registerOutputs({ generation: this.generation });
    }
}

export interface SharedDesiredStateArgs {
    stack: string;
    /** The records are `_desired-shared.<nodesDomain>` and `_desired-shared-<k>.<nodesDomain>`. */
    nodesDomain: string;
    zoneId: pulumi.Input<string>;
    /** Ed25519 private key, PEM (secret): the mesh directory's. */
    signingKey: pulumi.Input<string>;
    /** Files every node may take, none secret. */
    files: DesiredFile[];
    chunks: number;
}

/** The stack's shared document (desired-state-records.ts): signed, not sealed, read by every node. */
export class SharedDesiredState extends pulumi.ComponentResource {
    readonly generation: pulumi.Output<number>;

    constructor(name: string, args: SharedDesiredStateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:SharedDesiredState", name, {}, opts);
        const generation = new command.local.Command(`${name}-generation`, {
            create: GENERATION_COMMAND,
            update: GENERATION_COMMAND,
            environment: { [DIGEST_ENV]: sharedDigest(args.stack, args.files) },
            addPreviousOutputInEnv: true,
        }, { parent: this });
        this.generation = generation.stdout.apply((out) => parseGeneration("shared", out));
        const records = pulumi.unsecret(pulumi.all([args.signingKey, this.generation]).apply(([pem, g]) =>
            buildSharedRecords({ stack: args.stack, generation: g, files: args.files, signingKeyPem: pem, chunks: args.chunks })));
        const txt = (resourceName: string, recordName: string, value: pulumi.Output<string>, dependsOn: pulumi.Resource[] = []) =>
            new cloudflare.DnsRecord(resourceName, { zoneId: args.zoneId, name: recordName, type: "TXT", content: value.apply(txtContent), ttl: NODE_RECORD_TTL, proxied: false }, { parent: this, dependsOn });
        const chunks = Array.from({ length: args.chunks }, (_, i) => txt(`${name}-chunk-${i + 1}`, sharedChunkName(args.nodesDomain, i + 1), records.apply((r) => r.chunks[i])));
        txt(`${name}-head`, sharedHeadName(args.nodesDomain), records.apply((r) => r.head), chunks);
        this.registerOutputs({ generation: this.generation });
    }
}
