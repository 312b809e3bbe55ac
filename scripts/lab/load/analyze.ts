// What a drill's writes say, from the writer's log and the ids the database holds afterwards.
// Pure, so it is unit-tested on made-up logs.
import type { WriteRecord } from "./db-writer";

export interface WriteAnalysis {
    acknowledged: number;
    failed: number;
    /** Seconds from the fault to the first acknowledged write after writes started failing. */
    rtoSeconds: number | null;
    /** Acknowledged ids that are not in the database afterwards. */
    lostIds: number[];
    /** True when a server accepted writes again after another server had taken over. */
    splitBrain: boolean;
    servers: string[];
}

export function analyzeWrites(records: WriteRecord[], faultAt: number, present: ReadonlySet<number>): WriteAnalysis {
    const sorted = [...records].sort((a, b) => a.start - b.start);
    const ok = sorted.filter((r) => r.ok);
    const firstFailure = sorted.find((r) => !r.ok && r.end >= faultAt);
    let rtoSeconds: number | null = 0;
    if (firstFailure) {
        const back = ok.find((r) => r.start >= firstFailure.start);
        rtoSeconds = back ? (back.end - faultAt) / 1000 : null;
    }
    // Servers in the order they took writes; a server that comes back after being replaced
    // accepted writes while another was primary, or right after: either way, two primaries.
    const order: string[] = [];
    let splitBrain = false;
    for (const r of ok) {
        const server = r.server ?? "?";
        if (order[order.length - 1] === server) continue;
        if (order.includes(server)) splitBrain = true;
        order.push(server);
    }
    return {
        acknowledged: ok.length,
        failed: sorted.length - ok.length,
        rtoSeconds,
        lostIds: ok.filter((r) => !present.has(r.id)).map((r) => r.id),
        splitBrain,
        servers: order,
    };
}

/** The longest gap between two acknowledged writes that ends after `since` (seconds): how long a planned change held writes. */
export function longestWritePause(records: WriteRecord[], since: number): number {
    const ok = records.filter((r) => r.ok).sort((a, b) => a.end - b.end);
    let longest = 0;
    for (let i = 1; i < ok.length; i++) if (ok[i].end >= since) longest = Math.max(longest, (ok[i].end - ok[i - 1].end) / 1000);
    return longest;
}
