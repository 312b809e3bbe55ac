// npm run drift -- --stack NAME [--json FILE]
// Does the real cloud still match the program? Two runs through the Pulumi Automation API
// (@pulumi/pulumi 3.248, driving the `pulumi` CLI in this directory), neither writes the state:
//   1. stack.previewRefresh()  = `pulumi refresh --preview-only`: the cloud against the state
//      (out-of-band edits and deletions). The SDK deprecates refresh({ previewOnly }) for this.
//   2. stack.preview({ refresh: true, expectNoChanges: true }) = `pulumi preview --refresh
//      --expect-no-changes`: what `pulumi up` would do against the cloud as it is now; the CLI
//      itself fails when it proposes any change, so drift can not pass unnoticed even if the
//      report could not itemize it.
// The engine events of both runs go to the pure report (scripts/lib/drift-report.ts).
// Exit codes: 0 no drift, 1 drift found (report printed, and written with --json), 2 error or
// a missing prerequisite (each named with how to get it; no stack trace).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { parseArgs, UsageError } from "./lib/args";
import { buildReport, formatReport, reportJson } from "./lib/drift-report";
import { missingPrerequisites, PrereqFacts } from "./lib/drift-prereqs";

const USAGE = "usage: npm run drift -- --stack NAME [--json FILE]";
const ROOT = resolve(__dirname, "..");

class DriftCheckError extends Error {}

function run(cmd: string, args: string[]): { ok: boolean; missing: boolean; out: string } {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60000, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" } });
    const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
    return { ok: r.status === 0, missing, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

function gatherFacts(stack: string): PrereqFacts {
    const stackFile = `Pulumi.${stack.split("/").pop()}.yaml`;
    const version = run("pulumi", ["version"]);
    const cliVersion = version.ok ? version.out : undefined;
    let login: PrereqFacts["login"];
    if (cliVersion !== undefined) {
        const who = run("pulumi", ["whoami"]);
        login = { ok: who.ok, detail: who.ok ? undefined : who.out.split("\n").find((l) => l.trim())?.replace(/^error:\s*/, "") };
    }
    let stackDoc: Record<string, unknown> | undefined;
    try {
        const doc: unknown = parse(readFileSync(join(ROOT, stackFile), "utf8"));
        if (typeof doc === "object" && doc !== null) stackDoc = doc as Record<string, unknown>;
    } catch {
        stackDoc = undefined;
    }
    return { stack, cliVersion, login, credentialsFile: existsSync(join(homedir(), ".pulumi", "credentials.json")), env: process.env, stackFile, stackDoc };
}

/** Runs one Pulumi operation and keeps its engine events, also when it fails. */
async function collect(op: (onEvent: (e: EngineEvent) => void) => Promise<unknown>): Promise<{ events: EngineEvent[]; error?: unknown }> {
    const events: EngineEvent[] = [];
    try {
        await op((e) => events.push(e));
        return { events };
    } catch (error) {
        return { events, error };
    }
}

/** The CLI's own words from a failed command, without the Automation API's wrapping. */
function cliMessage(e: unknown): string {
    const text = e instanceof Error ? e.message : String(e);
    const stderr = /stderr: ([\s\S]*?)\n err\?:/.exec(text)?.[1]?.trim();
    return (stderr || text).split("\n").slice(-15).join("\n");
}

async function check(stackName: string, jsonFile: string | undefined): Promise<number> {
    const problems = missingPrerequisites(gatherFacts(stackName));
    if (problems.length > 0) {
        throw new DriftCheckError(`The drift check cannot run; ${problems.length} thing(s) missing:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    }
    // Loaded only now: the Automation API needs the CLI checked above.
    const auto = await import("@pulumi/pulumi/automation");
    let refresh: Awaited<ReturnType<typeof collect>>;
    let preview: Awaited<ReturnType<typeof collect>>;
    let proposed: boolean;
    try {
        const stack = await auto.LocalWorkspace.selectStack({ stackName, workDir: ROOT });
        console.error(`drift: refreshing stack "${stackName}" in preview (the cloud against the state)...`);
        refresh = await collect((onEvent) => stack.previewRefresh({ onEvent }));
        if (refresh.error) throw refresh.error;
        console.error(`drift: previewing with refresh (the program against the cloud)...`);
        preview = await collect((onEvent) => stack.preview({ refresh: true, expectNoChanges: true, onEvent }));
        proposed = preview.error !== undefined && /no changes were expected/i.test(cliMessage(preview.error));
        if (preview.error && !proposed) throw preview.error;
    } catch (e) {
        if (e instanceof auto.StackNotFoundError) {
            throw new DriftCheckError(`no stack "${stackName}" in this backend: create it with \`pulumi stack init ${stackName}\`, or name it with its organisation (--stack ORG/${stackName})`);
        }
        if (e instanceof auto.CommandError) throw new DriftCheckError(`pulumi failed:\n${cliMessage(e)}`);
        throw e;
    }

    const report = buildReport(stackName, { refresh: refresh.events, preview: preview.events });
    console.log(formatReport(report));
    if (proposed && !report.drift) {
        console.log("The preview proposed changes (pulumi preview --expect-no-changes failed) that the events did not itemize; run `pulumi preview --refresh --diff` to see them.");
    }
    if (jsonFile) writeFileSync(jsonFile, reportJson({ ...report, drift: report.drift || proposed }));
    return report.drift || proposed ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
    let args;
    try {
        args = parseArgs(argv, { values: ["stack", "json"] });
        if (!args.values.stack) throw new UsageError("--stack NAME is required");
        if (args.positional.length > 0) throw new UsageError(`unexpected argument ${args.positional[0]}`);
    } catch (e) {
        if (e instanceof UsageError) {
            console.error(`${e.message}\n${USAGE}`);
            return 2;
        }
        throw e;
    }
    try {
        return await check(args.values.stack, args.values.json);
    } catch (e) {
        // A missing prerequisite or a failed Pulumi command is the user's to fix: the message alone.
        console.error(e instanceof DriftCheckError ? e.message : e instanceof Error ? e.stack : e);
        return 2;
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
        console.error(e instanceof Error ? e.stack : e);
        process.exit(2);
    });
}
