// Stand-ins for secrets before they resolve: as long as the real values and as incompressible,
// so a document sized with them (the number of DNS records it takes) fits the real one.
import { createHash } from "node:crypto";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** `length` base62 characters derived from `label` (the same every run). */
export function placeholderSecret(label: string, length: number): string {
    let out = "";
    for (let i = 0; out.length < length; i++) {
        for (const b of createHash("sha256").update(`${label}/${i}`).digest()) out += BASE62[b % 62];
    }
    return out.slice(0, length);
}

/** A PEM-shaped stand-in of `bodyChars` base64 characters (64 a line). */
export function placeholderPem(label: string, kind: string, bodyChars: number): string {
    const body = placeholderSecret(label, bodyChars).match(/.{1,64}/g) ?? [];
    return `-----BEGIN ${kind}-----\n${body.join("\n")}\n-----END ${kind}-----\n`;
}
