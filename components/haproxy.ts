// The HAProxy pair: one proxy node per provider, both active. Each balances HTTP to the app
// nodes and routes database clients to the current Patroni primary, over the mesh.
import { monitoringParts } from "./render/monitoring";
import * as pulumi from "@pulumi/pulumi";
import { frontDoorHostnames } from "./config";
import { placeholderPem, placeholderSecret } from "./placeholders";
import { NodeGroup, NodeGroupArgs } from "./node-group";
import { DB_PORTS, HAPROXY_PORTS, ROLLOUT_STATUS_PORT, ROLLOUT_VIEW_PORT, StackPlan } from "./plan";
import { PoolerSecrets } from "./database";
import { HaproxyConfig, haproxyPart } from "./render/haproxy";
import { PgbouncerConfig, pgbouncerPart } from "./render/pgbouncer";
import { APP_DATABASE } from "./render/patroni";
import { loginRole } from "./secrets-version";
import { rolloutViewPart } from "./render/rollout-view";
import { statusViewSpec } from "./monitoring";

/** The rollout token's length (letters and digits). */
export const ROLLOUT_TOKEN_LENGTH = 40;

/** Replicas more than this behind the primary are left out of the read-only port. */
const MAX_REPLICA_LAG_BYTES = 16 * 1024 * 1024;

export interface HaproxyPairArgs extends NodeGroupArgs {
    /** The origin certificate and its key in one PEM (secret): what Cloudflare's edge verifies. */
    originPem: pulumi.Input<string>;
    /** The certificate Cloudflare presents to these nodes (Authenticated Origin Pulls), without its key. */
    originPullCa: pulumi.Input<string>;
    /** The passwords the node's pgbouncer needs (secret). */
    pooler: pulumi.Input<PoolerSecrets>;
    /** What HAProxy asks of `pulumi up`'s rollout wait on /vps-ha/rollout and of `npm run status` on /vps-ha/status (secret): held by these nodes only. */
    rolloutToken: pulumi.Input<string>;
}

export function poolerConfig(meshAddress: string, secrets: PoolerSecrets): PgbouncerConfig {
    return {
        meshAddress,
        port: HAPROXY_PORTS.pooler,
        primaryPort: HAPROXY_PORTS.dbPrimary,
        statsPort: HAPROXY_PORTS.stats,
        database: APP_DATABASE,
        appUser: secrets.appUser,
        appPassword: secrets.appPassword,
        adminPassword: secrets.adminPassword,
        ...(secrets.previousApp ? { previousApp: secrets.previousApp } : {}),
    };
}

export function haproxyConfig(plan: StackPlan, meshAddress: string): HaproxyConfig {
    return {
        meshAddress,
        appHealthPath: plan.config.app.healthPath,
        postgresPort: DB_PORTS.postgres,
        patroniPort: DB_PORTS.patroni,
        ports: HAPROXY_PORTS,
        maxReplicaLagBytes: MAX_REPLICA_LAG_BYTES,
        // The same HSTS as the zone sends when the stack owns the zone's settings; per hostname otherwise.
        hstsMaxAgeSeconds: plan.config.cloudflare.hstsMaxAgeSeconds,
        hstsIncludeSubdomains: plan.config.cloudflare.zoneSettings,
        // Cloudflare's health check asks HAProxy itself, on the path the front door checks.
        monitorPath: plan.config.cloudflare.monitor.path,
        candidateHostname: frontDoorHostnames(plan.config).candidate,
        rolloutViewPort: ROLLOUT_VIEW_PORT,
    };
}

export class HaproxyPair extends NodeGroup {
    constructor(name: string, args: HaproxyPairArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:HaproxyPair", name, opts);
        const { plan } = args;
        const inputs = pulumi.secret(pulumi.all([args.originPem, args.pooler, args.rolloutToken, args.originPullCa]));
        const view = rolloutViewPart({ port: ROLLOUT_VIEW_PORT, statusPort: ROLLOUT_STATUS_PORT, status: statusViewSpec(plan) });
        this.addNodes(args, plan.nodes.filter((n) => n.role === "haproxy"), (node) =>
            inputs.apply(([pem, pooler, token, pullCa]) => [
                haproxyPart(haproxyConfig(plan, node.meshAddress), pem, pullCa, token),
                view,
                pgbouncerPart(poolerConfig(node.meshAddress, pooler)),
                ...monitoringParts(plan, node, { poolerAdminPassword: pooler.adminPassword }),
            ]),
        (node) => [
            haproxyPart(haproxyConfig(plan, node.meshAddress), placeholderPem("origin/cert", "CERTIFICATE", 1500) + placeholderPem("origin/key", "PRIVATE KEY", 300), placeholderPem("origin-pull/cert", "CERTIFICATE", 1200), placeholderSecret("rolloutToken", ROLLOUT_TOKEN_LENGTH)),
            view,
            pgbouncerPart(poolerConfig(node.meshAddress, {
                appUser: loginRole("app", plan.config.database.secretsVersion), appPassword: placeholderSecret("app", 32), adminPassword: placeholderSecret("poolerAdmin", 32),
                ...(args.rotation ? { previousApp: { user: loginRole("app", args.rotation.from), password: placeholderSecret("app/previous", 32) } } : {}),
            })),
            ...monitoringParts(plan, node, { poolerAdminPassword: placeholderSecret("poolerAdmin", 32) }),
        ]);
        this.registerOutputs({});
    }
}
