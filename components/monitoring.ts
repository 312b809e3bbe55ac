// Monitoring, planned: which nodes run Prometheus and Alertmanager, what each of them scrapes on
// which mesh port, and which ports the host firewall must open for it. Pure, from the plan.
//
// Both HAProxy nodes (one per provider) run Prometheus and Alertmanager. Each Prometheus scrapes
// every node over the mesh and evaluates the same rules with the same labels, and sends to both
// Alertmanagers; the two Alertmanagers gossip over the mesh and notify once. So losing either
// node, or either provider, leaves one whole monitoring path, and nothing is told twice.
import { DB_PORTS, HAPROXY_PORTS, MONITORING_PORTS, MONITORING_ROLE, PlannedNode, StackPlan } from "./plan";
import type { AlertmanagerSpec, AlertDelivery } from "./render/alertmanager";
import type { AlertRulesSpec } from "./render/alert-rules";
import { Role, ROLES } from "./config";
import { PROMETHEUS_TARGETS_DIR } from "./render/prometheus";
import type { PrometheusSpec, ScrapeJob } from "./render/prometheus";
import type { StatusViewSpec } from "./render/rollout-view";

// The ports and their firewall rules live in the plan (every role's rules are the plan's); re-exported here.
export { MONITORING_PORTS, MONITORING_ROLE, monitoringPortRules } from "./plan";

/**
 * Timing and retention. A 15 s scrape and evaluation interval puts a condition's first firing
 * evaluation within 30 s of its start (plus its `for`). 15 days at 15 s for the prod stack's
 * series is a few hundred MB; the size cap keeps the smallest disk safe if series grow.
 */
export const MONITORING_TIMING = { scrapeIntervalSeconds: 15, evaluationIntervalSeconds: 15, scrapeTimeoutSeconds: 10 } as const;
export const PROMETHEUS_RETENTION = { time: "15d", size: "2GB" } as const;

export function monitoringNodes(plan: StackPlan): PlannedNode[] {
    return plan.nodes.filter((n) => n.role === MONITORING_ROLE);
}

/** What the directory agent needs to keep the file_sd jobs' targets (its directory.d file on a monitoring node). */
export function prometheusDirectory(plan: StackPlan): { dir: string; jobs: { name: string; port: number; roles: string[] }[] } {
    return { dir: PROMETHEUS_TARGETS_DIR, jobs: scrapeJobs(plan).filter((j) => j.fileSd).map((j) => ({ name: j.name, port: j.port, roles: j.fileSd!.roles })) };
}

/** Every scrape job: which nodes, which port and path. Patroni and HAProxy serve their own /metrics on ports already open to the HAProxy role. */
export function scrapeJobs(plan: StackPlan): ScrapeJob[] {
    const target = (n: PlannedNode) => ({ node: n.name, role: n.role, address: n.meshAddress });
    const of = (pred: (n: PlannedNode) => boolean) => plan.nodes.filter(pred).map(target);
    const monitors = monitoringNodes(plan);
    // Every node's exporter and the members' daemons follow the directory (a node joining or
    // leaving changes no monitoring node's files); etcd's voters and the monitoring nodes change
    // only with the members or the HAProxy pair, whose changes rewrite their configs anyway.
    const dynamic = (name: string, roles: Role[]) => ({ fileSd: { path: `${PROMETHEUS_TARGETS_DIR}/${name}.json`, roles } });
    const jobs: ScrapeJob[] = [
        { name: "node", port: MONITORING_PORTS.nodeExporter, path: "/metrics", targets: of(() => true), ...dynamic("node", [...ROLES]) },
        { name: "postgres", port: MONITORING_PORTS.postgresExporter, path: "/metrics", targets: of((n) => n.role === "db"), ...dynamic("postgres", ["db"]) },
        { name: "patroni", port: DB_PORTS.patroni, path: "/metrics", targets: of((n) => n.role === "db"), ...dynamic("patroni", ["db"]) },
        // gRPC and etcd's debugging series are ~1000 per member and no rule reads them.
        { name: "etcd", port: MONITORING_PORTS.etcdMetrics, path: "/metrics", targets: of((n) => n.etcdVoter), dropMetrics: "grpc_.*|etcd_debugging_.*" },
        { name: "haproxy", port: HAPROXY_PORTS.stats, path: "/metrics", targets: of((n) => n.role === "haproxy"), ...dynamic("haproxy", ["haproxy"]) },
        { name: "prometheus", port: MONITORING_PORTS.prometheus, path: "/metrics", targets: monitors.map(target) },
        // Alertmanager runs only when the stack sends alerts (vps-ha:alerts): a job for an absent one would raise MonitoringDown.
        { name: "alertmanager", port: MONITORING_PORTS.alertmanager, path: "/metrics", targets: plan.config.alerts ? monitors.map(target) : [] },
    ];
    return jobs.filter((j) => j.targets.length > 0 || j.fileSd);
}

export const PROMETHEUS_RULES_FILE = "/etc/prometheus/rules/vps-ha.yml";

export function prometheusSpec(plan: StackPlan, node: PlannedNode, ruleFiles: string[] = [PROMETHEUS_RULES_FILE]): PrometheusSpec {
    if (node.role !== MONITORING_ROLE) throw new Error(`${node.name} does not run Prometheus (the ${MONITORING_ROLE} nodes do)`);
    return {
        stack: plan.config.stack,
        listenAddress: node.meshAddress,
        port: MONITORING_PORTS.prometheus,
        ...MONITORING_TIMING,
        retention: PROMETHEUS_RETENTION,
        jobs: scrapeJobs(plan),
        alertmanagers: monitoringNodes(plan).map((n) => `${n.meshAddress}:${MONITORING_PORTS.alertmanager}`),
        ruleFiles,
    };
}

export function alertmanagerSpec(plan: StackPlan, node: PlannedNode, delivery: AlertDelivery): AlertmanagerSpec {
    if (node.role !== MONITORING_ROLE) throw new Error(`${node.name} does not run Alertmanager (the ${MONITORING_ROLE} nodes do)`);
    return {
        stack: plan.config.stack,
        listenAddress: node.meshAddress,
        port: MONITORING_PORTS.alertmanager,
        clusterPort: MONITORING_PORTS.alertmanagerCluster,
        peers: monitoringNodes(plan).filter((n) => n.name !== node.name).map((n) => n.meshAddress),
        delivery,
    };
}

/** What the rules need to know of the stack: its stanza, which members, whether commits wait for standbys. */
export function alertRulesSpec(plan: StackPlan): AlertRulesSpec {
    const cfg = plan.config;
    return {
        stack: cfg.stack,
        stanza: cfg.database.backups ? cfg.stack : undefined,
        synchronous: cfg.database.synchronous !== "off",
        hasDatabase: plan.nodes.some((n) => n.role === "db"),
    };
}

/** What the status view on the HAProxy nodes asks (render/rollout-view.ts): Patroni's port, the monitoring nodes, the stanza. */
export function statusViewSpec(plan: StackPlan): StatusViewSpec {
    return {
        patroniPort: DB_PORTS.patroni,
        monitors: monitoringNodes(plan).map((n) => ({ name: n.name, address: n.meshAddress })),
        prometheusPort: MONITORING_PORTS.prometheus,
        stanza: alertRulesSpec(plan).stanza ?? null,
    };
}
