// npm run plan -- [--stack NAME | --config FILE] [--against DEPLOYED_FILE | --deployed OUTPUTS_JSON] [--json]
// The offline plan: runs the real program under Pulumi's mock runtime (no CLI, no cloud account)
// and prints the nodes per provider and region with their monthly price, the total, the
// Cloudflare front door, the resources the program would create, and what each failure leaves
// standing. Against the deployed stack it also says, node by node, what the change does to the
// server (unchanged, powered off, replaced, deleted) and whether one pulumi up may apply it, by
// the program's own rule (components/replacement.ts): --against the stack file as deployed (e.g.
// `git show HEAD:Pulumi.prod.yaml`), or --deployed the stack's outputs (`pulumi stack output --json`).
// Exit codes: 0 plan printed, 2 a stack file, outputs file or config is invalid, 3 the change
// cannot be applied in one pulumi up (the plan is printed, the reasons on stderr).
import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError, parseStackConfig } from "../components/config";
import { buildPlan, StackPlan } from "../components/plan";
import { catalogs } from "../components/providers/catalogs";
import { describeInPlace, inPlaceChange } from "../components/in-place";
import { compareServers, describeChange, factsFromOutputs, NodeChange, replacementProblems, ServerFacts } from "../components/replacement";
import { rotatableFromOutputs, secretsVersionFromOutputs, secretsVersionProblems } from "../components/secrets-version";
import type { FailureRow } from "../components/failures";
import { cloudflareSummary, CloudflareSummary, formatCloudflare } from "./lib/plan-cloudflare";
import { evaluateProgram, Evaluation } from "./lib/mock-program";
import { readStackFile, StackFile, StackFileError, stackNameOf } from "./lib/stack-file";
import { parseArgs, UsageError } from "./lib/args";

const USAGE = "usage: npm run plan -- [--stack NAME | --config FILE] [--against DEPLOYED_STACK_FILE | --deployed STACK_OUTPUTS_JSON] [--json]";

interface PlanNode {
    name: string;
    role: string;
    provider: string;
    region: string;
    size?: string;
    meshAddress: string;
    dnsName: string;
    publicIpv4: string;
    monthlyUsd: number;
}

export interface PlanReport {
    stack: string;
    source: string;
    nodes: PlanNode[];
    extraCosts: { item: string; monthlyUsd: number }[];
    monthlyCostUsd: number;
    resources: Record<string, number>;
    cloudflare: CloudflareSummary;
    failures: FailureRow[];
    /** Against the deployed stack: what the change does to each server, and why one pulumi up may not apply it. */
    replacement?: { against: string; changes: NodeChange[]; problems: string[] };
    /** Secrets the stack file does not hold yet: each must be set (or in the environment) before `pulumi up`. */
    secretsToSet: { path: string; message: string }[];
}

/** What the plan is compared with: the stack file as deployed, or the deployed stack's outputs. */
export type Deployed = { stackFile: string } | { outputs: string };

export async function planReport(source: string, stack: string, deployed?: Deployed): Promise<PlanReport> {
    const file = readStackFile(source);
    const plan = checkConfig(file, stack, source);
    const secretsToSet = plan.config.missingSecrets;
    let before: ServerFacts[] | undefined;
    let beforeDesired: Evaluation["desired"] | undefined;
    let secretsVersionBefore: number | undefined;
    // A stack file as deployed says nothing of which vps-ha deployed it: taken as this one.
    let rotatable = true;
    if (deployed && "stackFile" in deployed) {
        const deployedFile = readStackFile(deployed.stackFile);
        secretsVersionBefore = checkConfig(deployedFile, stack, deployed.stackFile).config.database.secretsVersion;
        // Evaluated in this process as the current file is, so their generated keys are the same:
        // what differs in a node's user-data is what the change does to it.
        const was = await evaluateProgram({ stack, values: deployedFile.values, secretKeys: deployedFile.secretKeys, env: {} });
        before = factsOf(was);
        beforeDesired = was.desired;
    }
    if (deployed && "outputs" in deployed) ({ facts: before, secretsVersion: secretsVersionBefore, rotatable } = readOutputs(deployed.outputs));
    // As a first deployment: the comparison below is the one the program makes before it creates anything.
    const evaluation = await evaluateProgram({ stack, values: file.values, secretKeys: file.secretKeys, env: {} });
    const report: PlanReport = { ...toReport(evaluation, stack, source), secretsToSet };
    if (deployed) {
        // A kept server's desired state is compared file by file (known when the deployed side is a stack file).
        const changes = compareServers(before, factsOf(evaluation)).map((c) => {
            const was = beforeDesired?.[c.name];
            const now = evaluation.desired[c.name];
            return was && now && (c.kind === "same" || c.kind === "restart") ? { ...c, inPlace: describeInPlace(inPlaceChange(was, now)) } : c;
        });
        report.replacement = { against: "stackFile" in deployed ? deployed.stackFile : deployed.outputs, changes, problems: [...replacementProblems(changes, before), ...secretsVersionProblems(secretsVersionBefore, plan.config.database.secretsVersion, rotatable)] };
    }
    return report;
}

function factsOf(e: Evaluation): ServerFacts[] {
    return e.outputs.serverFacts as ServerFacts[];
}

/** `pulumi stack output --json`: the deployed stack's outputs (serverFacts, or nodes for an older one; its secrets' version). */
function readOutputs(path: string): { facts: ServerFacts[] | undefined; secretsVersion: number | undefined; rotatable: boolean } {
    let text: string;
    try {
        text = readFileSync(path, "utf8");
    } catch (e) {
        throw new StackFileError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
        const outputs = JSON.parse(text) as unknown;
        if (typeof outputs !== "object" || outputs === null || Array.isArray(outputs)) throw new Error("not a JSON object of stack outputs");
        return { facts: factsFromOutputs(outputs as Record<string, unknown>), secretsVersion: secretsVersionFromOutputs(outputs as Record<string, unknown>), rotatable: rotatableFromOutputs(outputs as Record<string, unknown>) };
    } catch (e) {
        throw new StackFileError(`${path}: ${(e as Error).message} (expected the output of pulumi stack output --json)`);
    }
}

/** The pure plan of a stack file; a config mistake names the file it is in. */
function checkConfig(file: StackFile, stack: string, source: string): StackPlan {
    try {
        return buildPlan(parseStackConfig({ values: file.values, secretKeys: new Set(file.secretKeys), env: {}, offline: true }, stack));
    } catch (e) {
        if (e instanceof ConfigError) throw new StackFileError(`${source}: ${e.message}`);
        throw e;
    }
}

function toReport(e: Evaluation, stack: string, source: string): Omit<PlanReport, "secretsToSet"> {
    const out = e.outputs as { nodes: PlanNode[]; failures: FailureRow[]; extraCosts: PlanReport["extraCosts"]; monthlyCostUsd: number };
    const resources: Record<string, number> = {};
    for (const r of e.resources) resources[r.type] = (resources[r.type] ?? 0) + 1;
    return {
        stack,
        source,
        nodes: out.nodes,
        extraCosts: out.extraCosts,
        monthlyCostUsd: out.monthlyCostUsd,
        resources,
        cloudflare: cloudflareSummary(e),
        failures: out.failures,
    };
}

function pad(s: string, n: number): string {
    return s.length >= n ? s + " " : s + " ".repeat(n - s.length);
}

export function formatReport(r: PlanReport): string {
    const lines = [`vps-ha plan for stack "${r.stack}" (${r.source})`, ""];
    const groups = new Map<string, PlanNode[]>();
    for (const n of r.nodes) groups.set(`${n.provider} / ${n.region}`, [...(groups.get(`${n.provider} / ${n.region}`) ?? []), n]);
    lines.push("Nodes" + " ".repeat(72) + "USD/month");
    for (const [group, nodes] of [...groups.entries()].sort()) {
        const [provider, region] = group.split(" / ");
        const info = catalogs[provider]?.regions[region];
        lines.push(`  ${catalogs[provider]?.displayName ?? provider} ${region}${info ? ` (${info.city}, ${info.country})` : ""}`);
        for (const n of nodes) {
            lines.push(`    ${pad(n.name, 10)}${pad(n.role, 9)}${pad(n.size ?? "-", 16)}${pad(n.meshAddress, 13)}${pad(n.dnsName, 32)}${n.monthlyUsd.toFixed(2).padStart(9)}`);
        }
    }
    for (const c of r.extraCosts) lines.push(`  ${pad(c.item, 79)}${c.monthlyUsd.toFixed(2).padStart(5)}`);
    lines.push(`  ${pad("Total", 79)}${r.monthlyCostUsd.toFixed(2).padStart(5)}`, "");
    lines.push(...formatCloudflare(r.cloudflare, r.extraCosts), "");
    const count = Object.values(r.resources).reduce((a, b) => a + b, 0);
    lines.push(`Resources (${count})`);
    for (const [type, n] of Object.entries(r.resources).sort()) lines.push(`  ${pad(type, 60)}${String(n).padStart(4)}`);
    lines.push("", `Failures${" ".repeat(23)}web   db primary  db writes  note`);
    const yes = (b: boolean) => (b ? "up" : "DOWN");
    for (const f of r.failures) {
        lines.push(`  ${pad(f.scenario, 29)}${pad(yes(f.webUp), 6)}${pad(f.dbPrimary ? "yes" : "NO", 12)}${pad(f.dbWrites ? "yes" : "NO", 11)}${f.note}`);
    }
    if (r.secretsToSet.length) {
        lines.push("", "Secrets to set before pulumi up (the plan runs without them)");
        for (const s of r.secretsToSet) lines.push(`  - ${s.path}: ${s.message}`);
    }
    if (r.replacement) {
        lines.push("", `Servers, against the deployed stack (${r.replacement.against})`);
        for (const c of r.replacement.changes) lines.push(`  ${describeChange(c)}`);
        lines.push(r.replacement.problems.length > 0 ? "  One pulumi up cannot apply this change: see below." : "  One pulumi up may apply this change.");
    }
    return lines.join("\n");
}

/** The CLI: prints the plan (console.log) or the problem (console.error) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
    let args;
    try {
        args = parseArgs(argv, { values: ["stack", "config", "against", "deployed"], flags: ["json"] });
    } catch (e) {
        if (e instanceof UsageError) {
            console.error(`${e.message}\n${USAGE}`);
            return 2;
        }
        throw e;
    }
    if (args.values.stack && args.values.config) {
        console.error(`--stack and --config name the same thing; give one\n${USAGE}`);
        return 2;
    }
    if (args.values.against && args.values.deployed) {
        console.error(`--against and --deployed both name the deployed stack; give one\n${USAGE}`);
        return 2;
    }
    const stack = args.values.stack ?? (args.values.config ? (stackNameOf(args.values.config) ?? "dev") : "prod");
    const source = args.values.config ?? `Pulumi.${stack}.yaml`;
    const deployed: Deployed | undefined = args.values.against ? { stackFile: resolve(args.values.against) } : args.values.deployed ? { outputs: resolve(args.values.deployed) } : undefined;
    try {
        const report = await planReport(resolve(source), stack, deployed);
        report.source = source;
        if (report.replacement) report.replacement.against = (args.values.against ?? args.values.deployed) as string;
        console.log(args.flags.json ? JSON.stringify(report, null, 2) : formatReport(report));
        if (report.replacement && report.replacement.problems.length > 0) {
            console.error(`The stack file cannot be applied in one pulumi up:\n${report.replacement.problems.map((p) => `  - ${p}`).join("\n")}`);
            return 3;
        }
        return 0;
    } catch (e) {
        // Config mistakes are the user's to fix: the message alone, no stack trace.
        if (e instanceof StackFileError || isRunError(e)) {
            console.error((e as Error).message);
            return 2;
        }
        throw e;
    }
}

function isRunError(e: unknown): boolean {
    return pulumi.RunError.isInstance(e);
}

if (require.main === module) {
    main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
        console.error(e instanceof Error ? e.stack : e);
        process.exit(1);
    });
}
