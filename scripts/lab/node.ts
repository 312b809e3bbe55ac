// A node: its overlay over the shared rootfs, the kernel filesystems it needs, its own
// hostname (UTS namespace), and the ways to run things inside it.
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Log, run, RunOptions, RunResult } from "./exec";
import { mount, mountMinimalDev, mountProc, isMounted } from "./mounts";
import { BRIDGE_ADDRESS, NodePaths, netnsName } from "./paths";
import { isAlive, pidsInNetns, pidsWithRootUnder } from "./procs";
import { installShim, unitPids, SYSTEMCTL } from "./services";
import { loadState, nodeState, updateState, NodeState } from "./state";
import { containerLeader, enterArgv, nspawnEnabled, prepareRootForBoot, rebootContainer, runBeforeBoot } from "./nspawn";

const NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Record a mount in the state file before making it, so a crash in between is still undone. */
async function recordedMount(node: string, target: string, doMount: () => Promise<void>): Promise<void> {
    updateState((s) => {
        const n = s.nodes[node];
        if (!n.mounts.includes(target)) n.mounts.push(target);
    });
    if (!isMounted(target)) await doMount();
}

/**
 * Overlay, /proc, /dev, /sys (as the node's namespace sees it), a fresh /run, the log bind, UTS.
 * A node that boots its own systemd (nspawn.ts) gets only the overlay: nspawn mounts the rest.
 */
export async function mountNode(n: NodeState, rootfs: string): Promise<void> {
    const p = n.paths;
    for (const d of [p.upper, p.work, p.merged, p.logs]) mkdirSync(d, { recursive: true });
    await recordedMount(n.name, p.merged, () =>
        mount(["-t", "overlay", "vh-overlay", "-o", `lowerdir=${rootfs},upperdir=${p.upper},workdir=${p.work}`, p.merged]),
    );
    if (nspawnEnabled()) {
        writeFileSync(join(p.merged, "etc/hostname"), `${n.name}\n`);
        writeFileSync(join(p.merged, "etc/resolv.conf"), `# vps-ha lab: the lab's DNS server on the bridge\nnameserver ${BRIDGE_ADDRESS}\noptions timeout:1 attempts:2\n`);
        prepareRootForBoot(n);
        return;
    }
    await recordedMount(n.name, join(p.merged, "proc"), () => mountProc(p.merged));
    await recordedMount(n.name, join(p.merged, "dev"), () => mountMinimalDev(p.merged));
    // sysfs shows the network devices of the namespace that mounts it: mount from inside.
    await recordedMount(n.name, join(p.merged, "sys"), () =>
        run(["nsenter", `--net=/run/netns/${n.netns}`, "mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "vh-sys", join(p.merged, "sys")], {
            timeoutMs: 20_000,
        }).then(() => undefined),
    );
    // Podman needs the cgroup hierarchy to place a container (runc has no "no cgroups" mode). The
    // host's, as a slave mount: what the node does below it never propagates back up.
    await recordedMount(n.name, join(p.merged, "sys/fs/cgroup"), async () => {
        await mount(["--rbind", "/sys/fs/cgroup", join(p.merged, "sys/fs/cgroup")]);
        await mount(["--make-rslave", join(p.merged, "sys/fs/cgroup")]);
    });
    await recordedMount(n.name, join(p.merged, "run"), () => mountRun(p.merged));
    mkdirSync(join(p.merged, "var/log/lab"), { recursive: true });
    await recordedMount(n.name, join(p.merged, "var/log/lab"), () => mount(["--bind", p.logs, join(p.merged, "var/log/lab")]));
    // A UTS namespace per node: cloud-init's hostname module and etcd's default name (%H) must
    // see the node's name, and nothing in a node may rename the host.
    writeFileSync(p.uts, "");
    await recordedMount(n.name, p.uts, () =>
        run(["unshare", `--uts=${p.uts}`, "sh", "-c", 'printf %s "$0" > /proc/sys/kernel/hostname', n.name], { timeoutMs: 20_000 }).then(
            () => undefined,
        ),
    );
    writeFileSync(join(p.merged, "etc/hostname"), `${n.name}\n`);
    // The rootfs kept the build host's resolver; a node has no route to it. The lab's DNS server on
    // the bridge plays the provider's resolver (scripts/lab/dns.ts).
    writeFileSync(join(p.merged, "etc/resolv.conf"), `# vps-ha lab: the lab's DNS server on the bridge\nnameserver ${BRIDGE_ADDRESS}\noptions timeout:1 attempts:2\n`);
    installShim(p.merged);
}

async function mountRun(merged: string): Promise<void> {
    await mount(["-t", "tmpfs", "-o", "mode=755,nosuid,nodev,size=128m", "vh-run", join(merged, "run")]);
    mkdirSync(join(merged, "run/lock"), { recursive: true, mode: 0o1777 });
}

/** Node name -> hosts file text; lab entries sit between markers so they can be re-added. */
export const HOSTS_BEGIN = "# --- vps-ha lab: node names (begin) ---";
export const HOSTS_END = "# --- vps-ha lab: node names (end) ---";

export function labHostsBlock(entries: { address: string; names: string[] }[]): string {
    return [HOSTS_BEGIN, ...entries.map((e) => `${e.address}\t${e.names.join(" ")}`), HOSTS_END, ""].join("\n");
}

export function copyHostsIntoNode(n: NodeState, hostsFile: string): void {
    writeFileSync(join(n.paths.merged, "etc/hosts"), readFileSync(hostsFile));
}

/** Put the lab block back if the node's own config rewrote /etc/hosts without it. */
export function ensureLabHosts(n: NodeState, block: string): void {
    const file = join(n.paths.merged, "etc/hosts");
    const text = readFileSync(file, "utf8");
    if (!text.includes(HOSTS_BEGIN)) writeFileSync(file, `${text.trimEnd()}\n${block}`);
}

export interface ExecOptions {
    user?: string;
    env?: Record<string, string>;
    timeoutMs: number;
    input?: string;
    allowFail?: boolean;
}

interface Account {
    uid: number;
    gid: number;
    home: string;
}

function account(paths: NodePaths, user: string): Account {
    const line = readFileSync(join(paths.merged, "etc/passwd"), "utf8")
        .split("\n")
        .find((l) => l.split(":")[0] === user);
    if (!line) throw new Error(`lab: no user ${user} in the node's /etc/passwd`);
    const f = line.split(":");
    return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

/** argv and environment that run `argv` inside the node (its namespaces + chroot). */
function nodeCommand(n: NodeState, argv: string[], opts: { user?: string; env?: Record<string, string> }) {
    const acct = opts.user ? account(n.paths, opts.user) : { home: "/root" };
    const drop = opts.user ? ["setpriv", "--reuid", opts.user, "--regid", opts.user, "--init-groups", "--"] : [];
    // Real systemd: the booted container's namespaces; before its first boot, a container of its own.
    const booted = nspawnEnabled() && containerLeader(n) !== undefined;
    const prefix = !nspawnEnabled()
        ? ["nsenter", `--net=/run/netns/${n.netns}`, `--uts=${n.paths.uts}`, "--", "chroot", n.paths.merged]
        : booted ? enterArgv(n, []) : [];
    const env: NodeJS.ProcessEnv = {
        PATH: NODE_PATH,
        HOME: acct.home,
        LANG: "C.UTF-8",
        TERM: "dumb",
        ...(opts.user ? { USER: opts.user, LOGNAME: opts.user } : { USER: "root", LOGNAME: "root" }),
        ...opts.env,
    };
    return { argv: [...prefix, ...drop, ...argv], env, inner: [...drop, ...argv], beforeBoot: nspawnEnabled() && !booted };
}

/** Run a command inside a node and wait for it (bounded by timeoutMs). */
export function execInNode(name: string, argv: string[], opts: ExecOptions): Promise<RunResult> {
    const n = nodeState(name);
    const c = nodeCommand(n, argv, opts);
    const ro: RunOptions = { timeoutMs: opts.timeoutMs, env: c.env, input: opts.input, allowFail: opts.allowFail };
    const ran = c.beforeBoot
        ? runBeforeBoot(n, c.inner, { env: c.env as Record<string, string>, timeoutMs: opts.timeoutMs, input: opts.input, allowFail: opts.allowFail })
        : run(c.argv, ro);
    return ran.catch((err: Error) => {
        throw new Error(`[node ${name}] ${err.message}`);
    });
}

/**
 * Start a long-running process inside a node, detached in its own process group, output to
 * <state dir>/nodes/<name>/logs/<logName>.log; its PID goes into the state file.
 */
export function spawnInNode(name: string, argv: string[], opts: { user?: string; env?: Record<string, string>; logName: string }): number {
    const n = nodeState(name);
    const c = nodeCommand(n, argv, opts);
    if (c.beforeBoot) throw new Error(`lab: node ${name} is not running; cannot start ${argv.join(" ")} in it`);
    const out = openSync(join(n.paths.logs, `${opts.logName}.log`), "a");
    try {
        const child = spawn(c.argv[0], c.argv.slice(1), { env: c.env, detached: true, stdio: ["ignore", out, out] });
        if (!child.pid) throw new Error(`lab: could not start ${argv.join(" ")} in node ${name}`);
        child.unref();
        const pid = child.pid;
        updateState((s) => s.nodes[name].pids.push(pid));
        return pid;
    } finally {
        closeSync(out);
    }
}

/** Every live process the lab started in the node, however it got there. */
export function nodePids(name: string): number[] {
    const n = loadState()?.nodes[name];
    if (!n) return [];
    return livePids(n);
}

export function livePids(n: NodeState): number[] {
    const all = new Set<number>([...n.pids, ...unitPids(n.paths.merged)]);
    for (const p of pidsInNetns(`/run/netns/${netnsName(n.name)}`)) all.add(p);
    for (const p of pidsWithRootUnder(n.paths.merged)) all.add(p);
    all.delete(process.pid);
    return [...all].filter(isAlive).sort((a, b) => a - b);
}

/** Start the node's boot work: tmpfiles and every enabled unit (the shim's __boot). */
export async function bootServices(name: string, log: Log): Promise<void> {
    const r = await execInNode(name, [SYSTEMCTL, "__boot"], { timeoutMs: 600_000, allowFail: true });
    if (r.code !== 0) throw new Error(`[node ${name}] boot: some enabled units failed to start\n${r.stderr}`);
    log(`[${name}] boot done`);
}

/** After a node-kill: a fresh /run (as after a reboot), then boot again. */
export async function rebootNode(name: string, log: Log): Promise<void> {
    if (nspawnEnabled()) return rebootContainer(name, log);
    const n = nodeState(name);
    const runDir = join(n.paths.merged, "run");
    await run(["umount", runDir], { timeoutMs: 20_000 });
    await mountRun(n.paths.merged);
    await bootServices(name, log);
}
