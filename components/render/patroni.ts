// Patroni 4 (Debian 13's package) running PostgreSQL 17 on a database node, with etcd (v3 API)
// as its store. Everything listens on the node's mesh address (PostgreSQL also on loopback),
// pg_hba admits the mesh network only, and the REST API asks for a password on every method
// that changes something. The yaml library writes the file, so values are always quoted right.
import { createHash } from "node:crypto";
import { MONITOR_DB_USER } from "./postgres-exporter";
import { stringify } from "yaml";
import { DB_PORTS } from "../plan";
import { afterPromoteHook, PG_CTL_WRAPPER } from "./after-promote";
import { initdbArguments, restoreBootstrap, restoreReplicaMethods } from "./db-restore";
import { MESH_UNIT } from "./mesh";
import { ETCD_TLS_FILES } from "./etcd";
import { SWITCHOVER_BEFORE_STOP } from "./switchover";
import { renderUnit } from "./systemd";

export const PATRONI_UNIT = "vps-ha-patroni.service";
export const PATRONI_CONFIG = "/etc/patroni/vps-ha.yml";
/**
 * What restarts Patroni on a live member when it changes (its desired-state restart names this,
 * not PATRONI_CONFIG): a digest of Patroni's config less the restart parameters in bootstrap.dcs
 * and less the logins and passwords. The parameters reach a running cluster through the dynamic
 * configuration and a restart of PostgreSQL alone (the rollout gate's pending restart); the logins
 * and passwords through a reload of Patroni (a secrets rotation hands no primary over).
 */
export const PATRONI_RESTART_KEY = "/etc/vps-ha/patroni-restart.json";
export const PG_MAJOR = 17;
export const PG_DATA_DIR = `/var/lib/postgresql/${PG_MAJOR}/vps-ha`;
export const PG_BIN_DIR = `/usr/lib/postgresql/${PG_MAJOR}/bin`;
/** A socket directory of its own, outside /run/postgresql where Debian's clusters live. */
export const PG_SOCKET_DIR = "/var/lib/postgresql/vps-ha-socket";
export const POST_BOOTSTRAP_SCRIPT = "/usr/local/lib/vps-ha/db-post-bootstrap";
/** Patroni's bootstrap.initdb: what a new, empty cluster is made with. */
export const INITDB_OPTIONS: (string | Record<string, string>)[] = [{ encoding: "UTF8" }, { locale: "C.UTF-8" }, "data-checksums"];

/** Users the cluster has; passwords come from the program's state. */
export const DB_USERS = { superuser: "postgres", replication: "replicator", rewind: "rewinder", app: "app", restApi: "patroni" } as const;
export const APP_DATABASE = "app";

/**
 * Patroni's timing. A primary that stops renewing its leader key (`ttl`) loses it, and a
 * replica is promoted at its next loop: unplanned failover takes at most ttl + loop_wait.
 * - ttl 20: the smallest Patroni 4 accepts.
 * - loop_wait 1: members look at the cluster every second, so detection adds at most 1 s and
 *   the leader key is renewed every second (it expires at most ttl after the primary dies);
 *   the cost is a few tiny etcd writes per second. Measured in the lab: loop_wait 2 put the RTO
 *   of a killed primary at 22.2 s, too close to the ttl + 3 s target.
 * - retry_timeout 9: how long a DCS or PostgreSQL call is retried before Patroni gives up.
 *   Long enough to ride out an etcd leader election (about 1-2 s here) and WAN jitter without
 *   demoting a healthy primary; failsafe_mode keeps the primary up through a whole etcd outage
 *   as long as it still reaches every member over the REST API.
 * Patroni requires loop_wait + 2 * retry_timeout <= ttl (1 + 18 = 19): a primary that cannot
 * renew demotes itself before its key expires, so there is never a moment with two primaries.
 */
export const PATRONI_TIMING = { ttl: 20, loop_wait: 1, retry_timeout: 9 } as const;
/** A replica further behind than this is never promoted (Patroni's default, 1 MiB). */
export const MAXIMUM_LAG_ON_FAILOVER = 1048576;

export type SynchronousMode = "quorum" | "on" | "off";

export interface SynchronousSpec {
    mode: SynchronousMode;
    /** k: standbys that confirm each commit (components/replication.ts, synchronousNodeCount). */
    nodeCount: number;
    /** synchronous_mode_strict: with no standby left, writes wait (true) or go on with one copy (false). */
    strict: boolean;
}

/**
 * How long the primary keeps a replication connection that says nothing (PostgreSQL's default is
 * 60 s). Set when k > 1: a commit then waits for several standbys, possibly all of them, and a
 * standby lost without a word (a provider outage drops packets, it closes no connection) would
 * hold every commit until it is noticed. Patroni drops a standby from the synchronous set at its
 * next loop once its connection is gone (or its member key expires, after ttl), so commits wait
 * at most this + loop_wait. A live standby answers the primary's keepalive, sent at half this,
 * within milliseconds, even over a WAN.
 */
export const WAL_SENDER_TIMEOUT_SECONDS = 3;

/** A standby's retry interval toward its primary (wal_retrieve_retry_interval); see renderPatroniConfig. */
export const WAL_RETRIEVE_RETRY_SECONDS = 1;

export interface PatroniSpec {
    /** The Patroni cluster name: the stack. */
    scope: string;
    name: string;
    meshAddress: string;
    meshCidr: string;
    /** Every database member's mesh address (this one's too): the only sources of Patroni's own roles. */
    memberAddresses: string[];
    /** etcd client endpoints (host:port): this member's own when it votes, else every voter's. */
    etcdHosts: string[];
    /** Use etcdHosts alone, never the cluster's other members (Patroni's use_proxies). */
    etcdHostsOnly?: boolean;
    /** The etcd certificate files Patroni shows (a voter's member files, else its client files: etcd.ts). */
    etcdTls: { ca: string; cert: string; key: string };
    synchronous: SynchronousSpec;
    /** Parameters PostgreSQL takes only at a restart, kept in the dynamic configuration. */
    restartParameters?: RestartParameters;
    /** Set when backups are configured: WAL goes to the pgBackRest stanza. */
    pgbackrestStanza?: string;
    /** The replication and rewind roles of the stack's secrets version (secrets-version.ts loginRole). */
    logins: { replication: string; rewind: string };
    passwords: { superuser: string; replication: string; rewind: string; restApi: string };
}

/**
 * pg_hba's user field for a role of every secrets version (`replicator`, `replicator_v2`, ...):
 * the rules stay the same through a rotation, so a member that takes the new role is admitted by
 * a primary that has not changed yet. PostgreSQL 16 and later read a leading slash as a regex.
 */
export function everyVersionOf(base: string): string {
    if (!/^[a-z]+$/.test(base)) throw new Error(`pg_hba: ${JSON.stringify(base)} is not a plain role name`);
    return `/^${base}(_v[0-9]+)?$`;
}

/** pg_ident's map from the exporter's OS user to its database role. */
export const MONITOR_IDENT_MAP = "monitor";

/**
 * Who may connect: the postgres OS user over the socket; the superuser, replication and rewind
 * roles from the database members' mesh addresses only (Patroni's own connections between
 * members: clone, stream, rewind), so nobody reaches them through HAProxy; the app role to its
 * database from the mesh, where the host firewall admits PostgreSQL's port from the HAProxy nodes
 * and the members alone (plan.ts).
 */
export function pgHba(meshCidr: string, memberAddresses: string[]): string[] {
    if (memberAddresses.length === 0) throw new Error("pg_hba: no database member's mesh address given");
    const members = [...new Set(memberAddresses)].sort();
    return [
        "local all postgres peer",
        "local replication postgres peer",
        // postgres_exporter (OS user prometheus) as its pg_monitor role, through pg_ident's map.
        `local postgres ${MONITOR_DB_USER} peer map=${MONITOR_IDENT_MAP}`,
        // Patroni's own replication connection to its local server (to read the timeline when a
        // former primary rejoins) goes over the socket: see use_unix_socket_repl.
        `local replication ${everyVersionOf(DB_USERS.replication)} scram-sha-256`,
        ...members.map((a) => `host all,replication ${DB_USERS.superuser},${everyVersionOf(DB_USERS.replication)},${everyVersionOf(DB_USERS.rewind)} ${a}/32 scram-sha-256`),
        // The app's owner role and every login in it (each secrets version's: secrets-version.ts).
        `host ${APP_DATABASE} +${DB_USERS.app} ${meshCidr} scram-sha-256`,
    ];
}

function synchronousSettings(sync: SynchronousSpec): Record<string, unknown> {
    if (sync.mode === "off") return {};
    // Strict (the default): with no synchronous standby left, writes wait instead of being
    // acknowledged by the primary alone; that is what "no acknowledged write lost" costs (the
    // plan's failure table says which losses leave writes waiting). Patroni lowers k by itself
    // while standbys are missing (components/replication.ts).
    return { synchronous_mode: sync.mode === "quorum" ? "quorum" : true, synchronous_mode_strict: sync.strict, synchronous_node_count: sync.nodeCount };
}

/**
 * PostgreSQL parameters that take effect only when PostgreSQL restarts and that Patroni takes from
 * its dynamic configuration alone: a change shows as pending_restart on every member, and the
 * rollout gate (vpsha/rollout.py) restarts PostgreSQL member by member.
 */
export interface RestartParameters {
    /** max_connections; absent: Patroni's default. */
    maxConnections?: number;
}

/** The PostgreSQL names of RestartParameters' keys, as the dynamic configuration holds them. */
export const RESTART_PARAMETER_NAMES: Record<keyof RestartParameters, string> = { maxConnections: "max_connections" };

function restartSettings(r: RestartParameters): Record<string, number> {
    return Object.fromEntries(Object.entries(RESTART_PARAMETER_NAMES).flatMap(([k, name]) => {
        const v = r[k as keyof RestartParameters];
        return v === undefined ? [] : [[name, v]];
    }));
}

/**
 * Patroni's dynamic configuration, kept in etcd for the whole cluster: bootstrap.dcs when the
 * cluster is created, and what vps-ha-patroni-config (patroni-dynamic.ts) brings an existing
 * cluster back to when a member boots and when the stack changes it.
 */
export function patroniDynamicConfig(sync: SynchronousSpec, restart: RestartParameters = {}) {
    return {
        ...PATRONI_TIMING,
        maximum_lag_on_failover: MAXIMUM_LAG_ON_FAILOVER,
        failsafe_mode: true,
        ...synchronousSettings(sync),
        postgresql: {
            use_pg_rewind: true,
            use_slots: true,
            parameters: {
                wal_level: "replica",
                hot_standby: "on",
                wal_log_hints: "on",
                max_wal_senders: 10,
                max_replication_slots: 10,
                wal_keep_size: "1GB",
                password_encryption: "scram-sha-256",
                ...(sync.mode !== "off" && sync.nodeCount > 1 ? { wal_sender_timeout: `${WAL_SENDER_TIMEOUT_SECONDS}s` } : {}),
                ...restartSettings(restart),
            },
        },
    };
}

/** Keys of the dynamic configuration that vps-ha sets in some stacks only. */
const OPTIONAL_DYNAMIC_KEYS = [
    ["synchronous_mode"], ["synchronous_mode_strict"], ["synchronous_node_count"], ["postgresql", "parameters", "wal_sender_timeout"],
    ...Object.values(RESTART_PARAMETER_NAMES).map((name) => ["postgresql", "parameters", name]),
];

/** Of those, the ones this stack does not set, which must therefore be gone from the cluster's configuration. */
export function absentDynamicKeys(sync: SynchronousSpec, restart: RestartParameters = {}): string[][] {
    const desired: unknown = patroniDynamicConfig(sync, restart);
    const has = (path: string[]) => path.reduce<unknown>((at, key) => (at && typeof at === "object" ? (at as Record<string, unknown>)[key] : undefined), desired) !== undefined;
    return OPTIONAL_DYNAMIC_KEYS.filter((path) => !has(path));
}

/**
 * The most WAL one replication slot may hold: a replica gone longer than that loses its slot and
 * is cloned again, rather than filling the primary's disk. With ARCHIVE_QUEUE_MAX_GIB (the same
 * segments) and max_wal_size, pg_wal stays under about 9 GB: a quarter of the smallest prod
 * database disk (Hetzner's cx23, 40 GB), some ten hours of steady writes.
 */
export const MAX_SLOT_WAL_KEEP_GB = 8;

export function archiveCommand(stanza: string): string {
    return `pgbackrest --stanza=${stanza} archive-push %p`;
}

/** PATRONI_RESTART_KEY's content for `spec`: the same for two specs that differ in their restart parameters alone. */
export function renderPatroniRestartKey(spec: PatroniSpec): string {
    const reloaded = { restartParameters: {}, logins: { replication: "", rewind: "" }, passwords: { superuser: "", replication: "", rewind: "", restApi: "" } };
    const sha256 = createHash("sha256").update(renderPatroniConfig({ ...spec, ...reloaded })).digest("hex");
    return JSON.stringify({ sha256 }, null, 1) + "\n";
}

export function renderPatroniConfig(spec: PatroniSpec): string {
    const pg = `${spec.meshAddress}:${DB_PORTS.postgres}`;
    const api = `${spec.meshAddress}:${DB_PORTS.patroni}`;
    const archive = spec.pgbackrestStanza
        ? {
              archive_mode: "on",
              archive_command: archiveCommand(spec.pgbackrestStanza),
              // A WAL segment at least every minute, so point-in-time restore reaches the last minute.
              archive_timeout: "60s",
          }
        : {};
    const doc = {
        scope: spec.scope,
        namespace: "/vps-ha/",
        name: spec.name,
        restapi: {
            listen: api,
            connect_address: api,
            // Patroni asks for these on POST/PUT/PATCH/DELETE only; HAProxy's OPTIONS /primary needs none.
            authentication: { username: DB_USERS.restApi, password: spec.passwords.restApi },
        },
        // etcd admits only clients with a certificate from the stack's etcd CA.
        etcd3: { hosts: spec.etcdHosts, ...(spec.etcdHostsOnly ? { use_proxies: true } : {}), protocol: "https", cacert: spec.etcdTls.ca, cert: spec.etcdTls.cert, key: spec.etcdTls.key },
        bootstrap: {
            dcs: patroniDynamicConfig(spec.synchronous, spec.restartParameters),
            // With backups on, a new cluster comes from the repository when it holds a backup;
            // the restore tool runs initdb with these options only when it provably holds none.
            ...(spec.pgbackrestStanza ? restoreBootstrap(spec.pgbackrestStanza, PG_BIN_DIR, initdbArguments(INITDB_OPTIONS, DB_USERS.superuser)) : {}),
            initdb: INITDB_OPTIONS,
            post_bootstrap: POST_BOOTSTRAP_SCRIPT,
        },
        postgresql: {
            listen: `${spec.meshAddress},127.0.0.1:${DB_PORTS.postgres}`,
            connect_address: pg,
            data_dir: PG_DATA_DIR,
            bin_dir: PG_BIN_DIR,
            // A promotion returns when PostgreSQL is done, and the hook wakes Patroni's loop while
            // commits wait for lost standbys: Patroni's work as the new primary starts without
            // idle seconds (render/after-promote.ts).
            bin_name: { pg_ctl: PG_CTL_WRAPPER },
            callbacks: { on_role_change: afterPromoteHook(PATRONI_CONFIG) },
            pgpass: "/var/lib/postgresql/.pgpass-vps-ha",
            // Patroni's own connections use the socket (peer authentication as postgres).
            use_unix_socket: true,
            use_unix_socket_repl: true,
            authentication: {
                superuser: { username: DB_USERS.superuser, password: spec.passwords.superuser },
                replication: { username: spec.logins.replication, password: spec.passwords.replication },
                rewind: { username: spec.logins.rewind, password: spec.passwords.rewind },
            },
            parameters: {
                unix_socket_directories: PG_SOCKET_DIR,
                // How long a standby waits before trying its primary again after a failed
                // attempt (PostgreSQL's default: 5 s). After a failover or switchover the standbys
                // have just failed to reach the old primary; with strict synchronous replication
                // the new primary's first commit waits for one of them to follow it, and at 5 s
                // that wait was up to 5 s longer (measured: a switchover's write pause of 9 s).
                wal_retrieve_retry_interval: `${WAL_RETRIEVE_RETRY_SECONDS}s`,
                max_slot_wal_keep_size: `${MAX_SLOT_WAL_KEEP_GB}GB`,
                ...archive,
            },
            // No restore_command for replicas: a standby tries it before streaming, and while the
            // bucket is slow or unreachable it would keep replicas from starting. Replication slots
            // keep the WAL a replica needs on the primary; a replica too far gone is re-cloned.
            pg_hba: pgHba(spec.meshCidr, spec.memberAddresses),
            pg_ident: [`${MONITOR_IDENT_MAP} prometheus ${MONITOR_DB_USER}`],
            // A planned switchover run on this node pauses the poolers here, just before
            // PostgreSQL stops, rather than before Patroni's checks: clients wait less. Any other
            // stop finds no request and pauses nothing (vpsha/switchover.py).
            before_stop: SWITCHOVER_BEFORE_STOP,
            ...(spec.pgbackrestStanza ? restoreReplicaMethods(spec.pgbackrestStanza) : { create_replica_methods: ["basebackup"] }),
            basebackup: [{ checkpoint: "fast" }],
        },
        tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    };
    const header = [
        `# Patroni for ${spec.name}, member of the vps-ha cluster "${spec.scope}". Rendered by vps-ha; edits are`,
        "# overwritten when the node is rebuilt. bootstrap.dcs applies when the cluster is first created;",
        "# after that, vps-ha-patroni-config puts the same values back in the cluster's configuration",
        "# whenever a member boots: change them in the stack file, not with patronictl edit-config.",
        `# Timing: ttl ${PATRONI_TIMING.ttl} (Patroni 4's minimum), loop_wait ${PATRONI_TIMING.loop_wait}, retry_timeout ${PATRONI_TIMING.retry_timeout}:`,
        "# failover within ttl + loop_wait, and loop_wait + 2 * retry_timeout <= ttl so a primary that",
        "# cannot renew its leader key steps down before the key expires.",
    ];
    // YAML 1.1 rules: Patroni reads the file with PyYAML, which takes a bare `on` for a boolean.
    return header.join("\n") + "\n" + stringify(doc, { lineWidth: 0, version: "1.1" });
}

/**
 * Patroni runs this once, on the member that initialises the cluster, with a connection URL for
 * the superuser (and PGPASSFILE set). Patroni 4 no longer creates users from its config, so the
 * application's role and database are made here. With backups on, the pgBackRest stanza is
 * created too; a failure there must not fail the bootstrap (Patroni would wipe the new
 * cluster), so it runs on its own and the backup job creates the stanza if it failed.
 */
export function renderPostBootstrap(login: { name: string; password: string }, stanza?: string): string {
    if (!/^[A-Za-z0-9]+$/.test(login.password)) throw new Error("the app password must be alphanumeric (it is written into SQL and URLs unquoted)");
    if (!/^[a-z][a-z0-9_]*$/.test(login.name)) throw new Error(`the app's login ${JSON.stringify(login.name)} is not a plain role name`);
    const owner = DB_USERS.app;
    const create = (role: string, attributes: string) => `SELECT 'CREATE ROLE ${role} ${attributes}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}')\\gexec`;
    const lines = [
        "#!/bin/sh",
        "# vps-ha: Patroni's post_bootstrap: the application's roles and database.",
        "set -eu",
        `psql -v ON_ERROR_STOP=1 -d "$1" <<'SQL'`,
        // The owner logs in itself under the first secrets version; a later version's login acts as it.
        ...(login.name === owner
            ? [create(owner, "LOGIN"), `ALTER ROLE ${owner} PASSWORD '${login.password}';`]
            : [create(owner, "NOLOGIN"), create(login.name, "LOGIN"), `ALTER ROLE ${login.name} PASSWORD '${login.password}';`, `GRANT ${owner} TO ${login.name};`, `ALTER ROLE ${login.name} SET role = '${owner}';`]),
        `SELECT 'CREATE DATABASE ${APP_DATABASE} OWNER ${owner}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${APP_DATABASE}')\\gexec`,
        "SQL",
    ];
    if (stanza) {
        // In the background: an unreachable bucket makes pgBackRest retry for minutes, and the
        // bootstrap must not wait for it. pgBackRest logs to /var/log/pgbackrest either way.
        lines.push(`nohup pgbackrest --stanza=${stanza} stanza-create > /dev/null 2>&1 &`);
    }
    return lines.join("\n") + "\n";
}

/** A voter's wait for its own etcd before Patroni starts (vpsha/etcd_ready.py says why). */
export interface PatroniEtcdWait {
    /** The etcd unit Patroni starts after. */
    unit: string;
    /** The etcd client URL Patroni uses (its own member's). */
    url: string;
}

/** The bound of one wait for etcd's cluster version; systemd starts Patroni again after it. */
export const ETCD_READY_WAIT_SECONDS = 60;
export const ETCD_READY_TOOL = "/usr/local/lib/vps-ha/etcd-ready";

export function renderPatroniUnit(etcd?: PatroniEtcdWait): string {
    return renderUnit({
        Unit: {
            Description: "Patroni: the vps-ha PostgreSQL member",
            After: ["network-online.target", MESH_UNIT, ...(etcd ? [etcd.unit] : [])].join(" "),
            Wants: ["network-online.target", ...(etcd ? [etcd.unit] : [])].join(" "),
        },
        Service: {
            Type: "simple",
            User: "postgres",
            Group: "postgres",
            WorkingDirectory: "/var/lib/postgresql",
            // Within systemd's default start timeout (90 s).
            ...(etcd ? { ExecStartPre: `${ETCD_READY_TOOL} --etcd ${etcd.url} --cacert ${ETCD_TLS_FILES.ca} --cert ${ETCD_TLS_FILES.cert} --key ${ETCD_TLS_FILES.key} --wait ${ETCD_READY_WAIT_SECONDS}` } : {}),
            ExecStart: `/usr/bin/patroni ${PATRONI_CONFIG}`,
            // Patroni reads its config again on SIGHUP: new passwords and logins need no restart.
            ExecReload: "/bin/kill -HUP $MAINPID",
            Restart: "always",
            RestartSec: "5s",
            // A stop signals Patroni alone, which shuts PostgreSQL down itself; systemd's SIGTERM to
            // the postmaster too would start a smart shutdown that waits on every client. At the
            // stop timeout everything left is killed, as before.
            KillMode: "mixed",
        },
        Install: { WantedBy: "multi-user.target" },
    });
}
