// The app tier: stateless app nodes on both providers, each running the user's container image
// (and its optional worker) with the database's connection string in its environment.
import * as pulumi from "@pulumi/pulumi";
import { NodeGroup, NodeGroupArgs } from "./node-group";
import { PlannedNode, StackPlan } from "./plan";
import { AppNodeConfig, appPart } from "./render/app";

export interface AppTierArgs extends NodeGroupArgs {
    /** The read-write libpq URL through both HAProxy nodes (a secret). */
    databaseUrl: pulumi.Input<string>;
}

export function appNodeConfig(plan: StackPlan, node: PlannedNode, databaseUrl: string): AppNodeConfig {
    const app = plan.config.app;
    return {
        meshAddress: node.meshAddress,
        env: app.env,
        databaseUrl,
        ...(app.command ? { command: app.command } : {}),
        ...(app.worker ? { workerCommand: app.worker.command } : {}),
    };
}

export class AppTier extends NodeGroup {
    constructor(name: string, args: AppTierArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:AppTier", name, opts);
        // The env file holds the database password and the app's own secrets: the whole
        // cloud-config that carries it is a secret.
        const url = pulumi.secret(pulumi.output(args.databaseUrl));
        this.addNodes(args, args.plan.nodes.filter((n) => n.role === "app"), (node) => url.apply((u) => [appPart(appNodeConfig(args.plan, node, u))]));
        this.registerOutputs({});
    }
}
