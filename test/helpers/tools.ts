// Tests that run a real daemon or tool need it installed. In CI (.ci/run installs everything)
// a missing one fails the test; elsewhere the test is skipped with the reason printed.
import { spawnSync } from "node:child_process";

// What is installed does not change while the tests run: each tool is looked up once.
const installed = new Map<string, boolean>();

export function missingTools(...tools: string[]): string[] {
    return tools.filter((t) => {
        if (!installed.has(t)) installed.set(t, spawnSync("sh", ["-c", `command -v ${t}`]).status === 0);
        return !installed.get(t);
    });
}

export function requireTools(ctx: Mocha.Context, tools: string[], alsoRoot = false): void {
    const missing = missingTools(...tools);
    const reasons = [...(missing.length ? [`missing ${missing.join(", ")}`] : []), ...(alsoRoot && process.getuid?.() !== 0 ? ["not running as root"] : [])];
    if (reasons.length === 0) return;
    const why = `${reasons.join("; ")} (bash .ci/run installs what the tests need)`;
    if (process.env.CI) throw new Error(`cannot run in CI: ${why}`);
    console.log(`      skipped: ${why}`);
    ctx.skip();
}

/** `timeoutMs`: the bound on the tool's run; a whole suite of promtool's rule tests needs more than one file's check. */
export function run(cmd: string, args: string[], input?: string, timeoutMs = 30000): { status: number; stdout: string; stderr: string } {
    // At Go's default, collecting is a large share of promtool's rule tests; these short runs can
    // afford the larger heap. Tools not written in Go ignore it.
    const r = spawnSync(cmd, args, { input, encoding: "utf8", timeout: timeoutMs, env: { ...process.env, GOGC: process.env.GOGC ?? "400" } });
    return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

