// The app tier: stateless app nodes on both providers, each running the user's container image
// (and its optional worker) with the database's connection string in its environment.
import { monitoringParts } from "./render/monitoring";
import * as pulumi from "@pulumi/pulumi";
import { connectionStrings } from "./database";
import { NodeGroup, NodeGroupArgs } from "./node-group";
import { placeholderSecret } from "./placeholders";
import { PlannedNode, StackPlan } from "./plan";
import { AppNodeConfig, appPart } from "./render/app";

export interface AppTierArgs extends NodeGroupArgs {
    /** The read-write libpq URL through both HAProxy nodes (a secret). */
    databaseUrl: pulumi.Input<string>;
    /** The same through the poolers on the HAProxy nodes (a secret). */
    pooledDatabaseUrl: pulumi.Input<string>;
}

export function appNodeConfig(plan: StackPlan, node: PlannedNode, databaseUrl: string, pooledDatabaseUrl: string): AppNodeConfig {
    const app = plan.config.app;
    return {
        meshAddress: node.meshAddress,
        env: app.env,
        databaseUrl,
        pooledDatabaseUrl,
        retireAfterSeconds: app.retireAfterSeconds,
        ...(app.command ? { command: app.command } : {}),
        ...(app.worker ? { workerCommand: app.worker.command } : {}),
    };
}

export class AppTier extends NodeGroup {
    constructor(name: string, args: AppTierArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:AppTier", name, opts);
        // The env file holds the database password and the app's own secrets: the whole
        // cloud-config that carries it is a secret.
        const urls = pulumi.secret(pulumi.all([args.databaseUrl, args.pooledDatabaseUrl]));
        this.addNodes(args, args.plan.nodes.filter((n) => n.role === "app"), (node) => urls.apply(([u, pooled]) => [appPart(appNodeConfig(args.plan, node, u, pooled)), ...monitoringParts(args.plan, node)]),
            (node) => {
                const u = connectionStrings(args.plan, placeholderSecret("app", 32));
                return [appPart(appNodeConfig(args.plan, node, u.readWrite, u.pooled)), ...monitoringParts(args.plan, node)];
            });
        this.registerOutputs({});
    }
}
