// pgBackRest 2.55: WAL archived continuously from the primary and scheduled backups taken on a
// replica, both into an S3-compatible bucket off both VPS providers, encrypted before upload.
//
// A backup from a standby still needs the primary (pgBackRest starts and stops the backup
// there and copies the files from the standby), so every database node runs pgBackRest's TLS
// server on its mesh address and lists the other members as pg2..pgN; pgBackRest finds the
// current primary among them. The certificates come from the program (@pulumi/tls, components/database.ts).
import { BackupTarget } from "../config";
import { PG_DATA_DIR, PG_SOCKET_DIR } from "./patroni";
import { DB_PORTS } from "../plan";
import { MESH_UNIT } from "./mesh";
import { renderUnit, UnitFile } from "./systemd";

export const PGBACKREST_CONF = "/etc/pgbackrest/pgbackrest.conf";
export const PGBACKREST_TLS_DIR = "/etc/pgbackrest/tls";
export const PGBACKREST_SERVER_UNIT = "vps-ha-pgbackrest.service";
export const PGBACKREST_TLS_PORT = 8432;
export const BACKUP_SCRIPT = "/usr/local/lib/vps-ha/pgbackrest-backup";
export const RESTORE_SCRIPT = "/usr/local/sbin/vps-ha-restore";

export const TLS_FILES = { ca: `${PGBACKREST_TLS_DIR}/ca.crt`, cert: `${PGBACKREST_TLS_DIR}/node.crt`, key: `${PGBACKREST_TLS_DIR}/node.key` } as const;

/**
 * Retention. Backups run weekly (full), daily (differential) and hourly (incremental); an
 * incremental depends on the backup before it and expires with the differential or full it
 * builds on, a differential expires with its full.
 * - full 5: four complete weeks behind the current one, so >= 4 weekly restore points.
 * - diff 8: the last 8 differentials (plus the fulls) cover >= 7 daily points; pgBackRest has
 *   no separate incremental count, and the incrementals of the last day belong to the two newest
 *   differentials, so >= 24 hourly points stay too.
 * WAL is kept back to the oldest full, so point-in-time restore reaches any moment in between.
 */
export const RETENTION = { full: 5, diff: 8 } as const;

/** When each backup runs (systemd calendar). Incrementals skip 03:00-04:00, when the others run. */
export const BACKUP_SCHEDULE = {
    full: "Sun *-*-* 03:00:00",
    diff: "Mon..Sat *-*-* 03:00:00",
    incr: "*-*-* 00..02,04..23:30:00",
} as const;

/**
 * WAL waiting to be archived, at most (pgBackRest's asynchronous queue): past it, archive-push
 * drops segments and says so (a gap in point-in-time recovery) rather than let pg_wal fill the
 * disk. Sized with MAX_SLOT_WAL_KEEP_GB (render/patroni.ts) for the smallest prod disk.
 */
export const ARCHIVE_QUEUE_MAX_GIB = 8;
/**
 * Where asynchronous archiving keeps its queue state (pgBackRest's default spool-path, left unset
 * to spare user-data bytes): `archive/<stanza>/out/*.error` there is a failed push.
 */
export const ARCHIVE_SPOOL_DIR = "/var/spool/pgbackrest";

export interface PgbackrestPeer {
    name: string;
    meshAddress: string;
}

export interface PgbackrestSpec {
    /** The stanza: the stack. */
    stanza: string;
    name: string;
    meshAddress: string;
    /** The other database members, where the primary may be. */
    peers: PgbackrestPeer[];
    repo: BackupTarget;
    cipherPassphrase: string;
}

export function renderPgbackrestConf(spec: PgbackrestSpec): string {
    const r = spec.repo;
    const global = [
        "[global]",
        "repo1-type=s3",
        `repo1-path=${r.path}`,
        `repo1-s3-bucket=${r.bucket}`,
        `repo1-s3-endpoint=${r.endpointHost}`,
        ...(r.endpointPort !== 443 ? [`repo1-storage-port=${r.endpointPort}`] : []),
        `repo1-s3-region=${r.region}`,
        `repo1-s3-key=${r.accessKeyId}`,
        `repo1-s3-key-secret=${r.secretAccessKey}`,
        // Path style: R2 and most S3-compatible services do not serve bucket sub-domains.
        "repo1-s3-uri-style=path",
        ...(r.verifyTls ? [] : ["repo1-storage-verify-tls=n"]),
        // Encrypted before upload: the bucket's owner never sees the data.
        "repo1-cipher-type=aes-256-cbc",
        `repo1-cipher-pass=${spec.cipherPassphrase}`,
        `repo1-retention-full=${RETENTION.full}`,
        `repo1-retention-diff=${RETENTION.diff}`,
        // Small files bundled and changed blocks only: far fewer S3 requests for hourly backups.
        "repo1-bundle=y",
        "repo1-block=y",
        "compress-type=zst",
        "process-max=2",
        "start-fast=y",
        // Asynchronous, bounded: a slow or unreachable bucket never holds a commit nor fills the disk.
        "archive-async=y",
        `archive-push-queue-max=${ARCHIVE_QUEUE_MAX_GIB}GiB`,
        "log-level-console=info",
        "log-level-file=detail",
        // The TLS server other members reach for backups from a standby.
        `tls-server-address=${spec.meshAddress}`,
        `tls-server-port=${PGBACKREST_TLS_PORT}`,
        `tls-server-ca-file=${TLS_FILES.ca}`,
        `tls-server-cert-file=${TLS_FILES.cert}`,
        `tls-server-key-file=${TLS_FILES.key}`,
        ...[spec.name, ...spec.peers.map((p) => p.name)].sort().map((n) => `tls-server-auth=${n}=${spec.stanza}`),
    ];
    const pg = (i: number, peer?: PgbackrestPeer) => [
        ...(peer
            ? [`pg${i}-host=${peer.meshAddress}`, `pg${i}-host-type=tls`, `pg${i}-host-port=${PGBACKREST_TLS_PORT}`, `pg${i}-host-ca-file=${TLS_FILES.ca}`, `pg${i}-host-cert-file=${TLS_FILES.cert}`, `pg${i}-host-key-file=${TLS_FILES.key}`]
            : []),
        `pg${i}-path=${PG_DATA_DIR}`,
        `pg${i}-port=${DB_PORTS.postgres}`,
        `pg${i}-socket-path=${PG_SOCKET_DIR}`,
    ];
    if (spec.peers.length > 7) throw new Error("pgBackRest takes at most 8 PostgreSQL hosts");
    const stanza = [`[${spec.stanza}]`, ...pg(1), ...spec.peers.flatMap((p, i) => pg(i + 2, p))];
    return [`# pgBackRest for ${spec.name} (stanza ${spec.stanza}). Rendered by vps-ha.`, ...global, "", ...stanza, ""].join("\n");
}

/**
 * The scheduled backup job (argument: full, diff or incr). Every member's timers fire, and
 * only one backs up: the first healthy replica by name in Patroni's view of the cluster, once its
 * own GET /replica answers 200. So backups never load the primary, and two replicas never write
 * one backup set at once. When no member would take it (no healthy replica, or the chosen one
 * unhealthy, or the view unreadable), the job fails: a failed unit, which the alerts report.
 * Except on a server that started less than BACKUP_NEW_SERVER_SECONDS ago: a new stack's members
 * (or a rebuilt one) whose schedule comes while the cluster still forms skip that backup without
 * failing, so a new stack raises no alert in its first minutes (BackupMissing covers a backup
 * that never comes). The server's age is its init's, read from /proc (a container's own too).
 */
export const BACKUP_NEW_SERVER_SECONDS = 300;

export function renderBackupScript(spec: Pick<PgbackrestSpec, "stanza" | "name" | "meshAddress">): string {
    const api = `http://${spec.meshAddress}:${DB_PORTS.patroni}`;
    return `#!/bin/sh
# vps-ha: scheduled pgBackRest backup of stanza ${spec.stanza}, taken on a replica.
set -eu
type=\${1:?usage: $0 full|diff|incr}
case "$type" in full|diff|incr) ;; *) echo "usage: $0 full|diff|incr" >&2; exit 2 ;; esac
proc=\${VPS_HA_PROC:-/proc}  # tests point it at a stand-in
age=$(awk -v hz="$(getconf CLK_TCK)" 'NR == FNR { up = $1; next } { sub(/^.*[)] /, ""); split($0, f, " "); print int(up - f[20] / hz) }' "$proc/uptime" "$proc/1/stat" 2>/dev/null || true)
fail() {
  if [ -n "$age" ] && [ "$age" -lt ${BACKUP_NEW_SERVER_SECONDS} ]; then
    echo "backup: $*; this server started $age s ago and the cluster may still be forming: no backup this time, not a failure"
    exit 0
  fi
  echo "backup: $*; no backup is taken" >&2
  exit 1
}

view=$(curl -fsS --max-time 5 ${api}/cluster) || fail "Patroni's cluster view is unreadable on ${spec.name}"
chosen=$(printf %s "$view" | python3 -c '
import json, sys
members = json.load(sys.stdin).get("members", [])
ready = [m["name"] for m in members if m.get("role") in ("replica", "sync_standby", "quorum_standby") and m.get("state") in ("streaming", "running")]
print(min(ready) if ready else "")') || fail "Patroni's cluster view is not JSON"
[ -n "$chosen" ] || fail "the cluster has no healthy replica"
if [ "$chosen" != "${spec.name}" ]; then
  echo "backup: replica $chosen takes this backup, not ${spec.name}"
  exit 0
fi
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 ${api}/replica || true)
[ "$code" = 200 ] || fail "${spec.name}, the replica chosen, is not healthy (GET /replica: $code)"
# Idempotent: creates the stanza the first time (the cluster's bootstrap may not have managed).
pgbackrest --stanza=${spec.stanza} stanza-create
exec pgbackrest --stanza=${spec.stanza} --type="$type" --backup-standby=y backup
`;
}

/**
 * Point-in-time restore into an empty directory, for a drill or a recovery. The restored
 * cluster does not archive (it must never write WAL into the live stanza) and promotes itself
 * once it reaches the target time. Start it by hand, on a free port, for example:
 *   pg_ctl -D DIR -o "-c port=5499 -c listen_addresses= -c unix_socket_directories=/tmp" start
 */
export function renderRestoreScript(stanza: string): string {
    return `#!/bin/sh
# vps-ha: restore stanza ${stanza} to a point in time into an empty data directory.
# usage: ${RESTORE_SCRIPT} 'YYYY-MM-DD HH:MM:SS+00' /path/to/new/datadir   (run as postgres)
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 'YYYY-MM-DD HH:MM:SS+00' DATADIR" >&2
  exit 2
fi
target=$1
dir=$2
if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
  echo "restore: $dir is not empty; restore into a new directory" >&2
  exit 2
fi
mkdir -p "$dir"
chmod 700 "$dir"
exec pgbackrest --stanza=${stanza} --pg1-path="$dir" --type=time "--target=$target" --target-action=promote --archive-mode=off restore
`;
}

export function renderPgbackrestServerUnit(): string {
    return renderUnit({
        Unit: { Description: "pgBackRest TLS server (backups from a standby reach the primary through it)", After: `network-online.target ${MESH_UNIT}`, Wants: "network-online.target" },
        Service: { Type: "simple", User: "postgres", Group: "postgres", ExecStart: "/usr/bin/pgbackrest server", Restart: "always", RestartSec: "5s" },
        Install: { WantedBy: "multi-user.target" },
    });
}

/** A oneshot service and its timer per backup type. */
export function backupJobs(): UnitFile[] {
    return (Object.keys(BACKUP_SCHEDULE) as (keyof typeof BACKUP_SCHEDULE)[]).flatMap((type) => {
        const name = `vps-ha-backup-${type}`;
        return [
            {
                path: `/etc/systemd/system/${name}.service`,
                content: renderUnit({ Unit: { Description: `pgBackRest ${type} backup (on a replica)` }, Service: { Type: "oneshot", User: "postgres", Group: "postgres", ExecStart: `${BACKUP_SCRIPT} ${type}` } }),
            },
            {
                path: `/etc/systemd/system/${name}.timer`,
                // Persistent: a run missed while the node was down happens when it comes back.
                content: renderUnit({ Unit: { Description: `pgBackRest ${type} backup schedule` }, Timer: { OnCalendar: BACKUP_SCHEDULE[type], Persistent: "true" }, Install: { WantedBy: "timers.target" } }),
            },
        ];
    });
}

export const BACKUP_TIMERS = Object.keys(BACKUP_SCHEDULE).map((t) => `vps-ha-backup-${t}.timer`);
