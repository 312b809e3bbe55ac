// The mesh directory's records: what the program publishes in DNS so every node learns the
// current node set at run time (its user-data names no other node). Pure: the program signs with
// it, the lab serves and the tests check what it builds. The nodes read the same text in Python
// (node-agent/vpsha/records.py, the one reader of it there).
//
// Text format, version vh1, one TXT record each, fields in this order, separated by one space:
//   node:  v=vh1 kind=node name=<node> role=<role> mesh=<IPv4> wg=<WireGuard public key> dns=<DNS name> sig=<Ed25519>
//   index: v=vh1 kind=index gen=<generation> part=<i>/<n> set=<digest> removal=<bounded|deliberate> members=<name>,<name>,... sig=<Ed25519>
//   release: v=vh1 kind=release active=<image> aport=<port> candidate=<image|-> cport=<port|-> sig=<Ed25519>
// The signature covers "vh1\n<the record's own DNS name>\n<the text before ' sig='>", so a
// record is valid only under the name it was made for. `set` is a digest of the whole member
// list: the parts of one index must agree on it, so a node never mixes an old part with a new one.
// `gen` rises with every published change (kept in Pulumi state, as a desired state's): of several
// complete indexes in DNS a node takes the newest, and never one older than it applied. `removal`:
// bounded, a node refuses an index that drops more than a third of a role's members at once;
// deliberate, the stack file removed them (or the stack says so) and the node applies it.
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { Role, ROLES } from "./config";

export const RECORD_VERSION = "vh1";
/** Cloudflare accepts at most this many characters of TXT content. */
export const TXT_CONTENT_LIMIT = 2048;
/** One DNS character-string holds at most 255 bytes. */
export const TXT_STRING_LIMIT = 255;
const SIGNATURE_BASE64_LENGTH = 88; // 64 bytes

export interface NodeRecord {
    name: string;
    role: Role;
    meshAddress: string;
    wireguardKey: string;
    dnsName: string;
}

export interface IndexPart {
    /** The publication's generation, the same in every part: above every earlier one. */
    generation: number;
    /** The stack file removes members (or the stack allows a large removal): nodes apply it whatever it drops. */
    deliberate: boolean;
    part: number;
    parts: number;
    /** Digest of the whole member list, the same in every part. */
    set: string;
    members: string[];
}

/** What every app node runs and which image each HAProxy backend serves (components/release.ts). */
export interface ReleaseRecord {
    active: string;
    activePort: number;
    candidate?: string;
    candidatePort?: number;
}

/** Where the release lives: `_release.<stack>.nodes.<domain>`. */
export function directoryReleaseName(nodesDomain: string): string {
    return `_release.${nodesDomain}`;
}

/** Where the index lives: `_mesh.<stack>.nodes.<domain>`. */
export function directoryIndexName(nodesDomain: string): string {
    return `_mesh.${nodesDomain}`;
}

/** Where a node's record lives: `_mesh.<node DNS name>`. */
export function directoryRecordName(dnsName: string): string {
    return `_mesh.${dnsName}`;
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/; // 32 bytes in base64
const SET = /^[0-9a-f]{16}$/;
/** A generation is a time in ms (desired-state-records.ts' command); budgeted to 16 digits. */
const GENERATION = /^[1-9][0-9]{0,15}$/;
const GENERATION_BUDGET = 10 ** 15;
const IMAGE = /^[a-z0-9][a-z0-9._\/:-]*(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$/;
const PORT = (p: number | undefined) => p !== undefined && Number.isInteger(p) && p >= 1 && p <= 65535;

function check(ok: boolean, what: string): void {
    if (!ok) throw new Error(`directory record: ${what}`);
}

function nodeBody(r: NodeRecord): string {
    check(NAME.test(r.name), `bad node name ${JSON.stringify(r.name)}`);
    check((ROLES as readonly string[]).includes(r.role), `bad role ${JSON.stringify(r.role)}`);
    check(IPV4.test(r.meshAddress), `bad mesh address ${JSON.stringify(r.meshAddress)}`);
    check(KEY.test(r.wireguardKey), `bad WireGuard key ${JSON.stringify(r.wireguardKey)}`);
    check(DNS_NAME.test(r.dnsName), `bad DNS name ${JSON.stringify(r.dnsName)}`);
    return `v=${RECORD_VERSION} kind=node name=${r.name} role=${r.role} mesh=${r.meshAddress} wg=${r.wireguardKey} dns=${r.dnsName}`;
}

function indexBody(p: IndexPart): string {
    check(p.part >= 1 && p.part <= p.parts && Number.isInteger(p.part) && Number.isInteger(p.parts), `bad part ${p.part}/${p.parts}`);
    check(GENERATION.test(String(p.generation)) && Number.isSafeInteger(p.generation), `bad generation ${JSON.stringify(p.generation)}`);
    check(SET.test(p.set), `bad set digest ${JSON.stringify(p.set)}`);
    check(p.members.length > 0 && p.members.every((m) => NAME.test(m)), `bad member list ${JSON.stringify(p.members)}`);
    return `v=${RECORD_VERSION} kind=index gen=${p.generation} part=${p.part}/${p.parts} set=${p.set} removal=${p.deliberate ? "deliberate" : "bounded"} members=${p.members.join(",")}`;
}

function releaseBody(r: ReleaseRecord): string {
    check(IMAGE.test(r.active) && PORT(r.activePort), `bad active image or port ${JSON.stringify([r.active, r.activePort])}`);
    check(r.candidate === undefined ? r.candidatePort === undefined : IMAGE.test(r.candidate) && PORT(r.candidatePort) && r.candidatePort !== r.activePort,
        `bad candidate image or port ${JSON.stringify([r.candidate, r.candidatePort])}`);
    return `v=${RECORD_VERSION} kind=release active=${r.active} aport=${r.activePort} candidate=${r.candidate ?? "-"} cport=${r.candidatePort ?? "-"}`;
}

function signedPayload(owner: string, body: string): Buffer {
    return Buffer.from(`${RECORD_VERSION}\n${owner.toLowerCase().replace(/\.$/, "")}\n${body}`);
}

function signBody(owner: string, body: string, privateKeyPem: string): string {
    const sig = sign(null, signedPayload(owner, body), createPrivateKey(privateKeyPem)).toString("base64");
    return `${body} sig=${sig}`;
}

export function signNodeRecord(owner: string, r: NodeRecord, privateKeyPem: string): string {
    return signBody(owner, nodeBody(r), privateKeyPem);
}

export function signIndexPart(owner: string, p: IndexPart, privateKeyPem: string): string {
    return signBody(owner, indexBody(p), privateKeyPem);
}

export function signReleaseRecord(owner: string, r: ReleaseRecord, privateKeyPem: string): string {
    return signBody(owner, releaseBody(r), privateKeyPem);
}

/** The digest every part of an index carries: of the member list in order. */
export function memberSetDigest(members: string[]): string {
    return createHash("sha256").update(members.join(",")).digest("hex").slice(0, 16);
}

/**
 * The member list split into index parts whose TXT content (quoted, in 255-byte strings, signed)
 * fits Cloudflare's limit. How it splits depends on the names alone, so the number of records is
 * known before any key or generation exists.
 */
export function indexParts(members: string[], generation: number, deliberate: boolean): IndexPart[] {
    const set = memberSetDigest(members);
    // The longest generation and flag are budgeted for: the split never depends on them.
    const fits = (names: string[], parts: number) =>
        txtContent(`${indexBody({ generation: GENERATION_BUDGET, deliberate: true, part: parts, parts, set, members: names })} sig=${"A".repeat(SIGNATURE_BASE64_LENGTH)}`).length <= TXT_CONTENT_LIMIT;
    // Part numbers up to 3 digits are budgeted for, so a part never grows when the count does.
    const budget = 999;
    const groups: string[][] = [];
    for (const m of members) {
        const last = groups[groups.length - 1];
        if (last && fits([...last, m], budget)) last.push(m);
        else groups.push([m]);
    }
    return groups.map((g, i) => ({ generation, deliberate, part: i + 1, parts: groups.length, set, members: g }));
}

/** A value as TXT content: quoted character-strings of at most 255 bytes, as DNS requires. */
export function txtContent(value: string): string {
    check(/^[\x21-\x7e ]*$/.test(value) && !/["\\]/.test(value), "TXT values here are printable ASCII without quotes or backslashes");
    const strings: string[] = [];
    for (let i = 0; i < value.length; i += TXT_STRING_LIMIT) strings.push(value.slice(i, i + TXT_STRING_LIMIT));
    return (strings.length ? strings : [""]).map((s) => `"${s}"`).join(" ");
}

/** The character-strings of TXT content as Cloudflare takes it: quoted strings, or one bare value. */
export function txtStrings(content: string): string[] {
    const quoted = content.trim().match(/^"[^"\\]*"(\s+"[^"\\]*")*$/);
    if (quoted) return [...content.matchAll(/"([^"\\]*)"/g)].map((m) => m[1]);
    const out: string[] = [];
    for (let i = 0; i < content.length; i += TXT_STRING_LIMIT) out.push(content.slice(i, i + TXT_STRING_LIMIT));
    return out.length ? out : [""];
}

/** The raw 32-byte Ed25519 public key (base64) of a PEM public or private key. */
export function ed25519PublicKey(pem: string): string {
    const key = pem.includes("PRIVATE KEY") ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
    check(key.asymmetricKeyType === "ed25519", `expected an Ed25519 key, got ${key.asymmetricKeyType}`);
    const der = key.export({ format: "der", type: "spki" });
    return der.subarray(der.length - 32).toString("base64");
}

// SPKI wrapping of a raw Ed25519 public key (RFC 8410).
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export type ParsedRecord = ({ kind: "node" } & NodeRecord) | ({ kind: "index" } & IndexPart) | ({ kind: "release" } & ReleaseRecord);

/**
 * Parses and verifies one record found at DNS name `owner`; throws, saying why, on anything
 * malformed, unsigned or signed by another key. `publicKey`: raw Ed25519 key, base64.
 */
export function parseRecord(owner: string, text: string, publicKey: string): ParsedRecord {
    const at = text.lastIndexOf(" sig=");
    check(at > 0, "no signature");
    const body = text.slice(0, at);
    const sig = Buffer.from(text.slice(at + 5), "base64");
    check(sig.length === 64 && sig.toString("base64") === text.slice(at + 5), "malformed signature");
    const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(publicKey, "base64")]), format: "der", type: "spki" });
    check(verify(null, signedPayload(owner, body), key, sig), `bad signature for ${owner}`);
    const fields = body.split(" ").map((f) => {
        const eq = f.indexOf("=");
        check(eq > 0, `malformed field ${JSON.stringify(f)}`);
        return [f.slice(0, eq), f.slice(eq + 1)] as const;
    });
    const keys = fields.map(([k]) => k).join(" ");
    const v = Object.fromEntries(fields);
    check(v.v === RECORD_VERSION, `unknown version ${JSON.stringify(v.v)}`);
    if (v.kind === "node") {
        check(keys === "v kind name role mesh wg dns", `unexpected fields ${keys}`);
        const r: NodeRecord = { name: v.name, role: v.role as Role, meshAddress: v.mesh, wireguardKey: v.wg, dnsName: v.dns };
        check(nodeBody(r) === body, "not in canonical form");
        return { kind: "node", ...r };
    }
    if (v.kind === "release") {
        check(keys === "v kind active aport candidate cport", `unexpected fields ${keys}`);
        const r: ReleaseRecord = {
            active: v.active, activePort: Number(v.aport),
            ...(v.candidate !== "-" ? { candidate: v.candidate, candidatePort: Number(v.cport) } : {}),
        };
        check(releaseBody(r) === body, "not in canonical form");
        return { kind: "release", ...r };
    }
    check(v.kind === "index" && keys === "v kind gen part set removal members", `unexpected fields ${keys}`);
    const m = /^(\d{1,3})\/(\d{1,3})$/.exec(v.part);
    check(m !== null, `bad part ${JSON.stringify(v.part)}`);
    check(v.removal === "bounded" || v.removal === "deliberate", `bad removal ${JSON.stringify(v.removal)}`);
    const p: IndexPart = { generation: Number(v.gen), deliberate: v.removal === "deliberate", part: Number(m?.[1]), parts: Number(m?.[2]), set: v.set, members: v.members.split(",") };
    check(indexBody(p) === body, "not in canonical form");
    return { kind: "index", ...p };
}
