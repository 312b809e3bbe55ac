// The lab's figures for `npm run bench -- --lab`: bring-up time from a cached root filesystem
// to a healthy stack, its memory, and each drill's RTO and lost writes, as medians over repeated
// runs: on the prod stack, and the drills it cannot run (a witness's) on the lab's witness stack.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { median } from "../lib/stats";
import { drills, whyNotApplicableHere } from "./drills";
import { DrillResult } from "./drills/types";
import { LAB_STACKS_DIR, labSpecs, stackSource } from "./program";
import { ORIGIN_PULL_FILES } from "./edge";
import { bringUp } from "./up";
import { describeMonitoringMemory, labMemory } from "./memory";
import { ensureRootfs } from "./rootfs";
import { execInNode, labNodes, labPackagesOf, teardown } from "./realize";
import { labStack } from "./stack";
import type { HttpBenchFigures } from "./load/http-bench";

/** Seconds each side of the proxy comparison runs, and its parallel clients. */
const HTTP_BENCH_SECONDS = 10;
const HTTP_BENCH_CLIENTS = 8;

/** The HTTP benchmark client, run inside a node's network namespace. */
async function httpBench(netns: string, url: string, host: string): Promise<HttpBenchFigures> {
    const tsx = join(__dirname, "../../node_modules/tsx/dist/cli.mjs");
    const { stdout } = await promisify(execFile)("nsenter", [
        `--net=/run/netns/${netns}`, "--", process.execPath, tsx, join(__dirname, "load/http-bench.ts"),
        "--url", url, "--host", host, "--cert", ORIGIN_PULL_FILES.cert, "--key", ORIGIN_PULL_FILES.key, "--clients", String(HTTP_BENCH_CLIENTS), "--seconds", String(HTTP_BENCH_SECONDS),
    ], { timeout: (HTTP_BENCH_SECONDS + 30) * 1000 });
    return JSON.parse(stdout.trim().split("\n").pop() as string) as HttpBenchFigures;
}

/**
 * The proxy's cost: from inside one HAProxy node, the same stand-in app asked through that
 * node's HAProxy (HTTPS on 443, balanced over every app node) and directly (plain HTTP to one
 * app node's mesh address). Both cross the WireGuard mesh once; the difference is HAProxy with
 * its TLS termination.
 */
export async function proxyOverhead(): Promise<ProxyFigures> {
    const stack = labStack();
    const proxy = labNodes().find((n) => n.role === "haproxy");
    const apps = labNodes().filter((n) => n.role === "app");
    if (!stack || !proxy || apps.length === 0) throw new Error("proxy benchmark: the lab has no HAProxy or app node");
    const [app, ...others] = apps;
    const viaProxy = await httpBench(proxy.netns, "https://127.0.0.1/", stack.hostname);
    // The same single app node behind the proxy, the others put in maintenance for the run.
    await haproxyCommand(proxy.name, others.map((o) => `disable server app/${o.name}`));
    let viaProxyOneApp: HttpBenchFigures;
    try {
        viaProxyOneApp = await httpBench(proxy.netns, "https://127.0.0.1/", stack.hostname);
    } finally {
        await haproxyCommand(proxy.name, others.map((o) => `enable server app/${o.name}`));
    }
    const direct = await httpBench(proxy.netns, `http://${app.meshAddress}:${stack.app.port}/`, stack.hostname);
    return { viaProxy, viaProxyOneApp, direct };
}

export interface ProxyFigures {
    viaProxy: HttpBenchFigures;
    viaProxyOneApp: HttpBenchFigures;
    direct: HttpBenchFigures;
}

/** Commands to HAProxy's runtime API on the node's admin socket (python3: no socat on nodes). */
async function haproxyCommand(node: string, commands: string[]): Promise<void> {
    const script = "import socket,sys\nfor c in sys.argv[1:]:\n s=socket.socket(socket.AF_UNIX);s.connect('/run/haproxy/admin.sock');s.sendall((c+'\\n').encode());print(s.recv(4096).decode().strip());s.close()";
    for (const c of commands) await execInNode(node, ["python3", "-c", script, c], { timeoutMs: 10_000 });
}

/** Prometheus' and Alertmanager's PSS on each monitoring node right after bring-up, medians over the runs. */
function monitoringFigures(mems: ReturnType<typeof labMemory>[], runs: number): [string, string][] {
    const nodes = [...new Set(mems.flatMap((m) => Object.keys(m.monitoringMiB)))].sort();
    return nodes.map((n) => {
        const of = (d: "prometheus" | "alertmanager") => median(mems.map((m) => m.monitoringMiB[n]?.[d] ?? 0));
        return [`lab memory of the monitoring on ${n} right after bring-up (PSS), median of ${runs}`, `Prometheus ${of("prometheus")} MiB, Alertmanager ${of("alertmanager")} MiB`];
    });
}

export interface LabBenchOptions {
    /** Bring-up time and memory alone: no proxy comparison, no drills, no witness stack. */
    bringUpOnly?: boolean;
    /** Only these drills (by name), and no proxy comparison; absent: every drill. */
    drills?: string[];
}

export async function labBench(runs: number, opts: LabBenchOptions = {}): Promise<[string, string][]> {
    const log = (m: string) => console.error(m);
    const unknown = (opts.drills ?? []).filter((d) => !drills.some((x) => x.name === d));
    if (unknown.length) throw new Error(`no drill named ${unknown.join(", ")}; drills: ${drills.map((x) => x.name).join(", ")}`);
    const source = stackSource({ stack: "prod" });
    const witness = stackSource({ config: join(LAB_STACKS_DIR, "witness.yaml") });
    // Each stack's root filesystem cached before timing starts.
    for (const s of opts.bringUpOnly ? [source] : [source, witness]) await ensureRootfs(labPackagesOf(await labSpecs(s)), log);
    const bringUps: number[] = [];
    const memory: number[] = [];
    const monitoring: ReturnType<typeof labMemory>[] = [];
    const proxies: ProxyFigures[] = [];
    const results = new Map<string, DrillResult[]>();
    const skipped = new Set<string>();
    /** Runs each drill (of `only`, if given) that applies to the lab now up; names the others. */
    const runDrills = async (run: number, only?: Set<string>) => {
        for (const d of drills.filter((x) => (!only || only.has(x.name)) && (!opts.drills || opts.drills.includes(x.name)))) {
            const why = whyNotApplicableHere(d);
            if (why) {
                log(`drill ${d.name}: skipped, ${why}`);
                skipped.add(d.name);
                continue;
            }
            const r = await d.run({ log });
            // A failed run says why where it happens; the table below only counts it.
            if (!r.passed) log(`drill ${d.name} (run ${run + 1}) FAILED: ${r.notes.join("; ")}`);
            const key = only ? `${d.name} (witness stack)` : d.name;
            results.set(key, [...(results.get(key) ?? []), r]);
        }
    };
    for (let i = 0; i < runs; i++) {
        try {
            bringUps.push((await bringUp(source, log)).seconds);
            const mem = labMemory();
            log(`lab memory (PSS, MiB): ${mem.totalMiB} in all; ${Object.entries(mem.perNodeMiB).map(([k, v]) => `${k} ${v}`).join(", ")}; monitoring: ${describeMonitoringMemory(mem)}`);
            memory.push(mem.totalMiB);
            monitoring.push(mem);
            if (opts.bringUpOnly) continue;
            if (!opts.drills) proxies.push(await proxyOverhead());
            await runDrills(i);
        } finally {
            await teardown(log);
        }
    }
    // What the prod stack cannot run (losing the provider that holds most members needs a
    // witness) runs as often on the lab's witness stack.
    const onWitness = new Set(skipped);
    for (let i = 0; onWitness.size > 0 && i < runs; i++) {
        try {
            await bringUp(witness, log);
            await runDrills(i, onWitness);
        } finally {
            await teardown(log);
        }
    }
    const figures: [string, string][] = [
        [`lab bring-up to healthy, prod stack, median of ${runs}`, `${median(bringUps).toFixed(1)} s`],
        [`lab memory right after bring-up (PSS of every process), median of ${runs}`, `${median(memory)} MiB`],
        ...monitoringFigures(monitoring, runs),
    ];
    if (opts.bringUpOnly) return figures;
    if (proxies.length > 0) figures.push(...proxyFigures(proxies, runs));
    for (const [name, rs] of results) {
        const rtos = rs.map((r) => r.rtoSeconds).filter((x): x is number => x !== null);
        // Every run's RTO beside the median, with the time the machine stood still in it (if any).
        const each = rs.map((r) => `${r.rtoSeconds === null ? "never" : r.rtoSeconds.toFixed(1)}${r.hostStallSeconds ? ` (stood still ${r.hostStallSeconds} s)` : ""}`).join(", ");
        figures.push([`drill ${name}: RTO, median of ${rs.length}`, rtos.length === rs.length ? `${median(rtos).toFixed(1)} s (${each})` : `never recovered in ${rs.length - rtos.length} run(s)`]);
        figures.push([`drill ${name}: lost writes / failed requests (max)`, `${Math.max(...rs.map((r) => r.lostWrites))} / ${Math.max(...rs.map((r) => r.failedRequests))}`]);
        figures.push([`drill ${name}: passed (target RTO ${rs[0].rtoTargetSeconds} s, no loss, no split brain)`, `${rs.filter((r) => r.passed).length} of ${rs.length}`]);
        // A drill's own figures (the writes a cluster's loss cost, say): each run's, and the median.
        for (const key of [...new Set(rs.flatMap((r) => Object.keys(r.figures ?? {})))]) {
            const values = rs.map((r) => r.figures?.[key]).filter((x): x is number => x !== undefined);
            figures.push([`drill ${name}: ${key}, median of ${values.length}`, `${median(values)} (${values.join(", ")})`]);
        }
    }
    return figures;
}

/** The proxy comparison's figures, medians over the runs. */
function proxyFigures(proxies: ProxyFigures[], runs: number): [string, string][] {
    const m = (f: (p: (typeof proxies)[number]) => number) => median(proxies.map(f));
    const fig = (p: HttpBenchFigures) => `${p.requestsPerSecond.toFixed(0)} req/s, p50 ${p.p50Ms.toFixed(1)} ms, p99 ${p.p99Ms.toFixed(1)} ms`;
    const med = (side: keyof ProxyFigures): HttpBenchFigures => ({ ...proxies[0][side], requestsPerSecond: m((p) => p[side].requestsPerSecond), p50Ms: m((p) => p[side].p50Ms), p99Ms: m((p) => p[side].p99Ms), failed: Math.max(...proxies.map((p) => p[side].failed)) });
    const via = med("viaProxy");
    const viaOne = med("viaProxyOneApp");
    const direct = med("direct");
    return [
        [`HTTP through one HAProxy node to every app node (HTTPS, ${HTTP_BENCH_CLIENTS} clients, ${HTTP_BENCH_SECONDS} s), median of ${runs}`, `${fig(via)}, ${via.failed} failed`],
        [`HTTP through one HAProxy node to one app node, median of ${runs}`, `${fig(viaOne)}, ${viaOne.failed} failed`],
        [`HTTP direct to that app node (plain HTTP over the mesh, same clients), median of ${runs}`, `${fig(direct)}, ${direct.failed} failed`],
        ["proxy overhead, one app node: direct req/s / via-proxy req/s; p50 via / direct", `${(direct.requestsPerSecond / viaOne.requestsPerSecond).toFixed(2)}x; ${(viaOne.p50Ms / direct.p50Ms).toFixed(2)}x`],
    ];
}
