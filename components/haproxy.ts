// The HAProxy pair: one proxy node per provider, both active.
import * as pulumi from "@pulumi/pulumi";
import { NodeGroup, NodeGroupArgs } from "./node-group";

export class HaproxyPair extends NodeGroup {
    constructor(name: string, args: NodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:HaproxyPair", name, opts);
        this.addNodes(args, args.plan.nodes.filter((n) => n.role === "haproxy"), () => []);
        this.registerOutputs({});
    }
}
