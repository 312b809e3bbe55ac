// A throwaway place to run the nodes' real daemons: per node, a network namespace of the
// test's own (its mesh address on loopback, a veth to every other node, nothing else) and a
// private overlay over the lab's Debian 13 root filesystem; all of it inside one private mount
// and PID namespace. Everything started in it dies with that namespace's first process, and the
// mounts vanish with the namespace, so close() cleans up even after a failed assertion: it stops
// what it started by PID, then the holder, then deletes the network namespaces and the
// temporary directory.
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * A node's commands a sandbox without systemd can run: its systemctl calls (bare, or under `env
 * VAR=value`) left out, since the tests start the units themselves.
 */
export function withoutSystemctl(commands: string[][]): string[][] {
    const program = (c: string[]) => (c[0] === "env" ? c.slice(1).find((w) => !w.includes("=")) : c[0]);
    return commands.filter((c) => program(c) !== "systemctl");
}

export interface SandboxNode {
    /** Names the node's overlay and network namespace suffix. */
    name: string;
    /** Its mesh address, the only address it has besides loopback. */
    address: string;
}

export interface Result {
    status: number;
    stdout: string;
    stderr: string;
}

export interface ExecOptions {
    /** Run as this user of the root filesystem (setpriv), not root. */
    user?: string;
    env?: Record<string, string>;
    input?: string;
    timeoutMs?: number;
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export class Sandbox {
    private holder?: ChildProcess;
    /** PID (host view) of the PID namespace's first process, for nsenter. */
    private inner = 0;
    private readonly daemons: ChildProcess[] = [];
    private readonly netnses: string[] = [];
    readonly dir: string;

    private constructor(readonly prefix: string, readonly rootfs: string, readonly nodes: SandboxNode[]) {
        this.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    }

    netns(node: string): string {
        const i = this.nodes.findIndex((n) => n.name === node);
        if (i < 0) throw new Error(`sandbox has no node ${node}`);
        return `${this.prefix}-${i + 1}`;
    }

    /** Creates the namespaces and their links, and mounts one overlay per node. */
    static async open(prefix: string, rootfs: string, nodes: SandboxNode[]): Promise<Sandbox> {
        if (!/^(vh-dbcheck|vhtest)-[a-z0-9]+$/.test(prefix)) throw new Error(`sandbox namespaces are named vh-dbcheck-* or vhtest-*, not ${prefix}`);
        const s = new Sandbox(prefix, rootfs, nodes);
        try {
            for (const n of nodes) {
                const ns = s.netns(n.name);
                s.host("ip", ["netns", "add", ns]);
                s.netnses.push(ns);
                s.host("ip", ["-n", ns, "link", "set", "lo", "up"]);
                // This kernel has no dummy interface module; loopback holds extra addresses as well.
                s.host("ip", ["-n", ns, "addr", "add", `${n.address}/32`, "dev", "lo"]);
            }
            nodes.forEach((a, i) => nodes.forEach((b, j) => {
                if (j <= i) return;
                const [na, nb, va, vb] = [s.netns(a.name), s.netns(b.name), `vd${i}${j}`, `vd${j}${i}`];
                s.host("ip", ["-n", na, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", nb]);
                s.host("ip", ["-n", na, "link", "set", va, "up"]);
                s.host("ip", ["-n", nb, "link", "set", vb, "up"]);
                s.host("ip", ["-n", na, "route", "add", `${b.address}/32`, "dev", va, "src", a.address]);
                s.host("ip", ["-n", nb, "route", "add", `${a.address}/32`, "dev", vb, "src", b.address]);
            }));
            const mounts = nodes.map(({ name }) => {
                for (const d of ["upper", "work", "merged"]) mkdirSync(join(s.dir, name, d), { recursive: true });
                const m = s.merged(name);
                return `mount -t overlay overlay -o lowerdir=${rootfs},upperdir=${join(s.dir, name, "upper")},workdir=${join(s.dir, name, "work")} ${m} && mount -t proc proc ${m}/proc && mount --rbind /dev ${m}/dev`;
            });
            const ready = join(s.dir, "ready");
            // The PID namespace's first process reaps orphans, as systemd does on a node: a daemon that
            // waits for a stopped process's PID to go (Patroni's restart of PostgreSQL) sees it go.
            const reaper = "import os, time\nwhile True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        time.sleep(1)\n";
            const script = `set -e; ${mounts.join(" && ")} && touch ${ready} && exec python3 -c '${reaper}'`;
            s.holder = spawn("ip", ["netns", "exec", s.netns(nodes[0].name), "unshare", "--mount", "--pid", "--fork", "--propagation", "private", "--kill-child", "sh", "-c", script], { stdio: ["ignore", "ignore", "pipe"], detached: true });
            let err = "";
            s.holder.stderr?.on("data", (d: Buffer) => (err += d.toString()));
            for (let i = 0; i < 100 && !existsSync(ready); i++) {
                if (s.holder.exitCode !== null) throw new Error(`sandbox holder exited: ${err}`);
                await sleep(50);
            }
            if (!existsSync(ready)) throw new Error(`sandbox did not come up in 5 s: ${err}`);
            s.inner = Number(readFileSync(`/proc/${s.holder.pid}/task/${s.holder.pid}/children`, "utf8").trim().split(/\s+/)[0]);
            if (!s.inner) throw new Error("sandbox: no process inside the PID namespace");
            return s;
        } catch (e) {
            await s.close();
            throw e;
        }
    }

    merged(root: string): string {
        return join(this.dir, root, "merged");
    }

    private host(cmd: string, args: string[]): void {
        const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 10000 });
        if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
    }

    private argv(root: string, argv: string[], opts: ExecOptions): string[] {
        const asUser = opts.user ? ["setpriv", `--reuid=${opts.user}`, `--regid=${opts.user}`, "--init-groups"] : [];
        const env = Object.entries({ PATH, LANG: "C.UTF-8", HOME: "/root", ...opts.env }).map(([k, v]) => `${k}=${v}`);
        return ["-t", String(this.inner), "-m", "-p", `--net=/run/netns/${this.netns(root)}`, "--", "chroot", this.merged(root), "env", "-i", ...env, ...asUser, ...argv];
    }

    /** Runs a command in `root` and waits for it. */
    exec(root: string, argv: string[], opts: ExecOptions = {}): Result {
        const r = spawnSync("nsenter", this.argv(root, argv, opts), { input: opts.input, encoding: "utf8", timeout: opts.timeoutMs ?? 30000 });
        return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
    }

    /** Starts a daemon in `root`; its output goes to `logFile` (host path). Stopped by close(). */
    start(root: string, argv: string[], logFile: string, opts: ExecOptions = {}): ChildProcess {
        mkdirSync(dirname(logFile), { recursive: true });
        const out = openSync(logFile, "a");
        const child = spawn("nsenter", this.argv(root, argv, opts), { stdio: ["ignore", out, out] });
        closeSync(out);
        this.daemons.push(child);
        return child;
    }

    /** The daemon's own PID (nsenter forks it into the PID namespace), for a targeted kill. */
    daemonPid(child: ChildProcess): number {
        const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim();
        const pid = Number(kids.split(/\s+/)[0]);
        if (!pid) throw new Error("daemon has exited");
        return pid;
    }

    /** Writes a file into `root` as root, then sets owner and mode. */
    write(root: string, path: string, content: string, mode = "0644", owner = "root:root"): void {
        const r = this.exec(root, ["sh", "-c", `mkdir -p "$(dirname "$1")" && cat > "$1" && chown ${owner} "$1" && chmod ${mode} "$1"`, "write", path], { input: content });
        if (r.status !== 0) throw new Error(`write ${path}: ${r.stderr}`);
    }

    async close(): Promise<void> {
        for (const d of this.daemons) {
            if (d.exitCode === null && d.signalCode === null) {
                try {
                    process.kill(this.daemonPid(d), "SIGKILL");
                } catch {
                    // already gone
                }
            }
        }
        const h = this.holder;
        if (h?.pid && h.exitCode === null && h.signalCode === null) {
            // The PID namespace's first process dies with it (--kill-child), and with that every
            // process still inside; the mount namespace and its overlays go with the last of them.
            const exited = new Promise((resolve) => h.once("exit", resolve));
            process.kill(h.pid, "SIGKILL");
            await Promise.race([exited, sleep(5000)]);
        }
        for (const d of this.daemons) if (d.exitCode === null && d.signalCode === null) d.kill("SIGKILL");
        for (const ns of this.netnses) spawnSync("ip", ["netns", "del", ns], { timeout: 10000 });
        if (readFileSync("/proc/self/mountinfo", "utf8").includes(this.dir)) throw new Error(`sandbox: ${this.dir} is still mounted; not deleting it`);
        rmSync(this.dir, { recursive: true, force: true });
    }
}
