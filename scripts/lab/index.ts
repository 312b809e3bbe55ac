// npm run lab -- [up | status [--json] | drill NAME [--node N] [--json FILE] [--quick] | drills | rebuild NODE | down | all [--drills A,B]]
//                [--stack NAME | --config FILE]
// With no command: up, every drill, the report, down. See README.md, "The lab".
import { writeFileSync } from "node:fs";
import { parseArgs, UsageError } from "../lib/args";
import { Log } from "./exec";
import { drills, findDrill, whyNotApplicableHere } from "./drills";
import { DrillResult } from "./drills/types";
import { describeFailures, labHealth, NodeHealth, waitHealthy } from "./health";
import { requireRoot } from "./preflight";
import { describeMonitoringMemory, labMemory } from "./memory";
import { stackSource } from "./program";
import { bringUp, HEALTHY_TIMEOUT_MS } from "./up";
import { rebuildNode } from "./rebuild";
import { teardown } from "./realize";

const USAGE = "usage: npm run lab -- [up | status [--json] | drill NAME [--node NODE] [--json FILE] [--quick] | drills | rebuild NODE | down | all [--drills A,B]] [--stack NAME | --config FILE]";

const started = Date.now();
const log: Log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`);

async function up(values: { stack?: string; config?: string }): Promise<void> {
    const { specs } = await bringUp(stackSource(values), log);
    log(`lab: ${specs.map((s) => `${s.name} (${s.role}, ${s.publicIpv4}, mesh ${s.meshAddress})`).join(", ")}`);
}

function statusTable(health: NodeHealth[]): string {
    const rows = health.map((h) => [h.name, h.role, h.provider, h.namespace, h.publicIpv4, h.meshAddress, h.daemons.map((d) => `${d.unit.replace(/\.service$/, "")}:${d.state}`).join(" "), h.healthy ? "healthy" : `UNHEALTHY ${describeFailures([h])}`]);
    return table(["node", "role", "provider", "namespace", "public", "mesh", "daemons", "health"], rows);
}

function table(head: string[], rows: string[][]): string {
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
    return [line(head), ...rows.map(line)].join("\n");
}

export function reportTable(results: DrillResult[]): string {
    const fmt = (n: number | null) => (n === null ? "never" : n.toFixed(1));
    return table(
        ["drill", "target", "RTO s", "RTO target s", "recovery s", "lost writes", "failed requests", "split brain", "result"],
        results.map((r) => [r.drill, r.target, fmt(r.rtoSeconds), fmt(r.rtoTargetSeconds), fmt(r.recoverySeconds), String(r.lostWrites), String(r.failedRequests), r.splitBrain ? "YES" : "no", r.passed ? "pass" : "FAIL"]),
    );
}

async function runDrill(name: string, node: string | undefined, quick = false): Promise<DrillResult> {
    const drill = findDrill(name);
    const why = whyNotApplicableHere(drill);
    if (why) throw new Error(`drill ${drill.name} does not apply here: ${why} (npm run lab -- up --config scripts/lab/stacks/witness.yaml has one)`);
    log(`drill ${drill.name}: ${drill.description}`);
    const result = await drill.run({ log, target: node, quick });
    log(`drill ${drill.name}: ${result.passed ? "passed" : "FAILED"}; ${result.notes.join("; ")}`);
    return result;
}

async function main(argv: string[]): Promise<number> {
    const args = parseArgs(argv, { values: ["stack", "config", "json", "node", "drills"], flags: ["json", "quick"] });
    const [command = "all", ...rest] = args.positional;
    const jsonFile = args.values.json;
    if (command === "drills") {
        for (const d of drills) console.log(`${d.name.padEnd(22)} ${d.needs ? `(needs a ${d.needs}) ` : ""}${d.description}`);
        return 0;
    }
    requireRoot();
    switch (command) {
        case "up":
            await up(args.values);
            return 0;
        case "down":
            await teardown(log);
            return 0;
        case "status": {
            const health = await labHealth();
            if (health.length === 0) {
                console.log("the lab is down");
                return 1;
            }
            const memory = labMemory();
            console.log(args.flags.json || jsonFile !== undefined ? JSON.stringify({ nodes: health, memory }, null, 2) : `${statusTable(health)}\n\nmemory (PSS of every lab process): ${memory.totalMiB} MiB; monitoring: ${describeMonitoringMemory(memory)}`);
            return health.every((h) => h.healthy) ? 0 : 1;
        }
        case "drill": {
            if (rest.length !== 1) throw new UsageError("drill takes one drill name (npm run lab -- drills lists them)");
            const result = await runDrill(rest[0], args.values.node, args.flags.quick);
            if (jsonFile) writeFileSync(jsonFile, JSON.stringify(result, null, 2) + "\n");
            console.log(JSON.stringify(result, null, 2));
            return result.passed ? 0 : 1;
        }
        case "rebuild": {
            // What `pulumi up` replacing this node's server does: an empty disk, the same user-data.
            if (rest.length !== 1) throw new UsageError("rebuild takes one node name (npm run lab -- status lists them)");
            await rebuildNode(rest[0], log);
            await waitHealthy(log, HEALTHY_TIMEOUT_MS);
            return 0;
        }
        case "all": {
            const results: DrillResult[] = [];
            const skipped: string[] = [];
            // Named drills (any the lab knows) run in the process that brought the lab up, as the
            // program's certificates and generations are that process's (see rebuild.ts).
            const chosen = args.values.drills ? args.values.drills.split(",").map((n) => findDrill(n.trim())) : drills;
            try {
                await up(args.values);
                const memory = labMemory();
                log(`lab: memory (PSS of every lab process) ${memory.totalMiB} MiB; monitoring: ${describeMonitoringMemory(memory)}`);
                for (const d of chosen) {
                    const why = whyNotApplicableHere(d);
                    if (why) {
                        log(`drill ${d.name}: skipped, ${why}`);
                        skipped.push(`${d.name}: skipped, ${why}`);
                    } else results.push(await runDrill(d.name, undefined));
                }
            } finally {
                await teardown(log);
            }
            console.log(`\n${reportTable(results)}${skipped.map((x) => `\n${x}`).join("")}`);
            if (jsonFile) writeFileSync(jsonFile, JSON.stringify(results, null, 2) + "\n");
            return results.every((r) => r.passed) ? 0 : 1;
        }
        default:
            throw new UsageError(`unknown command "${command}"`);
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => process.exit(code),
        (e: Error) => {
            if (e instanceof UsageError) {
                console.error(`${e.message}\n${USAGE}`);
                process.exit(2);
            }
            console.error(`lab: ${e.message}`);
            process.exit(1);
        },
    );
}
