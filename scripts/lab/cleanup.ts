// Taking the lab down: from the state file alone (a crashed run still has one), plus the node
// directories under the state dir, vhv* veths, vhbr0 and mounts under the state dir in case the
// state file itself was lost. Other vh-* namespaces are swept only when asked (`all`): a test
// elsewhere may own one. Idempotent; verifies at the end.
import { existsSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Log, run, sleep } from "./exec";
import { mountsUnder, unmountUnder } from "./mounts";
import { removeBridge, removeNodeNetwork, linkExists } from "./net";
import { BRIDGE, NETNS_ETC, NETNS_PREFIX, NODES_DIR, STATE_DIR, hostVethName, nodePaths, netnsName } from "./paths";
import { livePids } from "./node";
import { isAlive, signalPids, cmdline, seen, SeenProcess, stillRunning } from "./procs";
import { loadState, NodeState } from "./state";
import { labCgroupDirs, removeLabCgroups } from "./nspawn";

/** Nodes the state file knows, plus node directories (and with `all`, vh-* namespaces). */
function knownNodes(all: boolean): NodeState[] {
    const state = (() => {
        try {
            return loadState();
        } catch {
            return undefined; // unreadable state file: fall back to the naming rules
        }
    })();
    const nodes = new Map<string, NodeState>(Object.entries(state?.nodes ?? {}));
    const names = new Set<string>();
    if (all && existsSync("/run/netns")) {
        for (const e of readdirSync("/run/netns")) if (e.startsWith(NETNS_PREFIX)) names.add(e.slice(NETNS_PREFIX.length));
    }
    if (existsSync(NODES_DIR)) for (const e of readdirSync(NODES_DIR)) names.add(e);
    for (const name of names) {
        if (!nodes.has(name)) {
            nodes.set(name, {
                name,
                role: "?",
                provider: "?",
                netns: netnsName(name),
                hostVeth: hostVethName(name),
                publicIpv4: "",
                meshAddress: "",
                dnsNames: [],
                paths: nodePaths(name),
                mounts: [],
                pids: [],
                isolated: false,
            });
        }
    }
    return [...nodes.values()];
}

/** SIGTERM, a short grace, then SIGKILL until none is left (bounded). */
export async function stopProcesses(n: NodeState, log: Log, graceMs: number): Promise<void> {
    let pids = livePids(n);
    if (pids.length === 0) return;
    // Processes the lab spawned lead their own group: signal the group while the leader is
    // still one of the node's processes (a dead leader's number could belong to anyone now).
    const leaders = n.pids.filter((p) => pids.includes(p)).map((p) => -p);
    if (graceMs > 0) {
        signalPids([...leaders, ...pids], "SIGTERM");
        const deadline = Date.now() + graceMs;
        while (Date.now() < deadline && livePids(n).length) await sleep(100);
    }
    for (let round = 0; round < 50; round++) {
        pids = livePids(n);
        if (pids.length === 0) return;
        signalPids(round === 0 ? [...leaders, ...pids] : pids, "SIGKILL");
        await sleep(100);
    }
    pids = livePids(n);
    if (pids.length) {
        throw new Error(`lab: processes of node ${n.name} survived SIGKILL for 5 s: ${pids.map((p) => `${p} (${cmdline(p)})`).join(", ")}`);
    }
    log(`[${n.name}] processes stopped`);
}

export interface DownOptions {
    /** Also remove vh-* namespaces the lab has no record of. */
    all?: boolean;
}

/** A Ctrl-C during realize triggers both the signal handler's and realize's own cleanup. */
let inflight: Promise<void> | undefined;

export function down(log: Log, opts: DownOptions = {}): Promise<void> {
    if (!inflight) {
        inflight = downOnce(log, opts).finally(() => {
            inflight = undefined;
        });
    }
    return inflight;
}

async function downOnce(log: Log, opts: DownOptions): Promise<void> {
    const nodes = knownNodes(opts.all ?? false);
    // Everything seen alive now, so the final check covers unit PIDs whose records go with /run.
    const services = loadState()?.services ?? [];
    const recorded = seen([...nodes.flatMap((n) => [...n.pids, ...livePids(n)]), ...services.map((s) => s.pid)]);
    for (const n of nodes) await stopProcesses(n, log, 3000);
    await stopServices(services, log);
    const serviceNamespaces = loadState()?.serviceNamespaces ?? [];
    for (const ns of serviceNamespaces) await removeNodeNetwork(ns.name, ns.hostVeth);
    for (const n of nodes) {
        await unmountUnder(n.paths.dir, log);
        await removeNodeNetwork(n.name, n.hostVeth);
    }
    await removeStrayVeths();
    await removeLabCgroups();
    await removeBridge();
    if (existsSync(NETNS_ETC)) {
        for (const n of nodes) rmSync(join(NETNS_ETC, n.netns), { recursive: true, force: true });
        if (readdirSync(NETNS_ETC).length === 0) rmdirSync(NETNS_ETC); // the lab made it; leave it if others use it
    }
    await unmountUnder(STATE_DIR, log);
    if (mountsUnder(STATE_DIR).length === 0 && existsSync(STATE_DIR)) {
        // --one-file-system: even if a mount appeared meanwhile, rm cannot cross into it. After a
        // Ctrl-C a client still exiting may write one last file into it; rm then says "Directory not
        // empty", and a second pass a moment later finds it done.
        for (let attempt = 1; ; attempt++) {
            const r = await run(["rm", "-rf", "--one-file-system", STATE_DIR], { timeoutMs: 120_000, allowFail: attempt < 3 });
            if (r.code === 0) break;
            await sleep(1_000);
        }
    }
    const left = await leftovers([...nodes.map((n) => n.name), ...serviceNamespaces.map((n) => n.name)], recorded);
    if (left.length) throw new Error(`lab: down left things behind:\n  ${left.join("\n  ")}`);
    log("lab is down: no namespaces, bridge, mounts or processes left");
}

/** The lab's host-side services, by the PIDs the lab recorded: SIGTERM, then SIGKILL. */
async function stopServices(services: { name: string; pid: number }[], log: Log): Promise<void> {
    const alive = () => services.filter((s) => isAlive(s.pid));
    for (const s of alive()) {
        log(`lab: stopping ${s.name} (${s.pid})`);
        try { process.kill(s.pid, "SIGTERM"); } catch { /* already gone */ }
    }
    for (let i = 0; i < 30 && alive().length; i++) await sleep(100);
    for (const s of alive()) {
        try { process.kill(s.pid, "SIGKILL"); } catch { /* already gone */ }
    }
}

/** Host veth ends are named vhv<hash>; any left without a namespace go too. */
async function removeStrayVeths(): Promise<void> {
    const r = await run(["ip", "-o", "link", "show", "type", "veth"], { timeoutMs: 20_000, allowFail: true });
    for (const line of r.stdout.split("\n")) {
        const m = /^\d+:\s+(vhv[0-9a-f]{8})[@:]/.exec(line);
        if (m) await run(["ip", "link", "del", m[1]], { timeoutMs: 20_000, allowFail: true });
    }
}

/** What would show that the lab (these nodes) is still partly up; empty when fully down. */
export async function leftovers(nodeNames: string[], recorded: SeenProcess[] = []): Promise<string[]> {
    const out: string[] = [];
    for (const name of nodeNames) if (existsSync(`/run/netns/${netnsName(name)}`)) out.push(`namespace ${netnsName(name)}`);
    if (await linkExists(BRIDGE)) out.push(`bridge ${BRIDGE}`);
    const veths = await run(["ip", "-o", "link", "show", "type", "veth"], { timeoutMs: 20_000, allowFail: true });
    for (const m of veths.stdout.matchAll(/^\d+:\s+(vhv[0-9a-f]{8})/gm)) out.push(`veth ${m[1]}`);
    for (const m of mountsUnder(STATE_DIR)) out.push(`mount ${m.target}`);
    for (const name of nodeNames) if (existsSync(join(NETNS_ETC, netnsName(name)))) out.push(`${NETNS_ETC}/${netnsName(name)}`);
    for (const p of recorded) if (stillRunning(p)) out.push(`process ${p.pid} (${cmdline(p.pid)})`);
    if (existsSync(STATE_DIR)) out.push(`state dir ${STATE_DIR}`);
    for (const d of labCgroupDirs()) out.push(`cgroup ${d}`);
    return out;
}
