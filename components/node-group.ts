// The nodes of one role, each booted with the shared base (mesh, host firewall, SSH policy) plus
// what the role adds. The role components (AppTier, HaproxyPair, DatabaseCluster) are groups.
import * as pulumi from "@pulumi/pulumi";
import { nodeBoot } from "./boot";
import { Mesh } from "./mesh";
import { MeshDirectory } from "./mesh-directory";
import { VpsNode } from "./node";
import { PlannedNode, StackPlan } from "./plan";
import { ServerFactory, ServerLifecycle } from "./providers";
import { CloudConfigPart, renderCloudConfig } from "./render/cloud-config";

export interface NodeGroupArgs {
    plan: StackPlan;
    mesh: Mesh;
    /** Its public key goes into every node's boot; the node set itself never does. */
    directory: MeshDirectory;
    /** The server factory of each provider, by provider name. */
    servers: Record<string, ServerFactory>;
    sshPrivateKey?: pulumi.Output<string>;
    /** Each node's server options, by node name, decided against the deployed stack. */
    lifecycles: Readonly<Record<string, ServerLifecycle>>;
}

export abstract class NodeGroup extends pulumi.ComponentResource {
    readonly nodes: VpsNode[] = [];

    constructor(type: string, name: string, opts?: pulumi.ComponentResourceOptions) {
        super(type, name, {}, opts);
    }

    /** Creates a VpsNode per planned node; `parts` says what the role adds to a node's boot. */
    protected addNodes(args: NodeGroupArgs, members: PlannedNode[], parts: (node: PlannedNode) => pulumi.Input<CloudConfigPart[]>): void {
        for (const node of members) {
            const userData = pulumi
                .all([args.mesh.interfaceFor(node), args.directory.publicKey, pulumi.output(parts(node))])
                .apply(([mesh, directoryKey, roleParts]) => renderCloudConfig(nodeBoot(args.plan, node, mesh, directoryKey, roleParts as CloudConfigPart[])));
            this.nodes.push(new VpsNode(node.name, { plan: args.plan, node, servers: args.servers[node.provider], userData, sshPrivateKey: args.sshPrivateKey, lifecycle: args.lifecycles[node.name] }, { parent: this }));
        }
    }
}
