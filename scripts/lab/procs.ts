// Finding the lab's processes. A node's processes are those in its network namespace or its
// cgroups: that catches daemons that fork away from the PID the lab recorded (wireguard-go
// daemonizes itself, for one). A rootfs build's are those chrooted into it. Nothing outside
// those sets is ever signalled.
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";

/** Alive and not a zombie (a zombie holds its PID but runs nothing). */
export function isAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
    } catch (err) {
        return (err as NodeJS.ErrnoException).code === "EPERM";
    }
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
        return false;
    }
}

function allPids(): number[] {
    return readdirSync("/proc")
        .filter((e) => /^\d+$/.test(e))
        .map(Number)
        .filter((p) => p !== process.pid);
}

function inode(path: string): string | undefined {
    try {
        const s = statSync(path);
        return `${s.dev}:${s.ino}`;
    } catch {
        return undefined;
    }
}

/** PIDs whose root directory is `root` or below it (processes chrooted there: a rootfs build's). */
export function pidsWithRootUnder(root: string): number[] {
    const prefix = root.endsWith("/") ? root : `${root}/`;
    return allPids().filter((pid) => {
        try {
            const r = readlinkSync(`/proc/${pid}/root`);
            return r === root || r.startsWith(prefix);
        } catch {
            return false;
        }
    });
}

/** PIDs in the network namespace bound at `netnsFile` (e.g. /run/netns/vh-db-1). */
export function pidsInNetns(netnsFile: string): number[] {
    const want = inode(netnsFile);
    if (!want) return [];
    return allPids().filter((pid) => inode(`/proc/${pid}/ns/net`) === want);
}

/** PIDs in the cgroup directories `dirs` and every cgroup below them (bounded depth). */
export function pidsInCgroups(dirs: string[]): number[] {
    const out = new Set<number>();
    const walk = (dir: string, depth: number) => {
        if (depth > 16 || !existsSync(dir)) return;
        try {
            for (const l of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n")) if (/^\d+$/.test(l)) out.add(Number(l));
            for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name), depth + 1);
        } catch {
            // removed meanwhile
        }
    };
    for (const d of dirs) walk(d, 0);
    out.delete(process.pid);
    return [...out];
}

export function signalPids(pids: number[], sig: NodeJS.Signals): void {
    for (const pid of pids) {
        try {
            process.kill(pid, sig);
        } catch {
            // exited meanwhile
        }
    }
}

export function cmdline(pid: number): string {
    try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {
        return "?";
    }
}

/** A process as seen at one moment: its number, and its start time (which a reused number does not share). */
export interface SeenProcess {
    pid: number;
    start: string;
}

function startTime(pid: number): string | undefined {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]; // field 22, starttime in clock ticks
    } catch {
        return undefined;
    }
}

/** The live ones of `pids`, as they are now. */
export function seen(pids: number[]): SeenProcess[] {
    return pids.flatMap((pid) => {
        const start = startTime(pid);
        return start === undefined ? [] : [{ pid, start }];
    });
}

/** Still the very process that was seen (not a new one that got its number). */
export function stillRunning(p: SeenProcess): boolean {
    return isAlive(p.pid) && startTime(p.pid) === p.start;
}
