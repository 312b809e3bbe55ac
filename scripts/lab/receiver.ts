// Where the lab's stack sends its alerts and its heartbeat: a receiver on the lab bridge
// (receiver-server.ts) under its own name in the lab DNS, with a certificate from the lab CA the
// nodes trust. The lab gives the stack `vps-ha:alerts` pointing there, as a secret, as a stack
// file would; the real Alertmanagers on the monitoring nodes deliver to it, and drills read what
// arrived from its record (one JSON line per POST, kept from bring-up to teardown).
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { answers, Log, sleep } from "./exec";
import { BRIDGE_ADDRESS, STATE_DIR } from "./paths";
import type { LabTls } from "./s3";
import { updateState } from "./state";

/** The receiver's name in the lab DNS (a reserved TLD: it never leaves the lab). */
export const RECEIVER_HOST = "alerts.vps-ha-lab.test";
/** Not 443: the S3 stand-in has that port of the bridge address. */
export const RECEIVER_PORT = 9443;
export const WEBHOOK_PATH = "/webhook";
export const HEARTBEAT_PATH = "/heartbeat";

/** What the lab adds to a stack file without `vps-ha:alerts`: both URLs at the receiver. */
export const LAB_ALERTS = {
    webhookUrl: `https://${RECEIVER_HOST}:${RECEIVER_PORT}${WEBHOOK_PATH}`,
    heartbeatUrl: `https://${RECEIVER_HOST}:${RECEIVER_PORT}${HEARTBEAT_PATH}`,
} as const;

export const RECEIVER_DIR = join(STATE_DIR, "alerts");
export const RECEIVED_FILE = join(RECEIVER_DIR, "received.jsonl");

export interface ReceivedAlert {
    name: string;
    /** The node the alert is about (Prometheus' `instance` label), if any. */
    instance?: string;
    status: "firing" | "resolved" | string;
    labels: Record<string, string>;
}

/** One POST as the receiver recorded it. */
export interface Received {
    /** Milliseconds since the epoch, on arrival. */
    at: number;
    method: string;
    path: string;
    kind: "webhook" | "heartbeat" | "other";
    /** The notification's own status (firing while any of its alerts fires). */
    status?: string;
    alerts: ReceivedAlert[];
    /** Set when the body was not Alertmanager's webhook JSON. */
    error?: string;
}

/** Reads one POST body as Alertmanager's webhook JSON (version 4). */
export function receivedOf(at: number, method: string, path: string, body: string): Received {
    const kind = path === WEBHOOK_PATH ? "webhook" : path === HEARTBEAT_PATH ? "heartbeat" : "other";
    try {
        const doc = JSON.parse(body) as { status?: unknown; alerts?: unknown };
        if (!Array.isArray(doc.alerts)) throw new Error("no alerts array");
        const alerts = (doc.alerts as { status?: unknown; labels?: Record<string, string> }[]).map((a) => ({
            name: a.labels?.alertname ?? "?",
            ...(a.labels?.instance ? { instance: a.labels.instance } : {}),
            status: typeof a.status === "string" ? a.status : "?",
            labels: a.labels ?? {},
        }));
        return { at, method, path, kind, ...(typeof doc.status === "string" ? { status: doc.status } : {}), alerts };
    } catch (e) {
        return { at, method, path, kind, alerts: [], error: `not Alertmanager's webhook JSON: ${(e as Error).message}` };
    }
}

/** Everything the receiver recorded since `since` (ms since the epoch; all by default). */
export function received(since = 0): Received[] {
    if (!existsSync(RECEIVED_FILE)) return [];
    return readFileSync(RECEIVED_FILE, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Received).filter((r) => r.at >= since);
}

/** Starts the receiver on the bridge address, records its PID for `down`, waits for it. */
export async function startReceiver(tls: LabTls, log: Log): Promise<void> {
    mkdirSync(RECEIVER_DIR, { recursive: true });
    const out = openSync(join(RECEIVER_DIR, "receiver.log"), "a");
    const tsx = join(__dirname, "../../node_modules/tsx/dist/cli.mjs");
    const child = spawn(process.execPath, [tsx, join(__dirname, "receiver-server.ts"), "--address", BRIDGE_ADDRESS, "--port", String(RECEIVER_PORT),
        "--key", tls.keyFile, "--cert", tls.certFile, "--out", RECEIVED_FILE], { detached: true, stdio: ["ignore", out, out] });
    closeSync(out);
    if (!child.pid) throw new Error("lab: could not start the alert receiver");
    const pid = child.pid;
    child.unref();
    updateState((s) => (s.services = [...(s.services ?? []), { name: "alert receiver", pid }]));
    for (let i = 0; i < 100; i++) {
        if (await answers(BRIDGE_ADDRESS, RECEIVER_PORT)) {
            log(`lab: alert and heartbeat receiver ${RECEIVER_HOST} on ${BRIDGE_ADDRESS}:${RECEIVER_PORT}, recording to ${RECEIVED_FILE}`);
            return;
        }
        await sleep(100);
    }
    throw new Error(`lab: the alert receiver did not listen on ${BRIDGE_ADDRESS}:${RECEIVER_PORT} within 10 s (see ${join(RECEIVER_DIR, "receiver.log")})`);
}
