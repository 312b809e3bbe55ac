// Database drills: the primary killed or cut off, a replica or an etcd member killed, a whole
// provider lost. Targets: writes accepted again within Patroni's ttl + 3 s after losing the
// primary, no acknowledged write lost, never two primaries.
import { PATRONI_TIMING, PG_SOCKET_DIR, WAL_SENDER_TIMEOUT_SECONDS } from "../../../components/render/patroni";
import { ETCD_UNIT } from "../../../components/render/etcd";
import { SWITCHOVER_TOOL } from "../../../components/render/switchover";
import { sleep } from "../exec";
import { execInNode, healNode, isolateNode, killNode, labNodes, nodeUnits, NodeState, rebootNode } from "../realize";
import { etcdLeader } from "../etcd";
import { DB_PORTS } from "../../../components/plan";
import { httpStatus } from "../health";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill, DrillContext, DrillResult } from "./types";

export const PRIMARY_RTO_SECONDS = PATRONI_TIMING.ttl + 3;
/**
 * The target holds for the median of runs (npm run bench -- --lab); a single run of a drill that
 * loses the primary may take this much more (etcd refreshes every lease when its own leader
 * changes, and a run now and then meets that), never more.
 */
export const PRIMARY_LOSS_SINGLE_RUN_SLACK = 3;
export const UNAFFECTED_RTO_SECONDS = 5;
/**
 * Patroni's quorum hand-over after the synchronous set lost members: it drops a standby whose
 * connection is gone at its next loop, and in quorum mode a change takes a loop or two (record the
 * set in /sync, then synchronous_standby_names; patroni/quorum.py): at most 3 loops. Counted when
 * a primary loses standbys and stays (standbyLossRtoTarget). After a promotion the same hand-over
 * is woken at once (render/after-promote.ts), so a failover's target is ttl + 3 s whatever k:
 * measured, losing the majority provider of a witness stack (k = 2), writes back after 21.0 to
 * 22.0 s (24.1 s median before the wake-up and the pg_ctl wrapper).
 */
export const QUORUM_HANDOVER_SECONDS = 3 * PATRONI_TIMING.loop_wait;

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

/** A member's Patroni REST API answer to `path`, parsed (undefined: no JSON answer). */
export async function patroniJson<T>(n: NodeState, path: string): Promise<T | undefined> {
    const r = await execInNode(n.name, ["curl", "-s", "-m", "2", `http://${n.meshAddress}:${DB_PORTS.patroni}${path}`], { timeoutMs: 5_000, allowFail: true });
    try {
        return JSON.parse(r.stdout) as T;
    } catch {
        return undefined;
    }
}

/** The part of Patroni's dynamic configuration the drills read. */
export interface PatroniDynamic {
    synchronous_mode?: boolean | string;
    synchronous_mode_strict?: boolean;
    synchronous_node_count?: number;
}

/** Patroni's dynamic configuration as the cluster holds it, from the first member that answers. */
export async function patroniConfig(): Promise<PatroniDynamic | undefined> {
    for (const n of dbNodes().filter((x) => !x.isolated)) {
        const config = await patroniJson<PatroniDynamic>(n, "/config");
        if (config) return config;
    }
    return undefined;
}

/**
 * The RTO when synchronous standbys are lost but the primary stays: a moment, or with k > 1 (every
 * commit waits for more than one standby, so possibly for a lost one) the wal_sender_timeout it
 * takes PostgreSQL to give up a silent standby, then Patroni's quorum hand-over dropping it.
 */
export async function standbyLossRtoTarget(): Promise<number> {
    const c = await patroniConfig();
    const k = c?.synchronous_mode === "quorum" || c?.synchronous_mode === true ? c.synchronous_node_count ?? 1 : 0;
    return UNAFFECTED_RTO_SECONDS + (k > 1 ? WAL_SENDER_TIMEOUT_SECONDS + QUORUM_HANDOVER_SECONDS : 0);
}

/** The RTO a drill on `target` must meet: a failover's if it is the primary, a moment otherwise. */
export async function nodeRtoTarget(target: string): Promise<number> {
    if ((await currentPrimary()) === target) return PRIMARY_RTO_SECONDS;
    return dbNodes().some((n) => n.name === target) ? standbyLossRtoTarget() : UNAFFECTED_RTO_SECONDS;
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
        return killAndReboot(ctx, "db-replica-kill", target, await standbyLossRtoTarget());
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

/** Every node of `provider` dies at once (its data centres' power gone); the repair reboots them. */
function providerFault(ctx: DrillContext, provider: string) {
    const lost = labNodes().filter((n) => n.provider === provider).map((n) => n.name);
    return {
        target: `provider ${provider} (${lost.join(", ")})`,
        lost,
        fault: async () => {
            await Promise.all(lost.map((n) => killNode(n, ctx.log)));
        },
        repair: async () => {
            for (const n of lost) await rebootNode(n, ctx.log);
        },
    };
}

export const providerLoss: Drill = {
    name: "provider-loss",
    description: "every node of the provider holding the fewest database members dies at once; writes go on",
    run: async (ctx) => {
        const byProvider = membersByProvider();
        const minority = providerFault(ctx, byProvider[byProvider.length - 1][0]);
        const primary = await currentPrimary();
        const rto = primary && minority.lost.includes(primary) ? PRIMARY_RTO_SECONDS : await standbyLossRtoTarget();
        return faultUnderLoad(ctx, { drill: "provider-loss", ...minority, rtoTargetSeconds: rto });
    },
};

/** Database members per provider, most first. */
function membersByProvider(): [string, NodeState[]][] {
    const by = new Map<string, NodeState[]>();
    for (const n of dbNodes()) by.set(n.provider, [...(by.get(n.provider) ?? []), n]);
    return [...by.entries()].sort((a, b) => b[1].length - a[1].length);
}

const votes = async (n: NodeState) => (await nodeUnits(n.name)).some((u) => u.unit === ETCD_UNIT);

/** Bounded wait for `what`; true once `check` holds. */
async function waitUntil(limitMs: number, check: () => Promise<boolean>): Promise<boolean> {
    const deadline = Date.now() + limitMs;
    while (Date.now() < deadline) {
        if (await check()) return true;
        await sleep(1_000);
    }
    return false;
}

/**
 * Puts the primary on `candidate` with the program's own switchover tool (run on the candidate,
 * "lead from here", so the tool pauses the poolers before asking Patroni: the other way than the
 * db-switchover drill, which runs it on the primary) and waits until Patroni says it leads.
 */
export async function switchOverTo(ctx: DrillContext, candidate: string): Promise<void> {
    const from = await currentPrimary();
    if (!from) throw new Error("no primary to switch over from");
    ctx.log(`switching the primary over from ${from} to ${candidate}`);
    const r = await execInNode(candidate, [SWITCHOVER_TOOL, "--candidate", candidate], { timeoutMs: 120_000, allowFail: true });
    for (const line of `${r.stdout}${r.stderr}`.trim().split("\n")) ctx.log(line);
    if (r.code !== 0) throw new Error(`${SWITCHOVER_TOOL} --candidate ${candidate} on ${candidate} failed (exit ${r.code})`);
    if (!(await waitUntil(30_000, async () => (await currentPrimary()) === candidate))) throw new Error(`${candidate} did not lead within 30 s of the switchover`);
}

/** The primary's synchronous_standby_names, asked on its socket. */
async function synchronousStandbys(node: string): Promise<string> {
    const r = await execInNode(node, ["psql", "-h", PG_SOCKET_DIR, "-U", "postgres", "-XAtq", "-c", "SHOW synchronous_standby_names"], { user: "postgres", timeoutMs: 5_000, allowFail: true });
    return r.code === 0 ? r.stdout.trim() : `unknown (${r.stderr.trim()})`;
}

/**
 * The steady state: the primary's commits wait for k (synchronous_node_count) of its standbys,
 * every other member listed (`ANY k (...)` in quorum mode, `k (...)` in on mode). Bounded wait;
 * says what it last saw.
 */
export async function waitForFullSynchronousSet(primary: string, limitMs: number): Promise<{ ok: boolean; seen: string }> {
    const k = (await patroniConfig())?.synchronous_node_count ?? 1;
    const others = dbNodes().filter((n) => n.name !== primary).map((n) => n.name);
    let seen = "";
    const ok = await waitUntil(limitMs, async () => {
        seen = await synchronousStandbys(primary);
        const m = /^(?:ANY )?(\d+) \((.*)\)$/.exec(seen);
        const names = m ? m[2].split(",").map((x) => x.trim().replace(/^"|"$/g, "")) : [];
        return m !== null && Number(m[1]) === k && others.every((o) => names.includes(o));
    });
    return { ok, seen: `${seen || "(empty)"}, k = ${k}` };
}

/**
 * Puts the primary on the provider holding the most database members, on its member that votes
 * in etcd (see providerLossMajority), switching over if it is elsewhere; says what it did.
 */
export async function primaryOntoMajority(ctx: DrillContext): Promise<{ majority: string; members: NodeState[]; voter: NodeState; note: string }> {
    const [[majority, members], ...rest] = membersByProvider();
    if (rest.length === 0) throw new Error(`every database member is on ${majority}: no other provider to take over`);
    const voting = await Promise.all(members.map(votes));
    const voter = members.find((_, i) => voting[i]) ?? members[0];
    const primary = await currentPrimary();
    if (primary !== voter.name) await switchOverTo(ctx, voter.name);
    const note = `primary put on ${voter.name} (${majority}, ${voting[members.indexOf(voter)] ? "an etcd voter" : "no etcd voter there"})${primary === voter.name ? " already" : `, switched over from ${primary ?? "nobody"}`}`;
    return { majority, members, voter, note };
}

/**
 * The loss of the provider holding most database members, which only a stack with a witness
 * survives: the witness keeps etcd's quorum, and every commit has a copy on the other provider
 * (synchronous_node_count = that provider's member count), so the member left there may take
 * over. The primary is put on that provider first (the worst case: a failover, not a standby
 * lost), on its member that votes in etcd: the etcd-leader-away job then keeps etcd's leader off
 * the primary's node, which is also off its provider, so the drill measures Patroni's failover
 * and not an etcd election on top of it. The fault strikes once every member is back in the
 * synchronous set (right after a switchover they are not yet). Writes must come back within a
 * failover's target (PRIMARY_RTO_SECONDS), with no acknowledged write lost.
 */
export const providerLossMajority: Drill = {
    name: "provider-loss-majority",
    description: "every node of the provider holding the most database members dies at once, the primary among them; a member on the other provider takes over",
    needs: "witness",
    run: async (ctx) => {
        const { majority, members, voter, note } = await primaryOntoMajority(ctx);
        const setup = [note];
        const before = await waitForFullSynchronousSet(voter.name, 60_000);
        if (!before.ok) throw new Error(`provider-loss-majority: ${voter.name}'s synchronous set did not name every other member within 60 s: ${before.seen}`);
        // The leader-away job looks every few seconds; give it a few rounds to move etcd's leader.
        let leader: string | undefined;
        await waitUntil(30_000, async () => {
            leader = await etcdLeader();
            return leader !== undefined && !members.some((m) => m.name === leader);
        });
        setup.push(`synchronous_standby_names before the fault: ${before.seen}`, `etcd leader before the fault: ${leader ?? "unknown"}${members.some((m) => m.name === leader) ? ` (on ${majority}: an etcd election adds to the failover)` : ""}`);
        const loss = providerFault(ctx, majority);
        const lost = loss.lost;
        const proxies = labNodes().filter((n) => n.role === "haproxy" && !lost.includes(n.name));
        const result = await faultUnderLoad(ctx, {
            drill: "provider-loss-majority",
            ...loss,
            whileBroken: async () => {
                const now = await currentPrimary();
                const elsewhere = now !== undefined && !lost.includes(now);
                // The web keeps serving through the HAProxy node left: it answers /healthz itself
                // with 200 while it has an app node up.
                const web = await Promise.all(proxies.map(async (p) => `${p.name} /healthz ${await httpStatus(p, "http://127.0.0.1/healthz")}`));
                return {
                    ok: elsewhere && web.length > 0 && web.every((w) => w.endsWith(" 200")),
                    notes: [`new primary: ${now ?? "none"}${elsewhere ? "" : ` (expected one off ${majority})`}; synchronous_standby_names on it: ${now ? (await synchronousStandbys(now)) || "(empty: one copy per commit until a member returns)" : "-"}`, `web through the HAProxy left: ${web.join(", ") || "none"}`],
                };
            },
            afterRepair: async () => {
                // Healthy means every member leads or streams; the old primary must now follow,
                // and Patroni must have raised the synchronous set back to k by itself.
                const oldIsReplica = await patroniSays(voter, "/replica");
                const now = await currentPrimary();
                const after = now ? await waitForFullSynchronousSet(now, 60_000) : { ok: false, seen: "no primary" };
                return {
                    ok: oldIsReplica && after.ok,
                    notes: [`after the reboot: old primary ${voter.name} ${oldIsReplica ? "is a replica" : "is NOT a replica"}, primary ${now ?? "none"}; synchronous_standby_names ${after.seen}${after.ok ? "" : " (the rebooted members are not all back in the synchronous set within 60 s)"}`],
                };
            },
            rtoTargetSeconds: PRIMARY_RTO_SECONDS,
        });
        return { ...result, notes: [...setup, ...result.notes] };
    },
};

/**
 * A planned switchover may hold writes this long (the poolers wait; nobody gets an error): the
 * target, for the median of runs (npm run bench); a single run may take SWITCHOVER_SINGLE_RUN_SLACK
 * more. Where the 2.7 s go, from the members' logs, with the tool run on the primary's node: Patroni's
 * before_stop hook pauses the poolers (0.05 s); the old primary stops and archives its last WAL
 * segment (0.6 s); Patroni notices the shutdown at its next one-second poll
 * (postgresql/__init__.py, STOP_POLLING_INTERVAL), then waits a fixed second ("give replicas some
 * more time to catch up", ha.py demote), checks the members again and releases the leader key;
 * the replicas race, the winner promotes (0.3 s); HAProxy, asking every 200 to 250 ms, has the
 * old primary out and the new one in, and the poolers resume on sessions opened beforehand.
 * Patroni's two fixed seconds are most of it.
 *
 * Before, the pause was 3.4 to 3.7 s: the poolers paused before Patroni's checks and checkpoint
 * (0.3 s), HAProxy took up to 1 s to drop the old primary (every 500 ms, two failed answers),
 * and resuming spawned psql (0.3 s on a busy node). Earlier still 4.5 to 5 s, once 9 s: the tool
 * named a candidate (every other member then sleeps 2 s before following, ha.py
 * process_unhealthy_cluster, and strict synchronous replication holds the first commit until one
 * follows), and standbys retried a new primary after PostgreSQL's 5 s, not
 * WAL_RETRIEVE_RETRY_SECONDS.
 */
export const SWITCHOVER_PAUSE_SECONDS = 3;
export const SWITCHOVER_SINGLE_RUN_SLACK = 1;

/**
 * How far one run of a drill may go over its RTO target (the target itself holds for the median
 * of runs, npm run bench -- --lab): a lost primary's PRIMARY_LOSS_SINGLE_RUN_SLACK, a planned
 * switchover's SWITCHOVER_SINGLE_RUN_SLACK, nothing for any other drill.
 */
export function singleRunSlack(result: Pick<DrillResult, "drill" | "rtoTargetSeconds">): number {
    if (result.rtoTargetSeconds >= PRIMARY_RTO_SECONDS) return PRIMARY_LOSS_SINGLE_RUN_SLACK;
    return result.drill === "db-switchover" ? SWITCHOVER_SINGLE_RUN_SLACK : 0;
}

export const dbSwitchover: Drill = {
    name: "db-switchover",
    description: `a planned switchover (what a rolling upgrade or resize does) under writes through the poolers: no failed transaction, writes pause <= ${SWITCHOVER_PAUSE_SECONDS} s`,
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
            planned: { maxWritePauseSeconds: SWITCHOVER_PAUSE_SECONDS + SWITCHOVER_SINGLE_RUN_SLACK },
        });
    },
};
