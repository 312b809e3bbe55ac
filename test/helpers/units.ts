// Starts a rendered systemd service inside a sandbox node the way systemd would: environment
// files read before each command (so an ExecStartPre may write one for ExecStart), the
// ExecStartPre commands in order and to success, then ExecStart as the unit's user.
import { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Result, Sandbox } from "./sandbox";

const HOMES: Record<string, string> = { postgres: "/var/lib/postgresql", etcd: "/var/lib/etcd" };

export interface ServiceUnit {
    user?: string;
    envFiles: string[];
    pre: string[];
    start: string;
    restartAlways: boolean;
    restartSec: number;
}

export function parseService(text: string): ServiceUnit {
    const unit: ServiceUnit = { envFiles: [], pre: [], start: "", restartAlways: false, restartSec: 0.1 };
    for (const line of text.split("\n")) {
        const [key, ...rest] = line.split("=");
        const value = rest.join("=");
        if (key === "User") unit.user = value;
        else if (key === "EnvironmentFile") unit.envFiles.push(value);
        else if (key === "ExecStartPre") unit.pre.push(value);
        else if (key === "ExecStart") unit.start = value;
        else if (key === "Restart") unit.restartAlways = value === "always";
        else if (key === "RestartSec") unit.restartSec = Number(value.replace(/s$/, ""));
    }
    if (!unit.start) throw new Error("the unit has no ExecStart");
    return unit;
}

/** KEY=VALUE lines, as systemd's EnvironmentFile= reads them (no quotes in ours). */
export function parseEnvFile(text: string): Record<string, string> {
    return Object.fromEntries(text.split("\n").filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

function environment(sb: Sandbox, node: string, unit: ServiceUnit): Record<string, string> {
    const env: Record<string, string> = unit.user ? { HOME: HOMES[unit.user] ?? "/", USER: unit.user } : {};
    for (const f of unit.envFiles) {
        const path = f.replace(/^-/, "");
        const r = sb.exec(node, ["cat", path]);
        if (r.status !== 0 && !f.startsWith("-")) throw new Error(`${node}: EnvironmentFile ${path} is missing`);
        Object.assign(env, parseEnvFile(r.stdout));
    }
    return env;
}

export interface Started {
    child: ChildProcess;
    /** What the ExecStartPre commands printed. */
    pre: Result[];
    log: string;
}

/**
 * Starts the unit: its ExecStartPre commands must succeed; with Restart=always a failed one is
 * retried after RestartSec (a few times), as systemd would.
 */
export async function startService(sb: Sandbox, node: string, unitName: string, extraEnv: Record<string, string> = {}, attempts = 6): Promise<Started> {
    const text = sb.exec(node, ["cat", `/etc/systemd/system/${unitName}`]);
    if (text.status !== 0) throw new Error(`${node}: no unit ${unitName}`);
    const unit = parseService(text.stdout);
    const pre: Result[] = [];
    for (let attempt = 1; ; attempt++) {
        const failed = runPre(sb, node, unit, pre);
        if (!failed) break;
        if (!unit.restartAlways || attempt >= attempts) throw new Error(`${node}: ${unitName} ExecStartPre failed ${attempt} time(s); last:\n${failed.stdout}${failed.stderr}`);
        await sleep(unit.restartSec * 1000);
    }
    const log = join(sb.dir, "logs", `${node}-${unitName}.log`);
    return { child: sb.start(node, unit.start.split(" "), log, { user: unit.user, env: { ...environment(sb, node, unit), ...extraEnv } }), pre, log };
}

/** Runs the ExecStartPre commands in order; returns the failed one's result, if any. */
function runPre(sb: Sandbox, node: string, unit: ServiceUnit, out: Result[]): Result | undefined {
    for (const cmd of unit.pre) {
        const r = sb.exec(node, cmd.split(" "), { user: unit.user, env: environment(sb, node, unit), timeoutMs: 60000 });
        out.push(r);
        if (r.status !== 0) return r;
    }
    return undefined;
}

/** Polls `check` every half second until it gives a value, for at most `timeoutMs`; the error says what was awaited and `why()`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | false, why: () => string = () => ""): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = check();
        if (v !== undefined && v !== false) return v;
        if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s\n${why()}`);
        await sleep(500);
    }
}
