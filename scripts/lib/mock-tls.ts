// Outputs for @pulumi/tls resources under the mock runtime: real keys and certificates (the lab's
// HAProxy and pgBackRest load them), made with node:crypto and the openssl command, once per
// resource name so every evaluation in a process renders the same text. Cloudflare's Origin CA is
// played by a throwaway CA that signs the program's certificate request the same way: for the
// hostnames asked for, with the validity asked for.
import { spawnSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made = new Map<string, Record<string, string>>();

interface Subject {
    commonName?: string;
}

function openssl(args: string[], files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-mock-tls-"));
    try {
        for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content, { mode: 0o600 });
        const r = spawnSync("openssl", args.map((a) => a.replace(/^@/, `${dir}/`)), { encoding: "utf8", timeout: 10000, cwd: dir });
        if (r.status !== 0) throw new Error(`openssl ${args[0]} failed for a mock certificate: ${r.stderr || r.error}`);
        return r.stdout;
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/** subjectAltName from the resource's dnsNames and ipAddresses, if any. */
function altNames(inputs: Record<string, unknown>): string[] {
    const dns = ((inputs.dnsNames as string[] | undefined) ?? []).map((d) => `DNS:${d}`);
    const ips = ((inputs.ipAddresses as string[] | undefined) ?? []).map((i) => `IP:${i}`);
    return dns.length + ips.length ? [`subjectAltName=${[...dns, ...ips].join(",")}`] : [];
}

/** OpenSSL's names for the resource's allowedUses that are key usages (the extended ones aside). */
function keyUsage(inputs: Record<string, unknown>): string | undefined {
    const names: Record<string, string> = { cert_signing: "keyCertSign", crl_signing: "cRLSign", digital_signature: "digitalSignature", key_encipherment: "keyEncipherment" };
    const usages = ((inputs.allowedUses as string[] | undefined) ?? []).map((u) => names[u]).filter(Boolean);
    return usages.length ? usages.join(",") : undefined;
}

const days = (inputs: Record<string, unknown>) => String(Math.max(1, Math.ceil(Number(inputs.validityPeriodHours ?? 24) / 24)));
const subject = (inputs: Record<string, unknown>) => `/CN=${(inputs.subject as Subject | undefined)?.commonName ?? "localhost"}`;

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

function create(type: string, name: string, inputs: Record<string, unknown>): Record<string, string> | undefined {
    switch (type) {
        case "tls:index/privateKey:PrivateKey": {
            if (inputs.algorithm === "ED25519") {
                // From the resource name: records signed in one evaluation verify against the
                // key another evaluation (another process) rendered into the nodes.
                const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, createHash("sha256").update(`ed25519/${name}`).digest()]), format: "der", type: "pkcs8" });
                const publicKey = createPublicKey(privateKey);
                const pkcs8 = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
                return { privateKeyPem: pkcs8, privateKeyPemPkcs8: pkcs8, publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString() };
            }
            const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
            return {
                // As the provider does: SEC1 for ECDSA keys, PKCS#8 beside it.
                privateKeyPem: privateKey.export({ format: "pem", type: "sec1" }).toString(),
                privateKeyPemPkcs8: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
                publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
            };
        }
        case "tls:index/selfSignedCert:SelfSignedCert": {
            const ca = inputs.isCaCertificate === true;
            // The key usages asked for, as the provider writes them: Python 3.13's default TLS context
            // (strict X.509) refuses a CA whose certificate has none.
            const usage = keyUsage(inputs);
            const ext = [ca ? "basicConstraints=critical,CA:TRUE" : "basicConstraints=critical,CA:FALSE", ...(usage ? [`keyUsage=critical,${usage}`] : []), ...altNames(inputs)];
            return { certPem: openssl(["req", "-x509", "-new", "-key", "@key.pem", "-subj", subject(inputs), "-days", days(inputs), ...ext.flatMap((e) => ["-addext", e])], { "key.pem": String(inputs.privateKeyPem) }) };
        }
        case "tls:index/certRequest:CertRequest":
            return { certRequestPem: openssl(["req", "-new", "-key", "@key.pem", "-subj", subject(inputs), ...altNames(inputs).flatMap((e) => ["-addext", e])], { "key.pem": String(inputs.privateKeyPem) }) };
        case "tls:index/locallySignedCert:LocallySignedCert":
            return {
                certPem: openssl(
                    ["x509", "-req", "-in", "@req.pem", "-CA", "@ca.pem", "-CAkey", "@cakey.pem", "-set_serial", String(Date.now()), "-days", days(inputs), "-copy_extensions", "copy", "-extfile", "@ext.cnf"],
                    { "req.pem": String(inputs.certRequestPem), "ca.pem": String(inputs.caCertPem), "cakey.pem": String(inputs.caPrivateKeyPem), "ext.cnf": "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n" },
                ),
            };
        case ORIGIN_CA_CERTIFICATE: {
            const ca = mockOriginCa();
            const names = (inputs.hostnames as string[]).map((h) => `DNS:${h}`).join(",");
            const days = String(Number(inputs.requestedValidity ?? 5475));
            return {
                certificate: openssl(
                    ["x509", "-req", "-in", "@req.pem", "-CA", "@ca.pem", "-CAkey", "@cakey.pem", "-set_serial", String(Date.now()), "-days", days, "-extfile", "@ext.cnf"],
                    { "req.pem": String(inputs.csr), "ca.pem": ca.certPem, "cakey.pem": ca.keyPem, "ext.cnf": `basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${names}\n` },
                ),
            };
        }
        default:
            return undefined;
    }
}

const ORIGIN_CA_CERTIFICATE = "cloudflare:index/originCaCertificate:OriginCaCertificate";
let originCa: { keyPem: string; certPem: string } | undefined;

/** The stand-in for Cloudflare's Origin CA, made once per process. */
export function mockOriginCa(): { keyPem: string; certPem: string } {
    if (!originCa) {
        const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        const keyPem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
        const certPem = openssl(["req", "-x509", "-new", "-key", "@key.pem", "-subj", "/O=vps-ha mock/CN=Mock Origin CA", "-days", "5480", "-addext", "basicConstraints=critical,CA:TRUE"], { "key.pem": keyPem });
        originCa = { keyPem, certPem };
    }
    return originCa;
}

/**
 * As the tls provider replaces certificates due for renewal (their keys stay): the next
 * evaluation signs new ones for these resource names. Returns what puts the old ones back, so
 * the renewal stays within the test that made it.
 */
export function renewMockCertificates(names: string[]): () => void {
    const old = new Map(names.filter((n) => made.has(n)).map((n) => [n, made.get(n) as Record<string, string>]));
    if (old.size !== names.length) throw new Error(`mock tls: no certificate made yet for ${names.filter((n) => !old.has(n)).join(", ")}`);
    for (const n of names) made.delete(n);
    return () => {
        for (const [n, out] of old) made.set(n, out);
    };
}

/** The outputs made for this resource name (the same object until renewed), if any. */
export function mockTlsMade(name: string): Record<string, string> | undefined {
    return made.get(name);
}

export function mockTls(type: string, name: string, inputs: Record<string, unknown>): Record<string, string> {
    if (!type.startsWith("tls:") && type !== ORIGIN_CA_CERTIFICATE) return {};
    if (!made.has(name)) {
        const out = create(type, name, inputs);
        if (!out) return {};
        made.set(name, out);
    }
    return made.get(name) as Record<string, string>;
}
