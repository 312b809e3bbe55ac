// What R2 checks and s3rver does not: every request signed with AWS Signature Version 4 by the
// secret of the access key it names. An unsigned request is refused, as R2 refuses it.
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export interface S3Request {
    method: string;
    /** Path and query as sent (still percent-encoded). */
    url: string;
    headers: Record<string, string | string[] | undefined>;
}

export interface S3Refusal {
    code: "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch";
    message: string;
}

const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/\s]+)\/(\d{8})\/([^/\s]+)\/([^/\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;

const header = (r: S3Request, name: string): string | undefined => {
    const v = r.headers[name];
    return Array.isArray(v) ? v.join(",") : v;
};
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const hmac = (key: string | Buffer, s: string) => createHmac("sha256", key).update(s).digest();
/** RFC 3986 encoding, as Signature Version 4 wants it. */
const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const decode = (s: string) => {
    try {
        return decodeURIComponent(s);
    } catch {
        return s;
    }
};

function canonicalQuery(query: string): string {
    const pairs = query
        .split("&")
        .filter(Boolean)
        .map((p) => {
            const i = p.indexOf("=");
            return [encode(decode(i < 0 ? p : p.slice(0, i))), encode(decode(i < 0 ? "" : p.slice(i + 1)))];
        });
    pairs.sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
    return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** Why R2 would refuse `req`, given each access key's secret; undefined when it would not. */
export function s3Refusal(req: S3Request, secrets: Map<string, string>): S3Refusal | undefined {
    const auth = header(req, "authorization");
    if (!auth) return { code: "AccessDenied", message: "the request is not signed" };
    const m = AUTHORIZATION.exec(auth);
    if (!m) return { code: "AccessDenied", message: "the request is not signed with AWS Signature Version 4" };
    const [, keyId, day, region, service, signedHeaders, signature] = m;
    const secret = secrets.get(keyId);
    if (secret === undefined) return { code: "InvalidAccessKeyId", message: `no access key ${keyId}` };
    const amzDate = header(req, "x-amz-date");
    const payload = header(req, "x-amz-content-sha256");
    if (!amzDate?.startsWith(day) || !payload || !signedHeaders.split(";").includes("host")) return { code: "AccessDenied", message: "x-amz-date, x-amz-content-sha256 or a signed host header missing" };
    const q = req.url.indexOf("?");
    const canonical = [
        req.method,
        q < 0 ? req.url : req.url.slice(0, q),
        canonicalQuery(q < 0 ? "" : req.url.slice(q + 1)),
        signedHeaders
            .split(";")
            .map((h) => `${h}:${(header(req, h) ?? "").trim().replace(/\s+/g, " ")}\n`)
            .join(""),
        signedHeaders,
        payload,
    ].join("\n");
    const scope = `${day}/${region}/${service}/aws4_request`;
    const key = [day, region, service, "aws4_request"].reduce<string | Buffer>((k, part) => hmac(k, part), `AWS4${secret}`);
    const expected = hmac(key, ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n")).toString("hex");
    if (!timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) return { code: "SignatureDoesNotMatch", message: "the signature does not match the access key's secret" };
    return undefined;
}

/** The file beside the stand-in's credentials where it notes the key of each request it admits. */
export const S3_KEY_USE = "key-use.jsonl";

export interface S3Key {
    accessKeyId: string;
    secretAccessKey: string;
}

/** The stand-in's credentials file: one key, or {keys: [...]} while a rotation holds two. */
export function credentialKeys(file: unknown): S3Key[] {
    const one = (k: unknown): k is S3Key => typeof k === "object" && k !== null && typeof (k as S3Key).accessKeyId === "string" && typeof (k as S3Key).secretAccessKey === "string";
    if (one(file)) return [file];
    const keys = (file as { keys?: unknown } | null)?.keys;
    if (Array.isArray(keys) && keys.length > 0 && keys.every(one)) return keys;
    throw new Error("the S3 credentials file is neither {accessKeyId, secretAccessKey} nor {keys: [...]}");
}

/** The access key an Authorization header names (undefined for another kind of header). */
export function s3KeyOf(authorization: string | undefined): string | undefined {
    return authorization ? AUTHORIZATION.exec(authorization)?.[1] : undefined;
}
