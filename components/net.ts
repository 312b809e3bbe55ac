// Small, exact address arithmetic for IPv4 and IPv6 CIDRs (node's own net.isIP and BlockList
// do the parsing; only what the plan needs lives here).
import { BlockList, isIP } from "node:net";

export interface Cidr {
    address: string;
    prefix: number;
    version: 4 | 6;
}

export function parseCidr(text: string): Cidr | undefined {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
    if (!m) return undefined;
    const version = isIP(m[1]);
    const prefix = Number(m[2]);
    if (version === 4 && prefix <= 32) return { address: m[1], prefix, version };
    if (version === 6 && prefix <= 128) return { address: m[1], prefix, version };
    return undefined;
}

export function ipv4ToInt(ip: string): number {
    return ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIpv4(n: number): string {
    return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** Usable host addresses of an IPv4 network (network and broadcast excluded). */
export function cidrHostCount(cidr: string): number {
    const c = parseCidr(cidr);
    if (!c || c.version !== 4) return 0;
    return Math.max(0, 2 ** (32 - c.prefix) - 2);
}

/** The n-th usable host (1-based) of an IPv4 network. */
export function nthHost(cidr: string, n: number): string {
    const c = parseCidr(cidr);
    if (!c || c.version !== 4) throw new Error(`not an IPv4 CIDR: ${cidr}`);
    const base = ipv4ToInt(c.address) - (ipv4ToInt(c.address) % 2 ** (32 - c.prefix));
    return intToIpv4(base + n);
}

/** True when the address `ip` lies inside the network `cidr`. */
export function inNetwork(ip: string, cidr: string): boolean {
    const c = parseCidr(cidr);
    const version = isIP(ip);
    if (!c || version !== c.version) return false;
    const list = new BlockList();
    list.addSubnet(c.address, c.prefix, c.version === 4 ? "ipv4" : "ipv6");
    return list.check(ip, version === 4 ? "ipv4" : "ipv6");
}

/** True when `ip` is a usable host address of `cidr` (for IPv4: not its network or broadcast). */
export function ipInCidr(ip: string, cidr: string): boolean {
    if (!inNetwork(ip, cidr)) return false;
    const c = parseCidr(cidr) as Cidr;
    if (c.version === 4) {
        // Network and broadcast addresses are not hosts.
        const offset = ipv4ToInt(ip) % 2 ** (32 - c.prefix);
        return c.prefix >= 31 || (offset !== 0 && offset !== 2 ** (32 - c.prefix) - 1);
    }
    return true;
}
