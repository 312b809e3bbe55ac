// A drill breaks something in the lab while probes keep using the stack, then measures what
// the users of the stack saw: how long until the stack served again (RTO), acknowledged writes
// lost, failed requests, and whether two primaries ever accepted writes.
import type { Log } from "../exec";

export interface DrillResult {
    drill: string;
    target: string;
    /** Seconds from the fault until every probe succeeded again (0: nothing was ever lost). */
    rtoSeconds: number | null;
    /** What the RTO must stay within (the drill fails above it). */
    rtoTargetSeconds: number;
    /** Seconds from the repair (restart, reconnect) until the broken node was healthy again. */
    recoverySeconds: number | null;
    lostWrites: number;
    /** Failed database writes, mesh probes and HTTP requests during the drill. */
    failedRequests: number;
    /** Of those, HTTP requests through the web path (null: the stack serves no app). Must be 0. */
    failedHttpRequests: number | null;
    splitBrain: boolean;
    passed: boolean;
    notes: string[];
}

export interface DrillContext {
    log: Log;
    /** Node to break; each drill picks a sensible default. */
    target?: string;
}

export interface Drill {
    name: string;
    description: string;
    run(ctx: DrillContext): Promise<DrillResult>;
}
