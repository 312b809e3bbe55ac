// Names and places the lab owns. Everything the lab creates on the host is derived here, so
// cleanup can find it again from these rules and the state file alone.
import { createHash } from "node:crypto";
import { join } from "node:path";

/** Runtime state: per-node overlays, logs, the state file. tmpfs, so a reboot clears it too. */
export const STATE_DIR = "/run/vps-ha-lab";
export const STATE_FILE = join(STATE_DIR, "state.json");
export const NODES_DIR = join(STATE_DIR, "nodes");

/** Built root filesystems. Outside the repository: they are large and root-owned. */
export const CACHE_DIR = "/var/cache/vps-ha-lab";
/** Held (PID inside) by the process that realized the lab, until its teardown. */
export const LAB_LOCK = join(CACHE_DIR, "lab.lock");

export const BRIDGE = "vhbr0";
export const BRIDGE_ADDRESS = "198.18.0.1";
/** The lab's simulated public internet (RFC 2544 benchmarking range, never routed). */
export const LAB_PREFIX_LEN = 15;

export const NETNS_PREFIX = "vh-";
export const NETNS_ETC = "/etc/netns";

/** Node names become namespace, file and interface-hash inputs: keep them boring. */
const NODE_NAME = /^[a-z0-9][a-z0-9-]{0,30}$/;

export function assertNodeName(name: string): void {
    if (!NODE_NAME.test(name)) {
        throw new Error(`lab: node name ${JSON.stringify(name)} must match ${NODE_NAME} (it names a namespace and files)`);
    }
}

export function netnsName(node: string): string {
    return `${NETNS_PREFIX}${node}`;
}

/** Host-side veth: interface names are limited to 15 bytes, node names are not, so hash. */
export function hostVethName(node: string): string {
    return `vhv${createHash("sha256").update(node).digest("hex").slice(0, 8)}`;
}

export interface NodePaths {
    dir: string;
    upper: string;
    work: string;
    merged: string;
    logs: string;
    /** Bind mount that keeps the node's UTS namespace (its own hostname) alive. */
    uts: string;
}

export function nodePaths(node: string): NodePaths {
    const dir = join(NODES_DIR, node);
    return {
        dir,
        upper: join(dir, "upper"),
        work: join(dir, "work"),
        merged: join(dir, "merged"),
        logs: join(dir, "logs"),
        uts: join(dir, "uts"),
    };
}

/** Addresses handed to nodes must be inside 198.18.0.0/15 and not the bridge's own. */
export function assertLabAddress(ip: string): void {
    const m = /^198\.(18|19)\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
    if (!m || Number(m[2]) > 255 || Number(m[3]) > 255 || ip === BRIDGE_ADDRESS) {
        throw new Error(`lab: public address ${ip} is not a usable lab address (198.18.0.0/15, not ${BRIDGE_ADDRESS})`);
    }
}
