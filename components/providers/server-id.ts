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
 * A RandomId whose hex is the node's server-name suffix. `keepers`: what replaces the server (the
 * image, a Hetzner location, the bootstrap identity's digest). `keep`: the server keeps its
 * user-data this run (ServerLifecycle.keepUserData), so it keeps its name too, whatever the
 * keepers say now: a deployment's keepers from an older vps-ha never rename a server.
 */
export function serverSuffix(node: string, keepers: Record<string, string>, keep: boolean, parent: pulumi.Resource): pulumi.Output<string> {
    return new random.RandomId(`${node}${SERVER_ID_SUFFIX}`, { byteLength: SUFFIX_BYTES, keepers }, { parent, ...(keep ? { ignoreChanges: ["keepers"] } : {}) }).hex;
}
