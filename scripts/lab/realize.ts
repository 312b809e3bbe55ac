// The lab's public entry: realize the program's nodes on this machine, break them, take them
// down. Each node is a network namespace (vh-<name>) on the lab bridge, running a Debian 13
// rootfs through its own overlay, configured by its real cloud-config.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { applyCloudConfig, checkSchemas, packagesOf, readCloudConfig } from "./cloudinit";
import { down, stopProcesses } from "./cleanup";
import { Log, elapsed, killActiveChildren, run } from "./exec";
import { startLabDns } from "./dns";
import { LabDnsRecord } from "./dns-zone";
import { addNodeNetwork, ensureBridge, healLink, isolateLink, pinNeighbours, writeNetnsHosts } from "./net";
import { acquireLock, lockOwner, releaseLock } from "./lock";
import { isAlive } from "./procs";
import {
    copyHostsIntoNode,
    ensureLabHosts,
    execInNode as execInNodeImpl,
    ExecOptions,
    labHostsBlock,
    mountNode,
    nodePids as nodePidsImpl,
    rebootNode as rebootNodeImpl,
    spawnInNode as spawnInNodeImpl,
} from "./node";
import { BRIDGE, CACHE_DIR, LAB_LOCK, STATE_FILE, assertLabAddress, assertNodeName, hostVethName, netnsName, nodePaths } from "./paths";
import { requireRoot } from "./preflight";
import { abandonBuild, ensureRootfs } from "./rootfs";
import { emptyState, loadState, nodeState, saveState, updateState, NodeState } from "./state";
import { RunResult } from "./exec";
import { containerLeader, ensureNspawnHost, systemdUnits, SystemdUnit } from "./nspawn";
import { disablePackageUnits, foreignPackages, parseDpkgStatus } from "./node-packages";
import { LAB_EXTRAS } from "./rootfs";

export interface LabNodeSpec {
    name: string;
    role: string;
    provider: string;
    publicIpv4: string;
    meshAddress: string;
    userData: string;
    dnsNames: string[];
    /** Everything the node ends up holding, its desired state included (cloud-config form; mock-program's `config`); its user-data when absent. */
    config?: string;
}

/** A unit as the node's systemd reports it. */
export type UnitStatus = SystemdUnit;

export type { ExecOptions, NodeState, RunResult };

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function validate(nodes: LabNodeSpec[]): void {
    if (nodes.length === 0) throw new Error("lab: no nodes to realize");
    const seen = new Map<string, string>();
    const claim = (key: string, owner: string) => {
        const prev = seen.get(key);
        if (prev && prev !== owner) throw new Error(`lab: ${key} is claimed by both ${prev} and ${owner}`);
        seen.set(key, owner);
    };
    for (const n of nodes) {
        assertNodeName(n.name);
        assertLabAddress(n.publicIpv4);
        claim(`node name ${n.name}`, n.name);
        claim(`address ${n.publicIpv4}`, n.name);
        for (const d of n.dnsNames) {
            if (!DNS_NAME.test(d)) throw new Error(`lab: node ${n.name}: ${JSON.stringify(d)} is not a DNS name`);
            claim(`DNS name ${d.toLowerCase()}`, n.name);
        }
    }
}

/** What the lab adds around the nodes: services on the bridge, the DNS they resolve, a CA the nodes trust. */
export interface LabExtras {
    /** What the nodes' resolver (the lab's DNS server on the bridge) answers; no server without it. */
    dns?: LabDnsRecord[];
    /** A CA certificate (PEM) every node trusts, as real nodes trust the public CAs. */
    caCertPem?: string;
    /** Runs once the bridge exists, before any cloud-config is applied (to start services). */
    beforeApply?: () => Promise<void>;
}

/**
 * A node's hosts file: its own names only, as on a Debian cloud image. Every other name (its
 * peers, the directory, R2) it resolves through the lab's DNS server, as a real node does.
 */
export function hostsFor(node: LabNodeSpec): { text: string; block: string } {
    const block = labHostsBlock([{ address: "127.0.1.1", names: [...node.dnsNames, node.name] }]);
    const text = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters", "", block].join("\n");
    return { text, block };
}

// --- Ctrl-C / kill: take the lab down before exiting ------------------------------------
let signalLog: Log | undefined;
let cleaning = false;

function onSignal(sig: NodeJS.Signals): void {
    const log = signalLog ?? ((m: string) => console.error(m));
    if (cleaning) {
        log(`${sig}: lab cleanup already running; waiting for it`);
        return;
    }
    cleaning = true;
    log(`${sig}: taking the lab down before exiting`);
    killActiveChildren();
    abandonBuild(log)
        .then(() => down(log))
        .then(
            () => {
                releaseLock(LAB_LOCK);
                process.exit(sig === "SIGINT" ? 130 : 143);
            },
            (err: Error) => {
                log(`lab cleanup after ${sig} failed: ${err.message}`);
                process.exit(1);
            },
        );
}

function installSignalHandlers(log: Log): void {
    signalLog = log;
    if (process.listeners("SIGINT").includes(onSignal)) return;
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
}

function removeSignalHandlers(): void {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
}

/** Last lines of every log of every node, to explain a failure before the lab goes away. */
export function nodeLogTails(lines = 10): string {
    const state = loadState();
    const out: string[] = [];
    for (const n of Object.values(state?.nodes ?? {})) {
        if (!existsSync(n.paths.logs)) continue;
        for (const f of readdirSync(n.paths.logs)) {
            const text = readFileSync(join(n.paths.logs, f), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
            if (text) out.push(`--- ${n.name}: ${f} ---\n${text}`);
        }
    }
    return out.join("\n");
}

/**
 * Rootfs (union of the cloud-configs' packages), bridge, namespaces, overlays, hosts, then
 * each node's cloud-config, all nodes at once (as real nodes boot together: a service that
 * waits for its peers, like etcd, must not wait for a node the lab has not started yet).
 */
export async function realizeNodes(nodes: LabNodeSpec[], log: Log, extras: LabExtras = {}): Promise<{ lockWaitSeconds: number }> {
    requireRoot();
    validate(nodes);
    packagesOf(nodes); // rejects user-data the lab cannot apply
    // The rootfs holds what the nodes' desired state installs too (the nodes are offline).
    const packages = labPackagesOf(nodes);
    const started = Date.now();
    // One lab per machine: another run's realize would otherwise tear this one down.
    mkdirSync(CACHE_DIR, { recursive: true });
    await acquireLock(LAB_LOCK, "lab", log, 30 * 60_000);
    // Another run's lab is no part of this one's bring-up time.
    const lockWaitSeconds = (Date.now() - started) / 1000;
    installSignalHandlers(log);
    try {
        if (loadState() || nodes.some((n) => existsSync(`/run/netns/${netnsName(n.name)}`))) {
            log(`lab: a previous lab was left up (${STATE_FILE}); taking it down first`);
            await down(log);
        }
        await ensureNspawnHost();
        const rootfs = await ensureRootfs(packages, log);
        saveState({ ...emptyState(), rootfs, bridge: BRIDGE });
        await ensureBridge();
        if (extras.dns) await startLabDns(extras.dns, log);
        // Namespaces, overlays and boots are independent per node: all at once.
        await Promise.all(nodes.map((spec) => prepareNode(spec, rootfs, log)));
        await pinNeighbours(nodes);
        const states = nodes.map((spec) => nodeState(spec.name));
        const pem = extras.caCertPem;
        // Before any cloud-config runs, and independent of each other: the lab's CA trusted, the
        // lab's services started, every user-data checked against cloud-init's schema.
        await Promise.all([
            pem ? trustCa(states, pem, log) : Promise.resolve(),
            extras.beforeApply?.(),
            checkSchemas(states[0], nodes).then(() => log(`lab: ${nodes.length} cloud-configs pass cloud-init's schema`)),
        ]);
        await Promise.all(
            nodes.map((spec) => {
                const n = nodeState(spec.name);
                return applyCloudConfig(n, spec.userData, log, () => ensureLabHosts(n, hostsFor(spec).block));
            }),
        );
        log(`lab: ${nodes.length} node(s) realized in ${((Date.now() - started) / 1000 - lockWaitSeconds).toFixed(1)} s`);
        return { lockWaitSeconds };
    } catch (err) {
        const tails = nodeLogTails();
        log(`lab: realize failed; taking the lab down\n${tails}`);
        await down(log).catch((e: Error) => log(`lab: cleanup after failure also failed: ${e.message}`));
        removeSignalHandlers();
        releaseLock(LAB_LOCK);
        throw err;
    }
}

/**
 * A server added to the running lab, as `pulumi up` creates one for a node new in the stack
 * file: its namespace and overlay beside the others, the lab's CA, then its cloud-config. Its
 * packages must be in the lab's rootfs already (the rootfs is shared: it is not rebuilt under
 * running nodes); the other nodes find it through the lab's DNS, published with the change.
 */
export async function addNode(spec: LabNodeSpec, log: Log): Promise<void> {
    requireRoot();
    const t = Date.now();
    const state = loadState();
    if (!state?.rootfs) throw new Error("lab: the state file names no rootfs (is the lab up?)");
    const others = labNodes();
    if (others.some((n) => n.name === spec.name)) throw new Error(`lab: ${spec.name} is in the lab already`);
    validate([...others.map((n) => ({ ...n, userData: "" })), spec]);
    const installed = parseDpkgStatus(readFileSync(join(state.rootfs, "var/lib/dpkg/status"), "utf8"));
    const missing = labPackagesOf([spec]).filter((p) => !installed.has(p));
    if (missing.length) throw new Error(`lab: ${spec.name} needs packages the lab's rootfs lacks (${missing.join(", ")}); bring the lab up with a stack that has them`);
    await prepareNode(spec, state.rootfs, log);
    await pinNeighbours([...others, spec]);
    const n = nodeState(spec.name);
    await trustCaOfOthers(n, log);
    await applyCloudConfig(n, spec.userData, log, () => ensureLabHosts(n, hostsFor(spec).block));
    log(`[${spec.name}] added to the lab in ${elapsed(t)}`);
}

/** A node's namespace on the bridge, its hosts file, its overlay mounted (it boots once its seed is in place, cloudinit.ts). */
async function prepareNode(spec: LabNodeSpec, rootfs: string, log: Log): Promise<void> {
    const t = Date.now();
    const n: NodeState = {
        name: spec.name,
        role: spec.role,
        provider: spec.provider,
        netns: netnsName(spec.name),
        hostVeth: hostVethName(spec.name),
        publicIpv4: spec.publicIpv4,
        meshAddress: spec.meshAddress,
        dnsNames: spec.dnsNames,
        paths: nodePaths(spec.name),
        mounts: [],
        pids: [],
        isolated: false,
    };
    updateState((s) => (s.nodes[n.name] = n));
    await addNodeNetwork(n.name, n.hostVeth, n.publicIpv4);
    const hostsFile = writeNetnsHosts(n.name, hostsFor(spec).text);
    await mountNode(n, rootfs);
    copyHostsIntoNode(n, hostsFile);
    keepOwnPackages(nodeState(n.name), spec, log);
    log(`[${n.name}] namespace and overlay ready in ${elapsed(t)} (${n.publicIpv4})`);
}

/** Every package any node gets, from its user-data or its desired state. */
export function labPackagesOf(nodes: LabNodeSpec[]): string[] {
    return packagesOf(nodes.map((n) => ({ name: n.name, userData: n.config ?? n.userData })));
}

/** Units of packages the node's cloud-config does not bring are not enabled in it (node-packages.ts). */

export function keepOwnPackages(n: NodeState, spec: LabNodeSpec, log: Log): void {
    const installed = parseDpkgStatus(readFileSync(join(n.paths.merged, "var/lib/dpkg/status"), "utf8"));
    const foreign = foreignPackages(installed, LAB_EXTRAS, readCloudConfig(spec.name, spec.config ?? spec.userData).packages);
    const units = disablePackageUnits(n.paths.merged, foreign);
    if (units.length) log(`[${n.name}] not its packages, not enabled: ${units.join(" ")}`);
}

/** Where a node keeps the lab's CA, relative to its root. */
export const LAB_CA_FILE = "usr/local/share/ca-certificates/vps-ha-lab-ca.crt";
const CERTS_DIR = "etc/ssl/certs";

/**
 * Every node trusts the lab's CA the way a real node trusts a public one: in its system store.
 * update-ca-certificates runs in the first node; it only writes below /etc/ssl/certs, so the
 * others (same rootfs, same certificate) get what it wrote there, from the first node's overlay.
 */
export async function trustCa(nodes: NodeState[], pem: string, log: Log): Promise<void> {
    const [first, ...rest] = nodes;
    const place = (n: NodeState) => {
        mkdirSync(join(n.paths.merged, dirname(LAB_CA_FILE)), { recursive: true });
        writeFileSync(join(n.paths.merged, LAB_CA_FILE), pem);
    };
    place(first);
    await execInNodeImpl(first.name, ["update-ca-certificates"], { timeoutMs: 60_000 });
    await Promise.all(
        rest.map(async (n) => {
            place(n);
            await run(["cp", "-a", `${join(first.paths.upper, CERTS_DIR)}/.`, join(n.paths.merged, CERTS_DIR)], { timeoutMs: 60_000 });
        }),
    );
    log(`lab: ${nodes.length} node(s) trust the lab CA`);
}

/** A node added or rebuilt trusts the CA the lab gave the others (as the image's public CAs). */
export async function trustCaOfOthers(n: NodeState, log: Log): Promise<void> {
    const ca = labNodes().filter((o) => o.name !== n.name).map((o) => join(o.paths.merged, LAB_CA_FILE)).find((f) => existsSync(f));
    if (ca) await trustCa([n], readFileSync(ca, "utf8"), log);
}

/** Everything the lab created goes: processes, mounts, namespaces, veths, bridge, state. */
export async function teardown(log: Log): Promise<void> {
    requireRoot();
    const owner = lockOwner(LAB_LOCK);
    if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
        throw new Error(`lab: the lab up now belongs to PID ${owner}; not tearing it down (scripts/lab/down.ts --force would)`);
    }
    try {
        await down(log);
    } finally {
        removeSignalHandlers();
    }
    releaseLock(LAB_LOCK); // kept if down failed: the lab is still (partly) up
}

export function execInNode(name: string, argv: string[], opts: ExecOptions): Promise<RunResult> {
    return execInNodeImpl(name, argv, opts);
}

export function spawnInNode(name: string, argv: string[], opts: { user?: string; env?: Record<string, string>; logName: string }): number {
    return spawnInNodeImpl(name, argv, opts);
}

export function nodePids(name: string): number[] {
    return nodePidsImpl(name);
}

/** Drill "node-kill": SIGKILL every process of the node at once (its disk, the overlay, stays). */
export async function killNode(name: string, log: Log = () => undefined): Promise<void> {
    await stopProcesses(nodeState(name), log, 0);
}

/** A real reboot of the node's container (`systemctl reboot` in it), or a boot after a kill. */
export async function rebootNode(name: string, log: Log = () => undefined): Promise<void> {
    await rebootNodeImpl(name, log);
}

/** Cut the node's network (silently drop all IP traffic both ways at its bridge port). */
export async function isolateNode(name: string): Promise<void> {
    const n = nodeState(name);
    await isolateLink(n.hostVeth);
    updateState((s) => (s.nodes[name].isolated = true));
}

export async function healNode(name: string): Promise<void> {
    const n = nodeState(name);
    await healLink(n.hostVeth);
    updateState((s) => (s.nodes[name].isolated = false));
}

/** Units the node's systemd knows, with state and PIDs; none while it is down. */
export function nodeUnits(name: string): Promise<UnitStatus[]> {
    return systemdUnits(nodeState(name));
}

/**
 * Host path of the node's root as its own processes see it: through its PID 1 (its /run and
 * /tmp are mounts of its own); the overlay while it is down.
 */
export function nodeRoot(n: NodeState): string {
    const leader = containerLeader(n);
    return leader ? `/proc/${leader}/root` : n.paths.merged;
}

/** Host path of the node's log directory (unit logs, spawned process logs). */
export function nodeLogDir(name: string): string {
    return nodeState(name).paths.logs;
}

export function labNodes(): NodeState[] {
    return Object.values(loadState()?.nodes ?? {});
}
