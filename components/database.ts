// The database tier: PostgreSQL members under Patroni, etcd members on the voters (an optional
// witness votes without PostgreSQL), and pgBackRest when backups are configured. Every password,
// the backup cipher and the members' TLS keys (pgBackRest's and etcd's) are generated here and kept as secrets in state;
// they reach the nodes only inside their (secret) user-data.
import { monitoringParts } from "./render/monitoring";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { backupTarget } from "./config";
import { NodeGroup, NodeGroupArgs } from "./node-group";
import { placeholderPem, placeholderSecret } from "./placeholders";
import { HAPROXY_PORTS, PlannedNode, StackPlan } from "./plan";
import { databaseParts, DatabaseSecrets } from "./render/database";
import { APP_DATABASE } from "./render/patroni";
import { loginRole, SecretsRotation } from "./secrets-version";

/** Ten years; a `pulumi up` in the last month before expiry renews a certificate. */
const CERT_VALIDITY_HOURS = 24 * 365 * 10;
const CERT_RENEWAL_HOURS = 24 * 30;

type TlsPems = { caCertPem: string; certPem: string; keyPem: string };

const PASSWORDS = ["superuser", "replication", "rewind", "app", "restApi", "backupCipher", "poolerAdmin"] as const;
export type PasswordName = (typeof PASSWORDS)[number];
const PASSWORD_LENGTH = 32;

/**
 * The Pulumi resource name of a cluster's password at a secrets version: version 1's keep the
 * names stacks were first made with (`<cluster>-<purpose>`), a later one's end in `-v<version>`.
 * The backup cipher has no version: always `<cluster>-backupCipher`.
 */
export function passwordResourceName(cluster: string, purpose: PasswordName, version: number): string {
    return purpose !== "backupCipher" && version > 1 ? `${cluster}-${purpose}-v${version}` : `${cluster}-${purpose}`;
}

/** libpq URLs naming both HAProxy nodes, so losing one never cuts the application off. */
export function connectionStrings(plan: StackPlan, appPassword: string): { readWrite: string; readOnly: string; pooled: string } {
    const proxies = plan.nodes.filter((n) => n.role === "haproxy").map((n) => n.meshAddress);
    const user = loginRole("app", plan.config.database.secretsVersion);
    const url = (port: number, attrs: string) => `postgresql://${user}:${appPassword}@${proxies.map((p) => `${p}:${port}`).join(",")}/${APP_DATABASE}?target_session_attrs=${attrs}`;
    // Read-only clients prefer a replica but still get an answer when none is left. The pooled
    // URL reaches the primary through pgbouncer (transaction pooling), which a planned
    // switchover pauses instead of breaking connections.
    return { readWrite: url(HAPROXY_PORTS.dbPrimary, "read-write"), readOnly: url(HAPROXY_PORTS.dbReplicas, "prefer-standby"), pooled: url(HAPROXY_PORTS.pooler, "read-write") };
}

/** What the poolers on the HAProxy nodes need: the app's login, and the admin console's password. */
export interface PoolerSecrets {
    appUser: string;
    appPassword: string;
    adminPassword: string;
    /** During a rotation, the app login of the version before: clients not yet moved still log in with it. */
    previousApp?: { user: string; password: string };
}

/** Stand-ins of the secrets' size (see placeholders.ts). */
export function placeholderSecrets(plan: StackPlan, node: PlannedNode, rotation?: SecretsRotation): DatabaseSecrets {
    const pw = (p: PasswordName) => placeholderSecret(`${node.name}/${p}`, PASSWORD_LENGTH);
    return {
        version: plan.config.database.secretsVersion,
        ...(rotation ? { previous: { version: rotation.from, superuserPassword: pw("superuser"), poolerAdminPassword: pw("poolerAdmin") } } : {}),
        superuserPassword: pw("superuser"),
        replicationPassword: pw("replication"),
        rewindPassword: pw("rewind"),
        appPassword: pw("app"),
        restApiPassword: pw("restApi"),
        poolerAdminPassword: pw("poolerAdmin"),
        etcdTls: { caCertPem: placeholderPem(`${node.name}/etcd-ca`, "CERTIFICATE", 800), certPem: placeholderPem(`${node.name}/etcd-cert`, "CERTIFICATE", 900), keyPem: placeholderPem(`${node.name}/etcd-key`, "PRIVATE KEY", 300) },
        ...(backupTarget(plan.config) && node.role === "db"
            ? { backup: { cipherPassphrase: pw("backupCipher"), caCertPem: placeholderPem(`${node.name}/ca`, "CERTIFICATE", 800), certPem: placeholderPem(`${node.name}/cert`, "CERTIFICATE", 900), keyPem: placeholderPem(`${node.name}/key`, "PRIVATE KEY", 300) } }
            : {}),
    };
}

export class DatabaseCluster extends NodeGroup {
    /** The application's connection string (secret): both HAProxy nodes, the primary's port. */
    readonly connectionString: pulumi.Output<string>;
    /** Same, on the replicas' port. */
    readonly readOnlyConnectionString: pulumi.Output<string>;
    /** Same, through the poolers: planned switchovers pause it instead of failing transactions. */
    readonly pooledConnectionString: pulumi.Output<string>;
    /** For the HAProxy pair's poolers (secret). */
    readonly poolerSecrets: pulumi.Output<PoolerSecrets>;

    constructor(name: string, args: NodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:DatabaseCluster", name, opts);
        const { plan } = args;
        const version = plan.config.database.secretsVersion;
        const rotation = args.rotation;
        const passwords = this.passwords(name, version, rotation?.from ?? version);
        // During a rotation, the version before's: what a member logs in with until the superuser's is
        // the new one, and what the poolers still admit for clients not yet moved.
        const previous = rotation ? this.passwords(name, rotation.from, rotation.from, ["superuser", "app", "poolerAdmin"]) : undefined;
        const members = plan.nodes.filter((n) => n.role === "db" || n.role === "witness");
        const tls = backupTarget(plan.config) ? this.memberTls(name, plan) : undefined;
        const etcdTls = this.etcdTls(name, plan, members);
        const secretsFor = (node: PlannedNode): pulumi.Output<DatabaseSecrets> =>
            pulumi.all([pulumi.all(passwords), previous ? pulumi.all(previous) : pulumi.output(undefined), tls?.[node.name] ?? pulumi.output(undefined), etcdTls[node.name]]).apply(([pw, before, nodeTls, etcdPems]) => ({
                version,
                ...(rotation && before ? { previous: { version: rotation.from, superuserPassword: before.superuser, poolerAdminPassword: before.poolerAdmin } } : {}),
                superuserPassword: pw.superuser,
                replicationPassword: pw.replication,
                rewindPassword: pw.rewind,
                appPassword: pw.app,
                restApiPassword: pw.restApi,
                poolerAdminPassword: pw.poolerAdmin,
                etcdTls: etcdPems,
                ...(nodeTls ? { backup: { cipherPassphrase: pw.backupCipher, ...nodeTls } } : {}),
            }));
        this.addNodes(args, members, (node) => secretsFor(node).apply((s) => [...databaseParts(plan, node, s), ...monitoringParts(plan, node)]),
            (node) => [...databaseParts(plan, node, placeholderSecrets(plan, node, rotation)), ...monitoringParts(plan, node)]);

        const urls = passwords.app.apply((pw) => connectionStrings(plan, pw));
        this.connectionString = pulumi.secret(urls.apply((u) => u.readWrite));
        this.readOnlyConnectionString = pulumi.secret(urls.apply((u) => u.readOnly));
        this.pooledConnectionString = pulumi.secret(urls.apply((u) => u.pooled));
        const appUser = loginRole("app", version);
        this.poolerSecrets = pulumi.secret(pulumi.all([passwords.app, passwords.poolerAdmin, previous?.app ?? pulumi.output(undefined)]).apply(([appPassword, adminPassword, previousApp]) => ({
            appUser, appPassword, adminPassword,
            ...(rotation && previousApp !== undefined ? { previousApp: { user: loginRole("app", rotation.from), password: previousApp } } : {}),
        })));
        this.registerOutputs({ connectionString: this.connectionString, readOnlyConnectionString: this.readOnlyConnectionString, pooledConnectionString: this.pooledConnectionString });
    }

    /**
     * One version's passwords (all of them, or `only` those). Alphanumeric: they go into YAML, SQL,
     * URLs and pgBackRest's config unquoted; 32 of 62 symbols is ~190 bits. Version 1's keep the
     * names stacks were first made with; a stack first made at a later version held that version's
     * under those names too (`deployed`), and keeps them by alias. The backup cipher has no version:
     * the repository stays encrypted with the passphrase it was made with.
     */
    private passwords(name: string, version: number, deployed: number, only?: PasswordName[]): Record<PasswordName, pulumi.Output<string>> {
        const out = {} as Record<PasswordName, pulumi.Output<string>>;
        for (const p of only ?? PASSWORDS) {
            const versioned = p !== "backupCipher";
            const resourceName = passwordResourceName(name, p, version);
            const aliases = versioned && version > 1 && version === deployed ? [{ name: `${name}-${p}` }] : undefined;
            const keepers = versioned ? { secretsVersion: String(version) } : undefined;
            const pw = new random.RandomPassword(resourceName, { length: PASSWORD_LENGTH, special: false, ...(keepers ? { keepers } : {}) }, { parent: this, ...(aliases ? { aliases } : {}) });
            out[p] = pulumi.secret(pw.result);
        }
        return out;
    }

    /**
     * A CA and one certificate per database member for pgBackRest's TLS server (@pulumi/tls:
     * keys and certificates live in state as resources, so they stay the same from one
     * `pulumi up` to the next and renew themselves before they expire).
     */
    private memberTls(name: string, plan: StackPlan): Record<string, pulumi.Output<TlsPems>> {
        return this.authority({ caPrefix: name, nodePrefix: (n) => `${name}-${n}-tls`, caName: `vps-ha-${plan.config.stack}-db-ca`, nodes: plan.nodes.filter((n) => n.role === "db"), loopback: false });
    }

    /**
     * etcd's CA and one certificate per database member and witness (each an etcd voter or
     * client), server and client at once: peers check each other both ways.
     */
    private etcdTls(name: string, plan: StackPlan, members: PlannedNode[]): Record<string, pulumi.Output<TlsPems>> {
        return this.authority({ caPrefix: `${name}-etcd`, nodePrefix: (n) => `${name}-${n}-etcd`, caName: `vps-ha-${plan.config.stack}-etcd-ca`, nodes: members, loopback: true });
    }

    /** A CA and a certificate per node, named after it and its mesh address (and loopback when asked). */
    private authority(a: { caPrefix: string; nodePrefix: (node: string) => string; caName: string; nodes: PlannedNode[]; loopback: boolean }): Record<string, pulumi.Output<TlsPems>> {
        const opts = { parent: this };
        const caKey = new tls.PrivateKey(`${a.caPrefix}-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, opts);
        const ca = new tls.SelfSignedCert(`${a.caPrefix}-ca`, {
            privateKeyPem: caKey.privateKeyPem,
            isCaCertificate: true,
            subject: { commonName: a.caName },
            validityPeriodHours: CERT_VALIDITY_HOURS,
            earlyRenewalHours: CERT_RENEWAL_HOURS,
            allowedUses: ["cert_signing", "crl_signing"],
        }, opts);
        const out: Record<string, pulumi.Output<TlsPems>> = {};
        for (const node of a.nodes) {
            const key = new tls.PrivateKey(`${a.nodePrefix(node.name)}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, opts);
            const request = new tls.CertRequest(`${a.nodePrefix(node.name)}-csr`, {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: node.name },
                dnsNames: [node.name],
                ipAddresses: a.loopback ? [node.meshAddress, "127.0.0.1"] : [node.meshAddress],
            }, opts);
            const cert = new tls.LocallySignedCert(`${a.nodePrefix(node.name)}-cert`, {
                certRequestPem: request.certRequestPem,
                caPrivateKeyPem: caKey.privateKeyPem,
                caCertPem: ca.certPem,
                validityPeriodHours: CERT_VALIDITY_HOURS,
                earlyRenewalHours: CERT_RENEWAL_HOURS,
                allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
            }, opts);
            out[node.name] = pulumi.secret(pulumi.all([ca.certPem, cert.certPem, key.privateKeyPem]).apply(([caCertPem, certPem, keyPem]) => ({ caCertPem, certPem, keyPem })));
        }
        return out;
    }
}
