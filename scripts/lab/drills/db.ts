// Database drills: the primary killed or cut off, a replica or an etcd member killed, a whole
// provider lost. Targets: writes accepted again within Patroni's ttl + 3 s after losing the
// primary, no acknowledged write lost, never two primaries.
import { PATRONI_TIMING, PG_SOCKET_DIR } from "../../../components/render/patroni";
import { ETCD_UNIT } from "../../../components/render/etcd";
import { SWITCHOVER_TOOL } from "../../../components/render/switchover";
import { sleep } from "../exec";
import { execInNode, healNode, isolateNode, killNode, labNodes, NodeState, rebootNode } from "../realize";
import { DB_PORTS } from "../../../components/plan";
import { httpStatus } from "../health";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill, DrillContext } from "./types";

export const PRIMARY_RTO_SECONDS = PATRONI_TIMING.ttl + 3;
export const UNAFFECTED_RTO_SECONDS = 5;

const dbNodes = (): NodeState[] => labNodes().filter((n) => n.role === "db");

/** Patroni's own answer, asked on each member's mesh address from inside that member. */
async function patroniSays(n: NodeState, path: string): Promise<boolean> {
    return (await httpStatus(n, `http://${n.meshAddress}:${DB_PORTS.patroni}${path}`)) === "200";
}

export async function currentPrimary(): Promise<string | undefined> {
    for (const n of dbNodes().filter((x) => !x.isolated)) if (await patroniSays(n, "/primary")) return n.name;
    return undefined;
}

export async function aReplica(): Promise<string | undefined> {
    for (const n of dbNodes()) if (await patroniSays(n, "/replica")) return n.name;
    return undefined;
}

/** Would this member accept a write right now? Asked on its local socket, bypassing HAProxy. */
async function acceptsWrites(node: string): Promise<boolean> {
    const r = await execInNode(node, ["psql", "-h", PG_SOCKET_DIR, "-U", "postgres", "-XAtq", "-c", "SELECT NOT pg_is_in_recovery()"], { user: "postgres", timeoutMs: 5_000, allowFail: true });
    return r.code === 0 && r.stdout.trim() === "t";
}

/** The RTO a drill on `target` must meet: ttl + 3 s if it is the primary, a moment otherwise. */
export async function nodeRtoTarget(target: string): Promise<number> {
    return (await currentPrimary()) === target ? PRIMARY_RTO_SECONDS : UNAFFECTED_RTO_SECONDS;
}

/** SIGKILL every process of `target`, then restart it as after a reboot, under load. */
export const killAndReboot = (ctx: DrillContext, drill: string, target: string, rto: number) =>
    faultUnderLoad(ctx, { drill, target, lost: [target], fault: () => killNode(target, ctx.log), repair: () => rebootNode(target, ctx.log), rtoTargetSeconds: rto });

export const dbPrimaryKill: Drill = {
    name: "db-primary-kill",
    description: "SIGKILL every process of the primary's node under write load; RTO and lost writes",
    run: async (ctx) => {
        const target = await pickNode(ctx, currentPrimary, "primary");
        return killAndReboot(ctx, "db-primary-kill", target, PRIMARY_RTO_SECONDS);
    },
};

export const dbPrimaryIsolate: Drill = {
    name: "db-primary-isolate",
    description: "cut the primary's network: it must stop accepting writes, a replica takes over, and it rejoins as a replica",
    run: async (ctx) => {
        const target = await pickNode(ctx, currentPrimary, "primary");
        return faultUnderLoad(ctx, {
            drill: "db-primary-isolate",
            target,
            lost: [target],
            fault: () => isolateNode(target),
            whileBroken: async () => {
                // Patroni demotes a primary that cannot renew its leader key within ttl; give it
                // that plus a loop, then ask the old primary itself.
                await sleep((PATRONI_TIMING.ttl + PATRONI_TIMING.loop_wait + 2) * 1000);
                const writable = await acceptsWrites(target);
                const other = await currentPrimary();
                return {
                    ok: !writable && other !== undefined && other !== target,
                    splitBrain: writable && other !== undefined && other !== target,
                    notes: [`isolated old primary ${target} ${writable ? "STILL ACCEPTS writes" : "refuses writes"}; new primary: ${other ?? "none"}`],
                };
            },
            repair: async () => {
                await healNode(target);
            },
            rtoTargetSeconds: PRIMARY_RTO_SECONDS,
        });
    },
};

export const dbReplicaKill: Drill = {
    name: "db-replica-kill",
    description: "SIGKILL every process of a replica's node; writes go on",
    run: async (ctx) => {
        const target = await pickNode(ctx, aReplica, "replica");
        return killAndReboot(ctx, "db-replica-kill", target, UNAFFECTED_RTO_SECONDS);
    },
};

export const etcdMemberKill: Drill = {
    name: "etcd-member-kill",
    description: "SIGKILL the etcd member on a replica's node; writes go on",
    run: async (ctx) => {
        const target = await pickNode(ctx, aReplica, "replica");
        const systemctl = (...args: string[]) => execInNode(target, ["systemctl", ...args], { timeoutMs: 20_000 }).then(() => undefined);
        return faultUnderLoad(ctx, {
            drill: "etcd-member-kill",
            target,
            lost: [],
            fault: () => systemctl("kill", "-s", "SIGKILL", ETCD_UNIT),
            repair: () => systemctl("restart", ETCD_UNIT),
            rtoTargetSeconds: UNAFFECTED_RTO_SECONDS,
        });
    },
};

export const providerLoss: Drill = {
    name: "provider-loss",
    description: "every node of the provider holding the fewest database members dies at once; writes go on",
    run: async (ctx) => {
        const count = new Map<string, number>();
        for (const n of dbNodes()) count.set(n.provider, (count.get(n.provider) ?? 0) + 1);
        const minority = [...count.entries()].sort((a, b) => a[1] - b[1])[0][0];
        const lost = labNodes().filter((n) => n.provider === minority).map((n) => n.name);
        const primary = await currentPrimary();
        const rto = primary && lost.includes(primary) ? PRIMARY_RTO_SECONDS : UNAFFECTED_RTO_SECONDS;
        return faultUnderLoad(ctx, {
            drill: "provider-loss",
            target: `provider ${minority} (${lost.join(", ")})`,
            lost,
            fault: async () => {
                await Promise.all(lost.map((n) => killNode(n, ctx.log)));
            },
            repair: async () => {
                for (const n of lost) await rebootNode(n, ctx.log);
            },
            rtoTargetSeconds: rto,
        });
    },
};


/**
 * A planned switchover may hold writes this long (the poolers wait; nobody gets an error). Where
 * the 4.5 to 5 s go, from the members' logs: the poolers pause and Patroni checks the candidate
 * (0.4 s); the old primary checkpoints, stops, and archives its last WAL segment (0.5 s); Patroni
 * then waits a fixed second after the shutdown checkpoint ("give replicas some more time to catch
 * up", patroni/ha.py), checks the candidate again and releases the leader key (2.1 s after the
 * stop); the candidate promotes (0.3 s) and HAProxy routes to it (0.1 to 0.4 s). The first commit
 * then waits about 1.5 s for a standby: strict synchronous replication acknowledges nothing on one
 * copy, and the replicas point at the new primary only at their next loop (the old primary
 * sleeps a fixed 2 s after releasing the key). 3 s is out of reach without changing Patroni.
 */
export const SWITCHOVER_PAUSE_SECONDS = 6;

export const dbSwitchover: Drill = {
    name: "db-switchover",
    description: "a planned switchover (what a rolling upgrade or resize does) under writes through the poolers: no failed transaction, writes pause <= 6 s",
    run: async (ctx) => {
        const from = await pickNode(ctx, currentPrimary, "primary");
        return faultUnderLoad(ctx, {
            drill: "db-switchover",
            target: from,
            lost: [],
            fault: async () => {
                const r = await execInNode(from, [SWITCHOVER_TOOL], { timeoutMs: 120_000, allowFail: true });
                for (const line of `${r.stdout}${r.stderr}`.trim().split("\n")) ctx.log(line);
                if (r.code !== 0) throw new Error(`${SWITCHOVER_TOOL} on ${from} failed (exit ${r.code})`);
            },
            whileBroken: async () => {
                const now = await currentPrimary();
                return { ok: now !== undefined && now !== from, notes: [`primary moved from ${from} to ${now ?? "nobody"}`] };
            },
            repair: async () => undefined,
            rtoTargetSeconds: SWITCHOVER_PAUSE_SECONDS,
            // A client that retries nothing and waits as long as a web request would.
            writes: { pooled: true, timeoutMs: 30_000 },
            planned: { maxWritePauseSeconds: SWITCHOVER_PAUSE_SECONDS },
        });
    },
};
