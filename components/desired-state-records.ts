// Desired-state documents: what `pulumi up` wants one node to hold (files, and the units to
// restart when they change), published as DNS TXT records the node's agent reads
// (node-agent/vpsha/desired.py). Pure: the DesiredState component (desired-state.ts) publishes
// what this builds; the node's reader is the only parser.
//
// A document is JSON (canonical: fixed key order, files sorted by path), gzip-compressed, sealed
// to the node's own WireGuard public key, base64-encoded and cut into chunks:
//   head  at _desired.<node DNS name>:    v=vhd1 node=<node> gen=<generation> chunks=<n> digest=<sha256 hex of the sealed bytes> sig=<Ed25519>
//   chunk at _desired-<k>.<node DNS name>: v=vhd1 gen=<generation> part=<k>/<n> data=<base64>
// The signature covers "vhd1\n<stack>\n<node>\n<generation>\n<n>\n<digest>": a node accepts only
// a head signed for its own stack and name, and only chunks of that head's generation whose
// joined bytes have its digest, so it never mixes two generations.
//
// Seal (X25519, HKDF-SHA256, ChaCha20-Poly1305; every primitive from node:crypto here and
// python3-cryptography on the node): E = X25519(e), shared = X25519(e, node key),
// key || nonce = HKDF(shared, salt = E || node key, info = SEAL_INFO, 44 bytes), sealed =
// E || ChaCha20-Poly1305(key, nonce, gzip(document), aad = "vhd1\n<stack>\n<node>\n<generation>").
// The ephemeral key e derives (HKDF) from a secret seed in state and the document itself, not from
// fresh randomness: the same document seals to the same bytes, so an unchanged stack re-publishes
// the same records (no diff on every `pulumi up`); a changed document gets a new e.
import { createCipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, sign } from "node:crypto";
import { gzipSync } from "node:zlib";
import { TXT_CONTENT_LIMIT, txtContent } from "./directory-records";

export const DESIRED_VERSION = "vhd1";
/** The document's own format version (the JSON's `v`). */
export const DOCUMENT_VERSION = 1;
export const SEAL_INFO = "vps-ha desired-state seal v1";
const EPHEMERAL_INFO = "vps-ha desired-state ephemeral key v1";
/** More chunk records than this for one node would crowd the zone (Cloudflare's free plan holds 200 records in all). */
export const MAX_CHUNKS = 48;
/** The generation is a time in ms (13 digits until the year 2286); budgeted to 16 digits. */
const GENERATION_DIGITS = 16;

export interface DesiredFile {
    /** Absolute path on the node. */
    path: string;
    /** Octal permissions, e.g. "0644". */
    mode: string;
    /** "user:group". */
    owner: string;
    content: string;
}

/** Restart (or reload) `unit` once the files are written, when any of `paths` changed. */
export interface DesiredRestart {
    unit: string;
    paths: string[];
    /** Reload instead of restart (the daemon rereads its files and keeps its connections). */
    reload?: boolean;
}

export interface DesiredRollout {
    /** The rollout group: "db" (members and witness), "haproxy" or "app". */
    group: string;
    /** The same for every node of the group in one published change (an HMAC over the group's contents without `rollout`). */
    id: string;
    /** Every node of the group, this one included, in rollout order, with the mesh address its status is read at. */
    order: { name: string; meshAddress: string }[];
    /** TCP port on the mesh where each node serves its status JSON. */
    statusPort: number;
    /** Commands that must all exit 0 for this node to count as healthy after a change. */
    health: string[][];
    healthTimeoutSeconds: number;
    /** Restarting one of these units on the Patroni primary hands it over first (the planned switchover). */
    handoverUnits: string[];
    /**
     * After one of `units` restarts (the cluster's dynamic configuration may have changed), this
     * member's PostgreSQL restarts if Patroni reports pending_restart within `settleSeconds` (the
     * primary hands over first). Database members only.
     */
    pendingRestart?: { units: string[]; settleSeconds: number };
    /** The database group's etcd certificate files (the lock is taken over TLS with them). */
    etcdTls?: { cacert: string; cert: string; key: string };
    /** The stack's secrets version this change carries: the node's status reports it once applied and healthy. */
    credentials?: number;
    /** During a secrets rotation: this node changes only once every one of `nodes` reports `credentials` (components/rollout.ts ROTATION_AFTER). */
    after?: { nodes: { name: string; meshAddress: string }[]; credentials: number };
}

/** What a node must hold, before the stack, node and generation are attached. */
export interface DesiredContent {
    files: DesiredFile[];
    /** In the order they run; a unit file's change runs `systemctl daemon-reload` first. */
    restarts?: DesiredRestart[];
    /** Debian packages the node needs: installed when missing, before the files their users own are written. */
    packages?: string[];
    /** Run in order once, after the files of the node's first applied document; never on a later generation. */
    setup?: string[][];
    /** Passed untouched to the node's rollout gate (vpsha.rollout) for a generation after the first. */
    rollout?: DesiredRollout;
    /** Files the node takes from the stack's shared document (sharedDocument), each by path and the sha256 of its content. */
    shared?: SharedRef[];
}

export interface SharedRef {
    path: string;
    sha256: string;
}

export interface DesiredDocument extends DesiredContent {
    v: typeof DOCUMENT_VERSION;
    stack: string;
    node: string;
    generation: number;
}

export interface DesiredRecords {
    /** The head's text (before TXT quoting). */
    head: string;
    /** The chunks' texts, part 1 first. */
    chunks: string[];
}

/** Where a node's head lives: `_desired.<node DNS name>`. */
export function desiredHeadName(dnsName: string): string {
    return `_desired.${dnsName}`;
}

/** Where chunk k (from 1) lives: `_desired-<k>.<node DNS name>`. */
export function desiredChunkName(dnsName: string, k: number): string {
    return `_desired-${k}.${dnsName}`;
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
// Plain absolute paths: no "." or ".." segment, no empty one, nothing a shell or unit file would read specially.
const PATH = /^(\/[A-Za-z0-9._@+-]+)+$/;
const MODE = /^0[0-7]{3}$/;
const OWNER = /^[a-z_][a-z0-9_-]{0,31}:[a-z_][a-z0-9_-]{0,31}$/;
// An instance may be a glob ("vps-ha-app@*.service": every running instance of the template).
const UNIT = /^[A-Za-z0-9@_.*-]{1,200}\.(service|socket|timer|target|path)$/;
const PACKAGE = /^[a-z0-9][a-z0-9+.-]{0,99}$/;
const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/; // 32 bytes in base64

function fail(node: string, path: string, value: unknown, allowed: string): never {
    throw new Error(`desired state for ${node}: ${path} is ${JSON.stringify(value)}; ${allowed}`);
}

/** The content checked and in canonical form (files sorted by path); throws naming the key path and value. */
export function canonicalContent(node: string, c: DesiredContent): DesiredContent {
    if (!Array.isArray(c.files)) fail(node, "files", c.files, "expected a list of files");
    const files = c.files.map((f, i) => {
        if (typeof f.path !== "string" || !PATH.test(f.path) || f.path.split("/").some((s) => s === "." || s === "..")) {
            fail(node, `files[${i}].path`, f.path, "expected an absolute path of letters, digits and . _ @ + - (no . or .. segments)");
        }
        if (typeof f.mode !== "string" || !MODE.test(f.mode)) fail(node, `files[${i}].mode`, f.mode, 'expected an octal mode like "0644"');
        if (typeof f.owner !== "string" || !OWNER.test(f.owner)) fail(node, `files[${i}].owner`, f.owner, 'expected "user:group" (lower-case names)');
        if (typeof f.content !== "string") fail(node, `files[${i}].content`, f.content, "expected text");
        return { path: f.path, mode: f.mode, owner: f.owner, content: f.content };
    }).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    files.forEach((f, i) => i > 0 && files[i - 1].path === f.path && fail(node, "files", f.path, "each path may appear once"));
    const shared = (c.shared ?? []).map((r, i) => {
        if (typeof r.path !== "string" || !PATH.test(r.path)) fail(node, `shared[${i}].path`, r.path, "expected an absolute path");
        if (typeof r.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(r.sha256)) fail(node, `shared[${i}].sha256`, r.sha256, "expected a sha256 in hex");
        if (files.some((f) => f.path === r.path)) fail(node, `shared[${i}].path`, r.path, "a path is either the node's own or shared, once");
        return { path: r.path, sha256: r.sha256 };
    }).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const paths = new Set([...files.map((f) => f.path), ...shared.map((r) => r.path)]);
    const restarts = (c.restarts ?? []).map((r, i) => {
        if (typeof r.unit !== "string" || !UNIT.test(r.unit)) fail(node, `restarts[${i}].unit`, r.unit, "expected a systemd unit name like haproxy.service");
        if (!Array.isArray(r.paths) || r.paths.length === 0) fail(node, `restarts[${i}].paths`, r.paths, "expected a non-empty list of the document's file paths");
        r.paths.forEach((p, j) => paths.has(p) || fail(node, `restarts[${i}].paths[${j}]`, p, "expected one of the document's file paths (its own or shared)"));
        if (r.reload !== undefined && typeof r.reload !== "boolean") fail(node, `restarts[${i}].reload`, r.reload, "expected true or false");
        return { unit: r.unit, paths: [...r.paths].sort(), ...(r.reload ? { reload: true } : {}) };
    });
    const packages = [...new Set(c.packages ?? [])].sort();
    packages.forEach((p, i) => typeof p === "string" && PACKAGE.test(p) || fail(node, `packages[${i}]`, p, "expected a Debian package name"));
    const setup = (c.setup ?? []).map((cmd, i) => {
        if (!Array.isArray(cmd) || cmd.length === 0 || cmd.some((a) => typeof a !== "string")) fail(node, `setup[${i}]`, cmd, "expected a non-empty argv (a list of strings)");
        return [...cmd];
    });
    return {
        files,
        ...(restarts.length ? { restarts } : {}),
        ...(packages.length ? { packages } : {}),
        ...(setup.length ? { setup } : {}),
        ...(c.rollout !== undefined ? { rollout: canonicalRollout(node, c.rollout) } : {}),
        ...(shared.length ? { shared } : {}),
    };
}

/** The rollout spec in a fixed key order; its meaning is the rollout gate's, only its shape is checked here. */
function canonicalRollout(node: string, r: DesiredRollout): DesiredRollout {
    const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");
    if (typeof r !== "object" || r === null) fail(node, "rollout", r, "expected an object");
    if (typeof r.group !== "string" || !r.group) fail(node, "rollout.group", r.group, "expected a group name");
    if (typeof r.id !== "string" || !r.id) fail(node, "rollout.id", r.id, "expected the change's id");
    if (!Array.isArray(r.order) || r.order.some((o) => typeof o?.name !== "string" || typeof o?.meshAddress !== "string")) fail(node, "rollout.order", r.order, "expected a list of {name, meshAddress}");
    if (!Number.isInteger(r.statusPort) || r.statusPort < 1 || r.statusPort > 65535) fail(node, "rollout.statusPort", r.statusPort, "expected a TCP port");
    if (!Array.isArray(r.health) || !r.health.every(strings)) fail(node, "rollout.health", r.health, "expected a list of argv lists");
    if (typeof r.healthTimeoutSeconds !== "number" || !(r.healthTimeoutSeconds > 0)) fail(node, "rollout.healthTimeoutSeconds", r.healthTimeoutSeconds, "expected a positive number of seconds");
    if (!strings(r.handoverUnits)) fail(node, "rollout.handoverUnits", r.handoverUnits, "expected a list of unit names");
    const p = r.pendingRestart;
    if (p !== undefined && (typeof p !== "object" || p === null || !strings(p.units) || typeof p.settleSeconds !== "number" || !(p.settleSeconds > 0))) {
        fail(node, "rollout.pendingRestart", p, "expected {units: a list of unit names, settleSeconds: a positive number}");
    }
    const t = r.etcdTls;
    if (t !== undefined && (typeof t !== "object" || t === null || ![t.cacert, t.cert, t.key].every((f) => typeof f === "string" && f.startsWith("/")))) {
        fail(node, "rollout.etcdTls", t, "expected {cacert, cert, key}: absolute file paths");
    }
    const count = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
    if (r.credentials !== undefined && !count(r.credentials)) fail(node, "rollout.credentials", r.credentials, "expected a secrets version (a whole number from 1)");
    const a = r.after;
    if (a !== undefined && (typeof a !== "object" || a === null || !Array.isArray(a.nodes) || a.nodes.length === 0
        || a.nodes.some((o) => typeof o?.name !== "string" || typeof o?.meshAddress !== "string") || !count(a.credentials))) {
        fail(node, "rollout.after", a, "expected {nodes: a list of {name, meshAddress}, credentials: a secrets version}");
    }
    return {
        group: r.group,
        id: r.id,
        order: r.order.map((o) => ({ name: o.name, meshAddress: o.meshAddress })),
        statusPort: r.statusPort,
        health: r.health.map((h) => [...h]),
        healthTimeoutSeconds: r.healthTimeoutSeconds,
        handoverUnits: [...r.handoverUnits],
        ...(p ? { pendingRestart: { units: [...p.units], settleSeconds: p.settleSeconds } } : {}),
        ...(t ? { etcdTls: { cacert: t.cacert, cert: t.cert, key: t.key } } : {}),
        ...(r.credentials !== undefined ? { credentials: r.credentials } : {}),
        ...(a ? { after: { nodes: a.nodes.map((o) => ({ name: o.name, meshAddress: o.meshAddress })), credentials: a.credentials } } : {}),
    };
}

function document(stack: string, node: string, generation: number, c: DesiredContent): DesiredDocument {
    // Key order fixed here: JSON.stringify keeps insertion order, so the bytes are canonical.
    return { v: DOCUMENT_VERSION, stack, node, generation, ...canonicalContent(node, c) };
}

/**
 * What the generation follows: an HMAC (keyed with the node's seal seed, so it reveals nothing of
 * the content) of the canonical content. Unchanged content, unchanged digest, unchanged generation.
 */
export function contentDigest(seed: Buffer, stack: string, node: string, c: DesiredContent): string {
    return createHmac("sha256", seed).update(JSON.stringify({ stack, node, ...canonicalContent(node, c) })).digest("hex");
}

/** The next generation: the time in ms, and always above the previous one (a clock behind the last run's still moves forward). */
export function nextGeneration(previous: number | undefined, nowMs: number): number {
    return Math.max(Math.floor(nowMs), (previous ?? 0) + 1);
}

/**
 * The shell command a `command.local.Command` runs to get the generation, on create and on every
 * update (its digest changed); the provider passes the previous output as PULUMI_COMMAND_STDOUT.
 * Same rule as nextGeneration.
 */
export const GENERATION_COMMAND = `node -e 'const p = Number(process.env.PULUMI_COMMAND_STDOUT || 0) || 0; process.stdout.write(String(Math.max(Date.now(), p + 1)))'`;

/** The generation command's output as a number; throws on anything else. */
export function parseGeneration(node: string, stdout: string): number {
    const g = Number(stdout.trim());
    if (!/^[1-9][0-9]{0,15}$/.test(stdout.trim()) || !Number.isSafeInteger(g)) fail(node, "generation", stdout, "expected a positive integer (the generation command's output)");
    return g;
}

function header(stack: string, node: string, generation: number): string {
    return `${DESIRED_VERSION}\n${stack}\n${node}\n${generation}`;
}

// PKCS#8 and SPKI wrappings of raw X25519 keys (RFC 8410).
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

/** `plaintext` sealed to the X25519 public key `recipient` (32 bytes), bound to `aad`; see the file's comment. */
export function seal(plaintext: Buffer, recipient: Buffer, aad: Buffer, seed: Buffer): Buffer {
    if (recipient.length !== 32) throw new Error(`an X25519 public key is 32 bytes, got ${recipient.length}`);
    const ephemeralRaw = Buffer.from(hkdfSync("sha256", seed, Buffer.alloc(0), Buffer.concat([Buffer.from(EPHEMERAL_INFO + "\n"), aad, createHash("sha256").update(plaintext).digest()]), 32));
    const ephemeral = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, ephemeralRaw]), format: "der", type: "pkcs8" });
    const spki = createPublicKey(ephemeral).export({ format: "der", type: "spki" });
    const e = spki.subarray(spki.length - 32);
    const shared = diffieHellman({ privateKey: ephemeral, publicKey: createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, recipient]), format: "der", type: "spki" }) });
    if (shared.every((b) => b === 0)) throw new Error("the recipient key is a low-order point");
    const okm = Buffer.from(hkdfSync("sha256", shared, Buffer.concat([e, recipient]), Buffer.from(SEAL_INFO), 44));
    const cipher = createCipheriv("chacha20-poly1305", okm.subarray(0, 32), okm.subarray(32, 44), { authTagLength: 16 });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    return Buffer.concat([e, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function chunkPrefix(generation: number | string, k: number | string, n: number | string): string {
    return `v=${DESIRED_VERSION} gen=${generation} part=${k}/${n} data=`;
}

/** Base64 characters per chunk: the most whose TXT content (quoted 255-byte strings) fits Cloudflare's limit. */
export const CHUNK_DATA_CHARS = (() => {
    const prefix = chunkPrefix("9".repeat(GENERATION_DIGITS), 999, 999);
    let n = 0;
    while (txtContent(prefix + "A".repeat(n + 4)).length <= TXT_CONTENT_LIMIT) n += 4; // whole base64 quanta
    return n;
})();

function gzip(doc: DesiredDocument): Buffer {
    // mtime 0 and a fixed level: the same document compresses to the same bytes.
    return gzipSync(Buffer.from(JSON.stringify(doc)), { level: 9 });
}

/** Sealed size for a document: 32 (E) + the ciphertext + 16 (tag). */
function sealedLength(doc: DesiredDocument): number {
    return 32 + gzip(doc).length + 16;
}

/**
 * How many chunk records a node's document takes. A DesiredState is given this number before any
 * secret is known (a preview shows the records `up` makes), so pass content whose secrets are
 * placeholders of their real length; `spareBytes` covers what compression does with the real values.
 */
export function chunksFor(stack: string, node: string, c: DesiredContent, spareBytes = 256): number {
    const n = Math.max(1, Math.ceil((Math.ceil((sealedLength(document(stack, node, 10 ** 15, c)) + spareBytes) / 3) * 4) / CHUNK_DATA_CHARS));
    if (n > MAX_CHUNKS) fail(node, "files", `${n} chunks`, `a node's desired state may take at most ${MAX_CHUNKS} chunk records of ${TXT_CONTENT_LIMIT} characters (Cloudflare's free plan holds 200 records per zone)`);
    return n;
}

export interface BuildInput {
    stack: string;
    node: string;
    generation: number;
    content: DesiredContent;
    /** The node's WireGuard public key, base64. */
    recipient: string;
    /** Ed25519 private key, PEM. */
    signingKeyPem: string;
    /** The node's seal seed (secret, 32 bytes). */
    seed: Buffer;
    /** The number of chunk records (chunksFor); trailing ones carry no data. */
    chunks: number;
}

/** The head and chunk texts of one node's document: signed, sealed, cut; throws naming what is wrong. */
export function buildDesiredRecords(b: BuildInput): DesiredRecords {
    if (!NAME.test(b.stack)) fail(b.node, "stack", b.stack, "expected a lower-case DNS label");
    if (!NAME.test(b.node)) fail(b.node, "node", b.node, "expected a lower-case DNS label");
    if (!Number.isSafeInteger(b.generation) || b.generation < 1 || String(b.generation).length > GENERATION_DIGITS) fail(b.node, "generation", b.generation, "expected a positive integer of at most 16 digits");
    if (!KEY.test(b.recipient)) fail(b.node, "recipient", b.recipient, "expected a WireGuard public key (32 bytes, base64)");
    if (b.seed.length < 32) fail(b.node, "seed", `${b.seed.length} bytes`, "expected at least 32 bytes");
    if (!Number.isInteger(b.chunks) || b.chunks < 1 || b.chunks > MAX_CHUNKS) fail(b.node, "chunks", b.chunks, `expected 1 to ${MAX_CHUNKS}`);
    const doc = document(b.stack, b.node, b.generation, b.content);
    const aad = Buffer.from(header(b.stack, b.node, b.generation));
    const sealed = seal(gzip(doc), Buffer.from(b.recipient, "base64"), aad, b.seed);
    const data = sealed.toString("base64");
    const need = Math.ceil(data.length / CHUNK_DATA_CHARS);
    if (need > b.chunks) fail(b.node, "chunks", b.chunks, `the document needs ${need} chunk records; plan them with chunksFor (more spareBytes)`);
    const digest = createHash("sha256").update(sealed).digest("hex");
    const chunks = Array.from({ length: b.chunks }, (_, i) => chunkPrefix(b.generation, i + 1, b.chunks) + data.slice(i * CHUNK_DATA_CHARS, (i + 1) * CHUNK_DATA_CHARS));
    const payload = `${header(b.stack, b.node, b.generation)}\n${b.chunks}\n${digest}`;
    const sig = sign(null, Buffer.from(payload), createPrivateKey(b.signingKeyPem)).toString("base64");
    return { head: `v=${DESIRED_VERSION} node=${b.node} gen=${b.generation} chunks=${b.chunks} digest=${digest} sig=${sig}`, chunks };
}

// ---------------------------------------------------------------- the shared document
//
// Files that are the same on every node and hold no secret (the node agent's Python package) are
// published once for the stack rather than in every node's sealed document, where they would
// take most of each node's records. Signed, not sealed:
//   head  at _desired-shared.<nodes domain>:    v=vhs1 gen=<generation> chunks=<n> digest=<sha256 hex of the gzip bytes> sig=<Ed25519>
//   chunk at _desired-shared-<k>.<nodes domain>: v=vhs1 gen=<generation> part=<k>/<n> data=<base64>
// The signature covers "vhs1\n<stack>\n<generation>\n<n>\n<digest>". A node's document names each
// shared file it takes by path and sha256, so a node applies a shared file only in the version
// its own document was made with (a document and a shared generation published together match).

export const SHARED_VERSION = "vhs1";

export interface SharedDocument {
    v: typeof DOCUMENT_VERSION;
    stack: string;
    generation: number;
    files: DesiredFile[];
}

export function sharedHeadName(nodesDomain: string): string {
    return `_desired-shared.${nodesDomain}`;
}

export function sharedChunkName(nodesDomain: string, k: number): string {
    return `_desired-shared-${k}.${nodesDomain}`;
}

function sharedChunkPrefix(generation: number | string, k: number | string, n: number | string): string {
    return `v=${SHARED_VERSION} gen=${generation} part=${k}/${n} data=`;
}

/** The sha256 (hex) a node's document names a shared file by. */
export function sharedRefOf(f: DesiredFile): SharedRef {
    return { path: f.path, sha256: createHash("sha256").update(f.content).digest("hex") };
}

/**
 * A node's content with the files `isShared` picks replaced by references to the shared
 * document (which must hold them as they are: the caller builds it from the same renderers).
 */
export function withSharedRefs(c: DesiredContent, isShared: (path: string) => boolean): DesiredContent {
    return { ...c, files: c.files.filter((f) => !isShared(f.path)), shared: [...(c.shared ?? []), ...c.files.filter((f) => isShared(f.path)).map(sharedRefOf)] };
}

function sharedGzip(doc: SharedDocument): Buffer {
    return gzipSync(Buffer.from(JSON.stringify(doc)), { level: 9 });
}

function sharedDocument(stack: string, generation: number, files: DesiredFile[]): SharedDocument {
    return { v: DOCUMENT_VERSION, stack, generation, files: canonicalContent("shared", { files }).files };
}

/** Chunk records the shared document takes (it holds no secret: exact, less the generation's digits). */
export function sharedChunksFor(stack: string, files: DesiredFile[]): number {
    const n = Math.max(1, Math.ceil(Math.ceil(sharedGzip(sharedDocument(stack, 10 ** 15, files)).length / 3) * 4 / CHUNK_DATA_CHARS));
    if (n > MAX_CHUNKS) fail("shared", "files", `${n} chunks`, `the shared document may take at most ${MAX_CHUNKS} chunk records`);
    return n;
}

/** A digest of the shared files (what its generation follows). */
export function sharedDigest(stack: string, files: DesiredFile[]): string {
    return createHash("sha256").update(JSON.stringify(sharedDocument(stack, 1, files))).digest("hex");
}

/** The head and chunk texts of the shared document. */
export function buildSharedRecords(b: { stack: string; generation: number; files: DesiredFile[]; signingKeyPem: string; chunks: number }): DesiredRecords {
    if (!NAME.test(b.stack)) fail("shared", "stack", b.stack, "expected a lower-case DNS label");
    if (!Number.isSafeInteger(b.generation) || b.generation < 1 || String(b.generation).length > GENERATION_DIGITS) fail("shared", "generation", b.generation, "expected a positive integer of at most 16 digits");
    const packed = sharedGzip(sharedDocument(b.stack, b.generation, b.files));
    const data = packed.toString("base64");
    const need = Math.ceil(data.length / CHUNK_DATA_CHARS);
    if (need > b.chunks) fail("shared", "chunks", b.chunks, `the shared document needs ${need} chunk records`);
    const digest = createHash("sha256").update(packed).digest("hex");
    const chunks = Array.from({ length: b.chunks }, (_, i) => sharedChunkPrefix(b.generation, i + 1, b.chunks) + data.slice(i * CHUNK_DATA_CHARS, (i + 1) * CHUNK_DATA_CHARS));
    const payload = `${SHARED_VERSION}\n${b.stack}\n${b.generation}\n${b.chunks}\n${digest}`;
    const sig = sign(null, Buffer.from(payload), createPrivateKey(b.signingKeyPem)).toString("base64");
    return { head: `v=${SHARED_VERSION} gen=${b.generation} chunks=${b.chunks} digest=${digest} sig=${sig}`, chunks };
}
