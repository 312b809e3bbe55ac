// Runs one fault under load: writes through the HAProxy pair (when the stack has a database),
// mesh probes among the nodes left standing, the fault, the repair, and the verdict.
import { sleep } from "../exec";
import { waitHealthy } from "../health";
import { analyzeWrites } from "../load/analyze";
import { canWrite, WriteLoad } from "../load/writes";
import { labNodes } from "../realize";
import { meshProbe, ProbeRun } from "./probes";
import { DrillContext, DrillResult } from "./types";

export interface FaultSpec {
    drill: string;
    target: string;
    /** Nodes the fault takes away (left out of the mesh probe). */
    lost: string[];
    fault(): Promise<void>;
    /** Checks while the fault lasts, after writes came back; notes, and whether they passed. */
    whileBroken?(): Promise<{ ok: boolean; notes: string[]; splitBrain?: boolean }>;
    repair(): Promise<void>;
    /** Writes must be accepted again within this many seconds of the fault. */
    rtoTargetSeconds: number;
}

/** How long writes are watched after the fault when they never stop. */
const CALM_MS = 6_000;
/** How long writes may stay down before the drill gives up on them. */
const WRITES_TIMEOUT_MS = 60_000;
const RECOVER_TIMEOUT_MS = 120_000;

export async function faultUnderLoad(ctx: DrillContext, spec: FaultSpec): Promise<DrillResult> {
    const notes: string[] = [];
    await waitHealthy(ctx.log, 90_000);
    const writes = canWrite() ? await WriteLoad.start((CALM_MS + WRITES_TIMEOUT_MS + RECOVER_TIMEOUT_MS) / 1000 + 30, spec.lost) : undefined;
    if (!writes) notes.push("no database in this stack: mesh probes only");
    const mesh = new ProbeRun(meshProbe(spec.lost), 500, 2 * (WRITES_TIMEOUT_MS / 500)).start();
    let passed = true;
    let splitBrain = false;
    let recoverySeconds: number | null = null;
    try {
        await sleep(2_000);
        const faultAt = Date.now();
        ctx.log(`${spec.drill}: fault on ${spec.target}`);
        await spec.fault();
        if (writes) await waitForWrites(writes, faultAt);
        else await sleep(CALM_MS);
        await mesh.stop();
        if (spec.whileBroken) {
            const r = await spec.whileBroken();
            notes.push(...r.notes);
            passed &&= r.ok;
            splitBrain ||= r.splitBrain ?? false;
        }
        const repairAt = Date.now();
        ctx.log(`${spec.drill}: repairing ${spec.target}`);
        await spec.repair();
        try {
            await waitHealthy(ctx.log, RECOVER_TIMEOUT_MS);
            recoverySeconds = (Date.now() - repairAt) / 1000;
        } catch (e) {
            passed = false;
            notes.push(`not healthy after the repair: ${(e as Error).message}`);
        }
        await sleep(1_000);
        const meshFailures = mesh.failures(faultAt);
        notes.push(`mesh among the other nodes: ${mesh.attempts.length} checks, ${meshFailures} failed`);
        let result: DrillResult = {
            drill: spec.drill, target: spec.target, rtoSeconds: 0, rtoTargetSeconds: spec.rtoTargetSeconds, recoverySeconds, lostWrites: 0,
            failedRequests: meshFailures, splitBrain, passed: passed && meshFailures === 0, notes,
        };
        if (writes) {
            const records = await writes.stop();
            const a = analyzeWrites(records, faultAt, await writes.presentIds());
            notes.push(`${a.acknowledged} writes acknowledged, ${a.failed} failed; primaries in turn: ${a.servers.join(" -> ")}`);
            if (a.lostIds.length) notes.push(`lost ids: ${a.lostIds.slice(0, 20).join(", ")}`);
            const rtoOk = a.rtoSeconds !== null && a.rtoSeconds <= spec.rtoTargetSeconds;
            if (!rtoOk) notes.push(`RTO ${a.rtoSeconds ?? "never"} s is over the target of ${spec.rtoTargetSeconds} s`);
            result = {
                ...result,
                rtoSeconds: a.rtoSeconds,
                lostWrites: a.lostIds.length,
                failedRequests: a.failed + meshFailures,
                splitBrain: splitBrain || a.splitBrain,
                passed: result.passed && rtoOk && a.lostIds.length === 0 && !(splitBrain || a.splitBrain),
            };
        } else {
            result.rtoSeconds = mesh.recoveredAfter(faultAt);
        }
        return result;
    } finally {
        await mesh.stop();
        await writes?.stop();
    }
}

/** Waits until writes failed and came back, or ran calmly through the fault (bounded). */
async function waitForWrites(writes: WriteLoad, faultAt: number): Promise<void> {
    const deadline = Date.now() + WRITES_TIMEOUT_MS;
    while (Date.now() < deadline) {
        await sleep(250);
        const after = writes.records().filter((r) => r.start >= faultAt);
        const firstFailure = after.find((r) => !r.ok);
        if (firstFailure && after.some((r) => r.ok && r.start > firstFailure.start)) return;
        if (!firstFailure && Date.now() - faultAt > CALM_MS) return;
    }
}

/** The node named with --node (which must exist), else the drill's own choice of `what`. */
export async function pickNode(ctx: DrillContext, fallback: () => string | undefined | Promise<string | undefined>, what: string): Promise<string> {
    const nodes = labNodes();
    if (ctx.target) {
        if (!nodes.some((n) => n.name === ctx.target)) throw new Error(`no lab node "${ctx.target}"; nodes: ${nodes.map((n) => n.name).join(", ")}`);
        return ctx.target;
    }
    const t = await fallback();
    if (!t) throw new Error(`no ${what} in the lab right now`);
    return t;
}
