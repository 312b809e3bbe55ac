// The lab network: one bridge standing in for the internet, each node a network namespace
// joined to it by a veth pair. All addresses are on-link in 198.18.0.0/15, so no node has a
// default route and nothing a node sends can leave the bridge.
import { mkdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { run } from "./exec.js";
import { BRIDGE, BRIDGE_ADDRESS, LAB_PREFIX_LEN, NETNS_ETC, netnsName } from "./paths.js";

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

export async function removeBridge(): Promise<void> {
  if (await linkExists(BRIDGE)) await ip(["link", "del", BRIDGE]);
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
  if (await linkExists(hostVeth)) await ip(["link", "del", hostVeth]); // deletes both ends
  const ns = netnsName(node);
  if (netnsExists(ns)) await ip(["netns", "del", ns]);
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

/**
 * Cut a node off: drop every IPv4/IPv6 packet on its bridge port, both ways. ARP still passes,
 * so peers see silence (timeouts), as in a real partition, rather than "host unreachable".
 * Nothing is changed inside the node, so its own nftables rules stay as the program made them.
 */
export async function isolateLink(hostVeth: string): Promise<void> {
  await run(["tc", "qdisc", "replace", "dev", hostVeth, "clsact"], T);
  for (const dir of ["ingress", "egress"]) {
    for (const proto of ["ip", "ipv6"]) {
      await run(["tc", "filter", "add", "dev", hostVeth, dir, "protocol", proto, "prio", "1", "matchall", "action", "drop"], T);
    }
  }
}

export async function healLink(hostVeth: string): Promise<void> {
  await run(["tc", "qdisc", "del", "dev", hostVeth, "clsact"], { ...T, allowFail: true });
}

export async function isIsolated(hostVeth: string): Promise<boolean> {
  const r = await run(["tc", "qdisc", "show", "dev", hostVeth], { ...T, allowFail: true });
  return r.stdout.includes("clsact");
}
