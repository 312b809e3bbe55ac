// The app-compromise drill's reasoning, apart from the lab: which ports of which nodes an app
// container tries (the plan's mesh rules and whatever really listens), the batch of attempts it
// runs inside the container in one exec, how each attempt's answer reads, and the table.
import type { Role } from "../../../components/config";
import type { PortRule } from "../../../components/plan";

/** A TCP socket listening on a node (`ss -Htln`). */
export interface Listener {
    address: string;
    port: number;
}

/** Listening sockets from `ss -Htln` output: `LISTEN 0 4096 10.77.0.5:5432 0.0.0.0:*`. */
export function parseListeners(ss: string): Listener[] {
    const out: Listener[] = [];
    for (const line of ss.split("\n")) {
        const local = line.trim().split(/\s+/)[3];
        const m = local ? /^\[?(.*?)(?:%[^\]:]*)?\]?:(\d+)$/.exec(local) : null;
        if (m) out.push({ address: m[1], port: Number(m[2]) });
    }
    return out;
}

export interface MeshNode {
    name: string;
    role: Role;
    meshAddress: string;
}

/** One port the container tries: `open` when the containment lets it through (HAProxy's database and pooler ports). */
export interface PortTarget {
    node: string;
    address: string;
    port: number;
    /** What serves it: the plan's services, or "listening" for a socket the plan does not name. */
    services: string[];
    open: boolean;
}

const ANY = new Set(["0.0.0.0", "*", "::", ""]);
/** The node's own resolver: the container may ask it (render/nftables.ts). */
const RESOLVER_PORT = 53;

/**
 * Every port of every other node the mesh carries (each mesh rule of its role, a range by its
 * first port, and every socket listening on the node's mesh address or on all of them), and
 * the services of the container's own node (on its mesh address and on loopback) but its
 * resolver and the app's own ports on the mesh address. Open: only `containerPorts` of HAProxy nodes.
 */
export function portTargets(from: MeshNode, nodes: MeshNode[], rules: Record<Role, PortRule[]>, listeners: Record<string, Listener[]>, containerPorts: readonly number[]): PortTarget[] {
    const targets = new Map<string, PortTarget>();
    const add = (node: string, address: string, port: number, service: string, open: boolean) => {
        const key = `${address}:${port}`;
        const t = targets.get(key) ?? { node, address, port, services: [], open };
        if (!t.services.includes(service)) t.services.push(service);
        targets.set(key, t);
    };
    for (const n of nodes.filter((x) => x.name !== from.name)) {
        const open = (port: number) => n.role === "haproxy" && containerPorts.includes(port);
        for (const r of rules[n.role]) {
            if (r.protocol === "tcp" && r.from.kind === "mesh") add(n.name, n.meshAddress, r.port, r.service, open(r.port));
        }
        for (const l of listeners[n.name] ?? []) {
            if (ANY.has(l.address) || l.address === n.meshAddress) add(n.name, n.meshAddress, l.port, named(rules[n.role], l.port) ?? "listening", open(l.port));
        }
    }
    const own = rules[from.role].filter((r) => r.service === "app");
    const ownApp = (port: number) => own.some((r) => port >= r.port && port <= (r.portEnd ?? r.port));
    for (const l of listeners[from.name] ?? []) {
        if (l.port === RESOLVER_PORT) continue;
        const service = (!ownApp(l.port) && named(rules[from.role], l.port)) || "listening";
        // The app's own images listen on the mesh address (HOST): those are the container itself.
        if ((ANY.has(l.address) || l.address === from.meshAddress) && !ownApp(l.port)) add(from.name, from.meshAddress, l.port, service, false);
        if (ANY.has(l.address) || l.address.startsWith("127.") || l.address === "::1") add(from.name, "127.0.0.1", l.port, service, false);
    }
    return [...targets.values()].sort((a, b) => a.node.localeCompare(b.node) || a.address.localeCompare(b.address) || a.port - b.port);
}

function named(rules: PortRule[], port: number): string | undefined {
    return rules.find((r) => port >= r.port && port <= (r.portEnd ?? r.port))?.service;
}

/** BusyBox, the one tool every image of the lab's stand-in has (scripts/lab/containers.ts). */
export const BB = "/bin/busybox";

/**
 * One shell script running `snippets` in turn, each bounded by its own timeout inside it, each
 * reported on one line: `@@<index> <exit status> <its output, newlines as spaces>`.
 */
export function batchScript(snippets: string[]): string {
    return snippets.map((s, i) => `out=$( ( ${s} ) 2>&1 ); rc=$?; echo "@@${i} $rc $(echo "$out" | ${BB} tr '\\r\\n' '  ' | ${BB} head -c 400)"`).join("\n") + "\n";
}

export interface SnippetResult {
    rc: number;
    output: string;
}

/** Each snippet's line of a batch's output; one that never reported (the batch was cut short) has rc -1. */
export function parseBatch(stdout: string, count: number): SnippetResult[] {
    const results: SnippetResult[] = Array.from({ length: count }, () => ({ rc: -1, output: "no answer (the batch ended first)" }));
    for (const line of stdout.split("\n")) {
        const m = /^@@(\d+) (\d+) ?([^\n]*)$/.exec(line);
        if (m && Number(m[1]) < count) results[Number(m[1])] = { rc: Number(m[2]), output: m[3].replace(/\r/g, " ").trim() };
    }
    return results;
}

/** A TCP connection from the container: BusyBox nc runs `true` once connected (exit 0), else says why. */
export function connectSnippet(address: string, port: number, seconds = 3): string {
    // -e takes the rest of the words: the address and port come first.
    return `${BB} timeout ${seconds + 2} ${BB} nc -w ${seconds} ${address} ${port} -e /tmp/vps-ha-attacker/true </dev/null`;
}

/** An HTTP request written raw through BusyBox nc: the answer's status line, or nc's reason. */
export function httpSnippet(address: string, port: number, method: string, path: string, body: string, seconds = 3): string {
    const request = [`${method} ${path} HTTP/1.0`, `Host: ${address}:${port}`, "Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`, "", body].join("\r\n");
    return `echo ${Buffer.from(request).toString("base64")} | ${BB} base64 -d | ${BB} timeout ${seconds + 2} ${BB} nc -w ${seconds} ${address} ${port} | ${BB} head -n 1`;
}

/**
 * How a network attempt ended: connected to something, refused on the way (rejected, reset, no
 * answer within the timeout), or unclear (the tool failed otherwise): an unclear end is neither
 * a refusal nor a success, so the drill shows it as unexpected either way.
 */
export function networkOutcome(r: SnippetResult): { outcome: "reached" | "refused" | "unclear"; detail: string } {
    if (/can't connect|timed out|Connection refused|Network is unreachable|No route to host|Operation not permitted/i.test(r.output)) return { outcome: "refused", detail: r.output.replace(/^nc: /, "") };
    if (/^HTTP\//.test(r.output)) return { outcome: "reached", detail: `answered: ${r.output.slice(0, 120)}` };
    // Connected: nc ran `true` (exit 0) or sent its request and got no answer (nothing said).
    if (r.rc === 0 && r.output === "") return { outcome: "reached", detail: "connected" };
    return { outcome: "unclear", detail: `exit ${r.rc}: ${r.output || "nothing said"}`.slice(0, 200) };
}

/**
 * A PostgreSQL login attempt (psql): refused by pg_hba (the role is not admitted from where the
 * connection comes), refused at the network, or anything else: logged in, or only a password
 * stood in the way.
 */
export function pgOutcome(r: SnippetResult): { kind: "pg_hba" | "network" | "other"; detail: string } {
    const said = r.output.replace(/^psql: error: /, "");
    if (/no pg_hba\.conf entry/.test(said)) return { kind: "pg_hba", detail: said.slice(0, 200) };
    if (/Connection refused|timeout expired|could not connect|Network is unreachable|No route to host/i.test(said)) return { kind: "network", detail: said.slice(0, 200) };
    return { kind: "other", detail: r.rc === 0 ? `logged in: ${said.slice(0, 120)}` : said.slice(0, 200) };
}

export interface Attempt {
    /** What was tried, as an attacker would say it. */
    what: string;
    /** Where to. */
    target: string;
    /** What containment must give: refused, or allowed (what the app needs, shown to work). */
    expect: "refused" | "allowed";
    /** What happened. */
    result: string;
    /** The outcome is the expected one. */
    ok: boolean;
}

/** The attempts as a table: one line each, the unexpected ones marked. */
export function attemptTable(attempts: Attempt[]): string {
    const rows = attempts.map((a, i) => [String(i + 1), a.what, a.target, a.expect, a.ok ? "as expected" : "UNEXPECTED", a.result]);
    const head = ["#", "attempt", "target", "expected", "verdict", "result"];
    const widths = head.map((h, c) => Math.min(c === 5 ? 0 : 60, Math.max(h.length, ...rows.map((r) => r[c].length))));
    const line = (r: string[]) => r.map((x, c) => (c === 5 ? x : x.padEnd(widths[c]))).join("  ").trimEnd();
    return [line(head), ...rows.map(line)].join("\n");
}
