// Drill "db-member-replace": a database member's server is replaced, as `pulumi up` does after a
// member is moved or resized by replacement, and comes back with an empty disk under write load.
// It must rejoin by itself: its etcd join script removes its stale membership through a
// surviving member and adds it back (a new member id), and Patroni re-clones PostgreSQL from
// the leader, until it streams again (and votes in the synchronous set where the mode puts it).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ETCD_UNIT } from "../../../components/render/etcd";
import { PATRONI_UNIT } from "../../../components/render/patroni";
import { etcdctlArgs, etcdMembers, EtcdMember } from "../etcd";
import { sleep } from "../exec";
import { bootFreshNode, discardNode, labNodeSpec } from "../rebuild";
import { execInNode, labNodes, nodeLogDir, NodeState } from "../realize";
import { aReplica, currentPrimary, patroniJson, PRIMARY_RTO_SECONDS, UNAFFECTED_RTO_SECONDS } from "./db";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill, drillChecks } from "./types";

/**
 * From the new server's first boot to a streaming replica in the synchronous set: the lab applies
 * the whole cloud-config again (6 to 14 s of it here), etcd rejoins, Patroni clones the database
 * with pg_basebackup and starts streaming. Measured here (2 cores, shared): streaming after 12 to
 * 25 s, in the quorum after 14 to 27 s. A real server adds its own boot and the copy of a larger
 * database.
 */
export const REBUILD_STREAMING_SECONDS = 60;
/** How long the repair may wait for it before the drill gives up (the drill fails above the bound either way). */
const REBUILD_WAIT_SECONDS = REBUILD_STREAMING_SECONDS + 60;

/** Lines of a unit's log on the node that contain `marker` (the log starts with the node's current server). */
function unitLog(node: string, unit: string, marker: string): string[] {
    const file = join(nodeLogDir(node), `${unit}.log`);
    return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((l) => l.includes(marker)) : [];
}

/** The cluster's members as `asker`'s etcd lists them; the drill cannot judge without them. */
async function membersOf(asker: string): Promise<EtcdMember[]> {
    const members = await etcdMembers(asker);
    if (!members) throw new Error(`etcd on ${asker} did not list its members`);
    return members;
}

/** Every member's own health endpoint, as etcdctl finds them from the member list. */
async function etcdHealth(asker: string): Promise<{ ok: boolean; detail: string }> {
    const r = await execInNode(asker, etcdctlArgs(["--command-timeout=5s", "endpoint", "health", "--cluster"]), { timeoutMs: 20_000, allowFail: true });
    const lines = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /is (un)?healthy/.test(l));
    const healthy = lines.filter((l) => / is healthy/.test(l)).length;
    return { ok: r.code === 0 && healthy === lines.length && healthy > 0, detail: `${healthy} of ${lines.length} endpoints healthy` };
}

interface PatroniStatus {
    role?: string;
    state?: string;
    replication_state?: string;
    sync_standby?: boolean;
    quorum_standby?: boolean;
}

/** Does the cluster's synchronous mode put every streaming replica in the synchronous set? */
async function syncModeOf(asker: NodeState): Promise<{ mode: string; everyReplicaVotes: boolean }> {
    const config = await patroniJson<{ synchronous_mode?: boolean | string }>(asker, "/config");
    if (!config) throw new Error(`Patroni on ${asker.name} did not answer /config`);
    const mode = String(config.synchronous_mode ?? false);
    // quorum: every healthy replica is a voter ("ANY k (all of them)"); on: synchronous_node_count
    // of them, kept while healthy, so a rebuilt member joins the set only when a place is free.
    return { mode, everyReplicaVotes: mode === "quorum" };
}

export const dbMemberReplace: Drill = {
    name: "db-member-replace",
    description: "rebuild a database member's server with an empty disk (--node; default a replica) under writes: it rejoins etcd as a new member and Patroni re-clones it",
    run: async (ctx) => {
        const target = await pickNode(ctx, aReplica, "replica");
        const node = labNodes().find((n) => n.name === target) as NodeState;
        if (node.role !== "db") throw new Error(`db-member-replace rebuilds a database member; ${target} is ${node.role}`);
        const spec = labNodeSpec(target); // the user-data it was given, read before the old server goes
        const asker = labNodes().find((n) => n.role === "db" && n.name !== target && !n.isolated);
        if (!asker) throw new Error("no other database member to ask");
        const before = await membersOf(asker.name);
        const old = before.find((m) => m.name === target);
        if (!old) throw new Error(`etcd does not list ${target}: ${JSON.stringify(before)}`);
        const sync = await syncModeOf(asker);
        const wasPrimary = (await currentPrimary()) === target;
        const checks = drillChecks([`${target} was ${wasPrimary ? "the primary" : "a replica"}, etcd member ${old.id}; synchronous mode ${sync.mode}`]);
        const { notes, check } = checks;
        let streamingSeconds: number | null = null;

        const result = await faultUnderLoad(ctx, {
            drill: "db-member-replace",
            target,
            lost: [target],
            fault: () => discardNode(target, ctx.log),
            whileBroken: async () => {
                // etcd never drops a member by itself: the stale identity is there for the join script to remove.
                const listed = (await membersOf(asker.name)).some((m) => m.id === old.id);
                return { ok: listed, notes: [`while ${target} was gone etcd ${listed ? "still listed" : "no longer listed"} its old member ${old.id}`] };
            },
            repair: async () => {
                const t = Date.now();
                await bootFreshNode(spec, ctx.log);
                const applied = (Date.now() - t) / 1000;
                const deadline = t + REBUILD_WAIT_SECONDS * 1000;
                let last: PatroniStatus | undefined;
                while (Date.now() < deadline) {
                    last = await patroniJson<PatroniStatus>(node, "/patroni");
                    const streams = last?.role === "replica" && last.state === "running" && last.replication_state === "streaming";
                    if (streams && streamingSeconds === null) streamingSeconds = (Date.now() - t) / 1000;
                    if (streams && (!sync.everyReplicaVotes || last?.quorum_standby || last?.sync_standby)) break;
                    await sleep(500);
                }
                const total = (Date.now() - t) / 1000;
                notes.push(`rebuild: cloud-config applied ${applied.toFixed(1)} s after the new server booted; streaming after ${streamingSeconds?.toFixed(1) ?? "never"} s; in service after ${total.toFixed(1)} s (bound ${REBUILD_STREAMING_SECONDS} s); Patroni says ${JSON.stringify(last ?? "nothing")}`);
                check(streamingSeconds !== null && total <= REBUILD_STREAMING_SECONDS, `${target} streams again${sync.everyReplicaVotes ? " and votes in the quorum" : ""} within ${REBUILD_STREAMING_SECONDS} s`);
            },
            rtoTargetSeconds: wasPrimary ? PRIMARY_RTO_SECONDS : UNAFFECTED_RTO_SECONDS,
        });

        // What the new server's etcd join script did.
        const joinLog = unitLog(target, ETCD_UNIT, "etcd-join:");
        notes.push(...joinLog.map((l) => `${target}: ${l.replace(/^.*etcd-join:/, "etcd-join:")}`));
        check(joinLog.some((l) => l.includes(`still lists this member (${old.id})`) && l.includes("removing it")), `the join script removed the stale member ${old.id}`);
        check(joinLog.some((l) => l.includes("adding this member")), "the join script added the member back");
        check(!joinLog.some((l) => l.includes("starting a new cluster")), "the join script never started a new cluster");

        const after = await membersOf(asker.name);
        const mine = after.find((m) => m.name === target);
        notes.push(`etcd members now: ${after.map((m) => `${m.name || "(unnamed)"} ${m.id} ${m.started ? "started" : "unstarted"}`).join(", ")}`);
        check(after.length === before.length && after.every((m) => m.started), `etcd lists ${before.length} started members`);
        check(mine !== undefined && mine.id !== old.id && !after.some((m) => m.id === old.id), `${target} is a new etcd member (${mine?.id ?? "none"}, was ${old.id})`);
        const health = await etcdHealth(asker.name);
        check(health.ok, `etcd endpoint health: ${health.detail}`);

        // Patroni found a leader and cloned from it, rather than starting anything of its own: with
        // pg_basebackup, from the backup repository only when that fails.
        const leader = await currentPrimary();
        const cloned = unitLog(target, PATRONI_UNIT, "bootstrapped from leader");
        const method = ["pgbackrest", "basebackup"].find((m) => unitLog(target, PATRONI_UNIT, `replica has been created using ${m}`).length > 0);
        check(cloned.some((l) => l.includes(`'${leader}'`)) && method !== undefined, `Patroni re-cloned ${target} as a replica of the leader ${leader ?? "(none)"} (${method ?? "no replica method succeeded"})`);
        const status = await patroniJson<PatroniStatus>(node, "/patroni");
        check(status?.role === "replica" && status.replication_state === "streaming", `${target} is a streaming replica (${status?.role ?? "?"}, ${status?.replication_state ?? "not streaming"})`);
        if (sync.everyReplicaVotes) check(status?.quorum_standby === true, `${target} is in the synchronous quorum`);
        else notes.push(`${target} ${status?.sync_standby ? "is" : "is not"} the synchronous standby (mode ${sync.mode} keeps a healthy one)`);

        // A replica's loss and return must not fail one write or request; a primary's is a failover.
        if (!wasPrimary) check(result.failedRequests === 0, `no write or request failed while a replica was rebuilt (${result.failedRequests} failed)`);
        return { ...result, recoverySeconds: streamingSeconds, passed: result.passed && checks.ok, notes: [...result.notes, ...notes] };
    },
};
