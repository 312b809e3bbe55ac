// A node: its overlay over the shared rootfs, booted by its own systemd (nspawn.ts), and the
// ways to run things inside it.
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Log, run, RunOptions, RunResult } from "./exec";
import { isMounted, mount } from "./mounts";
import { containerLeader, enterArgv, nodeCgroups, prepareRootForBoot, rebootContainer, runBeforeBoot } from "./nspawn";
import { BRIDGE_ADDRESS, NodePaths, netnsName } from "./paths";
import { isAlive, pidsInCgroups, pidsInNetns } from "./procs";
import { loadState, nodeState, updateState, NodeState } from "./state";

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
 * The node's disk: its overlay over the shared rootfs, its name, its resolver, and what it needs
 * before its first boot. nspawn mounts the kernel filesystems when the node boots (nspawn.ts).
 */
export async function mountNode(n: NodeState, rootfs: string): Promise<void> {
    const p = n.paths;
    for (const d of [p.upper, p.work, p.merged, p.logs]) mkdirSync(d, { recursive: true });
    await recordedMount(n.name, p.merged, () =>
        mount(["-t", "overlay", "vh-overlay", "-o", `lowerdir=${rootfs},upperdir=${p.upper},workdir=${p.work}`, p.merged]),
    );
    writeFileSync(join(p.merged, "etc/hostname"), `${n.name}\n`);
    // The rootfs kept the build host's resolver; a node has no route to it. The lab's DNS server on
    // the bridge plays the provider's resolver (scripts/lab/dns.ts).
    writeFileSync(join(p.merged, "etc/resolv.conf"), `# vps-ha lab: the lab's DNS server on the bridge\nnameserver ${BRIDGE_ADDRESS}\noptions timeout:1 attempts:2\n`);
    prepareRootForBoot(n);
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

/** argv and environment that run `argv` inside the node: its booted container, or before its first boot a container of its own. */
function nodeCommand(n: NodeState, argv: string[], opts: { user?: string; env?: Record<string, string> }) {
    const acct = opts.user ? account(n.paths, opts.user) : undefined;
    // The account's own primary group by number: a user's group need not share its name (nobody's is nogroup).
    const drop = opts.user && acct ? ["setpriv", "--reuid", String(acct.uid), "--regid", String(acct.gid), "--init-groups", "--"] : [];
    const booted = containerLeader(n) !== undefined;
    const prefix = booted ? enterArgv(n, []) : [];
    const env: NodeJS.ProcessEnv = {
        PATH: NODE_PATH,
        HOME: acct?.home ?? "/root",
        LANG: "C.UTF-8",
        TERM: "dumb",
        ...(opts.user ? { USER: opts.user, LOGNAME: opts.user } : { USER: "root", LOGNAME: "root" }),
        ...opts.env,
    };
    return { argv: [...prefix, ...drop, ...argv], env, inner: [...drop, ...argv], beforeBoot: !booted };
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

/**
 * The lab's PIDs for the node, every process in its network namespace, and every process in its
 * cgroups (the container's, wherever a process moved its namespaces: podman's containers).
 */
export function livePids(n: NodeState): number[] {
    const all = new Set<number>(n.pids);
    for (const p of pidsInNetns(`/run/netns/${netnsName(n.name)}`)) all.add(p);
    for (const p of pidsInCgroups(nodeCgroups(n.name))) all.add(p);
    all.delete(process.pid);
    return [...all].filter(isAlive).sort((a, b) => a - b);
}

/** A node's processes die at once (node-kill) or it reboots: both end in a real boot of its container. */
export async function rebootNode(name: string, log: Log): Promise<void> {
    return rebootContainer(name, log);
}
