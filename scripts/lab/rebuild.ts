// A node rebuilt with an empty disk, as a cloud does when `pulumi up` replaces its server with
// the same user-data (a member moved, resized by replacement, or a dead server swapped): every
// process of the old server dies, its disk is gone, and a new server boots the same image and
// runs the same cloud-config. In the lab: the node's processes are stopped by PID, its overlay's
// upper directory (everything the node ever wrote) is discarded, a fresh overlay is mounted over
// the same rootfs, the node boots, and its cloud-config is applied again.
//
// The node keeps its namespace, public address and DNS names. A real replacement gets a new
// public address and the program updates the node's DNS record; the peers then find it through
// the directory. Keeping the address leaves that path out and tests what a rebuilt member itself
// must do: rejoin etcd and re-clone PostgreSQL.
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { applyCloudConfig } from "./cloudinit";
import { stopProcesses } from "./cleanup";
import { prepareAppNodes } from "./containers";
import { elapsed, Log, run } from "./exec";
import { labStack } from "./stack";
import { unmountUnder } from "./mounts";
import { removeNodeNetwork, writeNetnsHosts } from "./net";
import { NETNS_ETC } from "./paths";
import { copyHostsIntoNode, ensureLabHosts, mountNode } from "./node";
import { hostsFor, keepOwnPackages, LabNodeSpec, trustCaOfOthers } from "./realize";
import { loadState, nodeState, updateState } from "./state";

/** Where cloud-init's NoCloud seed holds the user-data a node booted with (relative to its root). */
const SEED_USER_DATA = "var/lib/cloud/seed/nocloud/user-data";

/**
 * The node's spec with the user-data it was given. A cloud keeps a server's user-data with the
 * server (in Pulumi's state), not on its disk; the lab's copy is the seed cloud-init read, taken
 * before the old disk goes. Evaluating the program again would not do outside the process that
 * brought the lab up: the mock runtime makes its certificates (the pgBackRest CA, the origin
 * certificate) once per process, where a real stack keeps the ones in its state.
 */
export function labNodeSpec(name: string): LabNodeSpec {
    const n = nodeState(name);
    const seed = join(n.paths.merged, SEED_USER_DATA);
    if (!existsSync(seed)) throw new Error(`lab: node ${name} has no user-data at ${seed} (its cloud-config never ran); nothing to rebuild it from`);
    return { name, role: n.role, provider: n.provider, publicIpv4: n.publicIpv4, meshAddress: n.meshAddress, dnsNames: n.dnsNames, userData: readFileSync(seed, "utf8") };
}

/**
 * The old server goes: every process stopped by PID at once (a deleted server is powered off),
 * every mount of the node undone, its disk (the overlay's upper and work directories) removed.
 * Its logs are kept beside the node, out of the new server's way, for a later look.
 */
export async function discardNode(name: string, log: Log): Promise<void> {
    const n = nodeState(name);
    await stopProcesses(n, log, 0);
    await unmountUnder(n.paths.dir, log); // throws unless every mount under the node is gone
    // --one-file-system: nothing mounted can be reached from here, as unmountUnder made sure.
    await run(["rm", "-rf", "--one-file-system", n.paths.upper, n.paths.work], { timeoutMs: 120_000 });
    if (existsSync(n.paths.logs)) renameSync(n.paths.logs, `${n.paths.logs}.replaced-${Date.now()}`);
    log(`[${name}] old server gone: processes stopped, disk discarded`);
}

/**
 * What `pulumi up` deleting a node's server does: its processes stopped, its disk and network
 * gone, and the lab forgets it (its logs are kept, renamed).
 */
export async function removeNode(name: string, log: Log): Promise<void> {
    const n = nodeState(name);
    await stopProcesses(n, log, 3000);
    await unmountUnder(n.paths.dir, log);
    await removeNodeNetwork(n.name, n.hostVeth);
    rmSync(join(NETNS_ETC, n.netns), { recursive: true, force: true });
    if (existsSync(n.paths.logs)) renameSync(n.paths.logs, `${n.paths.logs}.removed-${Date.now()}`);
    await run(["rm", "-rf", "--one-file-system", n.paths.upper, n.paths.work], { timeoutMs: 120_000 });
    updateState((s) => {
        delete s.nodes[name];
    });
    log(`[${name}] server deleted: processes stopped, disk and network gone`);
}

/** The new server: a fresh overlay over the same rootfs, booted, then the same cloud-config applied. */
export async function bootFreshNode(spec: LabNodeSpec, log: Log): Promise<void> {
    const t = Date.now();
    const rootfs = loadState()?.rootfs;
    if (!rootfs) throw new Error("lab: the state file names no rootfs (is the lab up?)");
    // What the lab gave every node besides its user-data: the lab CA, and on app nodes the
    // stand-in for the app's image.
    let n = nodeState(spec.name);
    await mountNode(n, rootfs);
    n = nodeState(spec.name);
    copyHostsIntoNode(n, writeNetnsHosts(n.name, hostsFor(spec).text));
    keepOwnPackages(n, spec, log); // its own systemd boots with its seed (applyCloudConfig)
    await trustCaOfOthers(n, log);
    const app = labStack()?.app;
    if (spec.role === "app" && app) await prepareAppNodes([spec.name], app, log);
    await applyCloudConfig(n, spec.userData, log, () => ensureLabHosts(n, hostsFor(spec).block));
    log(`[${spec.name}] rebuilt with an empty disk in ${elapsed(t)}`);
}

/** Both steps: what one `pulumi up` replacing this node's server does to it. */
export async function rebuildNode(name: string, log: Log): Promise<void> {
    const spec = labNodeSpec(name);
    await discardNode(name, log);
    await bootFreshNode(spec, log);
}
