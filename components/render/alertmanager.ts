// Alertmanager 0.28 (Debian 13's `prometheus-alertmanager`) on each monitoring node:
// alertmanager.yml and the flags Debian's unit reads from /etc/default/prometheus-alertmanager.
// The nodes form one cluster over the mesh (gossip on the cluster port): both receive every alert
// from both Prometheus servers, and one notification goes out. The heartbeat (the always-firing
// Watchdog alert) goes to an outside dead-man's switch every minute; when the pings stop, the
// whole stack or its monitoring is gone, and that service says so.
// Only what Alertmanager 0.25 (Debian 12) also accepts: no webhook url_file yet.
import { stringify } from "yaml";

export const ALERTMANAGER_CONFIG = "/etc/prometheus/alertmanager.yml";
export const ALERTMANAGER_DEFAULTS = "/etc/default/prometheus-alertmanager";
export const ALERTMANAGER_UNIT = "prometheus-alertmanager.service";
/** The SMTP password, apart from the config (mode 0640, group prometheus). */
export const ALERTMANAGER_SMTP_PASSWORD_FILE = "/etc/prometheus/alertmanager-smtp-password";
export const ALERTMANAGER_STORAGE = "/var/lib/prometheus/alertmanager";

/** The alert that always fires: its notifications are the heartbeat. */
export const HEARTBEAT_ALERT = "Watchdog";

/**
 * Alertmanager's timing. A new alert waits 30 s for others of its group, so a node's several
 * problems arrive as one message; a changed group (a new alert or a resolved one) is sent after
 * at most a minute; one still firing is repeated every 4 hours. The heartbeat is sent every minute.
 */
export const NOTIFY_TIMING = { groupWait: "30s", groupInterval: "1m", repeatInterval: "4h", heartbeatInterval: "1m" } as const;

export interface EmailDelivery {
    to: string;
    from: string;
    /** host:port of the SMTP server (STARTTLS required). */
    smarthost: string;
    username?: string;
    /** True when ALERTMANAGER_SMTP_PASSWORD_FILE holds a password. */
    password?: boolean;
}

export interface AlertDelivery {
    /** Alertmanager's JSON, firing and resolved, POSTed here. */
    webhookUrl?: string;
    email?: EmailDelivery;
    /** The outside dead-man's switch: pinged (POST) every minute while the monitoring runs. */
    heartbeatUrl?: string;
}

export interface AlertmanagerSpec {
    stack: string;
    /** This node's mesh address: the API (Prometheus posts here) and the cluster listen there only. */
    listenAddress: string;
    port: number;
    clusterPort: number;
    /** The other monitoring nodes' mesh addresses. */
    peers: string[];
    delivery: AlertDelivery;
}

const URL = /^https?:\/\/[A-Za-z0-9.-]+(:\d+)?(\/[^\s"'\\]*)?$/;
const EMAIL = /^[^\s@"'\\<>]+@[A-Za-z0-9.-]+$/;
const HOSTPORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;
const ADDRESS = /^(\d{1,3}\.){3}\d{1,3}$/;

function check(spec: AlertmanagerSpec): void {
    const d = spec.delivery;
    const bad = (key: string, value: string, allowed: string) => new Error(`alertmanager: ${key} "${value}" is not ${allowed}`);
    for (const a of [spec.listenAddress, ...spec.peers]) if (!ADDRESS.test(a)) throw bad("address", a, "an IPv4 address");
    if (d.webhookUrl !== undefined && !URL.test(d.webhookUrl)) throw bad("webhookUrl", d.webhookUrl, "an http(s):// URL");
    if (d.heartbeatUrl !== undefined && !URL.test(d.heartbeatUrl)) throw bad("heartbeatUrl", d.heartbeatUrl, "an http(s):// URL");
    if (d.email) {
        if (!EMAIL.test(d.email.to)) throw bad("email.to", d.email.to, "an email address");
        if (!EMAIL.test(d.email.from)) throw bad("email.from", d.email.from, "an email address");
        if (!HOSTPORT.test(d.email.smarthost)) throw bad("email.smarthost", d.email.smarthost, "host:port");
        if (d.email.username !== undefined && !/^[^\s"'\\]{1,200}$/.test(d.email.username)) throw bad("email.username", d.email.username, "1-200 characters without spaces or quotes");
    }
    if (!d.webhookUrl && !d.email) throw new Error("alertmanager: delivery needs a webhookUrl, an email, or both");
}

export function renderAlertmanagerConfig(spec: AlertmanagerSpec): string {
    check(spec);
    const d = spec.delivery;
    const user = {
        name: "user",
        ...(d.webhookUrl ? { webhook_configs: [{ url: d.webhookUrl, send_resolved: true }] } : {}),
        ...(d.email
            ? {
                  email_configs: [
                      {
                          to: d.email.to,
                          from: d.email.from,
                          smarthost: d.email.smarthost,
                          require_tls: true,
                          send_resolved: true,
                          ...(d.email.username ? { auth_username: d.email.username } : {}),
                          ...(d.email.password ? { auth_password_file: ALERTMANAGER_SMTP_PASSWORD_FILE } : {}),
                      },
                  ],
              }
            : {}),
    };
    // Without a heartbeat URL the Watchdog goes nowhere (a receiver with no integration).
    const heartbeat = { name: "heartbeat", ...(d.heartbeatUrl ? { webhook_configs: [{ url: d.heartbeatUrl, send_resolved: false }] } : {}) };
    const doc = {
        route: {
            receiver: "user",
            group_by: ["alertname", "instance"],
            group_wait: NOTIFY_TIMING.groupWait,
            group_interval: NOTIFY_TIMING.groupInterval,
            repeat_interval: NOTIFY_TIMING.repeatInterval,
            routes: [
                {
                    receiver: "heartbeat",
                    matchers: [`alertname="${HEARTBEAT_ALERT}"`],
                    group_wait: "0s",
                    group_interval: NOTIFY_TIMING.heartbeatInterval,
                    repeat_interval: NOTIFY_TIMING.heartbeatInterval,
                },
            ],
        },
        // A node that is down explains its exporters and daemons being down: tell the first only.
        inhibit_rules: [
            {
                source_matchers: ['alertname="NodeDown"'],
                target_matchers: ['alertname=~"DatabaseMemberDown|EtcdVoterDown|ExporterDown|MonitoringDown"'],
                equal: ["instance"],
            },
        ],
        receivers: [user, heartbeat],
    };
    return `# vps-ha: Alertmanager for stack ${spec.stack}. Rendered by the program; changes here are replaced.\n${stringify(doc, { lineWidth: 0 })}`;
}

/** /etc/default/prometheus-alertmanager: Debian's unit runs `prometheus-alertmanager $ARGS`. */
export function renderAlertmanagerDefaults(spec: AlertmanagerSpec): string {
    check(spec);
    const args = [
        `--config.file=${ALERTMANAGER_CONFIG}`,
        `--storage.path=${ALERTMANAGER_STORAGE}`,
        `--web.listen-address=${spec.listenAddress}:${spec.port}`,
        `--cluster.listen-address=${spec.listenAddress}:${spec.clusterPort}`,
        `--cluster.advertise-address=${spec.listenAddress}:${spec.clusterPort}`,
        ...spec.peers.map((p) => `--cluster.peer=${p}:${spec.clusterPort}`),
    ];
    return `# vps-ha: flags for Debian's prometheus-alertmanager.service. Rendered by the program.\nARGS="${args.join(" ")}"\n`;
}
