// Authenticated Origin Pulls for this stack's hostnames: a client certificate made here
// (@pulumi/tls, its key secret in state) that Cloudflare presents on every connection it opens to
// the HAProxy nodes for the app's and the candidate's hostnames. Per hostname, not the zone-wide
// shared certificate, which every Cloudflare account presents: HAProxy trusts this certificate
// alone, so only this zone's proxy (with its WAF and rate limits) reaches the origins.
import * as cloudflare from "@pulumi/cloudflare";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { frontDoorHostnames } from "./config";
import { StackPlan } from "./plan";
import { renderOriginPullWait } from "./render/origin-pull-wait";

/** How long `pulumi up` waits for Cloudflare to deploy the associations (it takes minutes at most). */
export const ORIGIN_PULL_WAIT_SECONDS = 900;

/**
 * As long as the origin certificate (ORIGIN_CERT_VALIDITY_DAYS): HAProxy holds it in its
 * user-data, so a new one replaces both HAProxy servers; and an expired one Cloudflare would
 * still present, every request then refused.
 */
export const ORIGIN_PULL_CERT_VALIDITY_HOURS = 5475 * 24;

export interface OriginPullCertificateArgs {
    plan: StackPlan;
}

/** The hostnames Cloudflare presents the certificate for: the app's and the release candidate's. */
export function originPullHostnames(plan: Pick<StackPlan, "config">): string[] {
    const names = frontDoorHostnames(plan.config);
    return [names.app, names.candidate];
}

export class OriginPullCertificate extends pulumi.ComponentResource {
    /** The client certificate (self-signed, PEM): HAProxy's ca-file, not secret; resolves once AOP is on for the hostnames. */
    readonly certificatePem: pulumi.Output<string>;

    constructor(name: string, args: OriginPullCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:OriginPullCertificate", name, {}, opts);
        const config = args.plan.config;
        const zoneId = config.cloudflare.zoneId;
        // RSA: what Cloudflare's per-hostname upload documents; the key stays in state and Cloudflare.
        const key = new tls.PrivateKey(`${name}-key`, { algorithm: "RSA", rsaBits: 2048 }, { parent: this });
        const cert = new tls.SelfSignedCert(`${name}-cert`, {
            privateKeyPem: key.privateKeyPem,
            // Named for the stack, not its hostnames: renaming a hostname keeps the certificate (a
            // new one would be presented before HAProxy trusts it, refusing visitors meanwhile).
            subject: { commonName: `${pulumi.getProject()}-${config.stack} origin pull`, organization: "vps-ha" },
            validityPeriodHours: ORIGIN_PULL_CERT_VALIDITY_HOURS,
            allowedUses: ["digital_signature", "key_encipherment", "client_auth"],
        }, { parent: this });
        const uploaded = new cloudflare.AuthenticatedOriginPullsHostnameCertificate(`${name}-upload`, {
            zoneId,
            certificate: cert.certPem,
            privateKey: pulumi.secret(key.privateKeyPem),
        }, { parent: this });
        // One association per hostname: the provider manages exactly one per resource.
        const enabled = originPullHostnames(args.plan).map((hostname, i) => new cloudflare.AuthenticatedOriginPulls(`${name}-${i === 0 ? "app" : "candidate"}`, {
            zoneId,
            configs: [{ hostname, certId: uploaded.id, enabled: true }],
        }, { parent: this }));
        // Cloudflare deploys the associations in the background: until they are active it may still
        // connect without the certificate. So pulumi up waits for that (bounded) here, and the
        // certificate is known to the HAProxy nodes only afterwards: a server that asks for no
        // certificate is sent none, so the switch refuses nobody.
        const token = new pulumi.Config("cloudflare").getSecret("apiToken");
        const hostnames = originPullHostnames(args.plan);
        const wait = new command.local.Command(`${name}-wait`, {
            create: renderOriginPullWait({ zoneId, hostnames, timeoutSeconds: ORIGIN_PULL_WAIT_SECONDS, everySeconds: 5 }),
            // Otherwise the environment pulumi up runs in, which holds CLOUDFLARE_API_TOKEN.
            ...(token ? { environment: { CLOUDFLARE_API_TOKEN: token } } : {}),
            triggers: [uploaded.id, ...hostnames],
        }, { parent: this, dependsOn: enabled });
        this.certificatePem = pulumi.all([cert.certPem, wait.id]).apply(([c]) => c);
        this.registerOutputs({ certificatePem: this.certificatePem });
    }
}
