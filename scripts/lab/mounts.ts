// The lab's mounts: a node's overlay (its kernel filesystems are nspawn's), and /proc and /dev in
// a rootfs build's chroot. /dev is a small tmpfs with only the devices a build needs rather than a
// bind of the host's /dev: a failed unmount followed by a recursive delete can then never reach
// the host's device nodes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { run, Log } from "./exec";

export interface MountEntry {
    id: number;
    target: string;
    fstype: string;
}

/** Decode the octal escapes mountinfo uses for spaces and the like. */
function unescape(s: string): string {
    return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mountTable(): MountEntry[] {
    return readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => {
            const f = line.split(" ");
            const sep = f.indexOf("-");
            return { id: Number(f[0]), target: unescape(f[4]), fstype: f[sep + 1] };
        });
}

/** Mounts at `dir` or below it, newest first (the order to unmount in). */
export function mountsUnder(dir: string): MountEntry[] {
    const prefix = dir.endsWith("/") ? dir : `${dir}/`;
    return mountTable()
        .filter((m) => m.target === dir || m.target.startsWith(prefix))
        .reverse();
}

export function isMounted(target: string): boolean {
    return mountTable().some((m) => m.target === target);
}

export async function mount(argv: string[]): Promise<void> {
    await run(["mount", ...argv], { timeoutMs: 20_000 });
}

/** Unmount everything at or below `dir`; lazy unmount only if a normal one keeps failing. */
export async function unmountUnder(dir: string, log: Log): Promise<void> {
    for (let pass = 0; pass < 5; pass++) {
        const left = mountsUnder(dir);
        if (left.length === 0) return;
        for (const m of left) {
            const r = await run(["umount", m.target], { timeoutMs: 20_000, allowFail: true });
            if (r.code !== 0 && pass >= 2) {
                log(`unmount ${m.target} failed (${r.stderr.trim()}); lazy unmount`);
                await run(["umount", "-l", m.target], { timeoutMs: 20_000, allowFail: true });
            }
        }
    }
    const still = mountsUnder(dir);
    if (still.length) throw new Error(`lab: could not unmount: ${still.map((m) => m.target).join(", ")}`);
}

/** Device nodes a build's chroot gets: name, major, minor. */
const DEVICES: [string, number, number][] = [
    ["null", 1, 3],
    ["zero", 1, 5],
    ["full", 1, 7],
    ["random", 1, 8],
    ["urandom", 1, 9],
    ["tty", 5, 0],
    ["net/tun", 10, 200],
];

const DEV_LINKS: [string, string][] = [
    ["fd", "/proc/self/fd"],
    ["stdin", "/proc/self/fd/0"],
    ["stdout", "/proc/self/fd/1"],
    ["stderr", "/proc/self/fd/2"],
    ["ptmx", "pts/ptmx"],
];

export async function mountMinimalDev(root: string): Promise<void> {
    const dev = join(root, "dev");
    await mount(["-t", "tmpfs", "-o", "mode=755,nosuid,size=8m", "vh-dev", dev]);
    await run(["mkdir", "-p", join(dev, "net"), join(dev, "pts"), join(dev, "shm")], { timeoutMs: 10_000 });
    for (const [name, major, minor] of DEVICES) {
        await run(["mknod", "-m", "666", join(dev, name), "c", String(major), String(minor)], { timeoutMs: 10_000 });
    }
    for (const [name, target] of DEV_LINKS) {
        await run(["ln", "-s", target, join(dev, name)], { timeoutMs: 10_000 });
    }
    await mount(["-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620,gid=5", "vh-devpts", join(dev, "pts")]);
    await mount(["-t", "tmpfs", "-o", "mode=1777,nosuid,nodev,size=256m", "vh-shm", join(dev, "shm")]);
}

export async function mountProc(root: string): Promise<void> {
    await mount(["-t", "proc", "-o", "nosuid,nodev", "vh-proc", join(root, "proc")]);
}
