// The lab's figures for `npm run bench -- --lab`: bring-up time from a cached root filesystem
// to a healthy stack, and each drill's RTO and lost writes, as medians over repeated runs.
import { drills } from "./drills";
import { DrillResult } from "./drills/types";
import { labSpecs, stackSource } from "./program";
import { teardown } from "./realize";
import { median } from "../lib/stats";
import { bringUp } from "./up";
import { labMemory } from "./memory";
import { ensureRootfs } from "./rootfs";
import { packagesOf } from "./cloudinit";

export async function labBench(runs: number): Promise<[string, string][]> {
    const log = (m: string) => console.error(m);
    const source = stackSource({ stack: "prod" });
    const specs = await labSpecs(source);
    await ensureRootfs(packagesOf(specs), log); // cached before timing starts
    const bringUps: number[] = [];
    const memory: number[] = [];
    const results = new Map<string, DrillResult[]>();
    for (let i = 0; i < runs; i++) {
        try {
            bringUps.push((await bringUp(source, log)).seconds);
            memory.push(labMemory().totalMiB);
            for (const d of drills) results.set(d.name, [...(results.get(d.name) ?? []), await d.run({ log })]);
        } finally {
            await teardown(log);
        }
    }
    const figures: [string, string][] = [
        [`lab bring-up to healthy, prod stack, median of ${runs}`, `${median(bringUps).toFixed(1)} s`],
        [`lab memory right after bring-up (PSS of every process), median of ${runs}`, `${median(memory)} MiB`],
    ];
    for (const [name, rs] of results) {
        const rtos = rs.map((r) => r.rtoSeconds).filter((x): x is number => x !== null);
        figures.push([`drill ${name}: RTO, median of ${rs.length}`, rtos.length === rs.length ? `${median(rtos).toFixed(1)} s` : `never recovered in ${rs.length - rtos.length} run(s)`]);
        figures.push([`drill ${name}: lost writes / failed requests (max)`, `${Math.max(...rs.map((r) => r.lostWrites))} / ${Math.max(...rs.map((r) => r.failedRequests))}`]);
        figures.push([`drill ${name}: passed (target RTO ${rs[0].rtoTargetSeconds} s, no loss, no split brain)`, `${rs.filter((r) => r.passed).length} of ${rs.length}`]);
    }
    return figures;
}
