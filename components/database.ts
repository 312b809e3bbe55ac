// The database tier: PostgreSQL members and an optional etcd-only witness.
import * as pulumi from "@pulumi/pulumi";
import { NodeGroup, NodeGroupArgs } from "./node-group";

export class DatabaseCluster extends NodeGroup {
    constructor(name: string, args: NodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:DatabaseCluster", name, opts);
        this.addNodes(args, args.plan.nodes.filter((n) => n.role === "db" || n.role === "witness"), () => []);
        this.registerOutputs({});
    }
}
