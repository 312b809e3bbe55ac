// How much memory the lab's stack uses: the proportional set size (PSS) of every process the
// lab runs for its nodes and services, so pages shared through the common root filesystem are
// split fairly instead of counted once per node.
import { readFileSync } from "node:fs";
import { labNodes, nodePids } from "./realize";
import { loadState } from "./state";

function pssKiB(pid: number): number {
    try {
        const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
        return m ? Number(m[1]) : 0;
    } catch {
        return 0; // exited meanwhile
    }
}

export interface LabMemory {
    totalMiB: number;
    perNodeMiB: Record<string, number>;
}

export function labMemory(): LabMemory {
    const perNodeMiB: Record<string, number> = {};
    let total = 0;
    for (const n of labNodes()) {
        const kib = nodePids(n.name).reduce((s, p) => s + pssKiB(p), 0);
        perNodeMiB[n.name] = Math.round(kib / 1024);
        total += kib;
    }
    for (const s of loadState()?.services ?? []) total += pssKiB(s.pid);
    return { totalMiB: Math.round(total / 1024), perNodeMiB };
}
