// Rollout drills: a change published as desired state (the program evaluated with the lab-only
// key vps-ha:drill, its DNS records published as `pulumi up` would) reaches every node through its
// agent, one node of a group at a time, under write and HTTP load.
//   upgrade-in-place: every file and tool differs (drill.revision), so every daemon restarts;
//     nothing may fail, the primary hands over at most once, writes pause at most 3 s, no node is
//     rebuilt.
//   bad-change-halts: the same with the first database member's Patroni kept from starting
//     (drill.failStart): the rollout halts there and rolls that member back, the other members
//     keep their old state and name it, writes and HTTP go on; a fixed state then completes.
import { Role } from "../../../components/config";
import { rolloutGroup } from "../../../components/rollout";
import { PATRONI_UNIT } from "../../../components/render/patroni";
import { ROLLOUT_STATE } from "../../../components/render/rollout-status";
import { publishLabDns } from "../dns";
import { Log, sleep } from "../exec";
import { labProgram, stackSource } from "../program";
import { execInNode, labNodes, NodeState } from "../realize";
import { labStack } from "../stack";
import { labDnsRecords, requireOwnBringUp } from "../up";
import { currentPrimary, patroniJson, SWITCHOVER_PAUSE_SECONDS, SWITCHOVER_SINGLE_RUN_SLACK } from "./db";
import { faultUnderLoad } from "./harness";
import { Drill, DrillContext, DrillResult, drillChecks } from "./types";

/**
 * Every group rolls in parallel, each node in turn: an agent round (15 s) to see the change, then
 * its restarts and health. The database group is the longest: a member's Patroni restart and
 * catch-up, and the handover on the primary.
 */
export const ROLLOUT_BOUND_SECONDS = 600;
/** How long the halted state may take to show on every database node once the change is published. */
const HALT_BOUND_SECONDS = 300;

interface RolloutState {
    rolloutId?: string;
    rolloutState?: string;
    haltedBy?: string;
    haltedReason?: string;
    waitingOn?: string;
}

function groupOf(n: NodeState): string {
    return rolloutGroup(n.role as Role);
}

async function rolloutState(node: string): Promise<RolloutState | undefined> {
    const r = await execInNode(node, ["cat", ROLLOUT_STATE], { timeoutMs: 10_000, allowFail: true });
    try {
        return r.code === 0 ? (JSON.parse(r.stdout) as RolloutState) : undefined;
    } catch {
        return undefined;
    }
}

/** The lab's nodes but those a change deletes (`leaving`): no document names them any more. */
const staying = (leaving: string[]) => labNodes().filter((n) => !leaving.includes(n.name));

async function states(leaving: string[] = []): Promise<Record<string, RolloutState | undefined>> {
    const out: Record<string, RolloutState | undefined> = {};
    for (const n of staying(leaving)) out[n.name] = await rolloutState(n.name);
    return out;
}

/** What the stack's program publishes with these drill knobs, published to the lab's DNS. */
async function publish(log: Log, drill: Record<string, unknown> | undefined): Promise<void> {
    const source = labStack()?.source ?? stackSource({});
    const program = await labProgram(source, drill ? { drill } : {});
    await publishLabDns(labDnsRecords(program), log);
    log(`rollout: published ${drill ? JSON.stringify(drill) : "the stack file as it is"}`);
}

/**
 * Waits (bounded) until every group reports one rollout id, none of `before`'s, healthy on every
 * node; throws naming the nodes not there yet, or the node that halted.
 */
async function waitRolledOut(log: Log, before: Record<string, RolloutState | undefined>, boundSeconds: number, leaving: string[] = [], unchanged: string[] = []): Promise<number> {
    const started = Date.now();
    let last = "";
    for (;;) {
        const now = await states(leaving);
        // The node that halted this change itself (the others name it in haltedBy).
        const halted = Object.entries(now).find(([name, s]) => s?.rolloutState === "halted" && !s.haltedBy && s.rolloutId !== before[name]?.rolloutId);
        const nodes = staying(leaving);
        const pending = nodes.filter((n) => {
            const s = now[n.name];
            // A node whose group's document did not change keeps its rollout: healthy is all it owes.
            if (unchanged.includes(n.name)) return s?.rolloutState !== "healthy";
            const group = nodes.filter((m) => groupOf(m) === groupOf(n));
            const same = group.every((m) => now[m.name]?.rolloutId === s?.rolloutId);
            return !(s?.rolloutState === "healthy" && s.rolloutId !== before[n.name]?.rolloutId && same);
        });
        if (pending.length === 0) return (Date.now() - started) / 1000;
        const summary = pending.map((n) => `${n.name}: ${now[n.name]?.rolloutState ?? "no state"}${now[n.name]?.waitingOn ? ` on ${now[n.name]?.waitingOn}` : ""}`).join(", ");
        if (summary !== last) log(`rollout: waiting for ${summary}`);
        last = summary;
        if (halted) throw new Error(`the rollout halted at ${halted[0]}: ${halted[1]?.haltedReason}`);
        if (Date.now() - started > boundSeconds * 1000) throw new Error(`the rollout did not finish within ${boundSeconds} s: ${summary}`);
        await sleep(3_000);
    }
}

/**
 * When each node's init started, in clock ticks since the host booted (/proc/1/stat's 22nd field):
 * a rebuilt or rebooted node starts again. Not ps's lstart: in a container it adds the host's boot
 * time, which moves when the clock is adjusted (CI: every node "rebooted" in one drill).
 */
async function bootMarks(leaving: string[] = []): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const n of staying(leaving)) out[n.name] = initStartTicks((await execInNode(n.name, ["cat", "/proc/1/stat"], { timeoutMs: 10_000, allowFail: true })).stdout);
    return out;
}

/** /proc/PID/stat's start time (field 22), counted after the command name, which may hold spaces; "" when unreadable. */
export function initStartTicks(stat: string): string {
    const fields = stat.slice(stat.lastIndexOf(")") + 2).trim().split(/\s+/);
    return /^\d+$/.test(fields[19] ?? "") ? fields[19] : "";
}

/** Patroni's timeline history length as a member sees it: one entry per promotion. */
async function timelines(): Promise<number | undefined> {
    for (const n of labNodes().filter((x) => x.role === "db")) {
        const h = await patroniJson<unknown[]>(n, "/history");
        if (Array.isArray(h)) return h.length;
    }
    return undefined;
}

function revision(prefix: string): string {
    return `${prefix}-${Date.now().toString(36)}`;
}

/** The first database member in its group's order that is not the primary (the primary goes last). */
async function firstMember(): Promise<NodeState> {
    const primary = await currentPrimary();
    const order = labNodes().filter((n) => groupOf(n) === "db").sort((a, b) => (a.name < b.name ? -1 : 1));
    const first = order.find((n) => n.name !== primary);
    if (!first || first.role !== "db") throw new Error(`bad-change-halts: the first node of the database group (${first?.name ?? "none"}) is not a member; the drill keeps a member's Patroni from starting`);
    return first;
}

/**
 * A change published by `fault` under writes through the poolers and HTTP, waited out node by
 * node; then what every such change must hold, as `check`s: every node applied it within the
 * bound, at most one switchover, no node rebuilt or rebooted (the nodes there before the change).
 * `nodes.leaving`: nodes the change deletes, neither waited for nor checked (`nodes.afterRollout`
 * deletes them, as `pulumi up` does once the rollout is through); `nodes.unchanged`: nodes whose
 * group's rollout the change leaves as it was (only their health is waited for).
 */
export async function rolloutUnderLoad(ctx: DrillContext, drill: string, target: string, fault: () => Promise<void>, check: (ok: boolean, note: string) => void, pauseSeconds = SWITCHOVER_PAUSE_SECONDS, nodes: { leaving?: string[]; unchanged?: string[]; afterRollout?: () => Promise<void>; followApp?: boolean } = {}): Promise<DrillResult> {
    const leaving = nodes.leaving ?? [];
    const before = await states(leaving);
    const boots = await bootMarks(leaving);
    const history = await timelines();
    const primary = await currentPrimary();
    let took: number | undefined;
    const result = await faultUnderLoad(ctx, {
        drill,
        target,
        // A node the change deletes is lost to the mesh and the probes from the publication on.
        lost: leaving,
        fault,
        repair: async () => {
            took = await waitRolledOut(ctx.log, before, ROLLOUT_BOUND_SECONDS, leaving, nodes.unchanged ?? []);
            await nodes.afterRollout?.();
        },
        rtoTargetSeconds: pauseSeconds,
        writes: { pooled: true, timeoutMs: 30_000, ...(nodes.followApp ? { followApp: true } : {}) },
        planned: { maxWritePauseSeconds: pauseSeconds + SWITCHOVER_SINGLE_RUN_SLACK },
        loadSeconds: ROLLOUT_BOUND_SECONDS + 120,
    });
    check(took !== undefined, `every node applied the change and was healthy ${took?.toFixed(0) ?? "never"} s after it was published (bound ${ROLLOUT_BOUND_SECONDS} s)`);
    const after = await timelines();
    const switchovers = history !== undefined && after !== undefined ? after - history : undefined;
    check(switchovers !== undefined && switchovers <= 1, `switchovers: ${switchovers ?? "unknown"} (at most 1); primary ${primary ?? "?"} -> ${(await currentPrimary()) ?? "?"}`);
    const bootsAfter = await bootMarks(leaving);
    // An unreadable mark counts as a reboot: the check never passes on what it could not see.
    const rebuilt = Object.keys(boots).filter((n) => !boots[n] || boots[n] !== bootsAfter[n]);
    check(rebuilt.length === 0, `no node rebuilt or rebooted${rebuilt.length ? ` (${rebuilt.join(", ")} did)` : ""}`);
    return result;
}

export const upgradeInPlace: Drill = {
    name: "upgrade-in-place",
    description: `publish a desired state in which every file and tool differs (vps-ha:drill.revision): every daemon restarts, one node of a group at a time, under writes through the poolers and HTTP; nothing fails, at most one switchover, writes pause <= ${SWITCHOVER_PAUSE_SECONDS} s, no node rebuilt`,
    run: async (ctx) => {
        requireOwnBringUp("upgrade-in-place");
        const checks = drillChecks();
        const result = await rolloutUnderLoad(ctx, "upgrade-in-place", "every node", () => publish(ctx.log, { revision: revision("upgrade") }), checks.check);
        // The lab ends as it began: the stack file's own state, rolled out the same way.
        const published = await states();
        await publish(ctx.log, undefined);
        await waitRolledOut(ctx.log, published, ROLLOUT_BOUND_SECONDS);
        return { ...result, passed: result.passed && checks.ok, notes: [...result.notes, ...checks.notes] };
    },
};

export const badChangeHalts: Drill = {
    name: "bad-change-halts",
    description: "publish a desired state that keeps the first database member's Patroni from starting (vps-ha:drill.failStart): the rollout halts there and rolls it back, the other members keep their old state and name it, writes and HTTP go on; a fixed state then completes the rollout",
    run: async (ctx) => {
        requireOwnBringUp("bad-change-halts");
        const checks = drillChecks();
        const { notes, check } = checks;
        const first = await firstMember();
        const before = await states();
        const dbGroup = labNodes().filter((n) => groupOf(n) === "db");
        const result: DrillResult = await faultUnderLoad(ctx, {
            drill: "bad-change-halts",
            target: first.name,
            lost: [],
            fault: () => publish(ctx.log, { revision: revision("bad"), failStart: { node: first.name, unit: PATRONI_UNIT } }),
            whileBroken: async () => {
                const started = Date.now();
                let now = await states();
                const settled = () => now[first.name]?.rolloutState === "halted" && dbGroup.every((n) => n.name === first.name || now[n.name]?.haltedBy === first.name);
                while (!settled() && Date.now() - started < HALT_BOUND_SECONDS * 1000) {
                    await sleep(3_000);
                    now = await states();
                }
                const lines = dbGroup.map((n) => `${n.name}: ${now[n.name]?.rolloutState ?? "no state"}${now[n.name]?.haltedBy ? ` (halted by ${now[n.name]?.haltedBy})` : ""}${n.name === first.name ? ` — ${now[n.name]?.haltedReason ?? ""}` : ""}`);
                const patroni = await patroniJson<{ state?: string; role?: string }>(first, "/patroni");
                const back = patroni?.state === "running";
                return {
                    ok: settled() && back,
                    notes: [
                        `${settled() ? "halted" : "FAILED: not halted"} within ${HALT_BOUND_SECONDS} s: ${lines.join("; ")}`,
                        `${back ? "" : "FAILED: "}${first.name} rolled back: Patroni ${patroni?.state ?? "does not answer"} as ${patroni?.role ?? "?"}`,
                    ],
                };
            },
            repair: async () => {
                // The fixed state's rollout is a new one: the halt it replaces is no halt of its own.
                const halted = await states();
                await publish(ctx.log, { revision: revision("fixed") });
                await waitRolledOut(ctx.log, halted, ROLLOUT_BOUND_SECONDS);
            },
            rtoTargetSeconds: SWITCHOVER_PAUSE_SECONDS,
            writes: { pooled: true, timeoutMs: 30_000 },
            planned: { maxWritePauseSeconds: SWITCHOVER_PAUSE_SECONDS + SWITCHOVER_SINGLE_RUN_SLACK },
            loadSeconds: HALT_BOUND_SECONDS + ROLLOUT_BOUND_SECONDS + 120,
        });
        const published = await states();
        await publish(ctx.log, undefined);
        await waitRolledOut(ctx.log, published, ROLLOUT_BOUND_SECONDS);
        check(true, "the stack file's own state rolled out again after the drill");
        return { ...result, passed: result.passed && checks.ok, notes: [...result.notes, ...notes] };
    },
};

export const rolloutDrills = [upgradeInPlace, badChangeHalts];
