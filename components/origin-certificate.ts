// The HAProxy nodes' TLS certificate: a Cloudflare Origin CA certificate, which Cloudflare's
// Full (strict) mode trusts, for a key made here (@pulumi/tls) and kept secret in state. Only the
// certificate request leaves the program; the key never does.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { frontDoorHostnames } from "./config";
import { originHostnames } from "./front-door-spec";
import { StackPlan } from "./plan";

/**
 * 15 years, the longest Cloudflare issues. The certificate is written into the HAProxy nodes'
 * user-data, and a server whose user-data changes is replaced: so it is requested once and never
 * renews by itself. Renewing it (a new resource name) replaces both HAProxy nodes, one provider's
 * at a time if done in two `pulumi up`s.
 */
export const ORIGIN_CERT_VALIDITY_DAYS = 5475;

export interface OriginCertificateArgs {
    plan: StackPlan;
}

export class OriginCertificate extends pulumi.ComponentResource {
    /** Certificate and key in one PEM, as HAProxy loads it (secret). */
    readonly pem: pulumi.Output<string>;
    readonly certificatePem: pulumi.Output<string>;

    constructor(name: string, args: OriginCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:OriginCertificate", name, {}, opts);
        const config = args.plan.config;
        const key = new tls.PrivateKey(`${name}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
        const request = new tls.CertRequest(`${name}-csr`, {
            privateKeyPem: key.privateKeyPem,
            subject: { commonName: frontDoorHostnames(config).app },
            dnsNames: originHostnames(config),
        }, { parent: this });
        const cert = new cloudflare.OriginCaCertificate(`${name}-cert`, {
            csr: request.certRequestPem,
            hostnames: originHostnames(config),
            requestType: "origin-ecc",
            requestedValidity: ORIGIN_CERT_VALIDITY_DAYS,
        }, {
            parent: this,
            // The provider (>= 5.9) reads hostnames back in the API's order and would replace the
            // certificate on a refresh (cloudflare/terraform-provider-cloudflare#6239), and with it
            // both HAProxy servers. The names are fixed by the domain (see originHostnames).
            ignoreChanges: ["hostnames"],
        });
        this.certificatePem = cert.certificate;
        this.pem = pulumi.secret(pulumi.all([cert.certificate, key.privateKeyPem]).apply(([c, k]) => `${c.trimEnd()}\n${k}`));
        this.registerOutputs({ certificatePem: this.certificatePem });
    }
}
