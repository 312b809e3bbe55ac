// The stack outputs the lab's clients need (connection strings, the app, its hostname, the lab's
// edges, the stack file), written when the lab comes up and read by the drills, the health checks
// and the benchmarks.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LabApp } from "./containers";
import type { LabEdge } from "./edge";
import { STATE_DIR } from "./paths";
import type { StackSource } from "./program";

export const STACK_FILE = join(STATE_DIR, "stack.json");

export interface LabStack {
    connectionString?: string;
    /** The same primary through the poolers (pgbouncer on the HAProxy nodes). */
    pooledConnectionString?: string;
    app: LabApp;
    hostname: string;
    /** The stand-ins for Cloudflare's edge, when the program load-balances the hostname. */
    edges?: LabEdge[];
    /** The stack file the lab was brought up from (release drills evaluate it again, edited). */
    source?: StackSource;
    /** When the bring-up ended, every node healthy (ms since the epoch): the monitoring's drills count alerts from then. */
    upAt?: number;
}

/** The stack outputs the lab's clients need (written by `lab up`, 0600, gone on `down`). */
export function saveLabStack(stack: LabStack): void {
    writeFileSync(STACK_FILE, JSON.stringify(stack), { mode: 0o600 });
}

export function labStack(): LabStack | undefined {
    return existsSync(STACK_FILE) ? (JSON.parse(readFileSync(STACK_FILE, "utf8")) as LabStack) : undefined;
}
