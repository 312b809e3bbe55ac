// The monitoring's share of a node: what each role runs so the stack is watched from inside.
// Every node: node_exporter on its mesh address (with the textfile collector reading vps-ha's own
// signals) and the signal collectors (vpsha.signals) on a timer. Database members: postgres_exporter,
// the role it logs in as, and the backup collector. Monitoring nodes (the HAProxy pair):
// Prometheus with the alert rules, Alertmanager clustered with the other monitoring node, and the
// pooler's signal. Patroni's, etcd's and HAProxy's own /metrics are their renderers' (patroni.ts,
// etcd.ts, haproxy.ts). Debian 13's packages throughout.
import { backupTarget, OFFLINE_SECRET, StackConfig } from "../config";
import { alertmanagerSpec, alertRulesSpec, monitoringNodes, prometheusDirectory, PROMETHEUS_RULES_FILE, prometheusSpec } from "../monitoring";
import { DB_PORTS, HAPROXY_PORTS, MONITORING_PORTS, MONITORING_ROLE, PlannedNode, StackPlan } from "../plan";
import { ALERTMANAGER_CONFIG, ALERTMANAGER_DEFAULTS, ALERTMANAGER_SMTP_PASSWORD_FILE, ALERTMANAGER_UNIT, AlertDelivery, renderAlertmanagerConfig, renderAlertmanagerDefaults } from "./alertmanager";
import { renderAlertRules } from "./alert-rules";
import { CloudConfigPart, FilePart } from "./cloud-config";
import { DESIRED_STATUS } from "./desired-agent";
import { DIRECTORY_CONFIG_DIR, DIRECTORY_STATUS, DIRECTORY_UNIT } from "./directory-agent";
import { ORIGIN_PEM } from "./haproxy";
import { NODE_EXPORTER_DEFAULTS, NODE_EXPORTER_UNIT, renderNodeExporterDefaults } from "./node-exporter";
import { APP_DATABASE, PG_BIN_DIR, PG_SOCKET_DIR } from "./patroni";
import { TLS_FILES } from "./pgbackrest";
import { POOLER_ADMIN_USER } from "./pgbouncer";
import { MONITOR_DB_USER, POSTGRES_EXPORTER_DEFAULTS, POSTGRES_EXPORTER_QUERIES, POSTGRES_EXPORTER_UNIT, renderPostgresExporterDefaults, renderPostgresExporterQueries } from "./postgres-exporter";
import { PROMETHEUS_CONFIG, PROMETHEUS_DEFAULTS, PROMETHEUS_UNIT, renderPrometheusConfig, renderPrometheusDefaults } from "./prometheus";
import { toolFiles } from "./python-lib";
import { renderSignalTable } from "./signals";
import { disableReloaded, enableReloaded, renderUnit } from "./systemd";
import { APT_UPGRADE_UNIT } from "./unattended-upgrades";

/** The directory agent's settings for Prometheus' targets (monitoring nodes). */
export const PROMETHEUS_DIRECTORY = `${DIRECTORY_CONFIG_DIR}/prometheus.json`;
export const SIGNALS_TOOL = "/usr/local/sbin/vps-ha-signals";
export const SIGNALS_CONFIG = "/etc/vps-ha/signals.json";
export const SIGNAL_TABLE = "/etc/vps-ha/signal-table.json";
/** vpsha.desired's status file (its config's `status`): the desired-state collector reads it. */
export { DESIRED_STATUS };
/** Every minute: the node's own state; every 10 minutes: the repository (each run lists the bucket). */
export const SIGNALS_UNIT = "vps-ha-signals";
export const BACKUP_SIGNALS_UNIT = "vps-ha-signals-backup";
/** The upgrades' signals: hourly (each run reads apt's whole cache), and after each unattended-upgrades run. */
export const UPGRADE_SIGNALS_UNIT = "vps-ha-signals-upgrades";
export const SIGNAL_INTERVALS = { node: "1min", backup: "10min", upgrades: "1h" } as const;
/** apt-daily-upgrade.service's drop-in: the upgrades' signals once unattended-upgrades has run, passed or not. */
export const APT_UPGRADE_DROPIN = `/etc/systemd/system/${APT_UPGRADE_UNIT}.d/vps-ha-signals.conf`;
/** Creates postgres_exporter's role on the primary (replicas get it by replication); until it exists. */
export const MONITOR_ROLE_UNIT = "vps-ha-monitor-role";
export const MONITOR_ROLE_SCRIPT = "/usr/local/lib/vps-ha/monitor-role";

/** The daily restore check (vpsha.restore_check) on the member whose turn it is. */
export const RESTORE_CHECK_TOOL = "/usr/local/sbin/vps-ha-restore-check";
export const RESTORE_CHECK_CONFIG = "/etc/vps-ha/restore-check.json";
export const RESTORE_CHECK_UNIT = "vps-ha-restore-check";
/** After the night's full or differential backup (03:00) has had two hours. */
export const RESTORE_CHECK_SCHEDULE = "*-*-* 05:00:00";

export const MONITORING_PACKAGES = {
    // dbus: node_exporter's systemd collector (failed units) asks systemd over the system bus.
    node: ["prometheus-node-exporter", "python3-cryptography", "dbus"],
    db: ["prometheus-postgres-exporter"],
    monitor: ["prometheus", "prometheus-alertmanager", "python3-psycopg2"],
} as const;

/** What the monitoring of one node needs that the program generates or the stack file holds (secret). */
export interface MonitoringSecrets {
    /** pgbouncer's admin console (HAProxy nodes: the pooler's signal). */
    poolerAdminPassword?: string;
}

/** Where alerts go, from vps-ha:alerts; undefined when the key is absent (no alerts are sent). */
export function alertDelivery(config: Pick<StackConfig, "alerts">): AlertDelivery | undefined {
    const a = config.alerts;
    if (!a) return undefined;
    // An offline evaluation cannot read a secret URL: a reserved name that never resolves stands in.
    const url = (u: string | undefined) => (u === OFFLINE_SECRET ? "https://offline-secret.invalid/" : u);
    return {
        ...(a.webhookUrl ? { webhookUrl: url(a.webhookUrl) } : {}),
        ...(a.heartbeatUrl ? { heartbeatUrl: url(a.heartbeatUrl) } : {}),
        ...(a.email ? { email: { to: a.email.to, from: a.email.from, smarthost: a.email.smarthost, ...(a.email.username ? { username: a.email.username } : {}), password: a.email.password !== undefined } } : {}),
    };
}

/** vpsha.signals' config for this node: which collectors it has, and where each reads. */
export function signalsConfig(plan: StackPlan, node: PlannedNode, secrets: MonitoringSecrets): Record<string, unknown> {
    const backups = node.role === "db" && backupTarget(plan.config) !== undefined;
    const certificates: Record<string, string> = {
        ...(backups ? { "pgbackrest-ca": TLS_FILES.ca, pgbackrest: TLS_FILES.cert } : {}),
        ...(node.role === "haproxy" ? { origin: ORIGIN_PEM } : {}),
    };
    return {
        signalTable: SIGNAL_TABLE,
        desiredStatus: DESIRED_STATUS,
        directoryStatus: DIRECTORY_STATUS,
        // Where apt keeps what the upgrades' signals read: vpsha.upgrades' defaults.
        upgrades: {},
        ...(Object.keys(certificates).length ? { certificates } : {}),
        ...(backups ? { stanza: plan.config.stack, pgbackrestUser: "postgres" } : {}),
        ...(node.role === "haproxy" && secrets.poolerAdminPassword
            ? { pooler: { host: "127.0.0.1", port: HAPROXY_PORTS.pooler, user: POOLER_ADMIN_USER, password: secrets.poolerAdminPassword, database: APP_DATABASE } }
            : {}),
    };
}

/** The collectors the every-minute unit runs on this node (the config says where each reads). */
export function nodeCollectors(cfg: Record<string, unknown>): string[] {
    return ["desired", "directory", ...(cfg.certificates ? ["certificates"] : []), ...(cfg.pooler ? ["pooler"] : [])];
}

const unitPath = (unit: string) => `/etc/systemd/system/${unit}`;

function signalUnits(name: string, description: string, collectors: string[], every: string): FilePart[] {
    return [
        {
            path: unitPath(`${name}.service`),
            // Root: it reads the agents' status files and the certificates' keys' files; pgBackRest it runs as postgres.
            content: renderUnit({ Unit: { Description: description }, Service: { Type: "oneshot", ExecStart: `${SIGNALS_TOOL} --config ${SIGNALS_CONFIG} ${collectors.join(" ")}` } }),
        },
        {
            path: unitPath(`${name}.timer`),
            content: renderUnit({ Unit: { Description: `${description}, every ${every}` }, Timer: { OnBootSec: every, OnUnitActiveSec: every }, Install: { WantedBy: "timers.target" } }),
        },
    ];
}

/** The role postgres_exporter logs in as: pg_monitor's rights, nothing else; made on the primary. */
export function renderMonitorRoleScript(): string {
    return `#!/bin/sh
# vps-ha: the monitoring's database role, made on the primary once (replicas receive it).
set -eu
q() { psql -h ${PG_SOCKET_DIR} -d postgres -XtAc "$1"; }
[ "$(q 'SELECT pg_is_in_recovery()')" = f ] || exit 0
q "SELECT 'CREATE ROLE ${MONITOR_DB_USER} LOGIN IN ROLE pg_monitor' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${MONITOR_DB_USER}')" | psql -h ${PG_SOCKET_DIR} -d postgres -Xq
`;
}

/** The restore check's config: the stanza, where to restore, and whose turn it is (Patroni's view). */
export function restoreCheckConfig(spec: { stanza: string; node: string; meshAddress?: string }): Record<string, unknown> {
    return {
        stanza: spec.stanza,
        node: spec.node,
        ...(spec.meshAddress ? { patroniUrl: `http://${spec.meshAddress}:${DB_PORTS.patroni}` } : {}),
        user: "postgres",
        pgBin: PG_BIN_DIR,
        scratch: "/var/lib/postgresql/vps-ha-restore-check",
        // Its own port, no network listener: the copy never meets a client or the cluster.
        port: 5499,
        database: APP_DATABASE,
        signalTable: SIGNAL_TABLE,
    };
}

/** The restore check's launcher and modules, as a node gets them. */
export function restoreCheckFiles(): FilePart[] {
    return toolFiles(RESTORE_CHECK_TOOL, "restore_check");
}

function restoreCheckPart(plan: StackPlan, node: PlannedNode): CloudConfigPart {
    const cfg = restoreCheckConfig({ stanza: plan.config.stack, node: node.name, meshAddress: node.meshAddress });
    return {
        files: [
            ...restoreCheckFiles(),
            { path: RESTORE_CHECK_CONFIG, content: JSON.stringify(cfg, null, 1) + "\n" },
            {
                path: unitPath(`${RESTORE_CHECK_UNIT}.service`),
                // Root: it writes node_exporter's directory; PostgreSQL and pgBackRest run as postgres.
                content: renderUnit({ Unit: { Description: "vps-ha restore check: the newest backup restored, started and checked" }, Service: { Type: "oneshot", ExecStart: `${RESTORE_CHECK_TOOL} --config ${RESTORE_CHECK_CONFIG}` } }),
            },
            {
                path: unitPath(`${RESTORE_CHECK_UNIT}.timer`),
                content: renderUnit({ Unit: { Description: "vps-ha restore check, daily" }, Timer: { OnCalendar: RESTORE_CHECK_SCHEDULE, Persistent: "true" }, Install: { WantedBy: "timers.target" } }),
            },
        ],
        commands: [["systemctl", "daemon-reload"], enableReloaded([`${RESTORE_CHECK_UNIT}.timer`])],
        restarts: [{ unit: `${RESTORE_CHECK_UNIT}.timer`, paths: [unitPath(`${RESTORE_CHECK_UNIT}.timer`)] }],
    };
}

function nodePart(plan: StackPlan, node: PlannedNode, secrets: MonitoringSecrets): CloudConfigPart {
    const cfg = signalsConfig(plan, node, secrets);
    const backup = cfg.stanza !== undefined;
    return {
        packages: [...MONITORING_PACKAGES.node],
        files: [
            // After the package: its own default file is a conffile, and it starts on install.
            { path: NODE_EXPORTER_DEFAULTS, content: renderNodeExporterDefaults({ listenAddress: node.meshAddress, port: MONITORING_PORTS.nodeExporter }), defer: true },
            ...toolFiles(SIGNALS_TOOL, "signals"),
            { path: SIGNAL_TABLE, content: renderSignalTable() },
            // Holds the pooler's admin password on the HAProxy nodes.
            { path: SIGNALS_CONFIG, content: JSON.stringify(cfg, null, 1) + "\n", permissions: "0600" },
            ...signalUnits(SIGNALS_UNIT, "vps-ha signals for node_exporter", nodeCollectors(cfg), SIGNAL_INTERVALS.node),
            ...(backup ? signalUnits(BACKUP_SIGNALS_UNIT, "vps-ha backup signals for node_exporter", ["backup"], SIGNAL_INTERVALS.backup) : []),
            ...signalUnits(UPGRADE_SIGNALS_UNIT, "vps-ha upgrade signals for node_exporter", ["upgrades"], SIGNAL_INTERVALS.upgrades),
            {
                path: APT_UPGRADE_DROPIN,
                // ExecStopPost: runs whether the upgrade run passed or failed; "-": its own failure does not fail the run.
                content: renderUnit({ Service: { ExecStopPost: `-${SIGNALS_TOOL} --config ${SIGNALS_CONFIG} upgrades` } }),
            },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            ["systemctl", "restart", NODE_EXPORTER_UNIT],
            enableReloaded([`${SIGNALS_UNIT}.timer`]),
            enableReloaded([`${UPGRADE_SIGNALS_UNIT}.timer`]),
            ...(backup ? [enableReloaded([`${BACKUP_SIGNALS_UNIT}.timer`])] : []),
        ],
        // The collectors' service files and code are read at each run; only flags and timers need a restart.
        restarts: [
            { unit: NODE_EXPORTER_UNIT, paths: [NODE_EXPORTER_DEFAULTS] },
            { unit: `${SIGNALS_UNIT}.timer`, paths: [unitPath(`${SIGNALS_UNIT}.timer`)] },
            { unit: `${UPGRADE_SIGNALS_UNIT}.timer`, paths: [unitPath(`${UPGRADE_SIGNALS_UNIT}.timer`)] },
            ...(backup ? [{ unit: `${BACKUP_SIGNALS_UNIT}.timer`, paths: [unitPath(`${BACKUP_SIGNALS_UNIT}.timer`)] }] : []),
        ],
    };
}

function databasePart(node: PlannedNode): CloudConfigPart {
    return {
        packages: [...MONITORING_PACKAGES.db],
        files: [
            { path: POSTGRES_EXPORTER_DEFAULTS, content: renderPostgresExporterDefaults({ listenAddress: node.meshAddress, port: MONITORING_PORTS.postgresExporter, socketDir: PG_SOCKET_DIR }), defer: true },
            { path: POSTGRES_EXPORTER_QUERIES, content: renderPostgresExporterQueries() },
            { path: MONITOR_ROLE_SCRIPT, content: renderMonitorRoleScript(), permissions: "0755" },
            {
                path: unitPath(`${MONITOR_ROLE_UNIT}.service`),
                content: renderUnit({ Unit: { Description: "vps-ha monitoring role (on the primary)" }, Service: { Type: "oneshot", User: "postgres", Group: "postgres", ExecStart: MONITOR_ROLE_SCRIPT } }),
            },
            // Until the primary is up after a boot, and again in case a new primary lacks it (a restore).
            {
                path: unitPath(`${MONITOR_ROLE_UNIT}.timer`),
                content: renderUnit({ Unit: { Description: "vps-ha monitoring role, every 10 minutes" }, Timer: { OnBootSec: "2min", OnUnitActiveSec: "10min" }, Install: { WantedBy: "timers.target" } }),
            },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            ["systemctl", "restart", POSTGRES_EXPORTER_UNIT],
            enableReloaded([`${MONITOR_ROLE_UNIT}.timer`]),
        ],
        restarts: [
            { unit: POSTGRES_EXPORTER_UNIT, paths: [POSTGRES_EXPORTER_DEFAULTS, POSTGRES_EXPORTER_QUERIES] },
            { unit: `${MONITOR_ROLE_UNIT}.timer`, paths: [unitPath(`${MONITOR_ROLE_UNIT}.timer`)] },
        ],
    };
}

function monitorPart(plan: StackPlan, node: PlannedNode, delivery: AlertDelivery | undefined, smtpPassword: string | undefined): CloudConfigPart {
    // Without an Alertmanager to send to (no vps-ha:alerts), Prometheus still evaluates the rules: the status command reads them.
    const prometheus = { ...prometheusSpec(plan, node), ...(delivery ? {} : { alertmanagers: [] }) };
    const files: FilePart[] = [
        { path: PROMETHEUS_CONFIG, content: renderPrometheusConfig(prometheus), defer: true },
        { path: PROMETHEUS_DEFAULTS, content: renderPrometheusDefaults(prometheus), defer: true },
        { path: PROMETHEUS_RULES_FILE, content: renderAlertRules(alertRulesSpec(plan)), defer: true },
        // The directory agent keeps the scrape targets of every node from the signed directory.
        { path: PROMETHEUS_DIRECTORY, content: JSON.stringify({ prometheus: prometheusDirectory(plan) }, null, 1) + "\n" },
    ];
    const units = [PROMETHEUS_UNIT];
    if (delivery) {
        const am = alertmanagerSpec(plan, node, delivery);
        files.push(
            // Holds the webhook's and the heartbeat's URLs (tokens): root and Alertmanager's group only.
            { path: ALERTMANAGER_CONFIG, content: renderAlertmanagerConfig(am), permissions: "0640", owner: "root:prometheus", defer: true },
            { path: ALERTMANAGER_DEFAULTS, content: renderAlertmanagerDefaults(am), defer: true },
            ...(smtpPassword !== undefined ? [{ path: ALERTMANAGER_SMTP_PASSWORD_FILE, content: smtpPassword, permissions: "0640", owner: "root:prometheus", defer: true }] : []),
        );
        units.push(ALERTMANAGER_UNIT);
    }
    const restarts = [
        // Both reread their configuration on SIGHUP (Debian's units' reload): no gap in scraping or in the cluster.
        { unit: PROMETHEUS_UNIT, paths: [PROMETHEUS_CONFIG, PROMETHEUS_RULES_FILE], reload: true },
        { unit: PROMETHEUS_UNIT, paths: [PROMETHEUS_DEFAULTS] },
        { unit: DIRECTORY_UNIT, paths: [PROMETHEUS_DIRECTORY] },
        ...(delivery
            ? [
                  { unit: ALERTMANAGER_UNIT, paths: [ALERTMANAGER_CONFIG, ...(smtpPassword !== undefined ? [ALERTMANAGER_SMTP_PASSWORD_FILE] : [])], reload: true },
                  { unit: ALERTMANAGER_UNIT, paths: [ALERTMANAGER_DEFAULTS] },
              ]
            : []),
    ];
    return {
        packages: [...MONITORING_PACKAGES.monitor],
        files,
        restarts,
        commands: [
            ["systemctl", "daemon-reload"],
            ...units.flatMap((u) => [enableReloaded([u], false), ["systemctl", "restart", u]]),
            // Without vps-ha:alerts nothing is sent: Debian's Alertmanager stays off.
            ...(delivery ? [] : [disableReloaded([ALERTMANAGER_UNIT])]),
        ],
    };
}

/** The monitoring's parts for one node; `secrets` are this node's only. */
export function monitoringParts(plan: StackPlan, node: PlannedNode, secrets: MonitoringSecrets = {}): CloudConfigPart[] {
    const parts = [nodePart(plan, node, secrets)];
    if (node.role === "db") parts.push(databasePart(node));
    if (node.role === "db" && backupTarget(plan.config)) parts.push(restoreCheckPart(plan, node));
    if (node.role === MONITORING_ROLE && monitoringNodes(plan).some((n) => n.name === node.name)) {
        parts.push(monitorPart(plan, node, alertDelivery(plan.config), plan.config.alerts?.email?.password));
    }
    return parts;
}
