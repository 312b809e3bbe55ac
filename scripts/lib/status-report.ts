// `npm run status`, the pure part: its arguments, where the URL and token come from, and the
// status view's answer (node-agent/vpsha/status_view.py) as a compact table. No I/O here.
import { STACK_NAME } from "../../components/config";
import { parseArgs, UsageError } from "./args";

export const STATUS_USAGE = `usage: npm run status -- --stack NAME [--json]
       npm run status -- --url URL [--json]    (token in VPS_HA_STATUS_TOKEN)
The stack's health from its HAProxy nodes' status view: database members and roles, replication
lag, the last backup and restore check, alerts firing, each node's generation and rollout state.
--stack NAME  read the view's URL and token from \`pulumi stack output --stack NAME --show-secrets\`
              (NAME may be ORG/NAME); needs the Pulumi CLI, logged in to the stack's backend
--url URL     ask this URL instead (https://, or http:// to an IPv4 address such as a mesh address)
--json        print the view's whole answer as JSON instead of the table
Exit status: 0 healthy; 1 degraded (an alert firing, a member not running, a node halted or
silent, a source not answering); 2 the status could not be read (the message says why).`;

/** The environment variable `--url` takes the token from (a secret: never an argument). */
export const STATUS_TOKEN_ENV = "VPS_HA_STATUS_TOKEN";
/** The token as the program generates it (components/haproxy.ts): letters and digits. */
const TOKEN = /^[A-Za-z0-9]{32,128}$/;
/** An organisation or project before the stack's own name, as Pulumi Cloud spells them. */
const QUALIFIER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface StatusArgs {
    /** The stack to read the URL and token from; undefined with `url`. */
    stack?: string;
    url?: string;
    json: boolean;
}

/** The arguments, checked; throws UsageError saying what is wrong. */
export function parseStatusArgs(argv: string[]): StatusArgs {
    const a = parseArgs(argv, { values: ["stack", "url"], flags: ["json"] });
    if (a.positional.length > 0) throw new UsageError(`unexpected argument ${a.positional[0]}`);
    const { stack, url } = a.values;
    if (stack === undefined && url === undefined) throw new UsageError("--stack NAME is required");
    if (stack !== undefined && url !== undefined) throw new UsageError("give --stack or --url, not both");
    if (stack !== undefined) checkStackName(stack);
    if (url !== undefined) checkUrl(url, "--url");
    return { ...(stack !== undefined ? { stack } : {}), ...(url !== undefined ? { url } : {}), json: a.flags.json === true };
}

/** Stack names as the program takes them (components/config.ts), optionally qualified by ORG/ or ORG/PROJECT/. */
export function checkStackName(name: string): void {
    const parts = name.split("/");
    const own = parts[parts.length - 1];
    if (parts.length > 3 || !STACK_NAME.test(own) || !parts.slice(0, -1).every((p) => QUALIFIER.test(p))) {
        throw new UsageError(`--stack: ${JSON.stringify(name)} is not a stack name: allowed 1-20 of a-z, 0-9 and '-', starting with a letter and not ending with '-', optionally after ORG/ or ORG/PROJECT/`);
    }
}

/** https:// anywhere; http:// only to an IPv4 address (the mesh, a tunnel, a test), where no name can be spoofed in between. */
export function checkUrl(url: string, what: string): void {
    let u: URL;
    try {
        u = new URL(url);
    } catch {
        throw new UsageError(`${what}: ${JSON.stringify(url)} is not a URL; expected https://HOST/vps-ha/status`);
    }
    const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(u.hostname);
    if (u.username || u.password) throw new UsageError(`${what}: a URL with user info is not taken; the token goes in ${STATUS_TOKEN_ENV}`);
    if (!(u.protocol === "https:" || (u.protocol === "http:" && ipv4))) {
        throw new UsageError(`${what}: ${JSON.stringify(url)} must be https:// (http:// only to an IPv4 address): the token travels with it`);
    }
}

/** Thrown for what the user must fix: the message alone is printed. */
export class StatusError extends Error {}

/** The URL and token from `pulumi stack output --show-secrets --json`'s text. */
export function fromStackOutputs(stack: string, text: string): { url: string; token: string } {
    let outputs: Record<string, unknown>;
    try {
        outputs = JSON.parse(text) as Record<string, unknown>;
    } catch {
        throw new StatusError(`pulumi stack output --stack ${stack} gave no JSON`);
    }
    const { statusUrl, statusToken } = outputs ?? {};
    if (typeof statusUrl !== "string" || typeof statusToken !== "string") {
        throw new StatusError(`stack ${stack} has no statusUrl and statusToken outputs: run \`pulumi up\` with this version of the program first`);
    }
    checkToken(statusToken, `stack ${stack}'s statusToken output`);
    try {
        checkUrl(statusUrl, `stack ${stack}'s statusUrl output`);
    } catch (e) {
        throw new StatusError((e as Error).message);
    }
    return { url: statusUrl, token: statusToken };
}

export function checkToken(token: string | undefined, what: string): string {
    if (token === undefined || token === "") throw new StatusError(`${what} is not set: the token is the stack's statusToken output (pulumi stack output statusToken --show-secrets)`);
    if (!TOKEN.test(token)) throw new StatusError(`${what} is not a status token (32-128 letters and digits)`);
    return token;
}

/** What the CLI says of a failed `pulumi stack output` (its stderr), in one line. */
export function pulumiFailure(stack: string, stderr: string): string {
    if (/no stack named|stack .* not found|could not find stack/i.test(stderr)) {
        return `no stack ${stack} in the Pulumi backend you are logged in to (pulumi stack ls lists them; name another organisation with --stack ORG/${stack.split("/").pop()})`;
    }
    const line = stderr.split("\n").map((l) => l.trim()).find((l) => l.length > 0) ?? "no message";
    return `pulumi stack output --stack ${stack} failed: ${line.replace(/^error:\s*/, "")}`;
}

/** What an HTTP answer that is not 200 means here. */
export function httpFailure(url: string, status: number): string {
    // HAProxy answers a missing or wrong token exactly as a path it does not know: a 404.
    if (status === 404) return `${url} answered 404: the token is not the stack's (or its HAProxy nodes do not serve the status view yet: run pulumi up)`;
    if (status === 503) return `${url} answered 503: the status view cannot answer (the HAProxy node's view service is down?)`;
    return `${url} answered HTTP ${status}`;
}

// What the view answers (node-agent/vpsha/status_view.py); every field may be missing from a source that did not answer.
interface Source { answered?: boolean; from?: string; error?: string }
export interface StatusDoc {
    state: "healthy" | "degraded";
    problems: string[];
    checkedAt: number;
    nodes: Record<string, { role?: string; answered?: boolean; generation?: number | null; published?: number | null; rolloutState?: string | null; waitingOn?: string | null; haltedReason?: string | null }>;
    patroni: Source & { members?: { name: string; role?: string; state?: string; lag?: number | string | null; timeline?: number | null }[]; paused?: boolean };
    alerts: Source & { firing?: { name: string; severity?: string; summary?: string; since?: string; labels?: Record<string, string> }[] };
    backups: Source & { enabled?: boolean; stanza?: string; lastBackup?: { finishedAt: number; type?: string } | null; lastWalArchiveAt?: number | null; restoreCheck?: { node?: string; lastRunAt: number; passed?: boolean | null; lastPassedAt?: number | null } | null };
}

/** The answer, checked for the fields the table and the exit status need. */
export function parseStatusDoc(url: string, text: string): StatusDoc {
    let doc: unknown;
    try {
        doc = JSON.parse(text);
    } catch {
        throw new StatusError(`${url} answered something that is not JSON: ${JSON.stringify(text.slice(0, 120))}`);
    }
    const d = doc as Partial<StatusDoc> | null;
    if (!d || (d.state !== "healthy" && d.state !== "degraded") || !Array.isArray(d.problems) || typeof d.nodes !== "object" || typeof d.checkedAt !== "number") {
        throw new StatusError(`${url} answered JSON that is not the status view's (no state, problems, nodes and checkedAt)`);
    }
    return { patroni: {}, alerts: {}, backups: {}, ...d } as StatusDoc;
}

export function exitCodeOf(doc: StatusDoc): number {
    return doc.state === "healthy" ? 0 : 1;
}

/** "3 min", "2 h 5 min", "4 d 3 h": how long before `now`. */
export function age(seconds: number): string {
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return `${s} s`;
    const m = Math.round(s / 60);
    if (m < 120) return `${m} min`;
    const h = Math.floor(s / 3600);
    if (h < 48) return `${h} h ${Math.round((s - h * 3600) / 60)} min`;
    const d = Math.floor(s / 86400);
    return `${d} d ${Math.round((s - d * 86400) / 3600)} h`;
}

export function bytes(n: number): string {
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function utc(t: number): string {
    return `${new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** Columns padded to their widest cell, two spaces apart, indented. */
function table(rows: string[][]): string[] {
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
    return rows.map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ")}`.trimEnd());
}

function from(s: Source): string {
    return s.from ? ` (from ${s.from})` : "";
}

/** The table `npm run status` prints. */
export function formatStatus(stack: string, doc: StatusDoc): string {
    const now = doc.checkedAt;
    const when = (t: number) => `${utc(t)}, ${age(now - t)} ago`;
    const out: string[] = [];
    const n = doc.problems.length;
    out.push(`${stack}: ${doc.state === "healthy" ? "healthy" : `DEGRADED (${n} problem${n === 1 ? "" : "s"})`}, as of ${utc(now)}`);
    for (const p of doc.problems) out.push(`  ! ${p}`);

    out.push("", `Database members${from(doc.patroni)}${doc.patroni.paused ? " (Patroni paused)" : ""}`);
    if (doc.patroni.answered && doc.patroni.members) {
        const lag = (l: number | string | null | undefined) => (typeof l === "number" ? bytes(l) : typeof l === "string" ? l : "-");
        out.push(...table([["NAME", "ROLE", "STATE", "LAG", "TL"], ...doc.patroni.members.map((m) => [m.name, m.role ?? "?", m.state ?? "?", lag(m.lag), m.timeline != null ? String(m.timeline) : "-"])]));
    } else out.push(`  no answer: ${doc.patroni.error ?? "no member asked"}`);

    out.push("", `Backups${doc.backups.stanza ? ` of stanza ${doc.backups.stanza}` : ""}${from(doc.backups)}`);
    const b = doc.backups;
    if (b.enabled === false) out.push("  off (vps-ha:database.backups is not set)");
    else if (!b.answered) out.push(`  no answer: ${b.error ?? "no monitoring node asked"}`);
    else {
        const rc = b.restoreCheck;
        const check = rc
            ? `${rc.passed === true ? "passed" : rc.passed === false ? "FAILED" : "result unknown"} on ${rc.node ?? "?"}, ${when(rc.lastRunAt)}${rc.passed !== true ? `; last passed: ${rc.lastPassedAt ? when(rc.lastPassedAt) : "never"}` : ""}`
            : "none reported";
        out.push(...table([
            ["last backup", b.lastBackup ? `${b.lastBackup.type ?? "?"}, ${when(b.lastBackup.finishedAt)}` : "none reported"],
            ["last WAL archived", b.lastWalArchiveAt ? when(b.lastWalArchiveAt) : "none reported"],
            ["restore check", check],
        ]));
    }

    const firing = doc.alerts.firing ?? [];
    out.push("", `Alerts firing${from(doc.alerts)}${doc.alerts.answered ? `: ${firing.length === 0 ? "none" : firing.length}` : ""}`);
    if (!doc.alerts.answered) out.push(`  no answer: ${doc.alerts.error ?? "no monitoring node asked"}`);
    else if (firing.length > 0) {
        const since = (s?: string) => (s && !Number.isNaN(Date.parse(s)) ? `for ${age(now - Date.parse(s) / 1000)}` : "");
        out.push(...table(firing.map((a) => [a.severity ?? "?", a.name, Object.entries(a.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(" "), since(a.since), a.summary ?? ""])));
    }

    out.push("", "Nodes");
    const gen = (g: number | null | undefined) => (typeof g === "number" ? String(g) : "-");
    const names = Object.keys(doc.nodes).sort();
    if (names.length === 0) out.push("  none read");
    else {
        out.push(...table([["NAME", "ROLE", "GENERATION", "ROLLOUT"], ...names.map((name) => {
            const v = doc.nodes[name];
            if (!v.answered) return [name, v.role ?? "?", "-", "no answer"];
            const read = typeof v.published === "number" && v.published !== v.generation ? ` (${v.published} read)` : "";
            const state = v.rolloutState === "waiting" && v.waitingOn ? `waiting on ${v.waitingOn}` : v.rolloutState === "halted" ? `HALTED: ${v.haltedReason ?? ""}` : (v.rolloutState ?? "-");
            return [name, v.role ?? "?", gen(v.generation) + read, state];
        })]));
    }
    return out.join("\n");
}
