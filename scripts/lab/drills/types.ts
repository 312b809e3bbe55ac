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
    /**
     * Seconds the lab's machine stood still between the fault and writes coming back (CPU taken
     * by its hypervisor, every task waiting on IO): the RTO target is extended by as much.
     */
    hostStallSeconds?: number;
    /** Seconds from the repair (restart, reconnect) until the broken node was healthy again. */
    recoverySeconds: number | null;
    lostWrites: number;
    /** Failed database writes, mesh probes and HTTP requests during the drill. */
    failedRequests: number;
    /**
     * Of those, HTTP requests through the web path (null: the stack serves no app). Must be 0
     * unless the drill takes an HAProxy node away: requests in flight on it are lost, and
     * `edges` then says for how long visitors saw errors.
     */
    failedHttpRequests: number | null;
    /** What visitors saw through each lab edge (Cloudflare's load balancer at one monitor interval). */
    edges?: EdgeResult[];
    splitBrain: boolean;
    /** Where every write and HTTP request the drill's clients made is logged (JSON lines). */
    logDir?: string;
    passed: boolean;
    /** The drill's own figures beyond the common ones (npm run bench -- --lab gives each one's median). */
    figures?: Record<string, number>;
    /**
     * Whether every check but the RTO target passed (no write lost, no split brain, the drill's
     * own checks), where the drill measures an RTO under load: a test allowing a single run some
     * slack over the target still holds it to everything else.
     */
    checksPassed?: boolean;
    notes: string[];
}

export interface DrillContext {
    log: Log;
    /** Node to break; each drill picks a sensible default. */
    target?: string;
    /** A developer's shorter run (`npm run lab -- drill alerts --quick`): the alerts drill leaves out its calm minutes. */
    quick?: boolean;
}

export interface Drill {
    name: string;
    description: string;
    /** A role the stack must have for the drill to mean anything (absent: every stack has what it needs). */
    needs?: "witness";
    /** A role the stack must not have (the drill adds it). */
    lacks?: "witness";
    run(ctx: DrillContext): Promise<DrillResult>;
}

export interface EdgeResult {
    name: string;
    intervalSeconds: number;
    /** The longest visitors can see errors by the monitor's own settings: a whole interval, then every retry timing out. */
    worstDetectionSeconds: number;
    requests: number;
    failed: number;
    /** Seconds from the fault to the last failed request (0: none failed). */
    errorWindowSeconds: number;
    /** Seconds until this edge's monitor marked each lost HAProxy node down (null: it never did, the node was back first). */
    markedDown: Record<string, number | null>;
}

/** A drill's own checks beside the harness's: its notes in order, a failed one marked, and whether all passed. */
export interface DrillChecks {
    readonly notes: string[];
    readonly ok: boolean;
    check(pass: boolean, note: string): void;
}

export function drillChecks(notes: string[] = []): DrillChecks {
    let ok = true;
    return {
        notes,
        get ok() {
            return ok;
        },
        check(pass: boolean, note: string) {
            ok &&= pass;
            notes.push(pass ? note : `FAILED: ${note}`);
        },
    };
}
