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
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { applyCloudConfig } from "./cloudinit";
import { stopProcesses } from "./cleanup";
import { prepareAppNodes } from "./containers";
import { elapsed, Log, run } from "./exec";
import { labStack } from "./load/writes";
import { unmountUnder } from "./mounts";
import { writeNetnsHosts } from "./net";
import { bootServices, copyHostsIntoNode, ensureLabHosts, mountNode } from "./node";
import { labProgram, stackSource } from "./program";
import { hostsFor, LAB_CA_FILE, labNodes, LabNodeSpec, trustCa } from "./realize";
import { loadState, nodeState } from "./state";

/** Where cloud-init's NoCloud seed holds the user-data a node booted with (relative to its root). */
const SEED_USER_DATA = "var/lib/cloud/seed/nocloud/user-data";

/**
 * The node's spec as the program renders it now, from the stack file the lab was brought up
 * from. A rebuild applies the user-data the node was given: if the program now renders another
 * (the stack file was edited since `lab up`), that would be a different server, and it is refused.
 */
export async function programSpec(name: string): Promise<LabNodeSpec> {
    const n = nodeState(name);
    const program = await labProgram(labStack()?.source ?? stackSource({}));
    const spec = program.specs.find((s) => s.name === name);
    if (!spec) throw new Error(`lab: the program has no node ${name} any more; nodes: ${program.specs.map((s) => s.name).join(", ")}`);
    if (spec.publicIpv4 !== n.publicIpv4 || spec.meshAddress !== n.meshAddress || spec.role !== n.role) {
        throw new Error(`lab: node ${name} is now ${spec.role} at ${spec.publicIpv4} (mesh ${spec.meshAddress}), not ${n.role} at ${n.publicIpv4} (mesh ${n.meshAddress}) as realized`);
    }
    const seed = join(n.paths.merged, SEED_USER_DATA);
    if (existsSync(seed) && readFileSync(seed, "utf8") !== spec.userData) {
        throw new Error(`lab: the program renders other user-data for ${name} than the node booted with (was the stack file edited since lab up?); a rebuild applies the same user-data`);
    }
    return spec;
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

/** The new server: a fresh overlay over the same rootfs, booted, then the same cloud-config applied. */
export async function bootFreshNode(spec: LabNodeSpec, log: Log): Promise<void> {
    const t = Date.now();
    const rootfs = loadState()?.rootfs;
    if (!rootfs) throw new Error("lab: the state file names no rootfs (is the lab up?)");
    // What the lab gave every node besides its user-data: the lab CA (as the image's public CAs),
    // and on app nodes the stand-in for the app's image. Taken from the nodes still standing.
    const ca = labNodes().filter((o) => o.name !== spec.name).map((o) => join(o.paths.merged, LAB_CA_FILE)).find((f) => existsSync(f));
    let n = nodeState(spec.name);
    await mountNode(n, rootfs);
    n = nodeState(spec.name);
    copyHostsIntoNode(n, writeNetnsHosts(n.name, hostsFor(spec).text));
    await bootServices(n.name, log);
    if (ca) await trustCa(n, readFileSync(ca, "utf8"), log);
    const app = labStack()?.app;
    if (spec.role === "app" && app) await prepareAppNodes([spec.name], app, log);
    await applyCloudConfig(n, spec.userData, log, () => ensureLabHosts(n, hostsFor(spec).block));
    log(`[${spec.name}] rebuilt with an empty disk in ${elapsed(t)}`);
}

/** Both steps: what one `pulumi up` replacing this node's server does to it. */
export async function rebuildNode(spec: LabNodeSpec, log: Log): Promise<void> {
    await discardNode(spec.name, log);
    await bootFreshNode(spec, log);
}
