// Values inside Pulumi engine events: property paths as the engine writes them in a detailed
// diff (`rules[0].sourceIps`, `tags["a.b"]`), lookups in a resource's inputs or outputs, and
// secret masking. Pure: no I/O.
//
// The CLI writes each state into its event log with the blinding crypter, so a secret arrives
// as {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "[secret]"}
// (or with "plaintext" under --show-secrets, which we never pass). Either way it is masked here.

/** The property key and value that mark a serialized secret (sdk/go/common/resource/sig). */
export const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270";
/** The string a preview puts where a value is only known after the update. */
export const UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
export const MASK = "[secret]";
export const COMPUTED = "[known after update]";

export type Segment = string | number;

/** `rules[0].sourceIps` -> ["rules", 0, "sourceIps"]; `tags["a.b"]` -> ["tags", "a.b"]. */
export function parsePath(path: string): Segment[] {
    const out: Segment[] = [];
    let i = 0;
    while (i < path.length) {
        const c = path[i];
        if (c === ".") {
            i++;
        } else if (c === "[") {
            const close = path[i + 1] === '"' ? path.indexOf('"]', i + 2) + 1 : path.indexOf("]", i);
            if (close <= i) return [path]; // not a path we understand: treat it as one key
            const inner = path.slice(i + 1, close);
            out.push(/^\d+$/.test(inner) ? Number(inner) : inner.startsWith('"') ? (JSON.parse(inner) as string) : inner);
            i = close + 1;
        } else {
            let j = i;
            while (j < path.length && path[j] !== "." && path[j] !== "[") j++;
            out.push(path.slice(i, j));
            i = j;
        }
    }
    return out;
}

export function formatPath(segments: Segment[]): string {
    return segments
        .map((s, i) => (typeof s === "number" ? `[${s}]` : /^[A-Za-z_$][\w$]*$/.test(s) ? (i === 0 ? s : `.${s}`) : `[${JSON.stringify(s)}]`))
        .join("");
}

export function isSecretValue(v: unknown): boolean {
    if (v === MASK) return true;
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG_VALUE;
}

export function containsSecret(v: unknown): boolean {
    if (isSecretValue(v)) return true;
    if (Array.isArray(v)) return v.some(containsSecret);
    if (typeof v === "object" && v !== null) return Object.values(v).some(containsSecret);
    return false;
}

export interface Lookup {
    found: boolean;
    value?: unknown;
    /** The value, or an object it sits in, is a secret. */
    secret: boolean;
}

/** Walks `segments` into `bag`; stops at a secret on the way (its inside is never read). */
export function lookup(bag: unknown, segments: Segment[]): Lookup {
    let cur: unknown = bag;
    for (const s of segments) {
        if (isSecretValue(cur)) return { found: true, secret: true };
        if (typeof cur !== "object" || cur === null || !(s in cur)) return { found: false, secret: false };
        cur = (cur as Record<string | number, unknown>)[s];
    }
    return { found: true, value: cur, secret: isSecretValue(cur) };
}

/** A copy fit to print: secrets and values under secret keys become "[secret]", unknowns "[known after update]". */
export function maskValue(v: unknown, secretKeys: ReadonlySet<string>): unknown {
    if (isSecretValue(v)) return MASK;
    if (v === UNKNOWN_VALUE) return COMPUTED;
    if (Array.isArray(v)) return v.map((x) => maskValue(x, secretKeys));
    if (typeof v === "object" && v !== null) {
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, secretKeys.has(k) ? MASK : maskValue(x, secretKeys)]));
    }
    return v;
}

export function deepEqual(a: unknown, b: unknown): boolean {
    if (a === b) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => k in b && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** The paths where `a` and `b` differ: objects recurse by key; arrays by index while their lengths agree. */
export function diffPaths(a: unknown, b: unknown, prefix: Segment[] = []): Segment[][] {
    if (deepEqual(a, b)) return [];
    const bothObjects = typeof a === "object" && typeof b === "object" && a !== null && b !== null && !isSecretValue(a) && !isSecretValue(b);
    if (!bothObjects || Array.isArray(a) !== Array.isArray(b) || (Array.isArray(a) && a.length !== (b as unknown[]).length)) return [prefix];
    const keys = Array.isArray(a) ? a.map((_, i) => i) : [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffPaths((a as Record<Segment, unknown>)[k], (b as Record<Segment, unknown>)[k], [...prefix, k]));
}
