// Finding the lab's processes. A node's processes are those in its network namespace or
// chrooted into its root: that catches daemons that fork away from the PID the lab recorded
// (wireguard-go daemonizes itself, for one). Nothing outside those two sets is ever signalled.
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";

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

/** PIDs whose root directory is `root` or below it (processes chrooted there). */
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
