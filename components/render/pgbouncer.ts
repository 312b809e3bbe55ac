// pgbouncer on each HAProxy node: the pooled way to the primary. Clients connect to 6432; each
// transaction borrows a server connection through the local HAProxy's primary port. Because a
// client holds no server connection between transactions, a planned switchover can PAUSE every
// pooler (in-flight transactions finish, new ones wait), move the primary, and RESUME: the
// clients see a short wait and no error. Transaction pooling: session state (SET, advisory
// locks, LISTEN) does not survive between transactions; prepared statements do (pgbouncer 1.21+).
import { POOLER_POOL_SIZE } from "../config";
import { CloudConfigPart, FilePart } from "./cloud-config";
import { DB_PRIMARY_LISTEN } from "./haproxy";
import { toolFiles } from "./python-lib";
import { POOLER_MAX_PAUSE_SECONDS, POOLER_ORPHAN_GRACE_SECONDS } from "./switchover";
import { enableReloaded, renderUnit } from "./systemd";

export const PGBOUNCER_INI = "/etc/pgbouncer/pgbouncer.ini";
export const PGBOUNCER_USERLIST = "/etc/pgbouncer/userlist.txt";
export const PGBOUNCER_UNIT = "pgbouncer.service";
/** The admin console's user: PAUSE, RECONNECT and RESUME during a switchover, nothing else. */
export const POOLER_ADMIN_USER = "vps_ha_pooler";
/** A client waits this long for a server connection (a paused pool included) before an error. */
export const POOLER_QUERY_WAIT_SECONDS = 60;
export const POOLER_GUARD_TOOL = "/usr/local/sbin/vps-ha-pooler-guard";
export const POOLER_GUARD_CONFIG = "/etc/vps-ha/pooler-guard.json";
export const POOLER_GUARD_UNIT = "vps-ha-pooler-guard.service";

export interface PgbouncerConfig {
    /** This HAProxy node's mesh address: clients and the switchover tool connect here. */
    meshAddress: string;
    port: number;
    /** Where server connections go: this node's HAProxy primary port (on its mesh address, where HAProxy binds it). */
    primaryPort: number;
    /** HAProxy's stats port on the mesh address: the pooler guard asks it whether the primary port has a server. */
    statsPort: number;
    database: string;
    appUser: string;
    appPassword: string;
    adminPassword: string;
    /** During a secrets rotation, the app's login of the version before: admitted until the app nodes have moved. */
    previousApp?: { user: string; password: string };
}

/** userlist.txt: "user" "password" per line, double quotes doubled. */
export function renderUserlist(users: Record<string, string>): string {
    const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
    return Object.entries(users).map(([u, p]) => `${q(u)} ${q(p)}`).join("\n") + "\n";
}

export function renderPgbouncerIni(c: PgbouncerConfig): string {
    return `; vps-ha: rendered by the program; changes here are replaced on the next deploy.
[databases]
${c.database} = host=${c.meshAddress} port=${c.primaryPort} dbname=${c.database}

[pgbouncer]
listen_addr = ${c.meshAddress},127.0.0.1
listen_port = ${c.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${PGBOUNCER_USERLIST}
admin_users = ${POOLER_ADMIN_USER}
pool_mode = transaction
max_prepared_statements = 200
max_client_conn = 2000
default_pool_size = ${POOLER_POOL_SIZE}
; During a failover HAProxy has no primary for a while: try again every second, not every 15 s.
server_login_retry = 1
; A client waits this long for a server connection (a paused pool included) before an error.
query_wait_timeout = ${POOLER_QUERY_WAIT_SECONDS}
; libpq and JDBC send these; the pooler need not understand them.
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
`;
}

export function pgbouncerPart(c: PgbouncerConfig): CloudConfigPart {
    const files: FilePart[] = [
        { path: PGBOUNCER_INI, content: renderPgbouncerIni(c), permissions: "0640", owner: "postgres:postgres", defer: true },
        { path: PGBOUNCER_USERLIST, content: renderUserlist({ ...(c.previousApp ? { [c.previousApp.user]: c.previousApp.password } : {}), [c.appUser]: c.appPassword, [POOLER_ADMIN_USER]: c.adminPassword }), permissions: "0640", owner: "postgres:postgres", defer: true },
        // Bind the mesh address even before wg0 is up (HAProxy's nonlocal-bind sysctl covers it),
        // and come back whatever ends the process.
        { path: `/etc/systemd/system/${PGBOUNCER_UNIT}.d/vps-ha.conf`, content: renderUnit({ Unit: { After: "wg-quick@wg0.service haproxy.service" }, Service: { Restart: "always", RestartSec: "1s" } }) },
    ];
    const guard = poolerGuardFiles(c);
    return {
        packages: ["pgbouncer", "python3-psycopg2"],
        files: [...files, ...guard],
        commands: [["systemctl", "daemon-reload"], enableReloaded([PGBOUNCER_UNIT, POOLER_GUARD_UNIT], false), ["systemctl", "restart", PGBOUNCER_UNIT, POOLER_GUARD_UNIT]],
        // Never a restart: that drops every client's connection, which no pause can hide. A reload
        // rereads both files and keeps the connections; the drop-in holds only ordering and
        // Restart= settings, which systemd takes at the daemon-reload before it.
        restarts: [
            { unit: PGBOUNCER_UNIT, paths: [PGBOUNCER_INI, PGBOUNCER_USERLIST, files[2].path], reload: true },
            { unit: POOLER_GUARD_UNIT, paths: guard.map((f) => f.path) },
        ],
    };
}

/**
 * The pooler guard (vpsha/pooler_guard.py): on the node itself, it resumes a pause the switchover
 * tool no longer holds (killed, out of memory) and any pause older than POOLER_MAX_PAUSE_SECONDS.
 */
export function poolerGuardFiles(c: Pick<PgbouncerConfig, "meshAddress" | "port" | "statsPort" | "adminPassword">): FilePart[] {
    const config = {
        haproxyStats: c.meshAddress,
        haproxyStatsPort: c.statsPort,
        haproxyPrimaryListen: DB_PRIMARY_LISTEN,
        host: "127.0.0.1",
        port: c.port,
        adminUser: POOLER_ADMIN_USER,
        adminPassword: c.adminPassword,
        maxPauseSeconds: POOLER_MAX_PAUSE_SECONDS,
        graceSeconds: POOLER_ORPHAN_GRACE_SECONDS,
        everySeconds: 0.5,
    };
    const unit = renderUnit({
        Unit: { Description: "vps-ha pooler guard: no pgbouncer pause outlives its switchover", After: PGBOUNCER_UNIT },
        Service: { ExecStart: POOLER_GUARD_TOOL, User: "postgres", Restart: "always", RestartSec: "1s", NoNewPrivileges: "yes", ProtectSystem: "strict", ProtectHome: "yes", PrivateTmp: "yes" },
        Install: { WantedBy: "multi-user.target" },
    });
    return [
        ...toolFiles(POOLER_GUARD_TOOL, "pooler_guard"),
        { path: POOLER_GUARD_CONFIG, content: JSON.stringify(config, null, 1) + "\n", permissions: "0600", owner: "postgres:postgres", defer: true },
        { path: `/etc/systemd/system/${POOLER_GUARD_UNIT}`, content: unit },
    ];
}
