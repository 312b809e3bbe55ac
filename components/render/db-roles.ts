// The database's login roles for the stack's secrets version (vpsha/db_roles.py). `ensure` makes
// them on the primary, and sets the superuser's password, in each member's rollout turn before
// its Patroni reloads with them: the first member to change makes them for every other. During
// a rotation `retire` waits, on every member, until the last group to move (the app nodes) reports
// the new version applied and healthy, then disables the version before's logins and ends their
// sessions; whichever member gets there first does it, the others find it done.
import { CloudConfigPart, FilePart } from "./cloud-config";
import { toolFiles } from "./python-lib";
import { renderUnit } from "./systemd";

export const DB_ROLES_TOOL = "/usr/local/lib/vps-ha/db-roles";
/** Holds passwords: root's alone. */
export const DB_ROLES_CONFIG = "/etc/vps-ha/db-roles.json";
export const DB_ROLES_UNIT = "vps-ha-db-roles.service";
export const DB_ROLES_RETIRE_UNIT = "vps-ha-db-roles-retire.service";
/** How long `ensure` looks for a primary (a switchover may be under way). */
export const DB_ROLES_ENSURE_SECONDS = 120;

/** What pg_rewind needs of its role (Patroni grants the same to the rewind user it creates). */
export const REWIND_GRANTS = [
    "EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean)",
    "EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text)",
    "EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
];

export interface DbLogin {
    name: string;
    password: string;
    options: ("LOGIN" | "REPLICATION")[];
    /** Roles it is a member of (the app's owner role, whose objects it works on). */
    memberOf?: string[];
    /** The role its sessions act as (what it creates belongs to the owner role). */
    setRole?: string;
    grants?: string[];
}

export interface DbRolesSpec {
    /** Every database member's mesh address: the tool finds the primary among them. */
    members: string[];
    port: number;
    database: string;
    superuser: string;
    /** The superuser's password, then during a rotation the version before's (until `ensure` has set the new one). */
    superuserPasswords: string[];
    roles: DbLogin[];
    /** The version before's logins, disabled once `after` reports the new version: a rotation only. */
    retire: string[];
    after?: { nodes: { name: string; meshAddress: string }[]; statusPort: number; credentials: number };
    /** How long `retire` waits for `after`. */
    retireWaitSeconds: number;
}

export function renderDbRolesConfig(spec: DbRolesSpec): string {
    const { retireWaitSeconds, ...rest } = spec;
    return JSON.stringify({ ...rest, waitSeconds: DB_ROLES_ENSURE_SECONDS, retireWaitSeconds }, null, 1) + "\n";
}

const unitPath = (unit: string) => `/etc/systemd/system/${unit}`;

/**
 * On a database member, before its PostgreSQL part: `ensure` runs as a restart of a change to
 * the config (never enabled: a new member finds the roles made); `retire`, during a rotation
 * only, starts without being waited for (the member's turn must not wait for the app nodes, which
 * wait for it).
 */
export function dbRolesPart(spec: DbRolesSpec): CloudConfigPart {
    const config: FilePart = { path: DB_ROLES_CONFIG, content: renderDbRolesConfig(spec), permissions: "0600" };
    const ensure: FilePart = {
        path: unitPath(DB_ROLES_UNIT),
        content: renderUnit({
            Unit: { Description: "Make the database's login roles for the stack's secrets version" },
            Service: { Type: "oneshot", ExecStart: `${DB_ROLES_TOOL} ensure ${DB_ROLES_CONFIG}`, TimeoutStartSec: String(DB_ROLES_ENSURE_SECONDS + 30) },
        }),
    };
    const retire: FilePart[] = spec.retire.length === 0 ? [] : [{
        path: unitPath(DB_ROLES_RETIRE_UNIT),
        content: renderUnit({
            Unit: { Description: "Disable the database's logins of the secrets version before, once every node has moved" },
            Service: { Type: "exec", ExecStart: `${DB_ROLES_TOOL} retire ${DB_ROLES_CONFIG}`, TimeoutStopSec: "10" },
        }),
    }];
    return {
        files: [...toolFiles(DB_ROLES_TOOL, "db_roles"), config, ensure, ...retire],
        restarts: [
            { unit: DB_ROLES_UNIT, paths: [config.path, ensure.path] },
            ...retire.map((f) => ({ unit: DB_ROLES_RETIRE_UNIT, paths: [config.path, f.path] })),
        ],
    };
}
