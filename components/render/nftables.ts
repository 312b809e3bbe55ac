// The host firewall: the second wall behind the provider's. Public side: WireGuard, SSH from the
// admin ranges, and 80/443 on HAProxy nodes (the provider firewall narrows those to Cloudflare;
// on a host you bring, which has none, the rule here names Cloudflare's ranges itself).
// Mesh side: each service port only from the mesh addresses of the roles the plan allows. Those
// addresses live in one named set per role, filled at run time by the directory agent
// (render/directory-agent.ts), so this file names no other node and never changes with the node set.
import { Role, ROLES } from "../config";
import { HAPROXY_PORTS } from "../plan";
import { CloudConfigPart } from "./cloud-config";
import { enableReloaded } from "./systemd";
import { MESH_INTERFACE } from "./wireguard";

export interface HostFirewallRule {
    service: string;
    protocol: "tcp" | "udp";
    port: number;
    /** The last port of a range port..portEnd. */
    portEnd?: number;
    /** "any": from anywhere on the public side; cidrs: from these only; meshRoles: from these roles' mesh addresses. */
    from: "any" | { cidrs: string[] } | { meshRoles: Role[] };
}

export const NFTABLES_FILE = "/etc/nftables.conf";
export const NFT_FAMILY = "inet";
export const NFT_TABLE = "vps_ha";

/** The named set holding the mesh addresses of a role's nodes. */
export function meshSetName(role: Role): string {
    return `mesh_${role}`;
}

/**
 * The providers' metadata services (Hetzner's and Linode's IPv4 address, Linode's IPv6 one): they
 * hand out the node's whole user-data, keys included, so only root (cloud-init) may ask them.
 */
export const METADATA_ADDRESSES = { ipv4: "169.254.169.254", ipv6: "fd00:a9fe:a9fe::1" } as const;

/**
 * The host uids (and gids) an app container's users map to (render/app.ts): its root is host uid
 * CONTAINER_UID_BASE, never root on the host, and these rules know the container's traffic by
 * its sockets' owner. No other process on any node runs with these uids.
 */
export const CONTAINER_UID_BASE = 200000;
export const CONTAINER_UID_COUNT = 65536;
/** The service of the app's ports in plan.ts (its inbound rule): the node it is on runs app containers. */
export const APP_SERVICE = "app";
/** What an app container may open on the mesh: the HAProxy nodes' database and pooler ports. */
export const CONTAINER_MESH_PORTS = [HAPROXY_PORTS.dbPrimary, HAPROXY_PORTS.dbReplicas, HAPROXY_PORTS.pooler];

/** Mesh peers that stopped answering (filled by render/peer-watch.ts): TCP to them is refused at once. */
export const PEER_GONE_SET = "mesh_gone";

function containerRules(): string[] {
    const owner = `meta skuid ${CONTAINER_UID_BASE}-${CONTAINER_UID_BASE + CONTAINER_UID_COUNT - 1} ct state new`;
    return [
        `    ${owner} oifname "${MESH_INTERFACE}" ip daddr @${meshSetName("haproxy")} tcp dport { ${CONTAINER_MESH_PORTS.join(", ")} } accept comment "app containers: the database through HAProxy"`,
        `    ${owner} oifname "${MESH_INTERFACE}" reject comment "app containers: nothing else of the mesh"`,
        `    ${owner} oifname "lo" meta l4proto { tcp, udp } th dport 53 accept comment "app containers: the node's resolver"`,
        `    ${owner} oifname "lo" reject comment "app containers: no service of the node itself"`,
    ];
}

export function renderNftables(rules: HostFirewallRule[]): string {
    const lines = [
        "#!/usr/sbin/nft -f",
        "# vps-ha host firewall: everything not listed here is dropped.",
        "flush ruleset",
        "",
        `table ${NFT_FAMILY} ${NFT_TABLE} {`,
        // Filled by the directory agent; empty (nothing admitted) until it has read the directory.
        ...[...ROLES.map(meshSetName), PEER_GONE_SET].flatMap((set) => [`  set ${set} {`, "    type ipv4_addr", "  }"]),
        "",
        // A reset from this node itself: the caller's connect fails now, not after its timeout.
        "  chain output {",
        "    type filter hook output priority filter; policy accept;",
        `    ip daddr @${PEER_GONE_SET} meta l4proto tcp reject with tcp reset comment "mesh peer not answering"`,
        // Every local user but root, containers' mapped users included (their uids are not 0 here).
        `    ip daddr ${METADATA_ADDRESSES.ipv4} meta skuid != 0 reject comment "metadata service: root only"`,
        `    ip6 daddr ${METADATA_ADDRESSES.ipv6} meta skuid != 0 reject comment "metadata service: root only"`,
        // An app container opens nothing of the mesh but the database through HAProxy, and of the
        // node itself only the resolver; the internet stays open to it. App nodes only (the node
        // that admits the app's ports runs its containers).
        ...(rules.some((r) => r.service === APP_SERVICE) ? containerRules() : []),
        "  }",
        "",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        '    iif "lo" accept',
        "    ct state established,related accept",
        "    ct state invalid drop",
        "    meta l4proto { icmp, ipv6-icmp } accept",
    ];
    for (const r of rules) {
        const match = `${r.protocol} dport ${r.portEnd !== undefined ? `${r.port}-${r.portEnd}` : r.port}`;
        const comment = `comment "${r.service}"`;
        if (r.from === "any") lines.push(`    ${match} accept ${comment}`);
        else if ("cidrs" in r.from) {
            const v4 = r.from.cidrs.filter((c) => !c.includes(":"));
            const v6 = r.from.cidrs.filter((c) => c.includes(":"));
            if (v4.length > 0) lines.push(`    ip saddr { ${v4.join(", ")} } ${match} accept ${comment}`);
            if (v6.length > 0) lines.push(`    ip6 saddr { ${v6.join(", ")} } ${match} accept ${comment}`);
        } else {
            for (const role of r.from.meshRoles) lines.push(`    iifname "${MESH_INTERFACE}" ip saddr @${meshSetName(role)} ${match} accept ${comment}`);
        }
    }
    lines.push("  }", "", "  chain forward {", "    type filter hook forward priority filter; policy drop;", "  }", "}", "");
    return lines.join("\n");
}

export function hostFirewallPart(rules: HostFirewallRule[]): CloudConfigPart {
    return {
        packages: ["nftables"],
        files: [{ path: NFTABLES_FILE, content: renderNftables(rules), permissions: "0755" }],
        commands: [enableReloaded(["nftables.service"])],
    };
}
