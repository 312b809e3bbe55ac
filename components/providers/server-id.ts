// The random part of a server's name. Its keepers are everything that makes the provider replace
// the server, so a replacement (created before the old server is deleted) gets a name of its own
// instead of colliding with the one it replaces; an in-place change keeps the name.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { createHash } from "node:crypto";

/** 4 bytes: a replacement drawing its predecessor's suffix again is a 1 in 4 billion event. */
const SUFFIX_BYTES = 4;

/** The suffix's resource is named after the node with this ending. */
export const SERVER_ID_SUFFIX = "-server-id";

export function sha256(text: string): string {
    return createHash("sha256").update(text).digest("hex");
}

/**
 * A RandomId whose hex is the node's server-name suffix. `triggers` are the inputs that replace the
 * server; the user-data is kept as its digest (not a secret: it reveals nothing of the keys inside).
 */
export function serverSuffix(node: string, userData: pulumi.Input<string>, triggers: Record<string, pulumi.Input<string>>, parent: pulumi.Resource): pulumi.Output<string> {
    const keepers = { ...triggers, userData: pulumi.unsecret(pulumi.output(userData).apply(sha256)) };
    return new random.RandomId(`${node}${SERVER_ID_SUFFIX}`, { byteLength: SUFFIX_BYTES, keepers }, { parent }).hex;
}
