// Names the providers keep unique (per account or project): Linode labels, Hetzner names. Pure,
// so each adapter's rule is tested on its own. A name that fits is kept as it is; one that does
// not (too long, or a character the provider refuses) is cut and given a hash of the whole, so
// two long names never come out the same and a cut never ends in '-'.
import { createHash } from "node:crypto";

export interface NameRule {
    /** What the provider calls it, for errors. */
    what: string;
    min: number;
    max: number;
}

/** Linode: 3-50 characters for an instance label (the API's stricter reading), starting with a letter. */
export const LINODE_INSTANCE_LABEL: NameRule = { what: "Linode instance label", min: 3, max: 50 };
/** Linode Cloud Firewall labels: 3-32 characters. */
export const LINODE_FIREWALL_LABEL: NameRule = { what: "Linode firewall label", min: 3, max: 32 };
/** Hetzner Cloud server names must be host names (RFC 1123 labels); the same rule serves its other names. */
export const HCLOUD_NAME: NameRule = { what: "Hetzner Cloud name", min: 3, max: 63 };

/**
 * What every name here is made of: lowercase letters, digits and single '-' between them, starting
 * with a letter and ending with a letter or digit. It satisfies both providers at once (Linode
 * refuses two '-', '_' or '.' in a row; Hetzner server names are host names).
 */
export const NAME_PATTERN = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$/;

const HASH_LENGTH = 6;

/**
 * `base` as a valid name under `rule`, with `suffix` (e.g. the hex of a RandomId that changes when
 * the server is replaced) appended whole. Deterministic: the same inputs give the same name.
 */
export function providerName(base: string, rule: NameRule, suffix = ""): string {
    if (suffix !== "" && !/^[a-z0-9]+$/.test(suffix)) throw new Error(`${rule.what}: suffix "${suffix}" must be lowercase letters and digits`);
    const tail = suffix === "" ? "" : `-${suffix}`;
    const clean = base.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-{2,}/g, "-").replace(/^[^a-z]+/, "").replace(/-+$/, "");
    let name: string;
    if (clean === base && clean.length + tail.length <= rule.max) {
        name = clean + tail;
    } else {
        // Cut (or changed): the hash of the name as given keeps two different inputs apart.
        const hash = createHash("sha256").update(base).digest("hex").slice(0, HASH_LENGTH);
        const room = rule.max - tail.length - HASH_LENGTH - 1;
        const head = clean.slice(0, Math.max(0, room)).replace(/-+$/, "");
        name = `${head === "" ? "n" : head}-${hash}${tail}`;
    }
    if (name.length < rule.min || name.length > rule.max || !NAME_PATTERN.test(name)) {
        throw new Error(`${rule.what}: cannot make a valid name of "${base}" (got "${name}")`);
    }
    return name;
}
