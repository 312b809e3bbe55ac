// npm run bench [-- --runs N] [--lab [--bring-up-only | --drills a,b]]
// Figures, each the median of several runs: how long the program takes to evaluate (mock
// runtime) for the prod stack and for a generated stack of 200 app nodes, and how that grows;
// with --lab (as root), the lab's bring-up time and memory, and each drill's RTO and lost
// writes; with --bring-up-only, the bring-up time and memory alone; with --drills, those drills
// alone (and the bring-up), no proxy comparison.
import { performance } from "node:perf_hooks";
import { ConfigError, parseStackConfig } from "../components/config";
import { buildPlan } from "../components/plan";
import { parseArgs } from "./lib/args";
import { median } from "./lib/stats";
import { evaluateProgram } from "./lib/mock-program";
import { readStackFile, StackFile } from "./lib/stack-file";

/** The prod stack with `count` app nodes, alternating providers, in a mesh big enough for them. */
export function generatedStack(count: number): StackFile {
    const base = readStackFile("Pulumi.prod.yaml");
    const nodes = JSON.parse(base.values["vps-ha:nodes"]);
    nodes.app = Array.from({ length: count }, (_, i) =>
        i % 2 === 0
            ? { name: `app-${String(i + 1).padStart(3, "0")}`, provider: "linode", region: "de-fra-2", size: "g6-nanode-1" }
            : { name: `app-${String(i + 1).padStart(3, "0")}`, provider: "hcloud", region: "fsn1", size: "cx23" },
    );
    const values = { ...base.values, "vps-ha:mesh": JSON.stringify({ cidr: "10.77.0.0/16" }), "vps-ha:nodes": JSON.stringify(nodes) };
    // Names hash to mesh addresses; pin the rare collision as a user would.
    for (let attempt = 0; attempt < 100; attempt++) {
        try {
            buildPlan(parseStackConfig({ values, secretKeys: new Set(base.secretKeys), env: {}, offline: true }, "bench"));
            return { values, secretKeys: base.secretKeys };
        } catch (e) {
            if (!(e instanceof ConfigError)) throw e;
            const m = /nodes\.app\[(\d+)\]\.meshAddress/.exec(e.issues[0].path);
            if (!m) throw e;
            nodes.app[Number(m[1])].meshAddress = `10.77.255.${10 + attempt}`;
            values["vps-ha:nodes"] = JSON.stringify(nodes);
        }
    }
    throw new Error("could not place the generated stack's mesh addresses");
}

async function timeEvaluation(file: StackFile, runs: number): Promise<{ median: number; resources: number }> {
    const times: number[] = [];
    let resources = 0;
    for (let i = 0; i < runs; i++) {
        const t = performance.now();
        const e = await evaluateProgram({ stack: "bench", values: file.values, secretKeys: file.secretKeys, env: {} });
        times.push(performance.now() - t);
        resources = e.resources.length;
    }
    return { median: median(times), resources };
}

async function main(): Promise<void> {
    const args = parseArgs(process.argv.slice(2), { values: ["runs", "drills"], flags: ["lab", "bring-up-only"] });
    const runs = Math.max(1, Math.min(50, Number(args.values.runs ?? 5)));
    const figures: [string, string][] = [];
    const prod = await timeEvaluation(readStackFile("Pulumi.prod.yaml"), runs);
    figures.push([`program evaluation, prod stack (${prod.resources} resources), median of ${runs}`, `${prod.median.toFixed(0)} ms`]);
    const big = await timeEvaluation(generatedStack(200), runs);
    figures.push([`program evaluation, 200 app nodes (${big.resources} resources), median of ${runs}`, `${big.median.toFixed(0)} ms`]);
    figures.push(["growth: time per resource, 200-app stack / prod", `${(big.median / big.resources / (prod.median / prod.resources)).toFixed(2)}x`]);
    if (args.flags.lab) {
        const { labBench } = await import("./lab/bench");
        figures.push(...(await labBench(Math.max(1, Math.min(5, Number(args.values.runs ?? 3))), { bringUpOnly: args.flags["bring-up-only"], ...(args.values.drills ? { drills: args.values.drills.split(",").filter(Boolean) } : {}) })));
    }
    const width = Math.max(...figures.map(([k]) => k.length));
    for (const [k, v] of figures) console.log(`${k.padEnd(width)}  ${v}`);
}

main().then(() => process.exit(0), (e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
});
