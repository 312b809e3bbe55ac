// Bringing the lab up: the program evaluated, its nodes realized, the stack outputs the lab's
// clients need saved, then a bounded wait until every node is healthy. On failure the nodes'
// last log lines are shown and everything is taken down again.
import { elapsed, Log } from "./exec";
import { NodeHealth, waitHealthy } from "./health";
import { saveLabStack } from "./load/writes";
import { labProgram, StackSource } from "./program";
import { LabNodeSpec, nodeLogTails, realizeNodes, teardown } from "./realize";

export const HEALTHY_TIMEOUT_MS = 180_000;

export async function bringUp(source: StackSource, log: Log): Promise<{ specs: LabNodeSpec[]; health: NodeHealth[]; seconds: number }> {
    log(`lab: evaluating the program for stack "${source.stack}" (${source.file})`);
    const program = await labProgram(source);
    const t = Date.now();
    await realizeNodes(program.specs, log);
    try {
        if (program.connectionString) saveLabStack({ connectionString: program.connectionString });
        const health = await waitHealthy(log, HEALTHY_TIMEOUT_MS);
        log(`lab: up in ${elapsed(t)}`);
        return { specs: program.specs, health, seconds: (Date.now() - t) / 1000 };
    } catch (e) {
        log(`lab: bring-up failed; the nodes' last log lines:\n${nodeLogTails(8)}`);
        await teardown(log);
        throw e;
    }
}
