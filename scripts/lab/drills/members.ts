// Drills on changes to the database members in the stack file, each decided by the program itself
// (evaluated against the lab's deployment, stack-change.ts) and applied to the lab only as far as
// the program accepted it:
// - double-change-refused: both of two members resized in one stack change; the program refuses
//   before it creates anything, naming the members and the order, and the lab's servers are untouched.
// - member-move: one member moved to the other provider in one run; the program's stand-down step
//   (the real tool, against the lab's stand-in of the provider's API) shuts the old server down,
//   which hands a primary over on its way down; then the old server goes and a new one boots with
//   an empty disk, under writes through the poolers, while Patroni's view of the cluster is
//   sampled: never fewer than two members leading or streaming, no pooled write failed, at most
//   one switchover.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { catalogs } from "../../../components/providers/catalogs";
import { HAND_OVER_UNIT, SWITCHOVER_TOOL } from "../../../components/render/switchover";
import { STAND_DOWN_COMMAND, STAND_DOWN_ENV, STAND_DOWN_TOKEN_ENV, StandDownProvider, standDownStepName } from "../../../components/stand-down";
import { Evaluation } from "../../lib/mock-program";
import { etcdMembers } from "../etcd";
import { Log, run, sleep } from "../exec";
import { containerLeader, powerOffContainer } from "../nspawn";
import { startProviderApi } from "../provider-api";
import { stopProcesses } from "../cleanup";
import { nodeState } from "../state";
import { bootFreshNode, discardNode, labNodeSpec } from "../rebuild";
import { execInNode, labNodes, NodeState } from "../realize";
import { updateState } from "../state";
import { currentPrimary, patroniJson, standbyLossRtoTarget, SWITCHOVER_PAUSE_SECONDS, SWITCHOVER_SINGLE_RUN_SLACK, UNAFFECTED_RTO_SECONDS } from "./db";
import { faultUnderLoad, pickNode } from "./harness";
import { REBUILD_STREAMING_SECONDS } from "./replace";
import { accepted, applyToProgram, labNodeLists, labSource, NodeEntry, NodeLists } from "./stack-change";
import { Drill, drillChecks } from "./types";

const dbNodes = (): NodeState[] => labNodes().filter((n) => n.role === "db");

interface ClusterMember {
    name: string;
    role: string;
    state: string;
    timeline?: number;
}

/** Patroni's view of the cluster from the first of `askers` that answers (undefined: none did). */
async function clusterView(askers: NodeState[]): Promise<{ asker: string; members: ClusterMember[] } | undefined> {
    for (const n of askers) {
        const c = await patroniJson<{ members?: ClusterMember[] }>(n, "/cluster");
        if (c?.members) return { asker: n.name, members: c.members };
    }
    return undefined;
}

/** Members that lead (running) or stream from the leader: the ones holding the data right now. */
function serving(members: ClusterMember[]): ClusterMember[] {
    return members.filter((m) => (m.role === "leader" && m.state === "running") || m.state === "streaming");
}

/**
 * Samples Patroni's view of the cluster about once a second (bounded by `maxSeconds`), asking the
 * members other than `skip` (the one going away cannot speak for the others).
 */
class ClusterWatch {
    readonly samples: { at: number; serving: string[]; leader?: string; asker?: string }[] = [];
    private running = true;
    private done: Promise<void> = Promise.resolve();

    constructor(private readonly skip: string, private readonly maxSeconds: number) {}

    start(): this {
        const until = Date.now() + this.maxSeconds * 1000;
        this.done = (async () => {
            while (this.running && Date.now() < until) {
                const t = Date.now();
                const view = await clusterView(dbNodes().filter((n) => n.name !== this.skip && !n.isolated));
                const leader = view?.members.find((m) => m.role === "leader")?.name;
                this.samples.push({ at: t, serving: view ? serving(view.members).map((m) => m.name) : [], ...(leader ? { leader } : {}), ...(view ? { asker: view.asker } : {}) });
                await sleep(Math.max(0, 1_000 - (Date.now() - t)));
            }
        })();
        return this;
    }

    async stop(): Promise<void> {
        this.running = false;
        await this.done;
    }

    /** The fewest members leading or streaming in any sample, with when (s after `from`) and who. */
    fewest(from: number): { count: number; atSeconds: number; who: string[] } {
        const worst = this.samples.reduce((a, b) => (b.serving.length < a.serving.length ? b : a), this.samples[0]);
        return { count: worst?.serving.length ?? 0, atSeconds: worst ? (worst.at - from) / 1000 : 0, who: worst?.serving ?? [] };
    }

    /**
     * The samples with fewer than two members leading or streaming, apart from those within
     * `windowSeconds` after the leader first changed (a switchover re-points every replica to
     * the new primary; a synchronous commit waits meanwhile). Also how long that window's own
     * thin stretch lasted (s), 0 if none.
     */
    thinOutside(windowSeconds: number): { outside: { at: number; serving: string[] }[]; inWindowSeconds: number } {
        const first = this.samples.find((x) => x.leader)?.leader;
        const change = this.samples.find((x) => x.leader && x.leader !== first)?.at;
        const thin = this.samples.filter((x) => x.serving.length < 2);
        const inWindow = (at: number) => change !== undefined && at >= change - 1_000 && at <= change + windowSeconds * 1000;
        const within = thin.filter((x) => inWindow(x.at));
        return {
            outside: thin.filter((x) => !inWindow(x.at)),
            inWindowSeconds: within.length ? (within[within.length - 1].at - within[0].at) / 1000 + 1 : 0,
        };
    }

    /** The leaders in turn. */
    leaders(): string[] {
        const out: string[] = [];
        for (const s of this.samples) if (s.leader && out[out.length - 1] !== s.leader) out.push(s.leader);
        return out;
    }

    /** The longest stretch with no answer from any member (s). */
    longestSilence(): number {
        let longest = 0;
        let last = this.samples[0]?.at ?? 0;
        for (const s of this.samples) {
            if (s.asker === undefined) continue;
            longest = Math.max(longest, (s.at - last) / 1000);
            last = s.at;
        }
        return longest;
    }
}

/** A server's identity in the lab: its disk (the overlay's upper directory) and its running systemd. */
function serverIdentity(n: NodeState): string {
    const disk = statSync(n.paths.upper);
    return `disk ${disk.ino}/${disk.birthtimeMs}, systemd ${containerLeader(n) ?? "down"}`;
}

/** The stand-down step the program declared for `node`'s old server (a move to another provider). */
export function standDownStep(e: Evaluation, node: string): { environment: Record<string, string>; provider: string; server: string } | undefined {
    const r = e.resources.find((x) => x.type === "command:local:Command" && x.name === standDownStepName(node));
    if (!r) return undefined;
    const environment = r.inputs.environment as Record<string, string>;
    return { environment, provider: environment[STAND_DOWN_ENV.provider], server: environment[STAND_DOWN_ENV.server] };
}

/** How long the old server's graceful shutdown may take in the lab (the step's own default is longer). */
const STAND_DOWN_SECONDS = 150;

/**
 * Runs the program's stand-down step as `pulumi up` would (its command, its environment) against
 * the lab's stand-in of the provider's API, which powers the node's container off as an ACPI
 * shutdown does (a hard stop of its processes for a power-off). Returns the tool's output.
 */
async function runStandDown(step: NonNullable<ReturnType<typeof standDownStep>>, node: string, log: Log): Promise<{ code: number; output: string; seconds: number }> {
    const token = "lab-stand-down-token";
    const api = await startProviderApi({
        token,
        servers: { [step.server]: { provider: step.provider as StandDownProvider, node } },
        onShutdown: async (name, how) => {
            if (how === "hard" || !(await powerOffContainer(name, log, STAND_DOWN_SECONDS * 1000))) await stopProcesses(nodeState(name), log, 0);
        },
    });
    const t = Date.now();
    try {
        const env = { ...process.env, ...step.environment, [STAND_DOWN_TOKEN_ENV[step.provider as StandDownProvider]]: token, [STAND_DOWN_ENV.api]: api.url, [STAND_DOWN_ENV.seconds]: String(STAND_DOWN_SECONDS) };
        const r = await run(["sh", "-c", STAND_DOWN_COMMAND], { env, timeoutMs: (STAND_DOWN_SECONDS + 120) * 1000, allowFail: true });
        return { code: r.code, output: (r.stdout + r.stderr).trim(), seconds: (Date.now() - t) / 1000 };
    } finally {
        await api.close();
    }
}

const replaceEntry = (lists: NodeLists, entry: NodeEntry): NodeLists => Object.fromEntries(Object.entries(lists).map(([role, list]) => [role, list.map((e) => (e.name === entry.name ? entry : e))]));

/** Another size of the same provider offered in the entry's region (a resize: the server is powered off meanwhile). */
function anotherSize(entry: NodeEntry): string {
    const sizes = Object.entries(catalogs[entry.provider]?.sizes ?? {}).filter(([id, s]) => id !== entry.size && (!s.regions || s.regions.includes(entry.region)));
    if (sizes.length === 0) throw new Error(`no other ${entry.provider} size in ${entry.region} to resize ${entry.name} to`);
    return sizes[0][0];
}

export const doubleChangeRefused: Drill = {
    name: "double-change-refused",
    description: "resize two database members in one stack change: the program refuses before it creates anything, naming them and the order; no server of the lab is touched and no write fails",
    run: async (ctx) => {
        const source = labSource();
        const lists = labNodeLists(source);
        const first = ctx.target ?? lists.db[0]?.name;
        const second = lists.db.find((e) => e.name !== first)?.name;
        const a = lists.db.find((e) => e.name === first);
        const b = lists.db.find((e) => e.name === second);
        if (!a || !b) throw new Error(`double-change-refused resizes two database members of the stack file; it has ${lists.db.map((e) => e.name).join(", ") || "none"}${ctx.target ? ` (${ctx.target} is not one)` : ""}`);
        const edited = replaceEntry(replaceEntry(lists, { ...a, size: anotherSize(a) }), { ...b, size: anotherSize(b) });
        const deployed = accepted(await applyToProgram(source, undefined, undefined), "the lab's stack file").evaluation;

        const checks = drillChecks();
        const { notes, check } = checks;
        const identities = new Map(labNodes().map((n) => [n.name, serverIdentity(n)]));
        const etcdBefore = (await etcdMembers(dbNodes()[0].name))?.map((m) => m.id).sort();
        const viewBefore = await clusterView(dbNodes());

        const result = await faultUnderLoad(ctx, {
            drill: "double-change-refused",
            target: `${a.name}+${b.name}`,
            lost: [],
            fault: async () => {
                const change = await applyToProgram(source, edited, deployed.outputs);
                if (change.accepted) {
                    // Never applied: it would take two members down at once, which is what the program must refuse.
                    check(false, `the program refused the change (it accepted it: ${change.changes.filter((c) => c.kind !== "same").map((c) => `${c.name} ${c.kind}`).join(", ")}; not applied)`);
                    return;
                }
                notes.push(`the program refused: ${change.message}`);
                const order = /in this order: ([^.]*?), each after/.exec(change.message)?.[1]?.split(", ") ?? [];
                check(change.message.includes(`${a.name} (size ${a.size} -> `) && change.message.includes(`${b.name} (size ${b.size} -> `), `the refusal names ${a.name} and ${b.name} with what changes`);
                check(order.length === 2 && order.includes(a.name) && order.includes(b.name), `the refusal gives the order to apply them in (${order.join(", ") || "none"})`);
                check(/Nothing was changed\./.test(change.message), "the refusal says nothing was changed");
                check(change.registered.every((t) => t === "pulumi:pulumi:StackReference"), `the program registered nothing but the read of its deployment (${change.registered.join(", ") || "nothing"})`);
            },
            repair: async () => undefined,
            rtoTargetSeconds: UNAFFECTED_RTO_SECONDS,
            writes: { pooled: true, timeoutMs: 30_000 },
            planned: { maxWritePauseSeconds: UNAFFECTED_RTO_SECONDS },
        });

        const touched = labNodes().filter((n) => serverIdentity(n) !== identities.get(n.name)).map((n) => n.name);
        check(touched.length === 0, `no server of the lab was rebuilt or restarted${touched.length ? ` (${touched.join(", ")} were)` : ""}`);
        const etcdAfter = (await etcdMembers(dbNodes()[0].name))?.map((m) => m.id).sort();
        check(etcdBefore !== undefined && JSON.stringify(etcdAfter) === JSON.stringify(etcdBefore), `etcd has the same members (${etcdAfter?.join(", ") ?? "no answer"})`);
        const viewAfter = await clusterView(dbNodes());
        const leaderOf = (v: typeof viewBefore) => v?.members.find((m) => m.role === "leader");
        check(viewAfter !== undefined && serving(viewAfter.members).length === dbNodes().length, `every member leads or streams (${viewAfter?.members.map((m) => `${m.name} ${m.role} ${m.state}`).join(", ") ?? "no answer"})`);
        check(leaderOf(viewAfter)?.name === leaderOf(viewBefore)?.name && leaderOf(viewAfter)?.timeline === leaderOf(viewBefore)?.timeline, `the same leader on the same timeline (${leaderOf(viewBefore)?.name}/${leaderOf(viewBefore)?.timeline} -> ${leaderOf(viewAfter)?.name}/${leaderOf(viewAfter)?.timeline})`);
        check(result.failedRequests === 0, `no write or request failed (${result.failedRequests} failed)`);
        return { ...result, recoverySeconds: 0, checksPassed: (result.checksPassed ?? result.passed) && checks.ok, passed: result.passed && checks.ok, notes: [...result.notes, ...notes] };
    },
};

/** A replica on the provider holding the most database members: moving it evens them out. */
async function replicaToMove(): Promise<string | undefined> {
    const primary = await currentPrimary();
    const dbs = dbNodes();
    const count = (p: string) => dbs.filter((n) => n.provider === p).length;
    return dbs.filter((n) => n.name !== primary).sort((x, y) => count(y.provider) - count(x.provider))[0]?.name;
}

/**
 * The primary, on a provider of the stack file that holds two members or more: moving a member
 * off the provider it alone is on would leave every member on one (a stack file the program
 * refuses), so the primary is first handed to a member of the other provider (not part of the drill's figures).
 */
async function primaryToMove(lists: NodeLists, log: (m: string) => void): Promise<string> {
    const primary = await currentPrimary();
    if (!primary) throw new Error("member-move --node primary: the lab has no primary now");
    const providerOf = (name: string) => lists.db.find((e) => e.name === name)?.provider;
    const count = (p: string | undefined) => lists.db.filter((e) => e.provider === p).length;
    if (count(providerOf(primary)) >= 2) return primary;
    // One the lab still runs where the stack file has it (an earlier move of the lab's leaves the stack file as it was).
    const candidate = lists.db.find((e) => e.name !== primary && count(e.provider) >= 2 && dbNodes().find((n) => n.name === e.name)?.provider === e.provider)?.name;
    if (!candidate) throw new Error(`member-move --node primary: no member shares a provider with another in the stack file`);
    log(`member-move: handing the primary over from ${primary} to ${candidate} first (${primary} is the only member on ${providerOf(primary)})`);
    const r = await execInNode(primary, [SWITCHOVER_TOOL, "--candidate", candidate], { timeoutMs: 120_000, allowFail: true });
    if (r.code !== 0) throw new Error(`${SWITCHOVER_TOOL} --candidate ${candidate} on ${primary} failed (exit ${r.code}): ${(r.stdout + r.stderr).trim().slice(-500)}`);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
        if ((await currentPrimary()) === candidate) return candidate;
        await sleep(500);
    }
    throw new Error(`member-move --node primary: ${candidate} did not become the primary within 60 s`);
}

/** How long the drill watches Patroni's view at most: the writes' own bound in faultUnderLoad and more. */
const WATCH_SECONDS = 600;
/** From the new server's first boot until it streams (and votes, in quorum mode): the rebuild drill's bound and a minute. */
const MOVE_WAIT_SECONDS = REBUILD_STREAMING_SECONDS + 60;

export const memberMove: Drill = {
    name: "member-move",
    description: "move a database member (--node NAME or primary; default a replica) to the other provider in one run: the program's stand-down step shuts the old server down through the provider's API (a primary hands over on its way down), then a new server with an empty disk, under writes through the poolers; never fewer than two members leading or streaming, no failed write, at most one switchover",
    run: async (ctx) => {
        const source = labSource();
        const lists = labNodeLists(source);
        const target = ctx.target === "primary" ? await primaryToMove(lists, ctx.log) : await pickNode(ctx, replicaToMove, "replica");
        const entry = lists.db.find((e) => e.name === target);
        if (!entry) throw new Error(`member-move moves a database member; ${target} is not one in ${source.file}`);
        const node = dbNodes().find((n) => n.name === target) as NodeState;
        // The program compares with the stack file as deployed: the lab must still be that.
        const here = node.provider;
        if (here !== entry.provider) throw new Error(`the lab has ${target} on ${here}, ${source.file} on ${entry.provider}: it was moved already; bring the lab up again to move it from where the stack file has it`);
        // Where it goes: beside a database member of another provider, else any node of one.
        const there = lists.db.find((e) => e.provider !== here && e.provider !== "ssh") ?? Object.values(lists).flat().find((e) => e.provider !== here && e.provider !== "ssh");
        if (!there) throw new Error(`the stack file names no provider but ${here}: nowhere to move ${target}`);
        const size = catalogs[there.provider].sizes[entry.size ?? ""] ? entry.size : lists.db.find((e) => e.provider === there.provider)?.size ?? there.size;
        const moved: NodeEntry = { name: entry.name, provider: there.provider, region: there.region, ...(size ? { size } : {}) };
        const checks = drillChecks([`moving ${target} from ${here}/${entry.region} to ${moved.provider}/${moved.region}${moved.size ? `/${moved.size}` : ""}`]);
        const { notes, check } = checks;

        // The program decides: the move in one run, with the old server's stand-down step.
        const deployed = accepted(await applyToProgram(source, undefined, undefined), "the lab's stack file").evaluation;
        const move = accepted(await applyToProgram(source, replaceEntry(lists, moved), deployed.outputs), `the move of ${target}`);
        const changed = move.changes.filter((c) => c.kind !== "same");
        check(changed.length === 1 && changed[0].name === target && changed[0].kind === "replace" && changed[0].providerMove === true, `the move replaces ${target}'s server and nothing else, in one run (${changed.map((c) => `${c.name}: ${c.kind} ${c.reasons.join("; ")}`).join(", ")})`);
        const step = standDownStep(move.evaluation, target);
        const oldId = (deployed.outputs.serverFacts as { name: string; serverId?: string }[]).find((f) => f.name === target)?.serverId;
        check(step !== undefined && step.provider === here && step.server === oldId, `the run shuts ${target}'s old server down first (${step ? `${step.provider} server ${step.server}` : "no stand-down step"}; deployed id ${oldId})`);
        if (!step) throw new Error(`the program declared no stand-down step for ${target}`);

        // The new server's user-data: the program's. The lab's nodes hold what the program gave
        // them at bring-up (its certificates are made once per process): when the move leaves the
        // member's user-data as it was, that is the seed it booted with.
        const spec = labNodeSpec(target);
        let userData = move.evaluation.userData[target];
        if (userData === deployed.userData[target]) userData = spec.userData;
        else if (deployed.userData[target] !== spec.userData) {
            throw new Error(`the move changes ${target}'s user-data and this process did not bring the lab up (the program's certificates differ from the lab's): run member-move where the lab was brought up (npm run lab with no command, the lab test, npm run bench -- --lab)`);
        }
        notes.push(`the new server's user-data is ${userData === spec.userData ? "the same as the old one's" : "the program's new one"}`);

        const wasPrimary = (await currentPrimary()) === target;
        const pauseTarget = wasPrimary ? SWITCHOVER_PAUSE_SECONDS + SWITCHOVER_SINGLE_RUN_SLACK : await standbyLossRtoTarget();
        const watch = new ClusterWatch(target, WATCH_SECONDS);
        let faultAt = 0;
        let streamingSeconds: number | null = null;
        let result;
        try {
            result = await faultUnderLoad(ctx, {
                drill: "member-move",
                target,
                lost: [target],
                fault: async () => {
                    watch.start();
                    await sleep(2_000);
                    faultAt = Date.now();
                    // The engine runs the stand-down step first (the new server depends on it); a
                    // primary hands over through the poolers as its server shuts down.
                    const down = await runStandDown(step, target, ctx.log);
                    notes.push(`stand-down step: exit ${down.code} after ${down.seconds.toFixed(1)} s: ${down.output.split("\n").slice(-2).join(" | ")}`);
                    check(down.code === 0 && /shut-down|already-off|gone/.test(down.output), `the stand-down step shut ${target}'s old server down (exit ${down.code})`);
                    // What the old server's hand-over unit did on its way down, from its journal.
                    const handOver = join(nodeState(target).paths.logs, `${HAND_OVER_UNIT}.log`);
                    const said = existsSync(handOver) ? readFileSync(handOver, "utf8").trim().split("\n").filter(Boolean) : [];
                    notes.push(`${HAND_OVER_UNIT} on the old server: ${said.slice(-3).join(" | ") || "nothing logged"}`);
                    check(wasPrimary ? said.some((l) => /switching over/.test(l)) : said.some((l) => /not the primary/.test(l)), `the old server's ${HAND_OVER_UNIT} ${wasPrimary ? "handed the primary over" : "found nothing to hand over"} as it shut down`);
                    // Its disk goes with the old server at the end of the run; the lab's node slot is reused.
                    await discardNode(target, ctx.log);
                },
                repair: async () => {
                    const t = Date.now();
                    updateState((s) => {
                        s.nodes[target].provider = moved.provider;
                    });
                    await bootFreshNode({ ...spec, provider: moved.provider, userData }, ctx.log);
                    const deadline = t + MOVE_WAIT_SECONDS * 1000;
                    let status: { role?: string; state?: string; replication_state?: string; quorum_standby?: boolean; sync_standby?: boolean } | undefined;
                    const config = await patroniJson<{ synchronous_mode?: boolean | string }>(dbNodes().find((n) => n.name !== target) as NodeState, "/config");
                    const votes = String(config?.synchronous_mode) === "quorum";
                    while (Date.now() < deadline) {
                        status = await patroniJson(node, "/patroni");
                        const streams = status?.role === "replica" && status.replication_state === "streaming";
                        if (streams && streamingSeconds === null) streamingSeconds = (Date.now() - t) / 1000;
                        if (streams && (!votes || status?.quorum_standby || status?.sync_standby)) break;
                        await sleep(500);
                    }
                    const total = (Date.now() - t) / 1000;
                    check(streamingSeconds !== null && total <= MOVE_WAIT_SECONDS, `${target} streams on ${moved.provider}${votes ? " and votes in the quorum" : ""} ${total.toFixed(1)} s after its new server booted (streaming after ${streamingSeconds?.toFixed(1) ?? "never"} s; bound ${MOVE_WAIT_SECONDS} s); Patroni says ${JSON.stringify(status ?? "nothing")}`);
                },
                rtoTargetSeconds: pauseTarget,
                writes: { pooled: true, timeoutMs: 30_000 },
                planned: { maxWritePauseSeconds: pauseTarget },
            });
        } finally {
            await watch.stop();
        }
        const fewest = watch.fewest(faultAt);
        if (!wasPrimary) {
            check(watch.samples.length > 0 && fewest.count >= 2, `at no moment fewer than two members leading or streaming: at least ${fewest.count} (${fewest.who.join(", ") || "none"}, ${fewest.atSeconds.toFixed(1)} s after the move began), in ${watch.samples.length} samples of Patroni's view`);
        } else {
            // The primary's hand-over re-points the other replica to the new primary: that moment aside, two at least.
            const thin = watch.thinOutside(SWITCHOVER_PAUSE_SECONDS);
            check(watch.samples.length > 0 && thin.outside.length === 0, `at no moment fewer than two members leading or streaming, the switchover's re-pointing aside (the new primary alone for ${thin.inWindowSeconds.toFixed(0)} s of samples within ${SWITCHOVER_PAUSE_SECONDS} s of the leader's change; outside it ${thin.outside.length ? thin.outside.map((x) => `${((x.at - faultAt) / 1000).toFixed(1)} s: ${x.serving.join(", ") || "none"}`).join("; ") : "never fewer"}), in ${watch.samples.length} samples of Patroni's view`);
        }
        const silence = watch.longestSilence();
        check(silence <= 10, `Patroni's view was asked at least every 10 s (longest gap ${silence.toFixed(1)} s)`);
        const leaders = watch.leaders();
        check(leaders.length <= 2, `at most one switchover (leaders in turn: ${leaders.join(" -> ") || "none seen"})`);
        check(result.failedRequests === 0, `no pooled write or request failed (${result.failedRequests} failed)`);
        const etcd = await etcdMembers(dbNodes().find((n) => n.name !== target)?.name as string);
        check(etcd !== undefined && etcd.length === dbNodes().length + labNodes().filter((n) => n.role === "witness").length && etcd.every((m) => m.started), `etcd lists every member started (${etcd?.map((m) => m.name).join(", ") ?? "no answer"})`);
        check(labNodes().find((n) => n.name === target)?.provider === moved.provider, `the lab has ${target} on ${moved.provider}`);
        return { ...result, recoverySeconds: streamingSeconds, checksPassed: (result.checksPassed ?? result.passed) && checks.ok, passed: result.passed && checks.ok, notes: [...result.notes, ...notes] };
    },
};
