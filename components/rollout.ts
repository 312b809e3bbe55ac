// Rolling, health-gated convergence, planned: what each node's desired-state document carries so
// its agent (node-agent/vpsha/rollout.py) applies a change one node of its group at a time. Pure:
// the publishing code (components/desired-state.ts' callers) passes every node's content and a
// secret key, and gets each node's content with its `rollout` spec attached.
//
// Groups: the database members and the witness together (they share etcd, and the lock is
// taken there), the HAProxy pair, the app nodes. A group's id changes when any member's content
// changes, and only then: it is an HMAC, under a key kept in Pulumi state, of the members' names
// and canonical contents, so it says nothing of them (secrets included) to whoever reads it.
import { createHmac } from "node:crypto";
import { Role } from "./config";
import { canonicalContent, DesiredContent, DesiredRollout } from "./desired-state-records";
import { DB_PORTS, HAPROXY_PORTS, PlannedNode, ROLLOUT_STATUS_PORT, StackPlan } from "./plan";
import { releaseEnvFile } from "./render/app";
import { PATRONI_TIMING, PATRONI_UNIT } from "./render/patroni";
import { PATRONI_DYNAMIC_UNIT } from "./render/patroni-dynamic";
import { ROLLOUT_TOOL } from "./render/rollout-status";
import { etcdMetricsUrl, etcdTlsPaths } from "./render/etcd";

export type RolloutGroup = "db" | "haproxy" | "app";

/** How long a node may take to be healthy again after its change before the rollout halts. */
export const HEALTH_TIMEOUT_SECONDS: Record<RolloutGroup, number> = {
    // A replica's PostgreSQL restart and catch-up; etcd rejoining.
    db: 180,
    haproxy: 60,
    // The web instances' containers starting again.
    app: 120,
};

/** Restarting these on the Patroni primary stops PostgreSQL there: it hands over first. */
export const HANDOVER_UNITS = [PATRONI_UNIT];

/**
 * The dynamic-configuration tool's restart may change a parameter PostgreSQL takes only at a
 * restart (max_connections): the member's PostgreSQL restarts then if Patroni says it must.
 */
export const PENDING_RESTART_UNITS = [PATRONI_DYNAMIC_UNIT];

/** How long after that restart the gate looks for Patroni's pending_restart: a few of Patroni's loops. */
export const PENDING_RESTART_SETTLE_SECONDS = Math.max(5, 5 * PATRONI_TIMING.loop_wait);

export function rolloutGroup(role: Role): RolloutGroup {
    return role === "witness" ? "db" : role;
}

/** The commands that must all exit 0 for `node` to count as healthy after a change. */
export function healthCommands(plan: StackPlan, node: PlannedNode): string[][] {
    const tool = (...args: string[]) => [ROLLOUT_TOOL, "health", ...args];
    // etcd's /health on its plain metrics port: the client port wants a certificate.
    const etcd = node.etcdVoter ? [tool("etcd", etcdMetricsUrl(node.meshAddress))] : [];
    switch (node.role) {
        case "db":
            // Running, and streaming when a replica: a member that restarted has caught up again.
            return [tool("patroni", `http://${node.meshAddress}:${DB_PORTS.patroni}`), ...etcd];
        case "witness":
            return etcd;
        case "haproxy":
            return [tool("tcp", node.meshAddress, String(HAPROXY_PORTS.dbPrimary)), tool("tcp", node.meshAddress, String(HAPROXY_PORTS.pooler))];
        case "app":
            // Each web instance the directory agent runs has its env file: each must answer.
            return [tool("app", node.meshAddress, plan.config.app.healthPath, releaseEnvFile("*"))];
    }
}

export interface RolloutArgs {
    plan: StackPlan;
    /**
     * The nodes' contents, without `rollout` (one is ignored if present): every node of each group
     * given, or none of it (a role component passes its own group's).
     */
    contents: Record<string, DesiredContent>;
    /** Keys the group ids (secret, at least 32 bytes, kept in Pulumi state). */
    key: Buffer;
    /** This change rotates the database secrets: the groups go in turn (ROTATION_AFTER). */
    rotating?: boolean;
}

/**
 * During a secrets rotation a group changes only once every node of the group before it has
 * applied the new version: the members make the new logins and take the new passwords, the
 * HAProxy pair's poolers then admit the app's new login and take the new admin password (which the
 * members' switchover tool tries before the old), and the app nodes then log in with it.
 */
export const ROTATION_AFTER: Partial<Record<RolloutGroup, RolloutGroup>> = { haproxy: "db", app: "haproxy" };

function groupId(key: Buffer, members: PlannedNode[], contents: Record<string, DesiredContent>): string {
    const body = members.map((n) => {
        const { rollout: _ignored, ...content } = contents[n.name];
        return [n.name, canonicalContent(n.name, content)];
    });
    return createHmac("sha256", key).update(JSON.stringify(body)).digest("hex");
}

/** Each given node's rollout spec; throws naming a group's node whose content is missing, an unplanned node, or a key that is too short. */
export function rolloutSpecs(a: RolloutArgs): Record<string, DesiredRollout> {
    if (a.key.length < 32) throw new Error(`rollout key: ${a.key.length} bytes; expected at least 32 (a secret in Pulumi state)`);
    const unplanned = Object.keys(a.contents).filter((name) => !a.plan.nodes.some((n) => n.name === name));
    if (unplanned.length) throw new Error(`rollout: ${unplanned.join(", ")} is not a planned node`);
    const out: Record<string, DesiredRollout> = {};
    for (const group of ["db", "haproxy", "app"] as RolloutGroup[]) {
        const members = a.plan.nodes.filter((n) => rolloutGroup(n.role) === group).sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
        const given = members.filter((n) => a.contents[n.name] !== undefined);
        if (given.length === 0) continue;
        // The id covers the whole group: a member left out would not move it.
        const missing = members.filter((n) => a.contents[n.name] === undefined).map((n) => n.name);
        if (missing.length) throw new Error(`rollout: no desired content for ${missing.join(", ")}; the ${group} group's id needs every member's (${members.map((n) => n.name).join(", ")})`);
        const id = groupId(a.key, members, a.contents);
        const order = members.map((n) => ({ name: n.name, meshAddress: n.meshAddress }));
        const before = a.rotating ? ROTATION_AFTER[group] : undefined;
        const credentials = a.plan.config.database.secretsVersion;
        const after = before ? a.plan.nodes.filter((n) => rolloutGroup(n.role) === before).map((n) => ({ name: n.name, meshAddress: n.meshAddress })) : [];
        for (const n of members) {
            out[n.name] = {
                group,
                id,
                order,
                statusPort: ROLLOUT_STATUS_PORT,
                health: healthCommands(a.plan, n),
                healthTimeoutSeconds: HEALTH_TIMEOUT_SECONDS[group],
                handoverUnits: n.role === "db" ? [...HANDOVER_UNITS] : [],
                ...(n.role === "db" ? { pendingRestart: { units: [...PENDING_RESTART_UNITS], settleSeconds: PENDING_RESTART_SETTLE_SECONDS } } : {}),
                ...(group === "db" ? { etcdTls: etcdTlsOf(n) } : {}),
                credentials,
                ...(after.length > 0 ? { after: { nodes: after, credentials } } : {}),
            };
        }
    }
    return out;
}

/** The etcd certificate files the rollout gate takes its lock with on `node`. */
function etcdTlsOf(node: PlannedNode): { cacert: string; cert: string; key: string } {
    const paths = etcdTlsPaths(node);
    return { cacert: paths.ca, cert: paths.cert, key: paths.key };
}

/** Every node's content with its rollout spec attached: what the publishing code passes to DesiredState. */
export function withRollouts(a: RolloutArgs): Record<string, DesiredContent> {
    const specs = rolloutSpecs(a);
    return Object.fromEntries(Object.entries(a.contents).map(([name, c]) => [name, specs[name] ? { ...c, rollout: specs[name] } : c]));
}
