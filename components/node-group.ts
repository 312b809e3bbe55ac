// The nodes of one role: each booted from a small bootstrap (identity, mesh interface, the
// desired-state agent) and given the rest as its desired state (the shared base plus what the
// role adds), published beside its name. The role components (AppTier, HaproxyPair,
// DatabaseCluster) are groups.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as cloudflare from "@pulumi/cloudflare";
import { bootstrapIdentity } from "./bootstrap-identity";
import { CLOUDFLARE_RANGES_STAND_IN, needsCloudflareRanges, nodeBootstrap, nodeDesired } from "./boot";
import { chunksFor, withSharedRefs } from "./desired-state-records";
import { DesiredState, SharedDesiredState } from "./desired-state";
import { applyDrillKnobs } from "./drill-knobs";
import { isPackageFile } from "./render/python-lib";
import { Mesh } from "./mesh";
import { MeshDirectory } from "./mesh-directory";
import { VpsNode } from "./node";
import { PlannedNode, StackPlan } from "./plan";
import { ServerFactory, ServerLifecycle } from "./providers";
import { rolloutGroup, withRollouts } from "./rollout";
import { CloudConfigPart, renderCloudConfig } from "./render/cloud-config";
import { SecretsRotation } from "./secrets-version";

export interface NodeGroupArgs {
    plan: StackPlan;
    mesh: Mesh;
    /** Its public key goes into every node's boot; the node set itself never does. */
    directory: MeshDirectory;
    /** The stack's shared desired-state document (the node agent's package), published before any node's document names it. */
    shared: SharedDesiredState;
    /** The server factory of each provider, by provider name. */
    servers: Record<string, ServerFactory>;
    sshPrivateKey?: pulumi.Output<string>;
    /** Each node's server options, by node name, decided against the deployed stack. */
    lifecycles: Readonly<Record<string, ServerLifecycle>>;
    /** Members moved to another provider, by node name: the old server that stands down first. */
    standDowns: Readonly<Record<string, { provider: string; serverId: string }>>;
    /** Set when this run rotates the database secrets (the deployed stack's version is below the stack file's). */
    rotation?: SecretsRotation;
}

/** Room in a node's records for what the real secrets compress to beyond their stand-ins. */
const DESIRED_SPARE_BYTES = 512;

export abstract class NodeGroup extends pulumi.ComponentResource {
    readonly nodes: VpsNode[] = [];
    /** Each node's published desired state, by node name: its generation is what a rollout must reach. */
    readonly desired: Record<string, DesiredState> = {};

    constructor(type: string, name: string, opts?: pulumi.ComponentResourceOptions) {
        super(type, name, {}, opts);
    }

    /**
     * Creates a VpsNode and its DesiredState per planned node. `parts` says what the role adds
     * (with its secrets); `planned` the same with stand-ins of the secrets' size
     * (placeholders.ts), which sizes the document's records before any secret resolves.
     */
    protected addNodes(args: NodeGroupArgs, members: PlannedNode[], parts: (node: PlannedNode) => pulumi.Input<CloudConfigPart[]>, planned: (node: PlannedNode) => CloudConfigPart[]): void {
        const { plan } = args;
        if (members.length === 0) return;
        // The key's real value is not known yet, only its size (32 bytes).
        const keyStandIn = Buffer.alloc(32, 7).toString("base64");
        // One component holds one rollout group (components/rollout.ts): its members' contents,
        // with the lab drills' knobs (none in a real stack) and the group's rollout spec.
        // The package's modules come from the shared document, by reference.
        const desired = (node: PlannedNode, directoryKey: string, roleParts: CloudConfigPart[], ranges: string[]) =>
            withSharedRefs(nodeDesired(plan, node, directoryKey, roleParts, needsCloudflareRanges(plan, node) ? ranges : []), isPackageFile);
        // Hosts you bring admit 80/443 from Cloudflare's ranges in their own firewall (no provider one).
        const ranges: pulumi.Output<string[]> = members.some((n) => needsCloudflareRanges(plan, n))
            ? cloudflare.getIpRangesOutput({}, { parent: this }).apply((r) => [...r.ipv4Cidrs, ...r.ipv6Cidrs])
            : pulumi.output([]);
        const rolloutKey = pulumi.secret(new random.RandomBytes(`${rolloutGroup(members[0].role)}-rollout-key`, { length: 32 }, { parent: this }).base64);
        const roleContents = members.map((node) => pulumi.all([args.directory.publicKey, pulumi.output(parts(node)), ranges]).apply(([directoryKey, roleParts, r]) => desired(node, directoryKey, roleParts as CloudConfigPart[], r)));
        const published = pulumi.all([rolloutKey, pulumi.all(roleContents)]).apply(([key, contents]) =>
            withRollouts({ plan, contents: applyDrillKnobs(plan.config, Object.fromEntries(members.map((n, i) => [n.name, contents[i]]))).contents, key: Buffer.from(key, "base64"), rotating: args.rotation !== undefined }));
        const plannedContents = applyDrillKnobs(plan.config, Object.fromEntries(members.map((n) => [n.name, desired(n, keyStandIn, planned(n), CLOUDFLARE_RANGES_STAND_IN)]))).contents;
        const sized = withRollouts({ plan, contents: plannedContents, key: Buffer.alloc(32, 7), rotating: args.rotation !== undefined });
        for (const node of members) {
            const userData = pulumi
                .all([args.mesh.privateKeyFor(node), args.directory.publicKey])
                .apply(([wireguardKey, directoryKey]) => renderCloudConfig(nodeBootstrap(bootstrapIdentity(plan, node), wireguardKey, directoryKey)));
            const vps = new VpsNode(node.name, { plan, node, servers: args.servers[node.provider], userData, sshPrivateKey: args.sshPrivateKey, lifecycle: args.lifecycles[node.name], ...(args.standDowns[node.name] ? { standDown: args.standDowns[node.name] } : {}) }, { parent: this });
            this.nodes.push(vps);
            const content = published.apply((c) => c[node.name]);
            this.desired[node.name] = new DesiredState(`${node.name}-desired`, {
                stack: plan.config.stack,
                node: node.name,
                dnsName: node.dnsName,
                zoneId: plan.config.cloudflare.zoneId,
                wireguardKey: args.mesh.publicKeys[node.name],
                signingKey: args.directory.signingKey,
                content,
                chunks: chunksFor(plan.config.stack, node.name, sized[node.name], DESIRED_SPARE_BYTES),
            }, { parent: this, dependsOn: [vps, args.shared] });
        }
    }
}
