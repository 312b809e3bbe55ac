// postgres_exporter 0.17 (Debian 13's `prometheus-postgres-exporter`) on each database member:
// the flags and connection Debian's unit reads from /etc/default/prometheus-postgres-exporter, and
// one query of our own. Its default collectors already give pg_stat_replication (byte lag per
// standby) and pg_stat_archiver (archived and failed WAL); what they lack is how long a commit has
// waited for standbys (wait_event SyncRep in pg_stat_activity).
import { stringify } from "yaml";

export const POSTGRES_EXPORTER_DEFAULTS = "/etc/default/prometheus-postgres-exporter";
export const POSTGRES_EXPORTER_QUERIES = "/etc/prometheus/postgres-exporter-queries.yml";
export const POSTGRES_EXPORTER_UNIT = "prometheus-postgres-exporter.service";
/** A role with pg_monitor only; the exporter (OS user prometheus) logs in over the socket by peer authentication. */
export const MONITOR_DB_USER = "vps_ha_monitor";

const SYNC_WAIT_QUERY = "pg_sync_commit_wait";
/** Seconds the longest-waiting commit has waited for standbys (0 when none waits). */
export const SYNC_WAIT_METRIC = `${SYNC_WAIT_QUERY}_max_seconds`;
export const SYNC_WAIT_SESSIONS_METRIC = `${SYNC_WAIT_QUERY}_sessions`;

export interface PostgresExporterSpec {
    /** This member's mesh address: /metrics listens there only. */
    listenAddress: string;
    port: number;
    /** PostgreSQL's unix socket directory. */
    socketDir: string;
}

export function renderPostgresExporterQueries(): string {
    const doc = {
        [SYNC_WAIT_QUERY]: {
            // A session waits in SyncRep only while its commit waits for standbys; query_start is
            // the start of that COMMIT (or of the single statement that commits).
            query: "SELECT count(*) AS sessions, coalesce(max(extract(epoch FROM now() - query_start)), 0) AS max_seconds FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
            master: true,
            metrics: [
                { sessions: { usage: "GAUGE", description: "Sessions whose commit waits for standbys to confirm it" } },
                { max_seconds: { usage: "GAUGE", description: "Seconds the longest-waiting commit has waited for standbys" } },
            ],
        },
    };
    return `# vps-ha: postgres_exporter queries. Rendered by the program.\n${stringify(doc, { lineWidth: 0 })}`;
}

export function renderPostgresExporterDefaults(spec: PostgresExporterSpec): string {
    if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(spec.listenAddress)) throw new Error(`postgres-exporter: listenAddress "${spec.listenAddress}" is not an IPv4 address`);
    if (!/^\/[A-Za-z0-9._\/-]+$/.test(spec.socketDir)) throw new Error(`postgres-exporter: socketDir "${spec.socketDir}" is not an absolute path`);
    const args = [`--web.listen-address=${spec.listenAddress}:${spec.port}`, `--extend.query-path=${POSTGRES_EXPORTER_QUERIES}`];
    return [
        "# vps-ha: flags for Debian's prometheus-postgres-exporter.service. Rendered by the program.",
        `DATA_SOURCE_NAME="host=${spec.socketDir} user=${MONITOR_DB_USER} dbname=postgres sslmode=disable"`,
        `ARGS="${args.join(" ")}"`,
        "",
    ].join("\n");
}
