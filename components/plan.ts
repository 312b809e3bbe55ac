// The plan: every decision that needs no cloud call, made in pure code from the validated
// config. Placement, mesh addresses, DNS names, who may reach which port, what each failure
// leaves standing. The resources follow the plan; the lab and the offline plan read it too.
import { createHash } from "node:crypto";
import { allNodes, ConfigError, ConfigIssue, PROJECT, Role, StackConfig } from "./config";
import { cloudflareCosts, CostLine, nodeMonthlyUsd, roundUsd } from "./cost";
import { cidrHostCount, nthHost } from "./net";
import { failureTable, FailureRow } from "./failures";
import { RELEASE_PORT_SPAN } from "./release";

export interface PlannedNode {
    name: string;
    role: Role;
    provider: string;
    region: string;
    size?: string;
    /** provider/region: what one data-centre outage takes down together. */
    failureDomain: string;
    meshAddress: string;
    /** DNS-only record pointing at the node's public addresses; peers dial it. */
    dnsName: string;
    /** True when the node votes in etcd (see etcdVoters). */
    etcdVoter: boolean;
    monthlyUsd: number;
    /** Bring-your-own hosts only. */
    host?: { address: string; user: string };
}

/** Who may reach a port: the internet, Cloudflare's edge, the admin ranges, or mesh roles. */
export type Source = { kind: "internet" } | { kind: "cloudflare" } | { kind: "admin"; cidrs: string[] } | { kind: "mesh"; roles: Role[] };

export interface PortRule {
    service: string;
    protocol: "tcp" | "udp";
    port: number;
    /** The last port of a range port..portEnd. */
    portEnd?: number;
    from: Source;
}

export interface StackPlan {
    config: StackConfig;
    nodes: PlannedNode[];
    /** Inbound rules per role; every other port is closed. */
    ports: Record<Role, PortRule[]>;
    failures: FailureRow[];
    /** Monthly costs beyond the servers (Cloudflare's plan and add-ons), each with what it is. */
    extraCosts: CostLine[];
    monthlyCostUsd: number;
}

export const DB_PORTS = { postgres: 5432, patroni: 8008, etcdClient: 2379, etcdPeer: 2380, pgbackrest: 8432 } as const;
export const HAPROXY_PORTS = { http: 80, https: 443, dbPrimary: 5000, dbReplicas: 5001, stats: 8404, pooler: 6432 } as const;
/** Every node's rollout status server (components/rollout.ts): its group's nodes read it on the mesh. */
export const ROLLOUT_STATUS_PORT = 2382;

/** The roles whose nodes roll out together with `role`'s (the database members with the witness). */
export function rolloutPeerRoles(role: Role): Role[] {
    return role === "db" || role === "witness" ? ["db", "witness"] : [role];
}

/** The role whose nodes run the rollout view (node-agent/vpsha/rollout_view.py): it reads every node's status server. */
export const ROLLOUT_VIEW_ROLE: Role = "haproxy";
/** The rollout view's port, on 127.0.0.1 of each HAProxy node: HAProxy sends /vps-ha/rollout there. */
export const ROLLOUT_VIEW_PORT = 2383;

/**
 * Who may read a `role` node's rollout status: its own group, the rollout view, and the roles that
 * wait for it during a secrets rotation (components/rollout.ts ROTATION_AFTER: the app nodes wait
 * for the HAProxy pair, which waits for the members; the members retire the old logins once the app
 * nodes have moved).
 */
export function rolloutStatusReaders(role: Role): Role[] {
    const waiting: Role[] = role === "haproxy" ? ["app"] : role === "app" ? ["db"] : [];
    return [...new Set([...rolloutPeerRoles(role), ROLLOUT_VIEW_ROLE, ...waiting])];
}

/** The monitoring's ports (components/monitoring.ts): exporters on every node, Prometheus and Alertmanager on the monitoring nodes. */
export const MONITORING_PORTS = {
    nodeExporter: 9100,
    postgresExporter: 9187,
    /** etcd's --listen-metrics-urls: /metrics and /health without the client API (2379 stays db/witness only). */
    etcdMetrics: 2381,
    prometheus: 9090,
    alertmanager: 9093,
    alertmanagerCluster: 9094,
} as const;

/** Which role runs the monitoring (Prometheus and Alertmanager), and so may scrape every node. */
export const MONITORING_ROLE: Role = "haproxy";

/** The firewall rules monitoring adds to each role's (portRules below): mesh only, from the monitoring role. */
export function monitoringPortRules(): Record<Role, PortRule[]> {
    const fromMonitors = { kind: "mesh" as const, roles: [MONITORING_ROLE] };
    const node: PortRule = { service: "node-exporter", protocol: "tcp", port: MONITORING_PORTS.nodeExporter, from: fromMonitors };
    const etcd: PortRule = { service: "etcd-metrics", protocol: "tcp", port: MONITORING_PORTS.etcdMetrics, from: fromMonitors };
    return {
        app: [node],
        haproxy: [
            node,
            { service: "prometheus", protocol: "tcp", port: MONITORING_PORTS.prometheus, from: fromMonitors },
            { service: "alertmanager", protocol: "tcp", port: MONITORING_PORTS.alertmanager, from: fromMonitors },
            // Alertmanager's gossip (memberlist) uses both TCP and UDP on one port.
            { service: "alertmanager-cluster", protocol: "tcp", port: MONITORING_PORTS.alertmanagerCluster, from: fromMonitors },
            { service: "alertmanager-cluster", protocol: "udp", port: MONITORING_PORTS.alertmanagerCluster, from: fromMonitors },
        ],
        db: [node, { service: "postgres-exporter", protocol: "tcp", port: MONITORING_PORTS.postgresExporter, from: fromMonitors }, etcd],
        witness: [node, etcd],
    };
}

/** `<stack>.nodes.<domain>`: where the nodes' records (and the mesh directory) live. */
export function nodesDomain(config: Pick<StackConfig, "domain" | "stack">): string {
    return `${config.stack}.nodes.${config.domain}`;
}

export function nodeDnsName(config: Pick<StackConfig, "domain" | "stack">, name: string): string {
    return `${name}.${nodesDomain(config)}`;
}

/**
 * A node's mesh address is a hash of its name alone, so adding, removing or reordering other
 * nodes never moves it. A collision is not resolved silently (that would move somebody): it is
 * reported, and the user pins one of the two with `meshAddress`.
 */
export function meshAddresses(config: StackConfig): Map<string, string> {
    const hosts = cidrHostCount(config.mesh.cidr);
    const taken = new Map<string, string>();
    const issues: ConfigIssue[] = [];
    const result = new Map<string, string>();
    const entries = allNodes(config);
    const pinned = new Set(entries.filter((e) => e.node.meshAddress).map((e) => e.node.meshAddress as string));
    for (const { role, index, node } of entries) {
        const address = node.meshAddress ?? nthHost(config.mesh.cidr, 1 + (hashOf(node.name) % hosts));
        const owner = taken.get(address);
        if (owner || (!node.meshAddress && pinned.has(address))) {
            issues.push({
                path: `${PROJECT}:nodes.${role}[${index}].meshAddress`,
                message: `node "${node.name}" would get mesh address ${address}, which ${owner ? `"${owner}" has` : "is pinned by another node"}; pin one of them to a free address in ${config.mesh.cidr} with meshAddress`,
            });
        }
        taken.set(address, node.name);
        result.set(node.name, address);
    }
    if (issues.length > 0) throw new ConfigError(issues);
    return result;
}

function hashOf(text: string): number {
    return createHash("sha256").update(text).digest().readUInt32BE(0);
}

/**
 * etcd needs an odd number of voters, and no provider should hold a majority of them when a
 * witness exists to prevent it. Every database node runs etcd; when db members plus witness are
 * even, one member of the provider with the most voters becomes a non-voting client so the
 * loss of that provider still leaves a quorum.
 */
export function etcdVoters(config: StackConfig): Set<string> {
    const members = [...config.nodes.db, ...config.nodes.witness];
    const voters = new Set(members.map((m) => m.name));
    if (voters.size % 2 === 0) {
        const perProvider = new Map<string, string[]>();
        for (const m of config.nodes.db) perProvider.set(m.provider, [...(perProvider.get(m.provider) ?? []), m.name]);
        const largest = [...perProvider.values()].sort((a, b) => b.length - a.length)[0];
        voters.delete(largest[largest.length - 1]);
    }
    return voters;
}

export function portRules(config: StackConfig): Record<Role, PortRule[]> {
    const wireguard: PortRule = { service: "wireguard", protocol: "udp", port: config.mesh.port, from: { kind: "internet" } };
    const ssh: PortRule[] = config.admin.sshCidrs.length > 0 ? [{ service: "ssh", protocol: "tcp", port: 22, from: { kind: "admin", cidrs: config.admin.sshCidrs } }] : [];
    // A rollout's next node reads the status of the nodes before it (the same group), and the
    // HAProxy nodes' rollout view reads every node's for `pulumi up`.
    const rolloutStatus = (role: Role): PortRule => ({ service: "rollout-status", protocol: "tcp", port: ROLLOUT_STATUS_PORT, from: { kind: "mesh", roles: rolloutStatusReaders(role) } });
    const common = [wireguard, ...ssh];
    const etcd: PortRule[] = [
        { service: "etcd-client", protocol: "tcp", port: DB_PORTS.etcdClient, from: { kind: "mesh", roles: ["db", "witness"] } },
        { service: "etcd-peer", protocol: "tcp", port: DB_PORTS.etcdPeer, from: { kind: "mesh", roles: ["db", "witness"] } },
    ];
    const monitoring = monitoringPortRules();
    const rules: Record<Role, PortRule[]> = {
        // Every image of a release listens on its own port in this range (components/release.ts).
        app: [...common, rolloutStatus("app"), { service: "app", protocol: "tcp", port: config.app.port, portEnd: config.app.port + RELEASE_PORT_SPAN - 1, from: { kind: "mesh", roles: ["haproxy"] } }],
        haproxy: [
            ...common,
            rolloutStatus("haproxy"),
            { service: "http", protocol: "tcp", port: HAPROXY_PORTS.http, from: { kind: "cloudflare" } },
            { service: "https", protocol: "tcp", port: HAPROXY_PORTS.https, from: { kind: "cloudflare" } },
            { service: "db-primary", protocol: "tcp", port: HAPROXY_PORTS.dbPrimary, from: { kind: "mesh", roles: ["app"] } },
            // pgbouncer: the apps' pooled URL; database members pause and resume it in a switchover.
            { service: "pooler", protocol: "tcp", port: HAPROXY_PORTS.pooler, from: { kind: "mesh", roles: ["app", "db"] } },
            { service: "db-replicas", protocol: "tcp", port: HAPROXY_PORTS.dbReplicas, from: { kind: "mesh", roles: ["app"] } },
            // Database members read it during a switchover: does HAProxy route to the new primary yet?
            { service: "stats", protocol: "tcp", port: HAPROXY_PORTS.stats, from: { kind: "mesh", roles: ["haproxy", "app", "db"] } },
        ],
        db: [
            ...common,
            rolloutStatus("db"),
            { service: "postgres", protocol: "tcp", port: DB_PORTS.postgres, from: { kind: "mesh", roles: ["db", "haproxy"] } },
            { service: "patroni", protocol: "tcp", port: DB_PORTS.patroni, from: { kind: "mesh", roles: ["db", "haproxy"] } },
            // pgBackRest's TLS server: a replica taking a backup reaches the primary through it.
            ...(config.database.backups ? [{ service: "pgbackrest", protocol: "tcp" as const, port: DB_PORTS.pgbackrest, from: { kind: "mesh" as const, roles: ["db" as Role] } }] : []),
            ...etcd,
        ],
        witness: [...common, rolloutStatus("witness"), ...etcd],
    };
    for (const role of Object.keys(rules) as Role[]) rules[role].push(...monitoring[role]);
    return rules;
}

export function buildPlan(config: StackConfig): StackPlan {
    const addresses = meshAddresses(config);
    const voters = etcdVoters(config);
    const nodes: PlannedNode[] = allNodes(config).map(({ role, node }) => ({
        name: node.name,
        role,
        provider: node.provider,
        region: node.region,
        ...(node.size ? { size: node.size } : {}),
        failureDomain: `${node.provider}/${node.region}`,
        meshAddress: addresses.get(node.name) as string,
        dnsName: nodeDnsName(config, node.name),
        etcdVoter: voters.has(node.name),
        monthlyUsd: nodeMonthlyUsd(node),
        ...(node.host ? { host: { address: node.host, user: node.user ?? "root" } } : {}),
    }));
    const origins = nodes.filter((n) => n.role === "haproxy").length;
    const extraCosts = cloudflareCosts(config, origins);
    const monthlyCostUsd = roundUsd([...nodes, ...extraCosts].reduce((sum, n) => sum + n.monthlyUsd, 0));
    const plan = { config, nodes, ports: portRules(config), failures: [] as FailureRow[], extraCosts, monthlyCostUsd };
    plan.failures = failureTable(plan);
    return plan;
}
