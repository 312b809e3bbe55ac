// The app tier: stateless app nodes on both providers.
import * as pulumi from "@pulumi/pulumi";
import { NodeGroup, NodeGroupArgs } from "./node-group";

export class AppTier extends NodeGroup {
    constructor(name: string, args: NodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:AppTier", name, opts);
        this.addNodes(args, args.plan.nodes.filter((n) => n.role === "app"), () => []);
        this.registerOutputs({});
    }
}
