// vps-ha:database.secretsVersion on a deployed stack. The database roles' passwords live in
// PostgreSQL, set once when the cluster is created; a new version changes only the copies the
// nodes hold (patroni.yml, the poolers' userlist, the app's URL). The poolers and the app would
// take the new ones while PostgreSQL still wants the old ones, and their new connections would
// fail. Until a rotation changes the roles first, a deployed stack keeps the version it was
// created with, and a change is refused before anything is created.

/** The stack output that records the version a deployment was made with. */
export const SECRETS_VERSION_OUTPUT = "databaseSecretsVersion";

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

/** Why the stack file cannot be applied to the deployed stack, as far as its secrets go (none: it can). */
export function secretsVersionProblems(deployed: number | undefined, wanted: number): string[] {
    if (deployed === undefined || deployed === wanted) return [];
    return [
        `vps-ha:database.secretsVersion is ${wanted} in the stack file and ${deployed} in the deployed stack: rotating the database secrets ` +
        "of a running cluster is not supported yet. PostgreSQL keeps the passwords its roles were created with, while the poolers, " +
        `the app and Patroni would take the new ones, and their new connections would fail. Set it back to ${deployed}. Nothing was changed.`,
    ];
}
