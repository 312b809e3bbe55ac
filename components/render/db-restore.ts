// Never an empty cluster over real data: with backups on, the member that creates the cluster
// asks the pgBackRest repository first (node-agent/vpsha/db_restore.py) and restores the newest
// backup and every archived WAL segment when there is one; it runs initdb only when the
// repository provably holds no backup, and creates nothing while the repository does not answer.
// New replicas come from the leader (pg_basebackup), from the repository when that fails.
import { FilePart } from "./cloud-config";
import { toolFiles } from "./python-lib";

export const DB_RESTORE_TOOL = "/usr/local/lib/vps-ha/db-restore";
/** Patroni's name for the bootstrap method (bootstrap.method) and the replica method. */
export const RESTORE_BOOTSTRAP_METHOD = "restore";
export const RESTORE_REPLICA_METHOD = "pgbackrest";

/** Patroni's bootstrap.initdb list, as initdb's own arguments (Patroni's rule: a string is a flag, a one-key map an option). */
export function initdbArguments(initdb: (string | Record<string, string>)[], superuser: string): string[] {
    return [...initdb.map((o) => (typeof o === "string" ? `--${o}` : Object.entries(o).map(([k, v]) => `--${k}=${v}`).join(" "))), `--username=${superuser}`];
}

/** Patroni's bootstrap keys: the method and its settings. Patroni adds --scope and --datadir; the others go as --key=value. */
export function restoreBootstrap(stanza: string, binDir: string, initdbArgs: string[]): Record<string, unknown> {
    return {
        method: RESTORE_BOOTSTRAP_METHOD,
        [RESTORE_BOOTSTRAP_METHOD]: {
            command: DB_RESTORE_TOOL,
            // The tool itself replays the archive to the end and promotes, and hands Patroni a
            // cluster in production (or a fresh initdb): Patroni waits for a starting PostgreSQL
            // only pg_ctl_timeout (60 s) before it gives a bootstrap up. So Patroni writes no
            // recovery settings of its own (they would put a fresh initdb into archive recovery).
            keep_existing_recovery_conf: true,
            stanza,
            bin_dir: binDir,
            initdb: initdbArgs.join(" "),
        },
    };
}

/**
 * postgresql's replica keys: pg_basebackup from the leader first, the newest backup from the
 * repository when that fails. A replica restored from the repository streams from the primary
 * from the backup's start, and standbys have no restore_command (patroni.ts): after two failovers
 * within one WAL segment the primary holds the middle timeline's segment only as .partial, and
 * such a replica never streams (seen in CI's db-member-replace). pg_basebackup copies what the
 * leader has now, with the WAL it needs.
 * Not `no_leader`: a replica is only made while a leader exists (Patroni would otherwise restore
 * a lone standby from the repository while the cluster has no primary).
 */
export function restoreReplicaMethods(stanza: string): Record<string, unknown> {
    return {
        create_replica_methods: ["basebackup", RESTORE_REPLICA_METHOD],
        [RESTORE_REPLICA_METHOD]: { command: `pgbackrest --stanza=${stanza} --type=standby restore`, no_params: true },
    };
}

export function dbRestoreFiles(): FilePart[] {
    return toolFiles(DB_RESTORE_TOOL, "db_restore");
}
