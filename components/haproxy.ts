// The HAProxy pair: one proxy node per provider, both active. Each balances HTTP to the app
// nodes and routes database clients to the current Patroni primary, over the mesh.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { NodeGroup, NodeGroupArgs } from "./node-group";
import { DB_PORTS, HAPROXY_PORTS, StackPlan } from "./plan";
import { HaproxyConfig, haproxyPart } from "./render/haproxy";

/** Replicas more than this behind the primary are left out of the read-only port. */
const MAX_REPLICA_LAG_BYTES = 16 * 1024 * 1024;
const HSTS_MAX_AGE_SECONDS = 31536000;

export function haproxyConfig(plan: StackPlan, meshAddress: string): HaproxyConfig {
    return {
        meshAddress,
        appPort: plan.config.app.port,
        appHealthPath: plan.config.app.healthPath,
        postgresPort: DB_PORTS.postgres,
        patroniPort: DB_PORTS.patroni,
        ports: HAPROXY_PORTS,
        maxReplicaLagBytes: MAX_REPLICA_LAG_BYTES,
        hstsMaxAgeSeconds: HSTS_MAX_AGE_SECONDS,
    };
}

export class HaproxyPair extends NodeGroup {
    constructor(name: string, args: NodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:HaproxyPair", name, opts);
        const { plan } = args;
        // The origin certificate: self-signed for now; Cloudflare's "Full (strict)" mode needs
        // an Origin CA certificate, which the front door issues from a key made here too.
        const key = new tls.PrivateKey(`${name}-origin-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
        const cert = new tls.SelfSignedCert(`${name}-origin-cert`, {
            privateKeyPem: key.privateKeyPem,
            subject: { commonName: `app.${plan.config.domain}` },
            dnsNames: [`app.${plan.config.domain}`, `*.${plan.config.domain}`],
            validityPeriodHours: 24 * 365 * 5,
            earlyRenewalHours: 24 * 30,
            allowedUses: ["key_encipherment", "digital_signature", "server_auth"],
        }, { parent: this });
        const pem = pulumi.secret(pulumi.interpolate`${cert.certPem}${key.privateKeyPem}`);
        this.addNodes(args, plan.nodes.filter((n) => n.role === "haproxy"), (node) => pem.apply((p) => [haproxyPart(haproxyConfig(plan, node.meshAddress), p)]));
        this.registerOutputs({});
    }
}
