// Real systemd per node: the node's overlay boots its own systemd as PID 1 under
// systemd-nspawn (Debian's systemd-container), inside the node's network namespace. Debian 13's
// cloud-init then applies the node's user-data from its NoCloud seed through its own units.
//
// This host has no systemd as PID 1 and hybrid cgroups (v1 controllers, an empty v2 tree):
// nspawn needs --keep-unit (no host manager to ask for a scope), the unified hierarchy for the
// container, and a tmpfs on /run/systemd/nspawn (it cleans its propagation directory there).
// Each node's nspawn runs in its own cgroup (vps-ha-lab/<node>): nspawn puts the container in
// "payload" beside itself, and two nodes in one cgroup would share a tree.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Log, run, RunResult, sleep } from "./exec";
import { isMounted, mount } from "./mounts";
import { netnsName } from "./paths";
import { isAlive } from "./procs";
import { nodeState, updateState, NodeState } from "./state";

const NSPAWN = "/usr/bin/systemd-nspawn";
const PROPAGATE_DIR = "/run/systemd/nspawn";
const CGROUP_PARENT = "vps-ha-lab";
/** nspawn's exit status when the container rebooted: the supervisor starts it again. */
const REBOOT_STATUS = 133;
/** A node reboots at most this often in one lab run (bounds the supervisor's loop). */
const MAX_BOOTS = 200;
const BOOT_TIMEOUT_MS = 180_000;
const NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** nspawn is installed, and its propagation directory is a tmpfs it may clean. */
export async function ensureNspawnHost(): Promise<void> {
    if (!existsSync(NSPAWN)) throw new Error(`lab: ${NSPAWN} is missing (apt-get install systemd-container)`);
    mkdirSync(PROPAGATE_DIR, { recursive: true });
    if (!isMounted(PROPAGATE_DIR)) await mount(["-t", "tmpfs", "-o", "mode=0755,size=16m", "vh-nspawn", PROPAGATE_DIR]);
}

/** Roots of the cgroup hierarchies nspawn places a container in (v1 name=systemd, v2). */
function cgroupRoots(): string[] {
    return ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"].filter((d) => existsSync(join(d, "cgroup.procs")));
}

export function nodeCgroups(node: string): string[] {
    return cgroupRoots().map((r) => join(r, CGROUP_PARENT, node));
}

/** Every cgroup directory the lab's nodes left (children first, as rmdir needs them). */
export function labCgroupDirs(): string[] {
    const out: string[] = [];
    const walk = (dir: string, depth: number) => {
        if (depth > 12) return;
        for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name), depth + 1);
        out.push(dir);
    };
    for (const r of cgroupRoots()) if (existsSync(join(r, CGROUP_PARENT))) walk(join(r, CGROUP_PARENT), 0);
    return out;
}

/** Empty lab cgroups go; a busy one stays (and shows up in leftovers). nspawn may take a moment to exit after its supervisor. */
export async function removeLabCgroups(): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
        for (const dir of labCgroupDirs()) {
            try { rmdirSync(dir); } catch { /* busy or already gone */ }
        }
        if (labCgroupDirs().length === 0) return;
        await sleep(100);
    }
}

/**
 * Moves itself into the node's cgroups, then runs nspawn (its arguments) again for as long as
 * the container asks to be rebooted; any other exit (poweroff, a kill) ends it.
 */
const SUPERVISOR = `set -u
for d in $VH_CGROUPS; do mkdir -p "$d" && echo $$ > "$d/cgroup.procs" || exit 1; done
[ "$VH_MODE" = once ] && exec "$@"
boots=0
while [ "$boots" -lt ${MAX_BOOTS} ]; do
    boots=$((boots + 1))
    echo "vps-ha lab: boot $boots at $(date -u +%FT%TZ)"
    "$@"
    rc=$?
    [ "$rc" -eq ${REBOOT_STATUS} ] || exit "$rc"
done
`;

/** nspawn's options for a node: its root, name, network namespace, the tun device, the log bind. */
function nspawnArgs(n: NodeState): string[] {
    return [
        NSPAWN, "-D", n.paths.merged, "-M", n.name, "--register=no", "--keep-unit",
        `--network-namespace-path=/run/netns/${netnsName(n.name)}`,
        // The namespace is the node's own: its network is its to configure (wireguard-go's TUN
        // device, wg, nft), which nspawn grants only with a private network of its making.
        "--capability=CAP_NET_ADMIN", "--bind=/dev/net/tun", `--bind=${n.paths.logs}:/var/log/lab`,
        // nspawn's seccomp filter refuses what runc does for every container: join the kernel
        // keyring, and load its cgroup v2 device program (bpf).
        "--system-call-filter=@keyring bpf",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no",
    ];
}

function supervisorEnv(n: NodeState, mode: "boot" | "once"): NodeJS.ProcessEnv {
    // Commands before the first boot may overlap on one node (the CA and the schema check): no image lock.
    const lock = mode === "once" ? { SYSTEMD_NSPAWN_LOCK: "0" } : {};
    return { PATH: NODE_PATH, LANG: "C.UTF-8", SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1", VH_CGROUPS: nodeCgroups(n.name).join(" "), VH_MODE: mode, ...lock };
}

/**
 * Before the node boots: run one command in a container on its root (the lab's CA, the
 * stand-in app image: what a cloud image or the provider puts there before first boot).
 */
export function runBeforeBoot(n: NodeState, argv: string[], opts: { env: Record<string, string>; timeoutMs: number; input?: string; allowFail?: boolean }): Promise<RunResult> {
    const setenv = Object.entries(opts.env).map(([k, v]) => `--setenv=${k}=${v}`);
    const cmd = ["sh", "-c", SUPERVISOR, "sh", ...nspawnArgs(n), "--quiet", "--pipe", ...setenv, "--", ...argv];
    // One at a time per node: two containers of one name would share nspawn's propagation directory.
    const prev = beforeBoot.get(n.name) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => run(cmd, { timeoutMs: opts.timeoutMs, env: supervisorEnv(n, "once"), input: opts.input, allowFail: opts.allowFail }));
    beforeBoot.set(n.name, next);
    return next;
}

const beforeBoot = new Map<string, Promise<RunResult>>();

/** Start the node's container (its supervisor, detached, PID in the state file); returns at once. */
export function startContainer(n: NodeState): number {
    mkdirSync(n.paths.logs, { recursive: true });
    const out = openSync(join(n.paths.logs, "console.log"), "a");
    try {
        const child = spawn("sh", ["-c", SUPERVISOR, "sh", ...nspawnArgs(n), "--console=read-only", "--boot"], {
            env: supervisorEnv(n, "boot"), detached: true, stdio: ["ignore", out, out],
        });
        if (!child.pid) throw new Error(`lab: could not start node ${n.name}'s container`);
        child.unref();
        const pid = child.pid;
        updateState((s) => {
            s.nodes[n.name].supervisor = pid;
            s.nodes[n.name].pids.push(pid);
        });
        return pid;
    } finally {
        closeSync(out);
    }
}

function childrenOf(pid: number): { pid: number; comm: string }[] {
    const out: { pid: number; comm: string }[] = [];
    for (const e of readdirSync("/proc")) {
        if (!/^\d+$/.test(e)) continue;
        try {
            const stat = readFileSync(`/proc/${e}/stat`, "utf8");
            const close = stat.lastIndexOf(")");
            const ppid = Number(stat.slice(close + 2).split(" ")[1]);
            if (ppid === pid) out.push({ pid: Number(e), comm: stat.slice(stat.indexOf("(") + 1, close) });
        } catch {
            // exited
        }
    }
    return out;
}

/** PID (host's view) of the node's systemd, PID 1 in its container; undefined while down. */
export function containerLeader(n: NodeState): number | undefined {
    if (!n.supervisor || !isAlive(n.supervisor)) return undefined;
    const nspawn = childrenOf(n.supervisor).find((c) => c.comm === "systemd-nspawn");
    if (!nspawn) return undefined;
    const init = childrenOf(nspawn.pid).find((c) => c.comm === "systemd");
    return init && isAlive(init.pid) ? init.pid : undefined;
}

/** argv that runs `argv` in the booted node: all of its container's namespaces. */
export function enterArgv(n: NodeState, argv: string[]): string[] {
    const leader = containerLeader(n);
    if (!leader) throw new Error(`lab: node ${n.name} is not running (its container is down)`);
    return ["nsenter", `--target=${leader}`, "--all", "--", ...argv];
}

/** Wait (bounded) until the node's systemd finished booting and cloud-init is done. */
export async function waitBooted(name: string, previousLeader?: number, timeoutMs = BOOT_TIMEOUT_MS): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let state = "no container";
    while (Date.now() < deadline) {
        const n = nodeState(name);
        const leader = containerLeader(n);
        if (leader && leader !== previousLeader) {
            const r = await run(["nsenter", `--target=${leader}`, "--all", "--", "systemctl", "is-system-running"], { timeoutMs: 10_000, allowFail: true, env: { PATH: NODE_PATH } }).catch(() => undefined);
            state = r ? r.stdout.trim() || `exit ${r.code}` : "no answer within 10 s";
            if (state === "running" || state === "degraded") return leader;
        } else if (!n.supervisor || !isAlive(n.supervisor)) {
            throw new Error(`[node ${name}] its container exited while booting (see ${join(n.paths.logs, "console.log")})`);
        }
        await sleep(250);
    }
    throw new Error(`[node ${name}] did not finish booting within ${timeoutMs / 1000} s (systemd: ${state})`);
}

export interface SystemdUnit {
    unit: string;
    state: string;
    sub?: string;
    main?: number | null;
    restarts?: number;
    result?: string;
}

const SHOW_PROPERTIES = "Id,Type,ActiveState,SubState,MainPID,NRestarts,Result,InactiveExitTimestampMonotonic";

/**
 * `systemctl show --property=${SHOW_PROPERTIES} UNITS...`, read: the units started since boot
 * (or failed), as the lab's checks knew them; a oneshot that finished well, or a unit never
 * started (conditions unmet, not wanted), is left out.
 */
export function parseSystemctlShow(text: string): SystemdUnit[] {
    return text.split(/\n\s*\n/).flatMap((block) => {
        const p: Record<string, string> = {};
        for (const l of block.split("\n")) {
            const i = l.indexOf("=");
            if (i > 0) p[l.slice(0, i)] = l.slice(i + 1);
        }
        if (!p.Id || !p.ActiveState) return [];
        const started = Number(p.InactiveExitTimestampMonotonic) > 0;
        if (p.ActiveState !== "failed" && !started) return [];
        if (p.Type === "oneshot" && p.ActiveState === "inactive" && p.Result === "success") return [];
        const main = Number(p.MainPID);
        const restarts = Number(p.NRestarts);
        return [{
            unit: p.Id, state: p.ActiveState, sub: p.SubState,
            main: Number.isInteger(main) && main > 0 ? main : null,
            restarts: Number.isInteger(restarts) ? restarts : undefined,
            result: p.Result,
        }];
    });
}

/**
 * The unit states as the node's own systemd reports them (`systemctl show`); none while it is down.
 * Asynchronous: a busy node can take seconds to answer, and a synchronous wait would hold every
 * other probe's timer in the lab's process.
 */
export async function systemdUnits(n: NodeState): Promise<SystemdUnit[]> {
    const leader = containerLeader(n);
    if (!leader) return [];
    const argv = ["nsenter", `--target=${leader}`, "--all", "--", "systemctl", "show", `--property=${SHOW_PROPERTIES}`, "*.service", "*.socket", "*.timer", "*.path"];
    const r = await run(argv, { timeoutMs: 20_000, allowFail: true, env: { PATH: NODE_PATH } }).catch(() => undefined);
    return r?.code === 0 ? parseSystemctlShow(r.stdout) : [];
}

/** A real reboot when the container runs (systemctl reboot; the supervisor boots it again), a start when it is down. */
export async function rebootContainer(name: string, log: Log): Promise<void> {
    const n = nodeState(name);
    const leader = containerLeader(n);
    const t = Date.now();
    if (leader) {
        await run(enterArgv(n, ["systemctl", "reboot"]), { timeoutMs: 20_000, allowFail: true, env: { PATH: NODE_PATH } });
    } else {
        updateState((s) => (s.nodes[name].pids = s.nodes[name].pids.filter(isAlive)));
        startContainer(nodeState(name));
    }
    await waitBooted(name, leader);
    log(`[${name}] ${leader ? "rebooted" : "booted"} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}

/**
 * An ACPI shutdown, as a provider's API gives one: the node's systemd powers off (its units
 * stop in order, each ExecStop run) and its container exits. Waits until it has, within
 * `timeoutMs`; false if it has not (the caller may then stop its processes, a hard power-off).
 */
export async function powerOffContainer(name: string, log: Log, timeoutMs: number): Promise<boolean> {
    const n = nodeState(name);
    const t = Date.now();
    if (containerLeader(n)) await run(enterArgv(n, ["systemctl", "poweroff"]), { timeoutMs: 20_000, allowFail: true, env: { PATH: NODE_PATH } });
    while (Date.now() - t < timeoutMs) {
        const now = nodeState(name);
        if (!now.supervisor || !isAlive(now.supervisor)) {
            log(`[${name}] powered off in ${((Date.now() - t) / 1000).toFixed(1)} s`);
            return true;
        }
        await sleep(250);
    }
    return false;
}

/**
 * The node's journal, one file per unit under /var/log/lab (the host's node log directory),
 * as the drills read daemons' output: each unit's messages as it wrote them, appended.
 */
const JOURNAL_FILES_PY = `import json, os, re, sys
UNIT = re.compile(r"[A-Za-z0-9@._:\\\\-]{1,200}\\Z")
files = {}
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    unit = e.get("_SYSTEMD_UNIT")
    msg = e.get("MESSAGE")
    if not isinstance(unit, str) or not UNIT.match(unit) or msg is None:
        continue
    if isinstance(msg, list):
        msg = bytes(msg).decode("utf-8", "replace")
    f = files.get(unit)
    if f is None:
        f = files[unit] = open(os.path.join("/var/log/lab", unit + ".log"), "a", buffering=1, errors="replace")
    f.write(str(msg) + "\\n")
`;
const JOURNAL_FILES_UNIT = `[Unit]
Description=vps-ha lab: each unit's journal in /var/log/lab/UNIT.log
DefaultDependencies=no
After=systemd-journald.service

[Service]
ExecStart=/bin/sh -c 'journalctl --boot --follow --lines=all --output=json | exec python3 /usr/local/lib/vps-ha-lab/journal-files.py'
Restart=always
RestartSec=1

[Install]
WantedBy=sysinit.target
`;

/**
 * nspawn mounts /proc/sys read-only but for a network it made itself; the node's namespace is its
 * own, so its network sysctls are writable as on a server (kernel.* and the rest stay read-only).
 */
const NET_SYSCTL_UNIT = `[Unit]
Description=vps-ha lab: the node's network sysctls are its own
DefaultDependencies=no
Before=sysinit.target systemd-sysctl.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind /proc/sys/net /proc/sys/net
ExecStart=/bin/mount -o remount,bind,rw /proc/sys/net

[Install]
WantedBy=sysinit.target
`;

/** Files the node needs on its disk before its first boot. */
export function prepareRootForBoot(n: NodeState): void {
    const m = n.paths.merged;
    // Each boot of an empty machine-id gets a fresh one, as a first boot from an image does.
    writeFileSync(join(m, "etc/machine-id"), "");
    // cloud-init's package_update and packages then run apt for real, with nothing to fetch:
    // the node is offline and the shared rootfs already holds every package the nodes name.
    writeFileSync(join(m, "etc/apt/sources.list"), "# vps-ha lab: offline; the rootfs holds every package the nodes need\n");
    for (const f of ["etc/apt/sources.list.d/debian.sources"]) if (existsSync(join(m, f))) writeFileSync(join(m, f), "");
    mkdirSync(join(m, "usr/local/lib/vps-ha-lab"), { recursive: true });
    writeFileSync(join(m, "usr/local/lib/vps-ha-lab/journal-files.py"), JOURNAL_FILES_PY);
    writeFileSync(join(m, "etc/systemd/system/vps-ha-lab-journal-files.service"), JOURNAL_FILES_UNIT);
    writeFileSync(join(m, "etc/systemd/system/vps-ha-lab-net-sysctl.service"), NET_SYSCTL_UNIT);
    mkdirSync(join(m, "etc/systemd/system/sysinit.target.wants"), { recursive: true });
    for (const unit of ["vps-ha-lab-journal-files.service", "vps-ha-lab-net-sysctl.service"]) {
        const link = join(m, "etc/systemd/system/sysinit.target.wants", unit);
        if (!existsSync(link)) symlinkSync(`/etc/systemd/system/${unit}`, link);
    }
}
