// Runs one fault under load: writes through the HAProxy pair (when the stack has a database),
// mesh probes among the nodes left standing, the fault, the repair, and the verdict.
import { sleep } from "../exec";
import { waitHealthy } from "../health";
import { analyzeWrites, longestWritePause } from "../load/analyze";
import { canWrite, WriteLoad, WriteOptions } from "../load/writes";
import { labStack } from "../stack";
import { analyzeRequests, RequestRecord, WebLoad, WebTarget } from "../load/web";
import { LabEdge, markedDownAfter, unhealthyOrigins } from "../edge";
import { labNodes } from "../realize";
import { etcdLeader, etcdNodes } from "../etcd";
import { HostStallWatch } from "../host-stall";
import { meshProbe, ProbeRun } from "./probes";
import { copyNodeLogs, drillLogDir, markNodeLogs } from "./logs";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { DrillContext, DrillResult, EdgeResult } from "./types";

export interface FaultSpec {
    drill: string;
    target: string;
    /** Nodes the fault takes away (left out of the mesh probe). */
    lost: string[];
    fault(): Promise<void>;
    /** Checks while the fault lasts, after writes came back; notes, and whether they passed. */
    whileBroken?(): Promise<{ ok: boolean; notes: string[]; splitBrain?: boolean }>;
    repair(): Promise<void>;
    /** Checks once the stack is healthy again after the repair (who leads now, say). */
    afterRepair?(): Promise<{ ok: boolean; notes: string[] }>;
    /** Writes must be accepted again within this many seconds of the fault. */
    rtoTargetSeconds: number;
    /** The fault is about this path to the database (host:port of the connection string): the writer must be using it when the fault strikes. */
    writesVia?: string;
    /** How the writer writes (through the poolers, its per-write timeout). */
    writes?: WriteOptions;
    /** A planned change: no write may fail, and acknowledged writes may pause at most this long. */
    planned?: { maxWritePauseSeconds: number };
    /** A release switch: what visitors are served must move from one first line to another, nothing else. */
    expectServed?: { from: string; to: string };
    /** How long the write and HTTP load may run (default: long enough for a failover and its repair); a rollout of every node needs more. */
    loadSeconds?: number;
}

/** A machine that stood still this long during an outage gets a note (and that much more time). */
const HOST_STALL_NOTED_SECONDS = 0.5;
const round1 = (x: number) => Math.round(x * 10) / 10;
/** How long writes are watched after the fault when they never stop. */
const CALM_MS = 6_000;
/** How long writes may stay down before the drill gives up on them. */
const WRITES_TIMEOUT_MS = 60_000;
const RECOVER_TIMEOUT_MS = 120_000;
/** A request slower than this counts as failed (HAProxy's own server timeout is 15 s). */
const WEB_TIMEOUT_MS = 20_000;
/** Two clients, one request each per 100 ms: enough to catch a failure window of a tenth of a second. */
const WEB_EVERY_MS = 100;

export async function faultUnderLoad(ctx: DrillContext, spec: FaultSpec): Promise<DrillResult> {
    const notes: string[] = [];
    await waitHealthy(ctx.log, 90_000);
    await edgesSettled(ctx);
    const loadSeconds = spec.loadSeconds ?? (CALM_MS + WRITES_TIMEOUT_MS + RECOVER_TIMEOUT_MS) / 1000 + 30;
    const writes = canWrite() ? await WriteLoad.start(loadSeconds, spec.lost, undefined, spec.writes) : undefined;
    if (!writes) notes.push("no database in this stack: mesh probes only");
    const logDir = drillLogDir(spec.drill);
    const nodeNames = labNodes().map((n) => n.name);
    const logMarks = markNodeLogs(nodeNames);
    notes.push(`client logs (writes.jsonl, requests.jsonl) and the nodes' daemon logs (nodes/): ${logDir}`);
    const web = startWebLoad(spec.lost, loadSeconds, join(logDir, "requests.jsonl"));
    const mesh = new ProbeRun(meshProbe(spec.lost), 500, 2 * (WRITES_TIMEOUT_MS / 500)).start();
    let passed = true;
    let splitBrain = false;
    let recoverySeconds: number | null = null;
    try {
        await sleep(2_000);
        // Where etcd leads matters to a failover: a new etcd leader renews every lease, the
        // Patroni leader key's too.
        if ((await etcdNodes()).length) notes.push(`etcd leader at the fault: ${(await etcdLeader()) ?? "none answered"}`);
        const faultAt = Date.now();
        const hostWatch = new HostStallWatch(WRITES_TIMEOUT_MS / 1000 + CALM_MS / 1000);
        ctx.log(`${spec.drill}: fault on ${spec.target}`);
        await spec.fault();
        if (writes) await waitForWrites(writes, faultAt);
        else await sleep(CALM_MS);
        const stall = hostWatch.stop();
        if (stall.seconds >= HOST_STALL_NOTED_SECONDS) notes.push(`the machine stood still for ${stall.seconds.toFixed(1)} s of the outage (${stall.stolenSeconds.toFixed(1)} s with its hypervisor taking most of the CPU, ${stall.ioStalledSeconds.toFixed(1)} s with every task waiting on IO): the RTO target is extended by as much`);
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
            if (spec.afterRepair) {
                const r = await spec.afterRepair();
                notes.push(...r.notes);
                passed &&= r.ok;
            }
        } catch (e) {
            passed = false;
            notes.push(`not healthy after the repair: ${(e as Error).message}`);
        }
        await sleep(1_000);
        const meshFailures = mesh.failures(faultAt);
        notes.push(`mesh among the other nodes: ${mesh.attempts.length} checks, ${meshFailures} failed`);
        let result: DrillResult = {
            drill: spec.drill, target: spec.target, logDir, rtoSeconds: 0, rtoTargetSeconds: spec.rtoTargetSeconds, hostStallSeconds: round1(stall.seconds), recoverySeconds, lostWrites: 0,
            failedRequests: meshFailures, failedHttpRequests: null, splitBrain, passed: passed && meshFailures === 0, notes,
        };
        if (web) {
            const w = webNotes(await web.stop(), faultAt, spec.lost, spec.expectServed);
            notes.push(...w.notes);
            // Losing an HAProxy node loses the requests in flight on it; visitors must then see
            // errors no longer than the edge's monitor takes to notice at worst.
            const proxyLost = labNodes().some((n) => n.role === "haproxy" && spec.lost.includes(n.name));
            const webOk = (proxyLost ? w.edges.every((e) => e.errorWindowSeconds <= e.worstDetectionSeconds) : w.failed === 0) && w.servedOk;
            if (!webOk) notes.push(proxyLost ? "visitors saw errors for longer than the edge's monitor takes to notice" : "HTTP requests failed although no HAProxy node was lost");
            result = { ...result, failedRequests: result.failedRequests + w.failed, failedHttpRequests: w.failed, ...(w.edges.length ? { edges: w.edges } : {}), passed: result.passed && webOk };
        }
        if (writes) {
            const records = await writes.stop();
            copyFileSync(writes.logFile, join(logDir, "writes.jsonl"));
            const a = analyzeWrites(records, faultAt, await writes.presentIds());
            if (spec.writesVia) {
                const before = [...records].reverse().find((r) => r.ok && r.end < faultAt);
                const after = records.find((r) => r.ok && r.start >= faultAt);
                notes.push(`writes went through ${before?.via ?? "nothing"} before the fault and ${after?.via ?? "nothing"} after`);
                if (before?.via !== spec.writesVia) {
                    result = { ...result, passed: false };
                    notes.push(`the writer was not using ${spec.writesVia} when it failed: the drill measured nothing`);
                }
            }
            notes.push(`${a.acknowledged} writes acknowledged, ${a.failed} failed; primaries in turn: ${a.servers.join(" -> ")}`);
            if (a.lostIds.length) notes.push(`lost ids: ${a.lostIds.slice(0, 20).join(", ")}`);
            // The RTO of a planned change is the longest pause clients saw, and no write may fail.
            const planned = spec.planned;
            const pause = planned ? longestWritePause(records, faultAt) : null;
            const failedNow = planned ? records.filter((r) => r.start >= faultAt - 5_000 && !r.ok).length : 0;
            if (planned) notes.push(`planned: writes paused at most ${(pause as number).toFixed(2)} s (target ${planned.maxWritePauseSeconds} s), ${failedNow} failed`);
            const rtoSeconds = planned ? pause : a.rtoSeconds;
            const rtoOk = planned
                ? failedNow === 0 && (pause as number) <= planned.maxWritePauseSeconds + stall.seconds
                : rtoSeconds !== null && rtoSeconds <= spec.rtoTargetSeconds + stall.seconds;
            const checksPassed = result.passed && a.lostIds.length === 0 && !(splitBrain || a.splitBrain);
            if (planned && failedNow > 0) notes.push(`a planned change may fail no write: ${failedNow} failed`);
            else if (!rtoOk) notes.push(`RTO ${rtoSeconds ?? "never"} s is over the target of ${planned ? planned.maxWritePauseSeconds : spec.rtoTargetSeconds} s${stall.seconds >= HOST_STALL_NOTED_SECONDS ? ` plus the ${stall.seconds.toFixed(1)} s the machine stood still` : ""}`);
            result = {
                ...result,
                rtoSeconds,
                lostWrites: a.lostIds.length,
                failedRequests: result.failedRequests + a.failed,
                splitBrain: splitBrain || a.splitBrain,
                checksPassed,
                passed: checksPassed && rtoOk,
            };
        } else {
            result.rtoSeconds = mesh.recoveredAfter(faultAt);
        }
        return result;
    } finally {
        await mesh.stop();
        await writes?.stop();
        await web?.stop();
        copyNodeLogs(nodeNames, logMarks, logDir);
    }
}

/**
 * Where visitors send requests: the lab's edges (Cloudflare's load balancer in front of both
 * HAProxy nodes) when the program load-balances; otherwise the HAProxy nodes still standing
 * (without Cloudflare's steering a client would keep asking a dead one).
 */
export function webTargets(lost: string[]): WebTarget[] {
    const edges = labStack()?.edges;
    if (edges?.length) return edges.map((e) => ({ name: e.name, url: e.url }));
    return labNodes().filter((n) => n.role === "haproxy" && !lost.includes(n.name)).map((n) => ({ name: n.name, url: `https://${n.publicIpv4}` }));
}

/** What visitors saw through each target since the fault, and when each edge noticed the lost HAProxy nodes. */
function webNotes(records: RequestRecord[], faultAt: number, lost: string[], expectServed?: FaultSpec["expectServed"]): { failed: number; notes: string[]; edges: EdgeResult[]; servedOk: boolean } {
    const notes: string[] = [];
    const results: EdgeResult[] = [];
    let failed = 0;
    let servedOk = true;
    const edges = labStack()?.edges ?? [];
    const names = [...new Set(records.map((r) => r.target))];
    for (const name of names) {
        const through = records.filter((r) => r.target === name);
        const w = analyzeRequests(through, faultAt);
        failed += w.failed;
        const edge = edges.find((e) => e.name === name);
        const proxies = edge ? labNodes().filter((n) => n.role === "haproxy" && lost.includes(n.name)) : [];
        const markedDown = Object.fromEntries(proxies.map((p) => [p.name, markedDownAfter(edge as LabEdge, p.name, faultAt)]));
        const seen = Object.entries(markedDown).map(([p, after]) => `${p} marked down ${after === null ? "never (back first)" : `after ${after.toFixed(1)} s`}`);
        notes.push(`web via ${name}: ${w.requests} requests since the fault, ${w.failed} failed${w.failed ? `, errors for ${w.errorWindowSeconds.toFixed(1)} s (${w.failures.join("; ")})` : ""}${seen.length ? `; ${seen.join(", ")}` : ""}`);
        if (expectServed) {
            // First served the old release, last the new one, and never anything else.
            const ok = through.filter((r) => r.ok && r.start >= faultAt);
            const moved = ok.length > 0 && ok[0].served === expectServed.from && ok[ok.length - 1].served === expectServed.to && w.served.every((s) => s === expectServed.from || s === expectServed.to);
            const switchedAt = ok.find((r) => r.served === expectServed.to)?.start;
            notes.push(`via ${name} visitors were served: ${w.served.join(" -> ") || "nothing"}${switchedAt ? `, the new release from ${((switchedAt - faultAt) / 1000).toFixed(1)} s after the switch` : ""}`);
            if (!moved) {
                servedOk = false;
                notes.push(`via ${name}: expected "${expectServed.from}" then "${expectServed.to}"`);
            }
        }
        if (edge) results.push({ name, intervalSeconds: edge.intervalSeconds, worstDetectionSeconds: edge.worstDetectionSeconds, requests: w.requests, failed: w.failed, errorWindowSeconds: w.errorWindowSeconds, markedDown });
    }
    return { failed, notes, edges: results, servedOk };
}

/** Before a fault: every edge sees every origin healthy again (a repaired HAProxy node is back in its pool). */
async function edgesSettled(ctx: DrillContext): Promise<void> {
    const edges = labStack()?.edges ?? [];
    if (edges.length === 0) return;
    const limit = Math.max(...edges.map((e) => e.intervalSeconds)) * 2 + 30;
    const started = Date.now();
    while (Date.now() - started < limit * 1000) {
        const waiting = edges.flatMap((e) => unhealthyOrigins(e).map((o) => `${o} (${e.name})`));
        if (waiting.length === 0) return;
        ctx.log(`waiting for the edge to see ${waiting.join(", ")} healthy again`);
        await sleep(2_000);
    }
    throw new Error(`the edge still held origins unhealthy after ${limit} s`);
}

/** HTTP load through the HAProxy nodes left standing, when the stack serves an app. */
export function startWebLoad(lost: string[], maxSeconds: number, log?: string): WebLoad | undefined {
    const stack = labStack();
    const targets = webTargets(lost);
    if (!stack || targets.length === 0 || !labNodes().some((n) => n.role === "app")) return undefined;
    return new WebLoad({ targets, hostname: stack.hostname, maxSeconds, maxRequests: 200_000, timeoutMs: WEB_TIMEOUT_MS, clients: 2, everyMs: WEB_EVERY_MS, ...(log ? { log } : {}) }).start();
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
