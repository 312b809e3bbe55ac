// Prometheus 2.53 (Debian 13's `prometheus`) on each monitoring node: prometheus.yml, and the
// flags Debian's unit reads from /etc/default/prometheus. Every target is a mesh address; each
// sample's `instance` is the node's name, so rules and alerts speak of db-2, not 10.77.0.14:9100.
import { stringify } from "yaml";

export const PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml";
export const PROMETHEUS_DEFAULTS = "/etc/default/prometheus";
export const PROMETHEUS_UNIT = "prometheus.service";
/** The file_sd target files the directory agent writes, one per job. */
export const PROMETHEUS_TARGETS_DIR = "/etc/prometheus/targets";

export interface ScrapeTarget {
    /** The node's name: the `instance` label. */
    node: string;
    role: string;
    /** Its mesh address. */
    address: string;
}

export interface ScrapeJob {
    /** The `job` label. */
    name: string;
    port: number;
    path: string;
    targets: ScrapeTarget[];
    /** Metric names (a regex over the whole name) dropped at scrape: series nothing reads. */
    dropMetrics?: string;
    /**
     * Targets from a file the directory agent keeps (the members of these roles, from the signed
     * directory), so a node joining or leaving changes no monitoring node's configuration;
     * `targets` is then the plan's view of the same.
     */
    fileSd?: { path: string; roles: string[] };
}

export interface PrometheusSpec {
    /** Added to every alert as `stack`; the same on both Prometheus servers, so Alertmanager sees one alert, not two. */
    stack: string;
    /** This node's mesh address: the web UI and API listen there only. */
    listenAddress: string;
    port: number;
    scrapeIntervalSeconds: number;
    scrapeTimeoutSeconds: number;
    evaluationIntervalSeconds: number;
    /** How long samples are kept, and the most disk they may take (Prometheus' units: 15d, 2GB). */
    retention: { time: string; size: string };
    jobs: ScrapeJob[];
    /** Every Alertmanager, address:port: Prometheus sends each alert to all of them. */
    alertmanagers: string[];
    ruleFiles: string[];
}

const NAME = /^[a-z][a-z0-9_-]*$/;
const ADDRESS = /^(\d{1,3}\.){3}\d{1,3}$/;

function check(spec: PrometheusSpec): void {
    if (!ADDRESS.test(spec.listenAddress)) throw new Error(`prometheus: listenAddress "${spec.listenAddress}" is not an IPv4 address`);
    if (!NAME.test(spec.stack)) throw new Error(`prometheus: stack "${spec.stack}" must be lower-case letters, digits, - and _`);
    for (const j of spec.jobs) {
        if (!NAME.test(j.name)) throw new Error(`prometheus: job name "${j.name}" must be lower-case letters, digits, - and _`);
        for (const t of j.targets) {
            if (!ADDRESS.test(t.address)) throw new Error(`prometheus: job ${j.name}: target ${t.node} has address "${t.address}", not an IPv4 address`);
        }
    }
    if (!/^\d+[smhdwy]$/.test(spec.retention.time)) throw new Error(`prometheus: retention time "${spec.retention.time}" must be a number and one of s m h d w y`);
    if (!/^\d+(B|KB|MB|GB|TB)$/.test(spec.retention.size)) throw new Error(`prometheus: retention size "${spec.retention.size}" must be a number and one of B KB MB GB TB`);
}

export function renderPrometheusConfig(spec: PrometheusSpec): string {
    check(spec);
    const doc = {
        global: {
            scrape_interval: `${spec.scrapeIntervalSeconds}s`,
            scrape_timeout: `${spec.scrapeTimeoutSeconds}s`,
            evaluation_interval: `${spec.evaluationIntervalSeconds}s`,
            external_labels: { stack: spec.stack },
        },
        rule_files: spec.ruleFiles,
        alerting: {
            alertmanagers: [{ static_configs: [{ targets: spec.alertmanagers }] }],
        },
        scrape_configs: spec.jobs.map((j) => ({
            job_name: j.name,
            metrics_path: j.path,
            // One group per node: its labels name the node, not its address.
            ...(j.fileSd
                ? { file_sd_configs: [{ files: [j.fileSd.path] }] }
                : { static_configs: j.targets.map((t) => ({ targets: [`${t.address}:${j.port}`], labels: { instance: t.node, role: t.role } })) }),
            ...(j.dropMetrics ? { metric_relabel_configs: [{ source_labels: ["__name__"], regex: j.dropMetrics, action: "drop" }] } : {}),
        })),
    };
    return `# vps-ha: Prometheus for stack ${spec.stack}. Rendered by the program; changes here are replaced.\n${stringify(doc, { lineWidth: 0 })}`;
}

/** /etc/default/prometheus: Debian's unit runs `prometheus $ARGS`. */
export function renderPrometheusDefaults(spec: PrometheusSpec): string {
    check(spec);
    const args = [
        `--config.file=${PROMETHEUS_CONFIG}`,
        `--web.listen-address=${spec.listenAddress}:${spec.port}`,
        `--storage.tsdb.retention.time=${spec.retention.time}`,
        `--storage.tsdb.retention.size=${spec.retention.size}`,
    ];
    return `# vps-ha: flags for Debian's prometheus.service. Rendered by the program.\nARGS="${args.join(" ")}"\n`;
}
