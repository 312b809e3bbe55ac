// What "healthy" means for a lab node: every unit it enabled is running (or finished, for
// oneshots), every other node answers over the WireGuard mesh, and each daemon it runs answers
// its own health endpoint on the mesh address.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DIRECTORY_STATUS } from "../../components/render/directory-agent";
import { ETCD_UNIT, etcdMetricsUrl } from "../../components/render/etcd";
import { PATRONI_UNIT } from "../../components/render/patroni";
import { DB_PORTS, HAPROXY_PORTS } from "../../components/plan";
import { execInNode, labNodes, nodePids, nodeRoot, nodeUnits, NodeState, UnitStatus } from "./realize";
import { etcdMembers } from "./etcd";
import { elapsed, Log, sleep } from "./exec";
import type { LabApp } from "./containers";
import { labStack } from "./stack";

export interface Check {
    name: string;
    ok: boolean;
    detail: string;
}

export interface NodeHealth {
    name: string;
    role: string;
    provider: string;
    namespace: string;
    publicIpv4: string;
    meshAddress: string;
    isolated: boolean;
    daemons: { unit: string; state: string; pid: number | null }[];
    checks: Check[];
    healthy: boolean;
}

/** Daemon health endpoints (mostly on the node's mesh address), by the unit that runs the daemon. */
const PROBES: { unit: RegExp; name: string; url: (n: NodeState, app: LabApp | undefined, unit: string) => string | undefined }[] = [
    { unit: /^haproxy\.service$/, name: "haproxy stats", url: (n) => `http://${n.meshAddress}:${HAPROXY_PORTS.stats}/stats` },
    // The monitor URI Cloudflare asks: 200 only while the app backend has a server up.
    { unit: /^haproxy\.service$/, name: "web", url: () => `http://127.0.0.1:${HAPROXY_PORTS.http}/healthz` },
    { unit: /patroni.*\.service$/, name: "patroni", url: (n) => `http://${n.meshAddress}:${DB_PORTS.patroni}/health` },
    { unit: /etcd.*\.service$/, name: "etcd", url: (n) => `${etcdMetricsUrl(n.meshAddress)}/health` },
    // One web instance per image of the release, named by its port.
    { unit: /^vps-ha-app@\d+\.service$/, name: "app", url: (n, app, unit) => (app ? `http://${n.meshAddress}:${unit.replace(/\D/g, "")}${app.healthPath}` : undefined) },
];

/** Mesh addresses of `peers` that `node` cannot ping (one reply within 2 s, all peers in parallel). */
export async function unreachablePeers(node: NodeState, peers: NodeState[]): Promise<string[]> {
    if (peers.length === 0) return [];
    // One reply within 2 s, asking every half second: wireguard-go runs in user space, and on a
    // machine whose hypervisor takes the CPU for a moment a single ping with a 1 s limit failed
    // although the tunnel was fine. A peer really cut off fails every try. Numeric (-n): an ICMP
    // error would otherwise send ping to reverse DNS, past any bound here while DNS is not up yet.
    const script = `for a in ${peers.map((p) => p.meshAddress).join(" ")}; do (ping -n -c1 -i0.5 -w2 -q "$a" >/dev/null 2>&1 || echo "$a") & done; wait`;
    const r = await execInNode(node.name, ["sh", "-c", script], { timeoutMs: 10_000, allowFail: true });
    const down = new Set(r.stdout.split("\n").map((l) => l.trim()).filter(Boolean));
    return peers.filter((p) => down.has(p.meshAddress)).map((p) => p.name);
}

/** The HTTP status `url` answers, asked from inside `node` (2 s limit); "no answer" otherwise. */
export async function httpStatus(node: NodeState, url: string): Promise<string> {
    const r = await execInNode(node.name, ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", url], { timeoutMs: 5_000, allowFail: true }).catch(() => undefined);
    return r?.stdout.trim() || "no answer";
}

/** A database member is in service when it leads, or replicates from the leader right now. */
async function replicationCheck(node: NodeState): Promise<Check> {
    const r = await execInNode(node.name, ["curl", "-s", "-m", "2", `http://${node.meshAddress}:8008/patroni`], { timeoutMs: 5_000, allowFail: true }).catch(() => undefined);
    let status: { role?: string; state?: string; replication_state?: string } = {};
    try {
        status = JSON.parse(r?.stdout ?? "") as typeof status;
    } catch {
        return { name: "replication", ok: false, detail: "no answer from Patroni" };
    }
    const leads = status.role === "primary" || status.role === "master";
    const ok = status.state === "running" && (leads || status.replication_state === "streaming");
    return { name: "replication", ok, detail: `${status.role ?? "?"} ${status.state ?? "?"}${leads ? "" : ` ${status.replication_state ?? "not streaming"}`}` };
}

/**
 * The directory agent's last round (its status file): it must have read a directory naming every
 * lab node, and applied it without a problem (peers, firewall sets, proxy servers).
 */
export function directoryCheck(node: NodeState, all: NodeState[]): Check {
    const file = join(nodeRoot(node), DIRECTORY_STATUS);
    if (!existsSync(file)) return { name: "directory", ok: false, detail: "the agent has not finished a round" };
    let status: { members?: string[]; problems?: string[]; source?: string | null } = {};
    try {
        status = JSON.parse(readFileSync(file, "utf8")) as typeof status;
    } catch {
        return { name: "directory", ok: false, detail: "status being rewritten" };
    }
    const missing = all.map((n) => n.name).filter((n) => !(status.members ?? []).includes(n));
    const problems = status.problems ?? [];
    const ok = missing.length === 0 && problems.length === 0;
    const detail = ok ? `${status.members?.length} members (from ${status.source})` : [missing.length ? `missing ${missing.join(", ")}` : "", ...problems].filter(Boolean).join("; ");
    return { name: "directory", ok, detail };
}

/** The names (comm) of the node's processes right now. */
export function processNames(node: NodeState): string[] {
    return nodePids(node.name).flatMap((pid) => {
        try {
            return [readFileSync(`/proc/${pid}/comm`, "utf8").trim()];
        } catch {
            return []; // gone since it was listed
        }
    });
}

/**
 * What a database role runs: a member runs Patroni (and PostgreSQL under it); a witness runs an
 * etcd member and nothing of PostgreSQL, so it holds no data and costs the smallest size.
 */
function roleCheck(node: NodeState, units: UnitStatus[]): Check | undefined {
    const has = (unit: string) => units.some((u) => u.unit === unit);
    if (node.role === "db") return { name: "role", ok: has(PATRONI_UNIT), detail: has(PATRONI_UNIT) ? "database member (Patroni)" : `no ${PATRONI_UNIT}` };
    if (node.role !== "witness") return undefined;
    const postgres = processNames(node).filter((p) => /^(postgres|patroni)/.test(p));
    const problems = [...(has(ETCD_UNIT) ? [] : [`no ${ETCD_UNIT}`]), ...(has(PATRONI_UNIT) ? [`runs ${PATRONI_UNIT}`] : []), ...(postgres.length ? [`runs ${[...new Set(postgres)].join(", ")}`] : [])];
    return { name: "role", ok: problems.length === 0, detail: problems.length ? problems.join("; ") : "witness: etcd only, no PostgreSQL" };
}

/** An etcd member must be a started voter in the cluster its own etcd reports. */
async function etcdMemberCheck(node: NodeState): Promise<Check> {
    const members = await etcdMembers(node.name);
    if (!members) return { name: "etcd member", ok: false, detail: "no member list (no quorum, or etcd not answering)" };
    const me = members.find((m) => m.name === node.name);
    const voters = members.filter((m) => m.started && !m.learner).length;
    if (!me) return { name: "etcd member", ok: false, detail: `not listed among ${members.length} members` };
    const ok = me.started && !me.learner;
    return { name: "etcd member", ok, detail: ok ? `voter, one of ${voters}` : me.learner ? "a learner, not a voter" : "listed but not started" };
}

/** Is `service` started by a timer of the node's (x.service by x.timer)? */
export function scheduledJob(service: string, units: { unit: string }[]): boolean {
    const timer = service.replace(/\.service$/, ".timer");
    return timer !== service && units.some((u) => u.unit === timer);
}

export async function nodeHealth(node: NodeState, all: NodeState[] = labNodes()): Promise<NodeHealth> {
    const every = await nodeUnits(node.name);
    const units = every.filter((u) => u.unit.endsWith(".service"));
    const checks: Check[] = [];
    for (const u of units) {
        const ok = u.state === "active";
        if (ok) continue;
        const detail = `${u.state}${u.result ? ` (${u.result})` : ""}`;
        // A scheduled job's run that failed (a backup fired while its member restarted) is the
        // monitoring's to report (its alert), not a daemon down: shown, not counted.
        if (u.state === "failed" && scheduledJob(u.unit, every)) checks.push({ name: u.unit, ok: true, detail: `${detail}: a scheduled job's last run; its alert reports it` });
        // A timer's oneshot is "activating" for as long as it runs: at work, not down.
        else if (u.state === "activating" && scheduledJob(u.unit, every)) checks.push({ name: u.unit, ok: true, detail: `${detail}: a scheduled job running` });
        else checks.push({ name: u.unit, ok, detail });
    }
    const peers = all.filter((p) => p.name !== node.name && !p.isolated);
    // A probe that outlives its bound (a node busy converging) is a failed check this round, not the end of the wait.
    const unreachable = node.isolated ? [] : await unreachablePeers(node, peers).catch((e: Error) => e);
    checks.push(
        unreachable instanceof Error
            ? { name: "mesh", ok: false, detail: `no answer from the ping probe: ${unreachable.message.split("\n")[0]}` }
            : { name: "mesh", ok: unreachable.length === 0, detail: unreachable.length ? `cannot reach ${unreachable.join(", ")}` : `reaches ${peers.length} peer(s)` },
    );
    checks.push(directoryCheck(node, all));
    if (units.some((u) => /patroni/.test(u.unit) && u.state === "active")) checks.push(await replicationCheck(node));
    if (!node.isolated && units.some((u) => u.unit === ETCD_UNIT && u.state === "active")) checks.push(await etcdMemberCheck(node));
    const role = roleCheck(node, units);
    if (role) checks.push(role);
    const app = labStack()?.app;
    for (const probe of PROBES) {
        for (const u of units.filter((x) => probe.unit.test(x.unit) && x.state === "active")) {
            const url = probe.url(node, app, u.unit);
            if (!url) continue;
            const code = await httpStatus(node, url);
            checks.push({ name: probe.name, ok: code === "200", detail: `${url} -> ${code}` });
        }
    }
    return {
        name: node.name,
        role: node.role,
        provider: node.provider,
        namespace: node.netns,
        publicIpv4: node.publicIpv4,
        meshAddress: node.meshAddress,
        isolated: node.isolated,
        daemons: units.map((u) => ({ unit: u.unit, state: u.state, pid: u.main ?? null })),
        checks,
        healthy: checks.every((c) => c.ok),
    };
}

export async function labHealth(): Promise<NodeHealth[]> {
    const all = labNodes();
    return Promise.all(all.map((n) => nodeHealth(n, all)));
}

/** Waits until every node is healthy, or says what was still failing when it gives up. */
export async function waitHealthy(log: Log, timeoutMs: number): Promise<NodeHealth[]> {
    const started = Date.now();
    let last: NodeHealth[] = [];
    let lastReport = 0;
    while (Date.now() - started < timeoutMs) {
        last = await labHealth();
        const sick = last.filter((h) => !h.healthy);
        if (sick.length === 0) {
            log(`lab: all ${last.length} nodes healthy after ${elapsed(started)}`);
            return last;
        }
        if (Date.now() - lastReport > 5_000) {
            lastReport = Date.now();
            log(`lab: waiting for ${sick.map((h) => h.name).join(", ")} (${elapsed(started)}): ${describeFailures(sick)}`);
        }
        await sleep(500);
    }
    throw new Error(`lab: not healthy after ${Math.round(timeoutMs / 1000)} s: ${describeFailures(last.filter((h) => !h.healthy))}`);
}

export function describeFailures(health: NodeHealth[]): string {
    return health.map((h) => `${h.name}: ${h.checks.filter((c) => !c.ok).map((c) => `${c.name} ${c.detail}`).join("; ")}`).join(" | ");
}
