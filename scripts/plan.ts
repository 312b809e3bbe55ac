// npm run plan -- [--stack NAME | --config FILE] [--against DEPLOYED_FILE] [--json]
// The offline plan: runs the real program under Pulumi's mock runtime (no CLI, no cloud account)
// and prints the nodes per provider and region with their monthly price, the total, the
// Cloudflare front door, the resources the program would create, and what each failure leaves
// standing. With --against (the stack file as deployed, e.g. from `git show HEAD:Pulumi.prod.yaml`)
// it also warns about a change that would take too many database members down at once (moved,
// resized, or given a new user-data).
// Exit codes: 0 plan printed (warnings included), 2 a stack file or its config is invalid.
import * as pulumi from "@pulumi/pulumi";
import { resolve } from "node:path";
import { ConfigError, parseStackConfig } from "../components/config";
import { buildPlan, replacementWarnings, StackPlan } from "../components/plan";
import { catalogs } from "../components/providers/catalogs";
import type { FailureRow } from "../components/failures";
import { cloudflareSummary, CloudflareSummary, formatCloudflare } from "./lib/plan-cloudflare";
import { evaluateProgram, Evaluation } from "./lib/mock-program";
import { readStackFile, StackFile, StackFileError, stackNameOf } from "./lib/stack-file";
import { parseArgs, UsageError } from "./lib/args";

const USAGE = "usage: npm run plan -- [--stack NAME | --config FILE] [--against DEPLOYED_STACK_FILE] [--json]";

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
    /** With --against: what applying this file over the deployed one would risk. */
    replacementWarnings?: string[];
    /** Secrets the stack file does not hold yet: each must be set (or in the environment) before `pulumi up`. */
    secretsToSet: { path: string; message: string }[];
}

export async function planReport(source: string, stack: string, against?: string): Promise<PlanReport> {
    const file = readStackFile(source);
    const secretsToSet = planOf(file, stack, source).config.missingSecrets;
    const deployedFile = against === undefined ? undefined : readStackFile(against);
    const deployed = deployedFile && planOf(deployedFile, stack, against as string);
    const evaluation = await evaluateProgram({ stack, values: file.values, secretKeys: file.secretKeys, env: {} });
    const report = { ...toReport(evaluation, stack, source), secretsToSet };
    if (deployedFile && deployed) {
        // Both evaluated in this process, so their generated keys and certificates are the same:
        // what differs in a node's user-data is what the change does to it.
        const before = await evaluateProgram({ stack, values: deployedFile.values, secretKeys: deployedFile.secretKeys, env: {} });
        const changed = new Set(Object.keys(before.userData).filter((n) => n in evaluation.userData && evaluation.userData[n] !== before.userData[n]));
        report.replacementWarnings = replacementWarnings(deployed, planOf(file, stack, source), changed);
    }
    return report;
}

/** The pure plan of a stack file; a config mistake names the file it is in. */
function planOf(file: StackFile, stack: string, source: string): StackPlan {
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
    if (r.replacementWarnings) {
        lines.push("", r.replacementWarnings.length ? "Warnings (against the deployed stack file)" : "Against the deployed stack file: no warnings");
        for (const w of r.replacementWarnings) lines.push(`  - ${w}`);
    }
    return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
    let args;
    try {
        args = parseArgs(argv, { values: ["stack", "config", "against"], flags: ["json"] });
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
    const stack = args.values.stack ?? (args.values.config ? (stackNameOf(args.values.config) ?? "dev") : "prod");
    const source = args.values.config ?? `Pulumi.${stack}.yaml`;
    try {
        const report = await planReport(resolve(source), stack, args.values.against === undefined ? undefined : resolve(args.values.against));
        report.source = source;
        console.log(args.flags.json ? JSON.stringify(report, null, 2) : formatReport(report));
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
