// The alert rules both Prometheus servers evaluate: one alert per condition the stack must be told
// about, with the bounds below. Each alert has a unit test run by promtool (test/alert-rules/).
// Metric names are those of Debian 13's exporters: node_exporter 1.9 (its systemd collector is on
// in Debian's build), postgres_exporter 0.17 (its default pg_stat_replication and pg_stat_archiver
// maps, and ./postgres-exporter.ts's query), Patroni 4.0 and etcd 3.5 /metrics, HAProxy 3.0's
// Prometheus service, and vps-ha's own signals (./signals.ts).
import { stringify } from "yaml";
import { HEARTBEAT_ALERT } from "./alertmanager";
import { SIGNALS } from "./signals";
import { SYNC_WAIT_METRIC } from "./postgres-exporter";

/** The bounds, in seconds or as stated. */
export const ALERT_BOUNDS = {
    /** A node, database member or etcd voter not answering. */
    downSeconds: 120,
    /** An exporter or the other monitoring node not answering (the daemons have their own alerts). */
    exporterDownSeconds: 300,
    /** No standby confirming commits. */
    noSyncStandbySeconds: 120,
    /** A standby's replay this far behind the primary's WAL (one WAL segment) ... */
    replicationLagBytes: 16 * 1024 * 1024,
    /** ... for this long. */
    replicationLagSeconds: 300,
    /** A commit waiting for standbys this long. */
    commitWaitSeconds: 30,
    /** WAL archiving failing with no success for this long. */
    archiveFailingSeconds: 300,
    /**
     * The newest backup older than this: backups run every hour but one (the longest gap, 1.5 h,
     * spans 03:00, when the full or differential runs), plus 1.5 h for a backup to finish.
     */
    backupMaxAgeSeconds: 3 * 3600,
    /** The newest passing restore check older than this: it runs daily; one missed run is tolerated, two are not. */
    restoreCheckMaxAgeSeconds: 50 * 3600,
    diskUsedPercent: 80,
    diskUsedSeconds: 300,
    /** Free space predicted to reach 0 within this, from the last 6 hours' trend ... */
    diskFullWithinSeconds: 24 * 3600,
    /** ... sustained this long. */
    diskFullForSeconds: 1800,
    /** A node just booted has a minute to write a signal before its absence counts. */
    signalGraceSeconds: 60,
    /** The directory agent runs every 15 s: 20 rounds missed. */
    directoryStaleSeconds: 300,
    /** A refusal outlasting the records' 60 s TTL and a few rounds (a resolver still answering the index before). */
    directoryRefusedSeconds: 120,
    desiredStateStaleSeconds: 900,
    /** A node behind the newest generation or serial the other nodes applied, this long. */
    behindSeconds: 600,
    certificateDays: 30,
    unitFailedSeconds: 60,
    noAppServerSeconds: 60,
    poolerPausedSeconds: 120,
    /**
     * Security updates not current this long: apt's timers run daily (06:00 and a random hour), so
     * two missed days are tolerated, three are not. The same bound for upgrades that a run keeps back.
     */
    upgradesStaleSeconds: 3 * 86400,
    /** An installed upgrade waiting this long for a reboot nobody ordered. */
    rebootRequiredSeconds: 7 * 86400,
    /** A held package's security upgrade (PostgreSQL, Patroni, etcd, HAProxy, pgbouncer) waiting this long for a rollout. */
    heldUpgradeSeconds: 14 * 86400,
} as const;

export interface AlertRulesSpec {
    stack: string;
    /** The pgBackRest stanza; undefined when backups are off (no archive or backup rules). */
    stanza?: string;
    /** Whether commits wait for a standby (Patroni's synchronous mode on or quorum). */
    synchronous: boolean;
    /** Whether the stack has database members (Patroni, etcd, postgres_exporter rules). */
    hasDatabase: boolean;
}

interface Rule {
    alert: string;
    expr: string;
    for?: string;
    /** cause: tells apart two rules of one alert (promtool rejects alerts alike in name and labels). */
    labels: { severity: "critical" | "warning" | "none"; cause?: string };
    annotations: { summary: string; description: string };
}

const dur = (s: number) => (s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`);
const S = SIGNALS;

function rule(alert: string, expr: string, forSeconds: number, severity: Rule["labels"]["severity"], summary: string, description: string, cause?: string): Rule {
    return { alert, expr, ...(forSeconds > 0 ? { for: dur(forSeconds) } : {}), labels: { severity, ...(cause ? { cause } : {}) }, annotations: { summary, description } };
}

function check(spec: AlertRulesSpec): void {
    if (!/^[a-z][a-z0-9_-]*$/.test(spec.stack)) throw new Error(`alert rules: stack "${spec.stack}" must be lower-case letters, digits, - and _`);
    if (spec.stanza !== undefined && !/^[a-z][a-z0-9_-]*$/.test(spec.stanza)) throw new Error(`alert rules: stanza "${spec.stanza}" must be lower-case letters, digits, - and _`);
}

export function alertGroups(spec: AlertRulesSpec): { name: string; rules: Rule[] }[] {
    check(spec);
    const B = ALERT_BOUNDS;
    const heartbeat = [
        rule(HEARTBEAT_ALERT, "vector(1)", 0, "none", `Stack ${spec.stack}: the monitoring is alive`, "Always firing; its notifications are the heartbeat an outside dead-man's switch expects. When they stop, the stack or its monitoring is gone."),
    ];
    const nodes = [
        rule("NodeDown", 'up{job="node",role!=""} == 0', B.downSeconds, "critical", "{{ $labels.instance }} ({{ $labels.role }}) has not answered for 2 minutes", "Its node_exporter on the mesh does not answer: the node, its mesh link or the exporter is down."),
        rule("ExporterDown", 'up{job=~"postgres|haproxy"} == 0', B.exporterDownSeconds, "warning", "{{ $labels.job }} metrics of {{ $labels.instance }} unreachable for 5 minutes", "Alerts that read these metrics cannot fire while they are missing."),
        // Without the system bus the systemd collector fails on every scrape, and SystemdUnitFailed can never fire.
        rule("ExporterDown", 'node_scrape_collector_success{collector="systemd"} == 0', B.exporterDownSeconds, "warning", "node_exporter on {{ $labels.instance }} cannot read systemd's units for 5 minutes", "A failed unit there raises no alert while it cannot. journalctl -u prometheus-node-exporter on the node says why (the system bus, dbus, not running).", "systemd-collector"),
        rule("MonitoringDown", 'up{job=~"prometheus|alertmanager",role!=""} == 0', B.exporterDownSeconds, "warning", "{{ $labels.job }} on {{ $labels.instance }} unreachable for 5 minutes", "One monitoring path is left; the loss of the other would go unnoticed except by the dead-man's switch."),
        rule("DiskAlmostFull", `100 * (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes) > ${B.diskUsedPercent}`, B.diskUsedSeconds, "warning", `{{ $labels.mountpoint }} on {{ $labels.instance }} is {{ $value | printf "%.0f" }}% full`, `Over ${B.diskUsedPercent}% used for 5 minutes.`),
        rule("DiskFillingUp", `predict_linear(node_filesystem_avail_bytes[6h], ${B.diskFullWithinSeconds}) < 0`, B.diskFullForSeconds, "warning", "{{ $labels.mountpoint }} on {{ $labels.instance }} will be full within 24 hours", "At the last 6 hours' rate its free space reaches zero within a day."),
        rule("SystemdUnitFailed", 'node_systemd_unit_state{state="failed"} == 1', B.unitFailedSeconds, "warning", "{{ $labels.name }} failed on {{ $labels.instance }}", "systemctl status {{ $labels.name }} and journalctl -u {{ $labels.name }} on the node say why."),
        rule("CertificateExpiringSoon", `${S.certificateExpiry.name} - time() < ${B.certificateDays * 86400}`, 0, "warning", "Certificate {{ $labels.certificate }} on {{ $labels.instance }} expires in {{ $value | humanizeDuration }}", `Less than ${B.certificateDays} days left; pulumi up renews the program's certificates.`),
        rule("DirectoryStale", `time() - ${S.directoryLastSuccess.name} > ${B.directoryStaleSeconds}`, B.signalGraceSeconds, "warning", "{{ $labels.instance }} has not read the mesh directory for 5 minutes", "Its directory agent is stopped or cannot fetch or verify the signed records; new or moved peers do not reach it."),
        // A node that answers but has never reported: the same bound, counted from its first scrape (a booting node's agent reports late).
        rule("DirectoryStale", `up{job="node",role!=""} == 1 unless on (instance) ${S.directoryLastSuccess.name}`, B.directoryStaleSeconds, "warning", "{{ $labels.instance }} has not read the mesh directory for 5 minutes", "Its directory agent is stopped or cannot fetch or verify the signed records; new or moved peers do not reach it.", "unreported"),
        rule("DirectoryStale", `${S.directorySerial.name} < scalar(max(${S.directorySerial.name}))`, B.behindSeconds, "warning", "{{ $labels.instance }} applies an older mesh directory than other nodes", "Its directory serial has been behind the newest one for 10 minutes.", "behind"),
        rule("DirectoryRefused", `${S.directoryRefused.name} == 1`, B.directoryRefusedSeconds, "critical", "{{ $labels.instance }} refuses the newest mesh directory", "The index in DNS is older than the one it applied, or removes more than a third of a role's members without being marked deliberate; new nodes do not join until it is resolved. The node's directory-status.json and journalctl -u vps-ha-directory say which members would go."),
        rule("DesiredStateStale", `time() - ${S.desiredStateLastSuccess.name} > ${B.desiredStateStaleSeconds}`, B.signalGraceSeconds, "warning", "{{ $labels.instance }} has not checked its desired state for 15 minutes", "Its node agent is stopped or cannot fetch or verify what pulumi up published."),
        rule("DesiredStateStale", `up{job="node",role!=""} == 1 unless on (instance) ${S.desiredStateLastSuccess.name}`, B.desiredStateStaleSeconds, "warning", "{{ $labels.instance }} has not checked its desired state for 15 minutes", "Its node agent is stopped or cannot fetch or verify what pulumi up published.", "unreported"),
        // Each node's own published generation, not the other nodes': a change moves only the nodes it touches.
        rule("DesiredStateStale", `${S.desiredStateGeneration.name} < ${S.desiredStatePublished.name}`, B.behindSeconds, "warning", "{{ $labels.instance }} has not applied the desired state published for it", "It has seen a newer generation for 10 minutes and not applied it: the rollout gate holds it (a halted rollout raises RolloutHalted too) or applying fails; journalctl -u vps-ha-desired on the node says which.", "behind"),
        rule("RolloutHalted", `${S.rolloutState.name}{state="halted"} == 1`, 0, "critical", "The rollout halted at {{ $labels.instance }}", "The node did not come back healthy after a change; the rollout waits for a repair or a new generation."),
        rule("HaproxyNoAppServer", 'haproxy_backend_active_servers{proxy="app"} == 0', B.noAppServerSeconds, "critical", "HAProxy on {{ $labels.instance }} has no healthy app server", "Every app server of the live release fails its health check; this HAProxy node answers no visitor."),
        rule("UpgradesFailing", `time() - ${S.upgradesLastSuccess.name} > ${B.upgradesStaleSeconds}`, 0, "warning", "Security updates on {{ $labels.instance }} are {{ $value | humanizeDuration }} old", "apt's package lists have not updated, or unattended-upgrades has not finished without an error, for 3 days. /var/log/unattended-upgrades/ and journalctl -u apt-daily.service -u apt-daily-upgrade.service on the node say why."),
        rule("UpgradesFailing", `up{job="node",role!=""} == 1 unless on (instance) ${S.upgradesLastSuccess.name}`, B.upgradesStaleSeconds, "warning", "{{ $labels.instance }} has never reported security updates installed", "No successful package list update and unattended-upgrades run in 3 days.", "unreported"),
        rule("UpgradesFailing", `${S.upgradesPending.name}{waits_for="unattended-upgrades"} > 0`, B.upgradesStaleSeconds, "warning", "{{ $value }} security upgrades on {{ $labels.instance }} are kept back", "unattended-upgrades runs but has not installed them for 3 days (a dependency on a held package, a conflict, a dpkg error). /var/log/unattended-upgrades/ on the node says why.", "kept-back"),
        rule("RebootRequired", `${S.rebootRequired.name} == 1`, B.rebootRequiredSeconds, "warning", "{{ $labels.instance }} has waited 7 days for a reboot", "An installed upgrade (a kernel, a core library) takes effect only after a reboot, and nodes never reboot on their own. Reboot it when its role allows (a database member: a replica, or after a switchover)."),
        // Held on purpose (their restart is the rollout's to order), so not before two weeks: a reminder, not an emergency.
        rule("HeldUpgradesPending", `${S.upgradesPending.name}{waits_for="release"} > 0`, B.heldUpgradeSeconds, "warning", "{{ $value }} held security upgrades on {{ $labels.instance }} have waited 14 days", "PostgreSQL, Patroni, etcd, HAProxy and pgbouncer are not upgraded unattended; README (Security updates) says how to roll them out one node at a time."),
        rule("PoolerPaused", `${S.poolerPaused.name} == 1`, B.poolerPausedSeconds, "critical", "pgbouncer on {{ $labels.instance }} has been paused for 2 minutes", "A switchover paused it and did not resume it; pooled clients wait and time out. RESUME it on the admin console."),
    ];
    const database = !spec.hasDatabase
        ? []
        : [
              rule("DatabaseMemberDown", '(max by (instance, role) (patroni_postgres_running) == 0) or (max by (instance, role) (up{job="patroni"}) == 0)', B.downSeconds, "critical", "Database member {{ $labels.instance }} has been down for 2 minutes", "PostgreSQL is not running there, or Patroni does not answer. One more loss may stop writes."),
              rule("EtcdVoterDown", '(max by (instance, role) (etcd_server_has_leader) == 0) or (max by (instance, role) (up{job="etcd"}) == 0)', B.downSeconds, "critical", "etcd voter {{ $labels.instance }} has been down or leaderless for 2 minutes", "One more voter lost and Patroni cannot keep or elect a primary."),
              ...(spec.synchronous
                  ? [
                        rule("NoSynchronousStandby", "max by (scope) (patroni_primary) == 1 unless on (scope) max by (scope) ((patroni_sync_standby == 1 or patroni_quorum_standby == 1) and on (instance) patroni_postgres_streaming == 1)", B.noSyncStandbySeconds, "critical", "No synchronous standby is streaming in cluster {{ $labels.scope }}", "Commits wait for a standby that is not there (strict mode) or are acknowledged with one copy only."),
                    ]
                  : []),
              rule("ReplicationLagHigh", `max by (instance, application_name) (pg_stat_replication_pg_wal_lsn_diff) > ${B.replicationLagBytes}`, B.replicationLagSeconds, "warning", "Replica {{ $labels.application_name }} is {{ $value | humanize1024 }}B behind the primary {{ $labels.instance }}", "Its replay has been over 16 MiB behind for 5 minutes: reads there are stale, and Patroni will not promote it."),
              rule("CommitsWaitingForStandbys", `${SYNC_WAIT_METRIC} > ${B.commitWaitSeconds}`, 0, "critical", "A commit on {{ $labels.instance }} has waited {{ $value | humanizeDuration }} for standbys", "No standby confirms commits: writes hang."),
              ...(spec.stanza
                  ? [
                        rule("WalArchivingFailing", `increase(pg_stat_archiver_failed_count[${dur(B.archiveFailingSeconds)}]) > 0 and on (instance) increase(pg_stat_archiver_archived_count[${dur(B.archiveFailingSeconds)}]) == 0`, 0, "critical", "WAL archiving from {{ $labels.instance }} has failed for 5 minutes", "No WAL segment reached the repository: point-in-time restore stops at the last archived one, and pg_wal grows. /var/log/postgresql and /var/log/pgbackrest on the node say why."),
                        rule("BackupMissing", `time() - max by (stanza) (${S.backupLastSuccess.name}) > ${B.backupMaxAgeSeconds}`, 0, "critical", "No backup of stanza {{ $labels.stanza }} for {{ $value | humanizeDuration }}", "Backups run hourly on a replica; the backup units' journals say why none finished."),
                        rule("BackupMissing", `absent(${S.backupLastSuccess.name}{stanza="${spec.stanza}"})`, B.backupMaxAgeSeconds, "critical", "No backup of stanza {{ $labels.stanza }} is known", "No member has reported a backup in the repository for 3 hours.", "unreported"),
                        rule("RestoreCheckFailed", `${S.restoreCheckSuccess.name} == 0 and on (instance, stanza) (${S.restoreCheckLastRun.name} == on (stanza) group_left max by (stanza) (${S.restoreCheckLastRun.name}))`, 0, "critical", "The restore check of stanza {{ $labels.stanza }} failed on {{ $labels.instance }}", "The latest backup could not be restored and checked: the backups may not be usable."),
                        rule("RestoreCheckTooOld", `time() - max by (stanza) (${S.restoreCheckLastSuccess.name}) > ${B.restoreCheckMaxAgeSeconds}`, 0, "warning", "No passing restore check of stanza {{ $labels.stanza }} for {{ $value | humanizeDuration }}", "Restore checks run daily on a replica; two were missed or failed."),
                        rule("RestoreCheckTooOld", `absent(${S.restoreCheckLastSuccess.name}{stanza="${spec.stanza}"})`, B.restoreCheckMaxAgeSeconds, "warning", "No passing restore check of stanza {{ $labels.stanza }} is known", "No member has reported a passing restore check for 50 hours.", "unreported"),
                    ]
                  : []),
          ];
    return [
        { name: "vps-ha-heartbeat", rules: heartbeat },
        { name: "vps-ha-nodes", rules: nodes },
        ...(database.length ? [{ name: "vps-ha-database", rules: database }] : []),
    ];
}

export function renderAlertRules(spec: AlertRulesSpec): string {
    return `# vps-ha: alert rules for stack ${spec.stack}. Rendered by the program; changes here are replaced.\n${stringify({ groups: alertGroups(spec) }, { lineWidth: 0 })}`;
}

/** Every alert name the rules can raise for this spec. */
export function alertNames(spec: AlertRulesSpec): string[] {
    return [...new Set(alertGroups(spec).flatMap((g) => g.rules.map((r) => r.alert)))];
}
