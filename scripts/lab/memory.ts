// How much memory the lab's stack uses: the proportional set size (PSS) of every process the
// lab runs for its nodes and services, so pages shared through the common root filesystem are
// split fairly instead of counted once per node.
import { readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
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

/** The monitoring's daemons, by the program each process runs (Debian 13's binaries). */
const MONITORING_DAEMONS: Record<string, "prometheus" | "alertmanager"> = { prometheus: "prometheus", "prometheus-alertmanager": "alertmanager" };

function daemonOf(pid: number): "prometheus" | "alertmanager" | undefined {
    try {
        return MONITORING_DAEMONS[basename(readlinkSync(`/proc/${pid}/exe`))];
    } catch {
        return undefined; // exited meanwhile
    }
}

export interface LabMemory {
    totalMiB: number;
    perNodeMiB: Record<string, number>;
    /** Prometheus' and Alertmanager's PSS on each node that runs them (the monitoring nodes). */
    monitoringMiB: Record<string, { prometheus: number; alertmanager: number }>;
}

export function labMemory(): LabMemory {
    const perNodeMiB: Record<string, number> = {};
    const monitoringMiB: LabMemory["monitoringMiB"] = {};
    let total = 0;
    for (const n of labNodes()) {
        let kib = 0;
        const daemons = { prometheus: 0, alertmanager: 0 };
        for (const p of nodePids(n.name)) {
            const pss = pssKiB(p);
            kib += pss;
            const d = daemonOf(p);
            if (d) daemons[d] += pss;
        }
        perNodeMiB[n.name] = Math.round(kib / 1024);
        if (daemons.prometheus || daemons.alertmanager) monitoringMiB[n.name] = { prometheus: Math.round(daemons.prometheus / 1024), alertmanager: Math.round(daemons.alertmanager / 1024) };
        total += kib;
    }
    for (const s of loadState()?.services ?? []) total += pssKiB(s.pid);
    return { totalMiB: Math.round(total / 1024), perNodeMiB, monitoringMiB };
}

/** The monitoring's memory in one line: "lb-1 Prometheus 60 MiB, Alertmanager 20 MiB; ..." (or that none runs). */
export function describeMonitoringMemory(m: LabMemory): string {
    const nodes = Object.entries(m.monitoringMiB);
    return nodes.length === 0 ? "no Prometheus or Alertmanager running" : nodes.map(([n, d]) => `${n} Prometheus ${d.prometheus} MiB, Alertmanager ${d.alertmanager} MiB`).join("; ");
}
