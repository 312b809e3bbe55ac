// The database tier: PostgreSQL members under Patroni, etcd members on the voters (an optional
// witness votes without PostgreSQL), and pgBackRest when backups are configured. Every password,
// the backup cipher and the members' TLS keys are generated here and kept as secrets in state;
// they reach the nodes only inside their (secret) user-data.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { backupTarget } from "./config";
import { NodeGroup, NodeGroupArgs } from "./node-group";
import { HAPROXY_PORTS, PlannedNode, StackPlan } from "./plan";
import { databaseParts, DatabaseSecrets } from "./render/database";
import { APP_DATABASE, DB_USERS } from "./render/patroni";
import { certificatePem, ed25519KeyFromSeed } from "./x509";

const PASSWORDS = ["superuser", "replication", "rewind", "app", "restApi", "backupCipher"] as const;
type PasswordName = (typeof PASSWORDS)[number];

/** libpq URLs naming both HAProxy nodes, so losing one never cuts the application off. */
export function connectionStrings(plan: StackPlan, appPassword: string): { readWrite: string; readOnly: string } {
    const proxies = plan.nodes.filter((n) => n.role === "haproxy").map((n) => n.meshAddress);
    const url = (port: number, attrs: string) => `postgresql://${DB_USERS.app}:${appPassword}@${proxies.map((p) => `${p}:${port}`).join(",")}/${APP_DATABASE}?target_session_attrs=${attrs}`;
    // Read-only clients prefer a replica but still get an answer when none is left.
    return { readWrite: url(HAPROXY_PORTS.dbPrimary, "read-write"), readOnly: url(HAPROXY_PORTS.dbReplicas, "prefer-standby") };
}

export class DatabaseCluster extends NodeGroup {
    /** The application's connection string (secret): both HAProxy nodes, the primary's port. */
    readonly connectionString: pulumi.Output<string>;
    /** Same, on the replicas' port. */
    readonly readOnlyConnectionString: pulumi.Output<string>;

    constructor(name: string, args: NodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:DatabaseCluster", name, opts);
        const { plan } = args;
        const passwords = {} as Record<PasswordName, pulumi.Output<string>>;
        for (const p of PASSWORDS) {
            // Alphanumeric: they go into YAML, SQL, URLs and pgBackRest's config unquoted; 32 of 62 symbols is ~190 bits.
            const pw = new random.RandomPassword(`${name}-${p}`, { length: 32, special: false }, { parent: this });
            passwords[p] = pulumi.secret(pw.result);
        }
        const members = plan.nodes.filter((n) => n.role === "db" || n.role === "witness");
        const tls = backupTarget(plan.config) ? this.memberTls(name, plan) : undefined;
        const secretsFor = (node: PlannedNode): pulumi.Output<DatabaseSecrets> =>
            pulumi.all([pulumi.all(passwords), tls?.[node.name] ?? pulumi.output(undefined)]).apply(([pw, nodeTls]) => ({
                superuserPassword: pw.superuser,
                replicationPassword: pw.replication,
                rewindPassword: pw.rewind,
                appPassword: pw.app,
                restApiPassword: pw.restApi,
                ...(nodeTls ? { backup: { cipherPassphrase: pw.backupCipher, ...nodeTls } } : {}),
            }));
        this.addNodes(args, members, (node) => secretsFor(node).apply((s) => databaseParts(plan, node, s)));

        const urls = passwords.app.apply((pw) => connectionStrings(plan, pw));
        this.connectionString = pulumi.secret(urls.apply((u) => u.readWrite));
        this.readOnlyConnectionString = pulumi.secret(urls.apply((u) => u.readOnly));
        this.registerOutputs({ connectionString: this.connectionString, readOnlyConnectionString: this.readOnlyConnectionString });
    }

    /**
     * A CA and one certificate per database member for pgBackRest's TLS server. The keys are
     * random bytes in state (secret); the certificates follow from them deterministically.
     */
    private memberTls(name: string, plan: StackPlan): Record<string, pulumi.Output<{ caCertPem: string; certPem: string; keyPem: string }>> {
        const seed = (n: string) => pulumi.secret(new random.RandomBytes(`${name}-${n}-tls-key`, { length: 32 }, { parent: this }).base64);
        const caName = `vps-ha-${plan.config.stack}-db-ca`;
        const caSeed = seed("ca");
        const out: Record<string, pulumi.Output<{ caCertPem: string; certPem: string; keyPem: string }>> = {};
        for (const node of plan.nodes.filter((n) => n.role === "db")) {
            out[node.name] = pulumi.all([caSeed, seed(node.name)]).apply(([caB64, nodeB64]) => {
                const caKey = ed25519KeyFromSeed(caB64);
                const key = ed25519KeyFromSeed(nodeB64);
                const issuer = { key: caKey, commonName: caName };
                return {
                    caCertPem: certificatePem({ commonName: caName, isCa: true }, caKey, issuer),
                    certPem: certificatePem({ commonName: node.name, altNames: [node.name, node.meshAddress], isCa: false }, key, issuer),
                    keyPem: key.privateKeyPem,
                };
            });
        }
        return out;
    }
}
