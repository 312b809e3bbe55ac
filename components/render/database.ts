// The database tier's share of a node's boot. A "db" node runs PostgreSQL under Patroni, an
// etcd member when it votes, and pgBackRest when backups are configured; a "witness" runs an
// etcd member only. Debian's packages start their own PostgreSQL cluster and etcd on install;
// both are stopped and disabled before ours start, so nothing else holds the ports or data.
import { backupTarget } from "../config";
import { DB_PORTS, HAPROXY_PORTS, PlannedNode, ROLLOUT_STATUS_PORT, StackPlan } from "../plan";
import { loginRole } from "../secrets-version";
import { synchronousNodeCount } from "../replication";
import { afterPromoteFiles } from "./after-promote";
import { CloudConfigPart, FilePart, PartRestart } from "./cloud-config";
import { dbRestoreFiles } from "./db-restore";
import { dbRolesPart, DbRolesSpec, REWIND_GRANTS } from "./db-roles";
import { leaderAwayPart } from "./etcd-leader";
import { PATRONI_DYNAMIC_UNIT, patroniDynamicFiles } from "./patroni-dynamic";
import { etcdLeavePart } from "./etcd-leave";
import { etcdPrunePart } from "./etcd-prune";
import { ETCD_DATA_DIR, ETCD_ENV_FILE, ETCD_JOIN_SCRIPT, ETCD_TLS_FILES, etcdTlsPaths, ETCD_UNIT, etcdClientHosts, etcdClientUrl, etcdMemberSpec, etcdVoterPeers, renderEtcdEnv, renderEtcdJoinScript, renderEtcdUnit } from "./etcd";
import { DB_PRIMARY_LISTEN } from "./haproxy";
import { POOLER_ADMIN_USER } from "./pgbouncer";
import { HAND_OVER_UNIT, renderHandOverUnit, switchoverFiles } from "./switchover";
import { MESH_UNIT } from "./mesh";
import { APP_DATABASE, DB_USERS, ETCD_READY_TOOL, PATRONI_CONFIG, PATRONI_RESTART_KEY, PATRONI_UNIT, PatroniSpec, PG_BIN_DIR, PG_DATA_DIR, PG_SOCKET_DIR, POST_BOOTSTRAP_SCRIPT, renderPatroniConfig, renderPatroniRestartKey, renderPatroniUnit, renderPostBootstrap } from "./patroni";
import { BACKUP_SCRIPT, BACKUP_TIMERS, backupJobs, PGBACKREST_CONF, PGBACKREST_SERVER_UNIT, renderBackupScript, renderPgbackrestConf, renderPgbackrestServerUnit, renderRestoreScript, RESTORE_SCRIPT, TLS_FILES } from "./pgbackrest";
import { toolFiles } from "./python-lib";
import { disableReloaded, enableReloaded } from "./systemd";

/** What the program generates for the database tier (all secret in state). */
export interface DatabaseSecrets {
    /** The stack's secrets version: the login roles' names follow it (secrets-version.ts loginRole). */
    version: number;
    /** During a rotation, what the member still needs of the version before. */
    previous?: { version: number; superuserPassword: string; poolerAdminPassword: string };
    superuserPassword: string;
    replicationPassword: string;
    rewindPassword: string;
    appPassword: string;
    restApiPassword: string;
    /** The poolers' admin console (the switchover tool pauses and resumes them). */
    poolerAdminPassword: string;
    /** PEMs for etcd's TLS: its CA, and this node's certificate (server and client) and key. */
    etcdTls: EtcdTlsPems;
    /** Present when backups are configured. */
    backup?: {
        cipherPassphrase: string;
        /** PEMs for pgBackRest's TLS between members: the CA, and this node's certificate and key. */
        caCertPem: string;
        certPem: string;
        keyPem: string;
    };
}

export interface EtcdTlsPems {
    caCertPem: string;
    certPem: string;
    keyPem: string;
}

/**
 * ETCD_TLS_FILES on a node: the key readable by root, etcd (its owner on a voter) and, on a
 * database member, Patroni and its tools (the postgres group); never by anyone else.
 */
export function etcdTlsFiles(node: PlannedNode, pems: EtcdTlsPems): FilePart[] {
    const owner = node.etcdVoter ? (node.role === "db" ? "etcd:postgres" : "etcd:etcd") : "postgres:postgres";
    const file = (path: string, content: string, permissions: string): FilePart => ({ path, content, permissions, owner, defer: true });
    const paths = etcdTlsPaths(node);
    return [
        file(paths.ca, pems.caCertPem, "0644"),
        file(paths.cert, pems.certPem, "0644"),
        file(paths.key, pems.keyPem, owner === "etcd:postgres" ? "0640" : "0600"),
    ];
}

export const ETCD_PACKAGES = ["etcd-server", "etcd-client"];
// Patroni's etcd3 store is built on python-etcd (the `etcd` module, Debian's python3-etcd), not
// on the python3-etcd3 library; Debian's patroni only recommends it (as one of several stores).
export const POSTGRES_PACKAGES = ["postgresql-17", "patroni", "python3-etcd", "python3-psycopg2", "pgbackrest", "curl"];

const unitPath = (unit: string) => `/etc/systemd/system/${unit}`;
const asPostgres = (f: Omit<FilePart, "owner" | "defer">): FilePart => ({ ...f, owner: "postgres:postgres", defer: true });

function etcdPart(plan: StackPlan, node: PlannedNode, pems: EtcdTlsPems): CloudConfigPart {
    const spec = etcdMemberSpec(plan, node);
    return {
        packages: ETCD_PACKAGES,
        files: [
            ...etcdTlsFiles(node, pems),
            { path: ETCD_ENV_FILE, content: renderEtcdEnv(spec) },
            { path: ETCD_JOIN_SCRIPT, content: renderEtcdJoinScript(spec), permissions: "0755" },
            { path: unitPath(ETCD_UNIT), content: renderEtcdUnit() },
        ],
        commands: [
            // Debian's etcd starts on install with its own data dir and 127.0.0.1:2379.
            disableReloaded(["etcd.service"]),
            ["install", "-d", "-o", "etcd", "-g", "etcd", "-m", "0700", ETCD_DATA_DIR],
            ["systemctl", "daemon-reload"],
            enableReloaded([ETCD_UNIT]),
        ],
        restarts: [{ unit: ETCD_UNIT }],
    };
}

function postgresPart(plan: StackPlan, node: PlannedNode, secrets: DatabaseSecrets): CloudConfigPart {
    const target = backupTarget(plan.config);
    if (target && !secrets.backup) throw new Error(`${node.name}: backups are configured but no backup secrets were given`);
    const stanza = target ? plan.config.stack : undefined;
    const etcdLocal = node.etcdVoter;
    const synchronous = { mode: plan.config.database.synchronous, nodeCount: synchronousNodeCount(plan.config), strict: plan.config.database.synchronousStrict };
    const restartParameters = { maxConnections: plan.config.database.maxConnections };
    const patroniSpec: PatroniSpec = {
        scope: plan.config.stack,
        name: node.name,
        meshAddress: node.meshAddress,
        meshCidr: plan.config.mesh.cidr,
        memberAddresses: plan.nodes.filter((n) => n.role === "db").map((n) => n.meshAddress),
        // A voter's Patroni talks to its own etcd only: another member's etcd restarting (a rollout,
        // an upgrade) would cut the leader's lock update mid-request, and Patroni demotes at once on
        // that. Its own etcd restarts on its own turn, after the member handed the primary over.
        etcdHosts: etcdClientHosts(etcdLocal ? [node] : etcdVoterPeers(plan)),
        etcdHostsOnly: etcdLocal,
        etcdTls: etcdTlsPaths(node),
        synchronous,
        restartParameters,
        ...(stanza ? { pgbackrestStanza: stanza } : {}),
        logins: { replication: loginRole("replication", secrets.version), rewind: loginRole("rewind", secrets.version) },
        passwords: { superuser: secrets.superuserPassword, replication: secrets.replicationPassword, rewind: secrets.rewindPassword, restApi: secrets.restApiPassword },
    };
    const patroni = renderPatroniConfig(patroniSpec);
    const files: FilePart[] = [
        // Read before the packages install: no "main" cluster is created at all.
        { path: "/etc/postgresql-common/createcluster.conf", content: "# vps-ha: Patroni creates and owns the cluster\ncreate_main_cluster = false\n" },
        asPostgres({ path: PATRONI_CONFIG, content: patroni, permissions: "0600" }),
        // A digest of secrets, not the secrets; readable by root alone all the same.
        { path: PATRONI_RESTART_KEY, content: renderPatroniRestartKey(patroniSpec), permissions: "0600" },
        asPostgres({ path: POST_BOOTSTRAP_SCRIPT, content: renderPostBootstrap({ name: loginRole("app", secrets.version), password: secrets.appPassword }, stanza), permissions: "0700" }),
        // A non-voting member's Patroni is an etcd client all the same: it holds a certificate too.
        ...(etcdLocal ? [] : etcdTlsFiles(node, secrets.etcdTls)),
        { path: unitPath(PATRONI_UNIT), content: renderPatroniUnit(etcdLocal ? { unit: ETCD_UNIT, url: etcdClientUrl(node.meshAddress) } : undefined) },
        ...(etcdLocal ? toolFiles(ETCD_READY_TOOL, "etcd_ready") : []),
        ...patroniDynamicFiles(node.meshAddress, synchronous, restartParameters),
        ...afterPromoteFiles(PG_BIN_DIR),
        ...switchoverFiles({
            patroniUrl: `http://${node.meshAddress}:${DB_PORTS.patroni}`,
            restUser: DB_USERS.restApi,
            restPassword: secrets.restApiPassword,
            poolerPort: HAPROXY_PORTS.pooler,
            poolerAdminUser: POOLER_ADMIN_USER,
            poolerAdminPassword: secrets.poolerAdminPassword,
            ...(secrets.previous ? { previousPoolerAdminPassword: secrets.previous.poolerAdminPassword } : {}),
            database: APP_DATABASE,
            haproxyStatsPort: HAPROXY_PORTS.stats,
            haproxyPrimaryListen: DB_PRIMARY_LISTEN,
        }),
        // Ordered after what Patroni is ordered after, and after Patroni: at shutdown it stops first.
        { path: unitPath(HAND_OVER_UNIT), content: renderHandOverUnit(["network-online.target", MESH_UNIT, ...(etcdLocal ? [ETCD_UNIT] : []), PATRONI_UNIT]) },
    ];
    const commands: string[][] = [
        // In case an image ships PostgreSQL with its default cluster already made.
        ["sh", "-c", "if pg_lsclusters -h 2>/dev/null | grep -q '^17 main '; then pg_dropcluster --stop 17 main; fi"],
        disableReloaded(["postgresql.service", "patroni.service"]),
        ["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", PG_DATA_DIR],
        ["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0755", PG_SOCKET_DIR],
    ];
    const units = [PATRONI_UNIT, HAND_OVER_UNIT];
    const restarts: PartRestart[] = [
        // Patroni takes new logins and passwords by a reload (first: a reload just after a restart
        // could reach Patroni before it handles the signal).
        { unit: PATRONI_UNIT, paths: [PATRONI_CONFIG], reload: true },
        // Restarting Patroni restarts PostgreSQL under it: on the primary, after a handover (the rollout gate's).
        // Not for a restart parameter (max_connections): that restarts PostgreSQL alone, where Patroni asks.
        { unit: PATRONI_UNIT, paths: [PATRONI_RESTART_KEY, unitPath(PATRONI_UNIT)] },
        { unit: PATRONI_DYNAMIC_UNIT, paths: patroniDynamicFiles(node.meshAddress, synchronous, restartParameters).map((f) => f.path) },
        // Started on a live member when its unit first arrives (the applier enables it). A later
        // change of it restarts it: on the primary its stop hands over, through the poolers.
        { unit: HAND_OVER_UNIT, paths: [unitPath(HAND_OVER_UNIT)] },
    ];
    if (target && secrets.backup && stanza) {
        const b = secrets.backup;
        const peers = plan.nodes.filter((n) => n.role === "db" && n.name !== node.name).map((n) => ({ name: n.name, meshAddress: n.meshAddress }));
        files.push(
            asPostgres({ path: PGBACKREST_CONF, content: renderPgbackrestConf({ stanza, name: node.name, meshAddress: node.meshAddress, peers, repo: target, cipherPassphrase: b.cipherPassphrase }), permissions: "0600" }),
            asPostgres({ path: TLS_FILES.ca, content: b.caCertPem, permissions: "0644" }),
            asPostgres({ path: TLS_FILES.cert, content: b.certPem, permissions: "0644" }),
            asPostgres({ path: TLS_FILES.key, content: b.keyPem, permissions: "0600" }),
            { path: BACKUP_SCRIPT, content: renderBackupScript({ stanza, name: node.name, meshAddress: node.meshAddress }), permissions: "0755" },
            { path: RESTORE_SCRIPT, content: renderRestoreScript(stanza), permissions: "0755" },
            ...dbRestoreFiles(),
            { path: unitPath(PGBACKREST_SERVER_UNIT), content: renderPgbackrestServerUnit() },
            ...backupJobs(),
        );
        // Debian's own pgBackRest server unit reads the same config; ours is the one that runs.
        commands.push(disableReloaded(["pgbackrest.service"]));
        units.push(PGBACKREST_SERVER_UNIT, ...BACKUP_TIMERS);
        restarts.push(
            { unit: PGBACKREST_SERVER_UNIT, paths: [PGBACKREST_CONF, TLS_FILES.ca, TLS_FILES.cert, TLS_FILES.key, unitPath(PGBACKREST_SERVER_UNIT)] },
            ...BACKUP_TIMERS.map((t) => ({ unit: t, paths: [unitPath(t), unitPath(t.replace(/\.timer$/, ".service"))] })),
        );
    }
    commands.push(["systemctl", "daemon-reload"], ...units.map((u) => enableReloaded([u])), ["systemctl", "enable", "--now", "--no-block", "--no-reload", PATRONI_DYNAMIC_UNIT]);
    return { packages: POSTGRES_PACKAGES, files, commands, restarts };
}

/**
 * The login roles of the stack's secrets version, and during a rotation the version before's to
 * retire once the last group to move (the app nodes; the HAProxy pair in a stack without them)
 * reports the new one.
 */
export function dbRolesSpec(plan: StackPlan, secrets: DatabaseSecrets): DbRolesSpec {
    const v = secrets.version;
    const app = loginRole("app", v);
    const last = plan.nodes.filter((n) => n.role === "app").length > 0 ? "app" : "haproxy";
    const before = secrets.previous;
    return {
        members: plan.nodes.filter((n) => n.role === "db").map((n) => n.meshAddress),
        port: DB_PORTS.postgres,
        database: "postgres",
        superuser: DB_USERS.superuser,
        superuserPasswords: [secrets.superuserPassword, ...(before ? [before.superuserPassword] : [])],
        roles: [
            { name: app, password: secrets.appPassword, options: ["LOGIN"], ...(app !== DB_USERS.app ? { memberOf: [DB_USERS.app], setRole: DB_USERS.app } : {}) },
            { name: loginRole("replication", v), password: secrets.replicationPassword, options: ["LOGIN", "REPLICATION"] },
            { name: loginRole("rewind", v), password: secrets.rewindPassword, options: ["LOGIN"], grants: REWIND_GRANTS },
        ],
        retire: before ? (["app", "replication", "rewind"] as const).map((l) => loginRole(l, before.version)) : [],
        ...(before ? { after: { nodes: plan.nodes.filter((n) => n.role === last).map((n) => ({ name: n.name, meshAddress: n.meshAddress })), statusPort: ROLLOUT_STATUS_PORT, credentials: v } } : {}),
        retireWaitSeconds: plan.config.rollout.waitSeconds,
    };
}

/** The database tier's parts for `node`: role "db" or "witness"; nothing for other roles. */
export function databaseParts(plan: StackPlan, node: PlannedNode, secrets: DatabaseSecrets): CloudConfigPart[] {
    const parts: CloudConfigPart[] = [];
    // The prune first: a member that votes again joins etcd only once etcd no longer counts a removed voter.
    if ((node.role === "db" || node.role === "witness") && node.etcdVoter) parts.push(etcdPrunePart(plan), etcdPart(plan, node, secrets.etcdTls));
    // A member that does not vote leaves etcd's membership if it voted before, ahead of Patroni's restart.
    if (node.role === "db" && !node.etcdVoter) parts.push(etcdLeavePart(plan, node));
    // The roles before Patroni: its restart logs in with them.
    if (node.role === "db") parts.push(dbRolesPart(dbRolesSpec(plan, secrets)), postgresPart(plan, node, secrets));
    if (node.role === "db" && node.etcdVoter) parts.push(leaderAwayPart(node.meshAddress));
    return parts;
}
