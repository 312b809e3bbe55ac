// The lab network: one bridge standing in for the internet, each node a network namespace
// joined to it by a veth pair. All addresses are on-link in 198.18.0.0/15, so no node has a
// default route and nothing a node sends can leave the bridge.
import { mkdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { run } from "./exec";
import { BRIDGE, BRIDGE_ADDRESS, LAB_PREFIX_LEN, NETNS_ETC, netnsName } from "./paths";

const T = { timeoutMs: 20_000 };

function ip(args: string[], allowFail = false) {
    return run(["ip", ...args], { ...T, allowFail });
}

export function linkExists(dev: string): Promise<boolean> {
    return ip(["link", "show", "dev", dev], true).then((r) => r.code === 0);
}

export function netnsExists(ns: string): boolean {
    return existsSync(`/run/netns/${ns}`);
}

export async function ensureBridge(): Promise<void> {
    if (!(await linkExists(BRIDGE))) {
        await ip(["link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
    }
    const addr = await ip(["-4", "addr", "show", "dev", BRIDGE]);
    if (!addr.stdout.includes(`${BRIDGE_ADDRESS}/${LAB_PREFIX_LEN}`)) {
        await ip(["addr", "add", `${BRIDGE_ADDRESS}/${LAB_PREFIX_LEN}`, "dev", BRIDGE]);
    }
    await ip(["link", "set", BRIDGE, "up"]);
}

/** Delete a link; one that vanished meanwhile (deleted with its peer) is fine. */
async function deleteLink(dev: string): Promise<void> {
    const r = await ip(["link", "del", dev], true);
    if (r.code !== 0 && (await linkExists(dev))) throw new Error(`lab: cannot delete ${dev}: ${r.stderr.trim()}`);
}

export async function removeBridge(): Promise<void> {
    await deleteLink(BRIDGE);
}

/** Namespace vh-<node>, veth to the bridge, eth0 inside with the node's public address. */
export async function addNodeNetwork(node: string, hostVeth: string, publicIpv4: string): Promise<void> {
    const ns = netnsName(node);
    if (!netnsExists(ns)) await ip(["netns", "add", ns]);
    if (!(await linkExists(hostVeth))) {
        await ip(["link", "add", hostVeth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    }
    await ip(["link", "set", hostVeth, "master", BRIDGE, "up"]);
    await ip(["-n", ns, "link", "set", "lo", "up"]);
    await ip(["-n", ns, "addr", "replace", `${publicIpv4}/${LAB_PREFIX_LEN}`, "dev", "eth0"]);
    await ip(["-n", ns, "link", "set", "eth0", "up"]);
}

export async function removeNodeNetwork(node: string, hostVeth: string): Promise<void> {
    await deleteLink(hostVeth); // deletes both ends
    const ns = netnsName(node);
    if (netnsExists(ns)) {
        const r = await ip(["netns", "del", ns], true);
        if (r.code !== 0 && netnsExists(ns)) throw new Error(`lab: cannot delete namespace ${ns}: ${r.stderr.trim()}`);
    }
    rmSync(join(NETNS_ETC, ns), { recursive: true, force: true });
}

/** /etc/netns/vh-<node>/hosts: what `ip netns exec` would show as /etc/hosts. */
export function writeNetnsHosts(node: string, hosts: string): string {
    const dir = join(NETNS_ETC, netnsName(node));
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "hosts");
    writeFileSync(file, hosts);
    return file;
}

/** MAC address of an interface (host side, or inside namespace `ns`). */
export async function macOf(dev: string, ns?: string): Promise<string> {
    const r = await ip([...(ns ? ["-n", ns] : []), "-j", "link", "show", "dev", dev]);
    const parsed = JSON.parse(r.stdout) as { address?: string }[];
    const mac = parsed[0]?.address;
    if (!mac) throw new Error(`lab: no MAC address for ${dev}${ns ? ` in ${ns}` : ""}`);
    return mac;
}

/**
 * Static neighbour entries between all nodes (and the bridge address). On a real provider a
 * node's peers sit behind a router whose ARP entry never fails; here they are on one L2
 * segment, and without this an isolated peer would turn into "no route to host" errors after
 * ARP times out instead of the silence a real partition gives.
 */
export async function pinNeighbours(nodes: { name: string; publicIpv4: string }[]): Promise<void> {
    const macs = new Map<string, string>(await Promise.all(nodes.map(async (n) => [n.publicIpv4, await macOf("eth0", netnsName(n.name))] as const)));
    macs.set(BRIDGE_ADDRESS, await macOf(BRIDGE));
    await Promise.all(
        nodes.map(async (n) => {
            for (const [addr, mac] of macs) {
                if (addr === n.publicIpv4) continue;
                await ip(["-n", netnsName(n.name), "neigh", "replace", addr, "lladdr", mac, "dev", "eth0", "nud", "permanent"]);
            }
        }),
    );
}

/**
 * Cut a node off: its bridge port stops forwarding, so every frame to and from it is dropped
 * silently while its link stays up (with the pinned neighbours, nothing notices but timeouts,
 * as in a real partition). Nothing changes inside the node, so its own nftables rules stay as
 * the program made them. (tc drop actions are not available in this kernel.)
 */
export async function isolateLink(hostVeth: string): Promise<void> {
    await run(["bridge", "link", "set", "dev", hostVeth, "state", "0"], T); // disabled
}

export async function healLink(hostVeth: string): Promise<void> {
    await run(["bridge", "link", "set", "dev", hostVeth, "state", "3"], T); // forwarding
}

export async function isIsolated(hostVeth: string): Promise<boolean> {
    const r = await run(["bridge", "-j", "link", "show", "dev", hostVeth], T);
    const parsed = JSON.parse(r.stdout) as { state?: string }[];
    return parsed[0]?.state !== "forwarding";
}
