// A tiny certificate authority for traffic between database nodes (pgBackRest's TLS server).
// Keys are Ed25519 keys derived from random bytes in the program's state, and certificates are
// encoded here: Ed25519 signatures are deterministic, so the same state renders the same
// certificates on every `pulumi up` (no diff, no replacement) and under the mock runtime the
// lab and the tests get real, verifiable certificates. Pure node:crypto, no provider.
import { createHash, createPrivateKey, createPublicKey, KeyObject, sign } from "node:crypto";
import { isIP } from "node:net";

// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const OID = {
    ed25519: "1.3.101.112",
    commonName: "2.5.4.3",
    subjectKeyId: "2.5.29.14",
    keyUsage: "2.5.29.15",
    subjectAltName: "2.5.29.17",
    basicConstraints: "2.5.29.19",
    authorityKeyId: "2.5.29.35",
    extKeyUsage: "2.5.29.37",
    serverAuth: "1.3.6.1.5.5.7.3.1",
    clientAuth: "1.3.6.1.5.5.7.3.2",
};
/** Fixed validity: the start is a constant so output is deterministic; the end is RFC 5280's "no expiry". */
const NOT_BEFORE = "20250101000000Z";
const NOT_AFTER = "99991231235959Z";

export interface Ed25519Key {
    privateKeyPem: string;
    key: KeyObject;
}

export function ed25519KeyFromSeed(seedBase64: string): Ed25519Key {
    const seed = Buffer.from(seedBase64, "base64");
    if (seed.length !== 32) throw new Error(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
    const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
    return { key, privateKeyPem: key.export({ format: "pem", type: "pkcs8" }).toString() };
}

export interface CertificateSpec {
    commonName: string;
    /** Subject alternative names: DNS names and IP addresses. */
    altNames?: string[];
    isCa: boolean;
}

/** A certificate for `subject`'s key, signed by `issuer` (itself for a CA's own certificate). */
export function certificatePem(spec: CertificateSpec, subject: Ed25519Key, issuer: { key: Ed25519Key; commonName: string }): string {
    const spki = createPublicKey(subject.key).export({ format: "der", type: "spki" });
    const issuerSpki = createPublicKey(issuer.key.key).export({ format: "der", type: "spki" });
    const algorithm = seq(oid(OID.ed25519));
    const extensions = [
        ext(OID.basicConstraints, true, spec.isCa ? seq(der(0x01, Buffer.from([0xff]))) : seq()),
        // CA: keyCertSign + cRLSign; leaf: digitalSignature (all Ed25519 does).
        ext(OID.keyUsage, true, spec.isCa ? der(0x03, Buffer.from([0x01, 0x06])) : der(0x03, Buffer.from([0x07, 0x80]))),
        ext(OID.subjectKeyId, false, der(0x04, keyId(spki))),
        ext(OID.authorityKeyId, false, seq(der(0x80, keyId(issuerSpki)))),
        ...(spec.isCa ? [] : [ext(OID.extKeyUsage, false, seq(oid(OID.serverAuth), oid(OID.clientAuth)))]),
        ...(spec.altNames?.length ? [ext(OID.subjectAltName, false, seq(...spec.altNames.map(generalName)))] : []),
    ];
    const tbs = seq(
        der(0xa0, integer(Buffer.from([2]))), // v3
        integer(serial(spki, spec.commonName)),
        algorithm,
        name(issuer.commonName),
        seq(der(0x18, Buffer.from(NOT_BEFORE)), der(0x18, Buffer.from(NOT_AFTER))),
        name(spec.commonName),
        spki,
        der(0xa3, seq(...extensions)),
    );
    const signature = sign(null, tbs, issuer.key.key);
    const cert = seq(tbs, algorithm, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
    const b64 = cert.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
    return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

// ---- DER ---------------------------------------------------------------------------------------

function der(tag: number, body: Buffer): Buffer {
    const n = body.length;
    const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
    if (n > 0xffff) throw new Error("DER value too long for this encoder");
    return Buffer.concat([Buffer.from([tag]), len, body]);
}

function seq(...items: Buffer[]): Buffer {
    return der(0x30, Buffer.concat(items));
}

function integer(bytes: Buffer): Buffer {
    // A leading 1 bit would make the value negative.
    return der(0x02, bytes[0] & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

function oid(dotted: string): Buffer {
    const [a, b, ...rest] = dotted.split(".").map(Number);
    const bytes = [40 * a + b];
    for (const n of rest) {
        const chunk = [n & 0x7f];
        for (let v = n >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
        bytes.push(...chunk);
    }
    return der(0x06, Buffer.from(bytes));
}

function name(commonName: string): Buffer {
    return seq(der(0x31, seq(oid(OID.commonName), der(0x0c, Buffer.from(commonName, "utf8")))));
}

function ext(id: string, critical: boolean, value: Buffer): Buffer {
    return seq(oid(id), ...(critical ? [der(0x01, Buffer.from([0xff]))] : []), der(0x04, value));
}

function generalName(n: string): Buffer {
    if (isIP(n) === 4) return der(0x87, Buffer.from(n.split(".").map(Number)));
    if (isIP(n) === 6) throw new Error(`IPv6 alternative names are not supported: ${n}`);
    return der(0x82, Buffer.from(n, "ascii"));
}

/** RFC 5280's method 1: SHA-1 of the public key (the whole SPKI here; any stable id will do). */
function keyId(spki: Buffer): Buffer {
    return createHash("sha1").update(spki).digest();
}

/** A positive 16-byte serial, unique per key and name. */
function serial(spki: Buffer, commonName: string): Buffer {
    const s = createHash("sha256").update(spki).update(commonName).digest().subarray(0, 16);
    s[0] = (s[0] & 0x7f) | 0x01;
    return s;
}
