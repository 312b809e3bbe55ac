// The lab state file: everything the lab created, written before it is created, so that
// `down` can undo a run that crashed half way using this file alone.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { NodePaths, STATE_DIR, STATE_FILE } from "./paths";

export interface NodeState {
    name: string;
    role: string;
    provider: string;
    netns: string;
    hostVeth: string;
    publicIpv4: string;
    meshAddress: string;
    dnsNames: string[];
    paths: NodePaths;
    /** Mount points in the order they were made; unmounted in reverse. */
    mounts: string[];
    /** Processes the lab itself spawned in the node (group leaders). */
    pids: number[];
    /** With real systemd (nspawn.ts): the process that runs the node's container and boots it again after a reboot. */
    supervisor?: number;
    isolated: boolean;
}

export interface LabState {
    version: 1;
    createdAt: string;
    /** PID of the process that realized the lab (informational; any run may tear it down). */
    owner: number;
    rootfs?: string;
    bridge?: string;
    nodes: Record<string, NodeState>;
    /** Lab services (the S3 endpoint playing R2, the edge playing Cloudflare), by PID. */
    services?: { name: string; pid: number }[];
    /** Namespaces of lab services (not nodes) on the bridge, with their host-side veth. */
    serviceNamespaces?: { name: string; hostVeth: string }[];
}

export function emptyState(): LabState {
    return { version: 1, createdAt: new Date().toISOString(), owner: process.pid, nodes: {} };
}

export function loadState(): LabState | undefined {
    if (!existsSync(STATE_FILE)) return undefined;
    const parsed = JSON.parse(readFileSync(STATE_FILE, "utf8")) as LabState;
    if (parsed.version !== 1) throw new Error(`lab: ${STATE_FILE} has unknown version ${String(parsed.version)}`);
    return parsed;
}

/** Write atomically: a crash mid-write must not leave a state file `down` cannot read. */
export function saveState(state: LabState): void {
    mkdirSync(STATE_DIR, { recursive: true, mode: 0o755 });
    const tmp = `${STATE_FILE}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 1));
    renameSync(tmp, STATE_FILE);
}

/** Read-modify-write of the state file in one step. */
export function updateState(fn: (s: LabState) => void): LabState {
    const s = loadState() ?? emptyState();
    fn(s);
    saveState(s);
    return s;
}

export function nodeState(name: string): NodeState {
    const n = loadState()?.nodes[name];
    if (!n) throw new Error(`lab: no node ${JSON.stringify(name)} in ${STATE_FILE} (is the lab up?)`);
    return n;
}
