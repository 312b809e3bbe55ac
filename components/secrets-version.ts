// vps-ha:database.secretsVersion: the generation of the database tier's passwords. Each version
// has login roles of its own (loginRole), so a rotation makes the new ones while every client
// still uses the old, and the groups take the new ones in turn: the members make them (and take
// the new superuser, replication, rewind and REST passwords), the poolers accept the new app login
// and admin password next, the app nodes use them last; then the old logins are disabled
// (vpsha/db_roles.py). The superuser keeps its name (Patroni connects as it over the socket, by
// peer authentication) and only its password changes.
import { DB_USERS } from "./render/patroni";

/** The stack output that records the version a deployment was made with. */
export const SECRETS_VERSION_OUTPUT = "databaseSecretsVersion";

/** A rotation: from the deployed stack's version to the stack file's (plan.config.database.secretsVersion), above it. */
export interface SecretsRotation {
    from: number;
}

/** The login roles that change name with the version. */
export type VersionedLogin = "app" | "replication" | "rewind";

/** The PostgreSQL role `login` logs in as under `version`: version 1 keeps the names clusters were first made with. */
export function loginRole(login: VersionedLogin, version: number): string {
    return version === 1 ? DB_USERS[login] : `${DB_USERS[login]}_v${version}`;
}

/**
 * The version the deployed stack's outputs record; undefined when nothing is deployed or the
 * deployment is older than the output. A malformed value is an error, never a guess.
 */
export function secretsVersionFromOutputs(outputs: Record<string, unknown> | undefined): number | undefined {
    const v = outputs?.[SECRETS_VERSION_OUTPUT];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
        throw new Error(`the deployed stack's ${SECRETS_VERSION_OUTPUT} output is ${JSON.stringify(v)}, not a whole number from 1`);
    }
    return v;
}

/**
 * The stack output that says a deployment's members admit every version's logins (their pg_hba
 * rules): a stack deployed without it takes one `pulumi up` at its version before it can rotate.
 */
export const ROTATABLE_OUTPUT = "databaseSecretsRotatable";

/** Whether the deployed stack's outputs say it can rotate (ROTATABLE_OUTPUT). */
export function rotatableFromOutputs(outputs: Record<string, unknown> | undefined): boolean {
    return outputs?.[ROTATABLE_OUTPUT] === true;
}

/** The rotation this run makes, if any. */
export function secretsRotation(deployed: number | undefined, wanted: number): SecretsRotation | undefined {
    return deployed !== undefined && wanted > deployed ? { from: deployed } : undefined;
}

/** Why the stack file cannot be applied to the deployed stack, as far as its secrets go (none: it can). */
export function secretsVersionProblems(deployed: number | undefined, wanted: number, rotatable: boolean): string[] {
    if (deployed === undefined || wanted === deployed) return [];
    if (wanted > deployed && !rotatable) {
        return [
            `vps-ha:database.secretsVersion is ${wanted} in the stack file and ${deployed} in the deployed stack, which an older vps-ha deployed: ` +
            "its members admit only the first version's logins, and would refuse the new ones. Run pulumi up once with the version at " +
            `${deployed} (every member takes rules that admit every version's), then raise it. Nothing was changed.`,
        ];
    }
    if (wanted > deployed) return [];
    return [
        `vps-ha:database.secretsVersion is ${wanted} in the stack file and ${deployed} in the deployed stack: a version only goes up ` +
        `(each one is a new set of passwords; ${wanted}'s were disabled when ${deployed} replaced them). Set it to ${deployed} to keep the ` +
        `passwords, or to ${deployed + 1} to rotate them. Nothing was changed.`,
    ];
}
