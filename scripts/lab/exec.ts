// Running host commands with a bound on time and a clear error. Every child gets its own
// process group so a timeout can stop it together with whatever it forked.
import { connect } from "node:net";
import { spawn } from "node:child_process";

export type Log = (msg: string) => void;

export interface RunOptions {
    timeoutMs: number;
    input?: string;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    /** Return the result instead of throwing on a non-zero exit. */
    allowFail?: boolean;
    /** Print "<label>: still running (N s)" every `progressEveryMs` while it runs. */
    progress?: { label: string; log: Log; everyMs?: number };
    /** Called with each chunk of output, e.g. to show the tail of a long build. */
    onOutput?: (chunk: string) => void;
}

export interface RunResult {
    code: number;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    timedOut: boolean;
}

/** Output kept per stream; long builds print megabytes, errors only need the end. */
const KEEP_CHARS = 64 * 1024;

function keepTail(acc: string, more: string): string {
    const s = acc + more;
    return s.length > KEEP_CHARS ? s.slice(s.length - KEEP_CHARS) : s;
}

export function describe(argv: string[]): string {
    return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/** Children running right now, so an interrupted lab can stop them (they have own groups). */
const active = new Set<number>();

export function killActiveChildren(): void {
    for (const pid of active) killGroup(pid, "SIGKILL");
}

export function run(argv: string[], opts: RunOptions): Promise<RunResult> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = spawn(argv[0], argv.slice(1), {
            cwd: opts.cwd,
            env: opts.env ?? process.env,
            stdio: ["pipe", "pipe", "pipe"],
            detached: true, // own process group: a timeout kills the whole tree by group
        });
        let stdout = "";
        let stderr = "";
        let timedOut = false;
        const pid = child.pid;
        if (pid) active.add(pid);
        child.stdout.setEncoding("utf8");
        child.stderr.setEncoding("utf8");
        child.stdout.on("data", (d: string) => {
            stdout = keepTail(stdout, d);
            opts.onOutput?.(d);
        });
        child.stderr.on("data", (d: string) => {
            stderr = keepTail(stderr, d);
            opts.onOutput?.(d);
        });
        child.stdin.on("error", () => undefined); // a child that exits early closes stdin; not an error
        child.stdin.end(opts.input ?? "");

        const timer = setTimeout(() => {
            timedOut = true;
            killGroup(child.pid, "SIGKILL");
        }, opts.timeoutMs);
        const ticker = opts.progress
            ? setInterval(() => {
                    const p = opts.progress;
                    if (p) p.log(`${p.label}: still running (${Math.round((Date.now() - started) / 1000)} s)`);
                }, opts.progress.everyMs ?? 15_000)
            : undefined;

        child.on("error", (err) => {
            if (pid) active.delete(pid);
            clearTimeout(timer);
            if (ticker) clearInterval(ticker);
            reject(new Error(`lab: cannot start ${describe(argv)}: ${err.message}`));
        });
        child.on("close", (code, signal) => {
            if (pid) active.delete(pid);
            clearTimeout(timer);
            if (ticker) clearInterval(ticker);
            const res: RunResult = { code: code ?? -1, signal, stdout, stderr, timedOut };
            if (timedOut) {
                reject(new Error(`lab: timed out after ${opts.timeoutMs} ms waiting for: ${describe(argv)}\n${tail(stdout, stderr)}`));
            } else if (res.code !== 0 && !opts.allowFail) {
                reject(new Error(`lab: command failed (exit ${code ?? signal}): ${describe(argv)}\n${tail(stdout, stderr)}`));
            } else {
                resolve(res);
            }
        });
    });
}

/** The last lines of both streams, enough to see why something failed. */
export function tail(stdout: string, stderr: string, lines = 40): string {
    const pick = (s: string) => s.trimEnd().split("\n").slice(-lines).join("\n");
    const parts = [];
    if (stdout.trim()) parts.push(`--- stdout (tail) ---\n${pick(stdout)}`);
    if (stderr.trim()) parts.push(`--- stderr (tail) ---\n${pick(stderr)}`);
    return parts.join("\n");
}

export function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
    if (!pid) return;
    try {
        process.kill(-pid, sig);
    } catch {
        // group already gone
    }
}

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/** Poll `check` until it returns true; give up after `timeoutMs` naming what was awaited. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        if (await check()) return;
        if (Date.now() >= deadline) throw new Error(`lab: gave up after ${timeoutMs} ms waiting for ${what}`);
        await sleep(everyMs);
    }
}

export function elapsed(since: number): string {
    return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

/** Does something accept TCP connections at host:port? (half a second to answer) */
export function answers(host: string, port: number): Promise<boolean> {
        return new Promise((resolve) => {
                const s = connect({ host, port, timeout: 500 }, () => {
                        s.destroy();
                        resolve(true);
                });
                s.on("error", () => resolve(false));
                s.on("timeout", () => {
                        s.destroy();
                        resolve(false);
                });
        });
}
