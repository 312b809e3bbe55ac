// The lab's edge: a namespace on the bridge (vh-lab-edge, 198.18.0.2) where two stand-ins for
// Cloudflare's edge send visitors to the HAProxy pair as the program's load balancer says. One
// checks the origins at the monitor's configured interval, the other every 10 s (the shortest
// Cloudflare allows), so every drill reports what visitors see at both.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { answers, Log, sleep } from "../exec";
import { parseJsonLines } from "../load/json-lines";
import { addNodeNetwork, pinNeighbours } from "../net";
import { hostVethName, netnsName, STATE_DIR } from "../paths";
import { updateState } from "../state";
import { EdgeConfig, EdgePlan, OriginPullClient } from "./spec";

/** The edge's namespace is vh-<this>; no node may take the name. */
export const EDGE_NAME = "lab-edge";
export const EDGE_ADDRESS = "198.18.0.2";
/** Cloudflare's shortest monitor interval (Enterprise). */
export const FASTEST_INTERVAL_SECONDS = 10;

export interface LabEdge {
    /** "edge (60 s)": which monitor interval it plays. */
    name: string;
    url: string;
    intervalSeconds: number;
    /** A whole interval, then the check and each retry timing out: the longest a dead origin stays in its pool. */
    worstDetectionSeconds: number;
    eventLog: string;
}

export interface EdgeEvent {
    at: number;
    origin?: string;
    healthy?: boolean;
    retried?: string;
}

/** Where the lab keeps the origin-pull certificate and key: what asks HAProxy's 443 directly presents them, as Cloudflare does. */
export const ORIGIN_PULL_FILES = { cert: join(STATE_DIR, "edge", "origin-pull.crt"), key: join(STATE_DIR, "edge", "origin-pull.key") };

/** Writes the origin-pull certificate and key (the key root's only) for the edge and the lab's direct clients. */
export function writeOriginPull(client: OriginPullClient): typeof ORIGIN_PULL_FILES {
    mkdirSync(join(STATE_DIR, "edge"), { recursive: true });
    writeFileSync(ORIGIN_PULL_FILES.cert, client.certificate);
    writeFileSync(ORIGIN_PULL_FILES.key, client.privateKey, { mode: 0o600 });
    return ORIGIN_PULL_FILES;
}

/** The certificate and key as TLS options, for the lab's clients that ask HAProxy's 443 directly (empty before a lab wrote them). */
export function originPullTls(): { cert?: string; key?: string } {
    if (!existsSync(ORIGIN_PULL_FILES.key)) return {};
    return { cert: readFileSync(ORIGIN_PULL_FILES.cert, "utf8"), key: readFileSync(ORIGIN_PULL_FILES.key, "utf8") };
}

/** Starts both edges for `plan` (the app hostname's load balancer) once the nodes are up. */
export async function startEdges(plan: EdgePlan, nodes: { name: string; publicIpv4: string }[], originCaPem: string, log: Log): Promise<LabEdge[]> {
    if (!existsSync(ORIGIN_PULL_FILES.key)) throw new Error("lab: the origin-pull certificate is not written (writeOriginPull) before the edges start");
    if (nodes.some((n) => n.name === EDGE_NAME)) throw new Error(`lab: a node is named ${EDGE_NAME}, the lab edge's own name`);
    const hostVeth = hostVethName(EDGE_NAME);
    updateState((s) => (s.serviceNamespaces = [...(s.serviceNamespaces ?? []), { name: EDGE_NAME, hostVeth }]));
    await addNodeNetwork(EDGE_NAME, hostVeth, EDGE_ADDRESS);
    // As between nodes: a partition shows as silence, not "no route to host" once ARP expires.
    await pinNeighbours([...nodes, { name: EDGE_NAME, publicIpv4: EDGE_ADDRESS }]);
    const dir = join(STATE_DIR, "edge");
    mkdirSync(dir, { recursive: true });
    const originCaFile = join(dir, "origin-ca.pem");
    writeFileSync(originCaFile, originCaPem);
    const intervals = [...new Set([plan.monitor.intervalSeconds, FASTEST_INTERVAL_SECONDS])];
    // Both edges start at once: each waits about a second for its server to listen.
    return Promise.all(intervals.map(async (interval, i): Promise<LabEdge> => {
        const port = 80 + i * 8000; // 80, 8080
        const name = `edge (monitor every ${interval} s)`;
        const eventLog = join(dir, `events-${interval}.jsonl`);
        writeFileSync(eventLog, "");
        const config: EdgeConfig = { ...plan, monitor: { ...plan.monitor, intervalSeconds: interval }, listen: { address: EDGE_ADDRESS, port }, originCaFile, originPullCertFile: ORIGIN_PULL_FILES.cert, originPullKeyFile: ORIGIN_PULL_FILES.key, eventLog };
        const configFile = join(dir, `edge-${interval}.json`);
        writeFileSync(configFile, JSON.stringify(config, null, 2));
        const out = openSync(join(dir, `edge-${interval}.log`), "a");
        const tsx = join(__dirname, "../../../node_modules/tsx/dist/cli.mjs");
        const child = spawn("nsenter", [`--net=/run/netns/${netnsName(EDGE_NAME)}`, "--", process.execPath, tsx, join(__dirname, "edge-server.ts"), "--config", configFile], { detached: true, stdio: ["ignore", out, out] });
        closeSync(out);
        if (!child.pid) throw new Error("lab: could not start the edge");
        const pid = child.pid;
        child.unref();
        updateState((s) => (s.services = [...(s.services ?? []), { name, pid }]));
        await waitListening(EDGE_ADDRESS, port, name);
        const worstDetectionSeconds = interval + (plan.monitor.retries + 1) * plan.monitor.timeoutSeconds;
        log(`lab: ${name} on ${EDGE_ADDRESS}:${port} for ${plan.hostname}: pools ${plan.origins.map((o) => o.name).join(" -> ")}, steering ${plan.steering}, ${plan.monitor.method} ${plan.monitor.path} expecting ${plan.monitor.expectedCodes}, ${plan.monitor.retries} retries, timeout ${plan.monitor.timeoutSeconds} s`);
        return { name, url: `http://${EDGE_ADDRESS}:${port}`, intervalSeconds: interval, worstDetectionSeconds, eventLog };
    }));
}

async function waitListening(host: string, port: number, what: string): Promise<void> {
    for (let i = 0; i < 150; i++) {
        if (await answers(host, port)) return;
        await sleep(100);
    }
    throw new Error(`lab: ${what} did not listen on ${host}:${port} within 15 s`);
}

export function edgeEvents(edge: LabEdge): EdgeEvent[] {
    if (!existsSync(edge.eventLog)) return [];
    return parseJsonLines<EdgeEvent>(readFileSync(edge.eventLog, "utf8"));
}

/** Origins the edge holds unhealthy now (every origin starts healthy). */
export function unhealthyOrigins(edge: LabEdge): string[] {
    const state = new Map<string, boolean>();
    for (const e of edgeEvents(edge)) if (e.origin && e.healthy !== undefined) state.set(e.origin, e.healthy);
    return [...state.entries()].filter(([, h]) => !h).map(([o]) => o);
}

/** Seconds from `since` until the edge marked `origin` unhealthy (null: it never did). */
export function markedDownAfter(edge: LabEdge, origin: string, since: number): number | null {
    const e = edgeEvents(edge).find((x) => x.at >= since && x.origin === origin && x.healthy === false);
    return e ? (e.at - since) / 1000 : null;
}
