// The Debian 13 root filesystem every node runs from (read-only lower layer of its overlay).
// Built once with debootstrap and apt, cached outside the repository, keyed by the package
// list: a base stage (debootstrap only) shared by every package list, then a package stage.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, statSync, utimesSync, writeFileSync, rmSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { run, Log, elapsed, sleep } from "./exec";
import { withLock } from "./lock";
import { mountMinimalDev, mountProc, mountsUnder, unmountUnder } from "./mounts";
import { ensureHostTools } from "./preflight";
import { cmdline, isAlive, pidsWithRootUnder, signalPids } from "./procs";
import { CACHE_DIR } from "./paths";

const SUITE = "trixie";
const MIRROR = "http://deb.debian.org/debian";
/** Bump when the build steps change, so caches built the old way are not reused. */
const RECIPE = "vps-ha-lab rootfs v1";

/** What the lab itself needs in every node, whatever the cloud-configs install. */
export const LAB_EXTRAS = [
    "wireguard-go", // the kernel here has no WireGuard module; wg-quick falls back to it
    "cloud-init", // applies the nodes' real user-data
    "iproute2",
    "iputils-ping",
    "procps",
    "nftables",
    "curl",
    "ca-certificates",
    "python3", // runs the lab's journal-to-files unit and its probes in the nodes
    // Debian's cloud images ship these; cloud-init's ssh and users modules use them.
    "openssh-server",
    "sudo",
    // Podman's runtime in the lab's app nodes (the lab's containers.conf names it; the nodes
    // keep Debian's default otherwise).
    "runc",
    // The lab's stand-in app image is built from this one static binary.
    "busybox-static",
];

const MARKER = ".vps-ha-lab.json";
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;

const CHROOT_ENV: NodeJS.ProcessEnv = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    LC_ALL: "C.UTF-8",
    DEBIAN_FRONTEND: "noninteractive",
    DEBCONF_NONINTERACTIVE_SEEN: "true",
    UCF_FORCE_CONFFOLD: "1", // keep the createcluster.conf written before install
};

function hash(s: string): string {
    return createHash("sha256").update(s).digest("hex").slice(0, 16);
}

const BASE_KEY = hash(`${RECIPE} ${SUITE} minbase ${MIRROR}`);

export function rootfsPathFor(packages: string[]): { path: string; packages: string[] } {
    for (const p of packages) {
        if (!PACKAGE_NAME.test(p)) throw new Error(`lab: ${JSON.stringify(p)} is not a Debian package name`);
    }
    const all = [...new Set([...packages, ...LAB_EXTRAS])].sort();
    return { path: join(CACHE_DIR, `rootfs-${hash(`${BASE_KEY} ${all.join(" ")}`)}`), packages: all };
}

function complete(dir: string): boolean {
    return existsSync(join(dir, MARKER));
}

/** Path of a cached root filesystem holding `packages` plus LAB_EXTRAS; builds it if needed. */
export async function ensureRootfs(packages: string[], log: Log): Promise<string> {
    const { path, packages: all } = rootfsPathFor(packages);
    if (complete(path)) {
        touch(path);
        log(`rootfs: using cached ${path}`);
        return path;
    }
    await ensureHostTools(log);
    mkdirSync(CACHE_DIR, { recursive: true, mode: 0o755 });
    return withLock(join(CACHE_DIR, "build.lock"), "rootfs build", log, 45 * 60_000, async () => {
        if (complete(path)) return path; // another run built it while we waited
        await removeStaleTemps(log);
        const base = await ensureBase(log);
        await buildPackages(base, path, all, log);
        prune(path, log);
        return path;
    });
}

async function ensureBase(log: Log): Promise<string> {
    const base = join(CACHE_DIR, `base-${BASE_KEY}`);
    if (complete(base)) return base;
    const tmp = join(CACHE_DIR, `tmp-base-${process.pid}`);
    const started = Date.now();
    log(`rootfs: debootstrap --variant=minbase ${SUITE} (about 30 s on a fast mirror)`);
    try {
        mkdirSync(tmp, { recursive: true });
        await run(["debootstrap", "--variant=minbase", SUITE, tmp, MIRROR], {
            timeoutMs: 20 * 60_000,
            progress: { label: "rootfs: debootstrap", log },
        });
        writeFileSync(join(tmp, MARKER), JSON.stringify({ recipe: RECIPE, suite: SUITE, mirror: MIRROR, seconds: (Date.now() - started) / 1000 }));
        renameSync(tmp, base);
    } catch (err) {
        await discard(tmp, log);
        throw err;
    }
    log(`rootfs: base ready in ${elapsed(started)}`);
    return base;
}

async function buildPackages(base: string, final: string, packages: string[], log: Log): Promise<void> {
    const tmp = `${final.replace(/rootfs-/, "tmp-rootfs-")}-${process.pid}`;
    const started = Date.now();
    log(`rootfs: installing ${packages.length} packages into a copy of the base`);
    try {
        await run(["cp", "-a", "--reflink=auto", base, tmp], { timeoutMs: 10 * 60_000, progress: { label: "rootfs: copying base", log } });
        await mountProc(tmp);
        await mountMinimalDev(tmp);
        // No service may start while packages install: there is no init, and a daemon left
        // running would pin the build directory and run outside any node.
        writeFileSync(join(tmp, "usr/sbin/policy-rc.d"), "#!/bin/sh\n# written by the vps-ha lab build\nexit 101\n", { mode: 0o755 });
        // postgresql-common creates and starts a "main" cluster on install; Patroni owns the data
        // directory on the nodes, so there must be none.
        mkdirSync(join(tmp, "etc/postgresql-common"), { recursive: true });
        writeFileSync(join(tmp, "etc/postgresql-common/createcluster.conf"), "# vps-ha lab: Patroni creates the cluster\ncreate_main_cluster = false\n");
        writeFileSync(join(tmp, "etc/resolv.conf"), readFileSync("/etc/resolv.conf"));
        const apt = (args: string[], label: string, timeoutMs: number) =>
            run(["chroot", tmp, "apt-get", ...args], { timeoutMs, env: CHROOT_ENV, progress: { label, log } });
        await apt(["update"], "rootfs: apt-get update", 10 * 60_000);
        await apt(
            ["install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", ...packages],
            "rootfs: apt-get install",
            30 * 60_000,
        );
        await assertInstalled(tmp, packages);
        await apt(["clean"], "rootfs: apt-get clean", 60_000);
        rmSync(join(tmp, "var/lib/apt/lists"), { recursive: true, force: true });
        mkdirSync(join(tmp, "var/lib/apt/lists/partial"), { recursive: true });
        await stopLeftovers(tmp, log);
        await unmountUnder(tmp, log);
        rmSync(join(tmp, "usr/sbin/policy-rc.d"), { force: true });
        writeFileSync(join(tmp, MARKER), JSON.stringify({ recipe: RECIPE, packages, seconds: (Date.now() - started) / 1000 }, null, 1));
        renameSync(tmp, final);
    } catch (err) {
        await discard(tmp, log);
        throw err;
    }
    log(`rootfs: ${final} ready in ${elapsed(started)}`);
}

/** Names from `packages` that dpkg in `root` does not report as installed. */
export async function notInstalled(root: string, packages: string[]): Promise<string[]> {
    const r = await run(["chroot", root, "dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", ...packages], {
        timeoutMs: 60_000,
        env: CHROOT_ENV,
        allowFail: true, // exits 1 when a name is unknown; the output still lists the known ones
    });
    const ok = new Set(
        r.stdout
            .split("\n")
            .map((l) => l.trim().split(" "))
            .filter(([, s]) => s === "installed")
            .map(([p]) => p.replace(/:.*$/, "")),
    );
    return packages.filter((p) => !ok.has(p));
}

async function assertInstalled(root: string, packages: string[]): Promise<void> {
    const missing = await notInstalled(root, packages);
    if (missing.length) throw new Error(`lab: rootfs build finished but these packages are not installed: ${missing.join(" ")}`);
}

/** Any process still chrooted in the build (a daemon a maintainer script started) is stopped. */
async function stopLeftovers(root: string, log: Log): Promise<void> {
    const pids = pidsWithRootUnder(root);
    if (pids.length === 0) return;
    for (const pid of pids) log(`rootfs: stopping process left by package install: ${pid} ${cmdline(pid)}`);
    signalPids(pids, "SIGTERM");
    for (let i = 0; i < 50 && pids.some(isAlive); i++) await sleep(100);
    signalPids(pids.filter(isAlive), "SIGKILL");
    for (let i = 0; i < 50 && pids.some(isAlive); i++) await sleep(100);
    const alive = pids.filter(isAlive);
    if (alive.length) throw new Error(`lab: processes from the rootfs build would not exit: ${alive.join(" ")}`);
}

/** Ctrl-C makes the signal handler and the failing build discard the same directory. */
const discarding = new Map<string, Promise<void>>();

/** Remove a half-built directory; refuses while anything is still mounted inside it. */
function discard(dir: string, log: Log): Promise<void> {
    let p = discarding.get(dir);
    if (!p) {
        p = discardOnce(dir, log).finally(() => discarding.delete(dir));
        discarding.set(dir, p);
    }
    return p;
}

async function discardOnce(dir: string, log: Log): Promise<void> {
    if (!existsSync(dir)) return;
    await stopLeftovers(dir, log).catch((e: Error) => log(e.message));
    await unmountUnder(dir, log);
    if (mountsUnder(dir).length) throw new Error(`lab: not deleting ${dir}: still has mounts`);
    await run(["rm", "-rf", "--one-file-system", dir], { timeoutMs: 10 * 60_000 });
}

/** A build interrupted by a crash leaves tmp-* directories; we hold the lock, so they are dead. */
async function removeStaleTemps(log: Log): Promise<void> {
    for (const e of readdirSync(CACHE_DIR)) {
        if (e.startsWith("tmp-")) {
            log(`rootfs: removing interrupted build ${e}`);
            await discard(join(CACHE_DIR, e), log);
        }
    }
}

/** After Ctrl-C mid-build: drop this process's half-built directories and its lock. */
export async function abandonBuild(log: Log): Promise<void> {
    if (!existsSync(CACHE_DIR)) return;
    for (const e of readdirSync(CACHE_DIR)) {
        if (e.startsWith("tmp-") && e.endsWith(`-${process.pid}`)) await discard(join(CACHE_DIR, e), log);
    }
    const lock = join(CACHE_DIR, "build.lock");
    if (existsSync(lock) && readFileSync(lock, "utf8").trim() === String(process.pid)) rmSync(lock, { force: true });
}

function touch(dir: string): void {
    const now = new Date();
    try {
        utimesSync(join(dir, MARKER), now, now);
    } catch {
        // read-only cache: reuse still works
    }
}

/** Each package list costs about 1 GB: keep the three most recently used. */
function prune(keep: string, log: Log): void {
    const dirs = readdirSync(CACHE_DIR)
        .filter((e) => e.startsWith("rootfs-"))
        .map((e) => join(CACHE_DIR, e))
        .filter(complete)
        .sort((a, b) => statSync(join(b, MARKER)).mtimeMs - statSync(join(a, MARKER)).mtimeMs);
    for (const d of dirs.slice(3)) {
        if (d === keep || mountsUnder(d).length || inUse(d)) continue;
        log(`rootfs: pruning old ${d}`);
        rmSync(d, { recursive: true, force: true });
    }
}

/** A running lab's overlays use the rootfs as lowerdir: the mount options name it. */
function inUse(dir: string): boolean {
    return readFileSync("/proc/self/mountinfo", "utf8").includes(`lowerdir=${dir}`);
}
