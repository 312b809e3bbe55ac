// WireGuard key arithmetic: a private key is 32 random bytes clamped for X25519 (as `wg genkey`
// does); its public key is derived with node:crypto, so no key ever leaves the program's state.
import { createPrivateKey, createPublicKey } from "node:crypto";

// PKCS#8 wrapping of a raw X25519 private key (RFC 8410).
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

export function clampPrivateKey(base64: string): string {
    const key = Buffer.from(base64, "base64");
    if (key.length !== 32) throw new Error(`a WireGuard private key is 32 bytes, got ${key.length}`);
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
    return key.toString("base64");
}

export function wireguardPublicKey(privateKeyBase64: string): string {
    const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKeyBase64, "base64")]);
    const publicDer = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({ format: "der", type: "spki" });
    return publicDer.subarray(publicDer.length - 32).toString("base64");
}
