// The stack watching itself, measured at the lab's alert receiver (../receiver.ts), where the
// monitoring nodes' real Alertmanagers deliver:
// - alerts: faults on different nodes at once, each alert at the receiver within its rendered
//   rule's bound plus 60 s, resolved after the repair, and nothing else sent meanwhile (nor since
//   bring-up before the drill);
// - monitoring-loss: both monitoring nodes' Prometheus and Alertmanager SIGKILLed: the heartbeat
//   stops, and when an outside dead-man's switch would alert;
// - restore-check: the scheduled restore check passes, fails on a corrupted backup file (and its
//   alert arrives), and passes again after a new full backup.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DB_PORTS } from "../../../components/plan";
import { ETCD_UNIT } from "../../../components/render/etcd";
import { PATRONI_UNIT, PG_SOCKET_DIR } from "../../../components/render/patroni";
import { BACKUP_NEW_SERVER_SECONDS } from "../../../components/render/pgbackrest";
import { PROMETHEUS_RULES_FILE } from "../../../components/monitoring";
import { ALERTMANAGER_UNIT } from "../../../components/render/alertmanager";
import { PROMETHEUS_UNIT } from "../../../components/render/prometheus";
import { RESTORE_CHECK_UNIT } from "../../../components/render/monitoring";
import { SIGNALS, TEXTFILE_DIR } from "../../../components/render/signals";
import { sleep } from "../exec";
import { waitHealthy } from "../health";
import { STATE_DIR } from "../paths";
import { execInNode, labNodes, NodeState } from "../realize";
import { labStack } from "../stack";
import { Received, received, RECEIVED_FILE } from "../receiver";
import { alertBound, ruleBounds } from "./alert-bounds";
import { currentPrimary, patroniJson } from "./db";
import { drillChecks, Drill, DrillContext, DrillResult } from "./types";

/** What the brief of every alert allows beyond its rule's bound: scrape, evaluation, Alertmanager's group_wait. */
export const DELIVERY_SLACK_SECONDS = 60;
/** A repaired fault's alert resolved at the receiver within this (evaluation, then Alertmanager's group_interval). */
export const RESOLVE_BOUND_SECONDS = 180;
/** The calm stretch before the faults, in which no alert may arrive (left out of a `--quick` run). */
export const CALM_SECONDS = 600;
/** An outside dead-man's switch's usual grace beyond the expected heartbeat interval. */
export const DEADMAN_GRACE_SECONDS = 300;

const HEALTHY_TIMEOUT_MS = 240_000;
const BACKUP_UNIT = (type: "full" | "incr") => `vps-ha-backup-${type}.service`;
const ARCHIVE_TABLE = "lab_alerts_archive";
const BACKUP_SKIP_TABLE = "lab_alerts_backup_skip";
const SMALL_DISK = "/srv/vps-ha-lab-small-disk";
const FAILING_UNIT = "vps-ha-lab-failing.service";
const RESTORE_CHECK_ATTEMPTS = 3;

const inNode = (node: string, argv: string[], timeoutMs = 20_000) => execInNode(node, argv, { timeoutMs, allowFail: true });
const asPostgres = (node: string, sql: string) => execInNode(node, ["psql", "-h", PG_SOCKET_DIR, "-U", "postgres", "-XAtq", "-c", sql], { user: "postgres", timeoutMs: 10_000, allowFail: true });
const secs = (ms: number) => Math.round(ms / 100) / 10;

function byRole(role: string): NodeState[] {
    return labNodes().filter((n) => n.role === role).sort((a, b) => a.name.localeCompare(b.name));
}

/** The rules file as the monitoring nodes run it. */
async function renderedBounds(): Promise<ReturnType<typeof ruleBounds>> {
    const monitor = byRole("haproxy")[0];
    if (!monitor) throw new Error("the lab has no monitoring node (the HAProxy pair runs the monitoring)");
    return ruleBounds((await execInNode(monitor.name, ["cat", PROMETHEUS_RULES_FILE], { timeoutMs: 10_000 })).stdout);
}

/** An alert the drill waits for: its name and node, and what else must match (a unit's or a mountpoint's label). */
interface Expected {
    alert: string;
    instance: string;
    labels?: Record<string, string>;
    /** When its fault was made (ms). */
    faultAt: number;
    boundSeconds: number;
    firedAt?: number;
    repairedAt?: number;
    resolvedAt?: number;
}

const describeExpected = (e: Pick<Expected, "alert" | "instance" | "labels">) => `${e.alert}@${e.instance}${e.labels ? ` ${Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(",")}` : ""}`;

function matches(e: Pick<Expected, "alert" | "instance" | "labels">, a: { name: string; instance?: string; labels: Record<string, string> }): boolean {
    return a.name === e.alert && a.instance === e.instance && Object.entries(e.labels ?? {}).every(([k, v]) => a.labels[k] === v);
}

/** Alerts (not the heartbeat) in what arrived. */
function alertsIn(records: Received[]): { at: number; name: string; instance?: string; status: string; labels: Record<string, string> }[] {
    return records.filter((r) => r.kind !== "heartbeat").flatMap((r) => r.alerts.map((a) => ({ at: r.at, ...a })));
}

/** Polls the receiver until every expected alert has `status` (bounded by each one's deadline). */
async function waitAtReceiver(expected: Expected[], status: "firing" | "resolved", since: number, deadline: (e: Expected) => number): Promise<void> {
    const field = status === "firing" ? "firedAt" : "resolvedAt";
    for (;;) {
        const seen = alertsIn(received(since));
        for (const e of expected) {
            if (e[field] !== undefined) continue;
            const hit = seen.find((a) => a.status === status && matches(e, a) && (status === "firing" || a.at >= (e.firedAt ?? Infinity)));
            if (hit) e[field] = hit.at;
        }
        const open = expected.filter((e) => e[field] === undefined);
        if (open.length === 0 || open.every((e) => Date.now() > deadline(e))) return;
        await sleep(2_000);
    }
}

type Seen = { name: string; instance?: string; status: string; labels: Record<string, string> };

/** What arrived since `since` that the drill neither expected nor allows, from every record the receiver kept. */
export function unexpectedIn(records: Received[], since: number, expected: Pick<Expected, "alert" | "instance" | "labels">[], allowed: (a: Seen) => boolean): string[] {
    // Alertmanager may send an alert's resolution again with a later notification of its group
    // (and each of the pair may send it): the tail of an alert that fired before `since` is not news.
    const key = (a: Seen) => JSON.stringify([a.name, a.instance ?? "", Object.entries(a.labels).sort()]);
    const all = alertsIn(records);
    const firedBefore = new Set(all.filter((a) => a.at < since && a.status === "firing").map(key));
    return all
        .filter((a) => a.at >= since && !expected.some((e) => matches(e, a)) && !allowed(a) && !(a.status === "resolved" && firedBefore.has(key(a))))
        .map((a) => `${a.name}@${a.instance ?? "-"} ${a.status} at ${new Date(a.at).toISOString()}`);
}

/** Every alert that arrived since `since` and is not one the drill expects (or allows). */
function unexpected(since: number, expected: Pick<Expected, "alert" | "instance" | "labels">[], allowed: (a: Seen) => boolean): string[] {
    return unexpectedIn(received(0), since, expected, allowed);
}

/** A scheduled backup's failed run on a member: a timer may fire while a member is broken, and its alert is real. */
const backupUnitFailure = (a: { name: string; labels: Record<string, string> }) => a.name === "SystemdUnitFailed" && /^vps-ha-backup-(full|diff|incr)\.service$/.test(a.labels.name ?? "");

/** A drill judged at the receiver: no load runs (the faults are the monitoring's to see), so nothing is lost or failed. */
function receiverResult(
    timing: Pick<DrillResult, "drill" | "target" | "rtoSeconds" | "rtoTargetSeconds" | "recoverySeconds">,
    checks: ReturnType<typeof drillChecks>,
    figures: Record<string, number>,
): DrillResult {
    return { ...timing, lostWrites: 0, failedRequests: 0, failedHttpRequests: null, splitBrain: false, logDir: RECEIVED_FILE, passed: checks.ok, figures, notes: checks.notes };
}

function result(drill: string, target: string, expected: Expected[], checks: ReturnType<typeof drillChecks>, figures: Record<string, number>): DrillResult {
    const late = expected.map((e) => (e.firedAt === undefined ? null : (e.firedAt - e.faultAt) / 1000 - e.boundSeconds));
    const resolve = expected.map((e) => (e.resolvedAt === undefined || e.repairedAt === undefined ? null : (e.resolvedAt - e.repairedAt) / 1000));
    return receiverResult(
        {
            drill,
            target,
            // Seconds past its rule's bound the slowest alert arrived (the target: DELIVERY_SLACK_SECONDS).
            rtoSeconds: late.some((x) => x === null) ? null : Math.max(0, ...(late as number[]).map((x) => Math.round(x * 10) / 10)),
            rtoTargetSeconds: DELIVERY_SLACK_SECONDS,
            recoverySeconds: resolve.some((x) => x === null) ? null : Math.max(0, ...(resolve as number[]).map((x) => Math.round(x * 10) / 10)),
        },
        checks,
        figures,
    );
}

// --- alerts -----------------------------------------------------------------------------------

interface Fault {
    what: string;
    node: string;
    expect: Omit<Expected, "faultAt" | "boundSeconds">[];
    make(): Promise<void>;
    repair(): Promise<void>;
}

async function storeAddress(primary: string): Promise<{ address: string; port: number }> {
    const conf = (await inNode(primary, ["cat", "/etc/pgbackrest/pgbackrest.conf"])).stdout;
    const host = /^repo1-s3-endpoint=(.*)$/m.exec(conf)?.[1];
    if (!host) throw new Error(`alerts: ${primary} archives nowhere (no repo1-s3-endpoint): the stack has no backups`);
    const port = Number(/^repo1-storage-port=(\d+)$/m.exec(conf)?.[1] ?? 443);
    const address = (await execInNode(primary, ["getent", "ahostsv4", host], { timeoutMs: 10_000 })).stdout.trim().split(/\s+/)[0];
    return { address, port };
}

const nftReject = (table: string, match: string) => `table inet ${table} {\n chain output {\n  type filter hook output priority -10; policy accept;\n  ${match} reject with tcp reset\n }\n}\n`;

/** The faults, one set per node: the primary, both replicas and two app nodes. */
async function alertFaults(log: (m: string) => void): Promise<{ faults: Fault[]; stopWal: () => void }> {
    const primary = await currentPrimary();
    const replicas = byRole("db").filter((n) => n.name !== primary);
    const apps = byRole("app");
    if (!primary || replicas.length < 2 || apps.length < 2) throw new Error(`alerts needs a primary, two replicas and two app nodes (primary ${primary ?? "none"}, replicas ${replicas.length}, app nodes ${apps.length})`);
    // The etcd member is stopped beside the stopped replica: a member's Patroni reads its own etcd
    // only, so on the streaming replica it would take that one out of the cluster's view too, and
    // leave the primary without a synchronous standby (seen: NoSynchronousStandby, not a fault of its own).
    const [stopped, refusing] = replicas;
    const [diskNode, unitNode] = apps;
    const store = await storeAddress(primary);
    let walRunning = true;
    const members = byRole("db");
    // The backup is skipped once the replica is down: its own job must find its Patroni gone.
    let replicaDown: () => void = () => undefined;
    const replicaStopped = new Promise<void>((done) => (replicaDown = done));
    const startBackups = async () => {
        // As the hourly timer does, on every member: only the replica Patroni's view picks backs up.
        for (const m of members) await inNode(m.name, ["systemctl", "start", BACKUP_UNIT("incr")], 300_000);
    };
    const faults: Fault[] = [
        {
            what: `WAL archiving broken on the primary ${primary} (the store ${store.address}:${store.port} refuses it)`,
            node: primary,
            expect: [{ alert: "WalArchivingFailing", instance: primary }],
            make: async () => {
                await execInNode(primary, ["nft", "-f", "-"], { timeoutMs: 10_000, input: nftReject(ARCHIVE_TABLE, `ip daddr ${store.address} tcp dport ${store.port}`) });
                // Segments to archive: an idle database switches none.
                void (async () => {
                    for (let i = 0; walRunning && i < 120; i++) {
                        await asPostgres(primary, "SELECT txid_current(); SELECT pg_switch_wal()");
                        await sleep(15_000);
                    }
                })();
            },
            repair: async () => {
                walRunning = false;
                await inNode(primary, ["nft", "delete", "table", "inet", ARCHIVE_TABLE]);
                await asPostgres(primary, "SELECT txid_current(); SELECT pg_switch_wal()");
            },
        },
        {
            what: `replica ${stopped.name} stopped (Patroni and its PostgreSQL)`,
            node: stopped.name,
            expect: [{ alert: "DatabaseMemberDown", instance: stopped.name }],
            make: async () => {
                try {
                    await execInNode(stopped.name, ["systemctl", "stop", PATRONI_UNIT], { timeoutMs: 120_000 });
                } finally {
                    replicaDown();
                }
            },
            repair: async () => void (await inNode(stopped.name, ["systemctl", "start", PATRONI_UNIT], 120_000)),
        },
        {
            what: `etcd member on ${stopped.name} stopped`,
            node: stopped.name,
            expect: [{ alert: "EtcdVoterDown", instance: stopped.name }],
            make: async () => void (await execInNode(stopped.name, ["systemctl", "stop", ETCD_UNIT], { timeoutMs: 60_000 })),
            repair: async () => void (await inNode(stopped.name, ["systemctl", "start", ETCD_UNIT], 60_000)),
        },
        {
            what: `the backup skipped: ${stopped.name}'s Patroni is down and ${refusing.name}'s own API refuses the backup job, so no member takes it`,
            node: refusing.name,
            expect: [
                { alert: "SystemdUnitFailed", instance: refusing.name, labels: { name: BACKUP_UNIT("incr") } },
                { alert: "SystemdUnitFailed", instance: stopped.name, labels: { name: BACKUP_UNIT("incr") } },
            ],
            make: async () => {
                await execInNode(refusing.name, ["nft", "-f", "-"], { timeoutMs: 10_000, input: nftReject(BACKUP_SKIP_TABLE, `meta skuid postgres ip daddr ${refusing.meshAddress} tcp dport ${DB_PORTS.patroni}`) });
                // After the replica's stop has gone through (the faults start together).
                await replicaStopped;
                await startBackups();
            },
            repair: async () => void (await inNode(refusing.name, ["nft", "delete", "table", "inet", BACKUP_SKIP_TABLE])),
        },
        {
            what: `a disk nearly full on ${diskNode.name} (a 16 MiB filesystem at ${SMALL_DISK}, 14 MiB written)`,
            node: diskNode.name,
            expect: [{ alert: "DiskAlmostFull", instance: diskNode.name, labels: { mountpoint: SMALL_DISK } }],
            make: async () => {
                await execInNode(diskNode.name, ["sh", "-c", `mkdir -p ${SMALL_DISK} && mount -t tmpfs -o size=16m vps-ha-lab-small-disk ${SMALL_DISK} && head -c 14680064 /dev/zero > ${SMALL_DISK}/fill`], { timeoutMs: 20_000 });
            },
            repair: async () => {
                await inNode(diskNode.name, ["sh", "-c", `umount ${SMALL_DISK} && rmdir ${SMALL_DISK}`]);
            },
        },
        {
            what: `a unit failing on ${unitNode.name} (${FAILING_UNIT}, a command that exits 1)`,
            node: unitNode.name,
            expect: [{ alert: "SystemdUnitFailed", instance: unitNode.name, labels: { name: FAILING_UNIT } }],
            make: async () => {
                // systemd-run reports the failed start itself; the unit's state is what counts.
                await inNode(unitNode.name, ["systemd-run", `--unit=${FAILING_UNIT}`, "--description=vps-ha lab: a unit that fails", "-p", "Type=oneshot", "/bin/false"]);
                const state = (await inNode(unitNode.name, ["systemctl", "is-failed", FAILING_UNIT])).stdout.trim();
                if (state !== "failed") throw new Error(`alerts: ${FAILING_UNIT} on ${unitNode.name} is ${state || "unknown"}, not failed`);
            },
            repair: async () => void (await inNode(unitNode.name, ["systemctl", "reset-failed", FAILING_UNIT])),
        },
    ];
    log(`alerts: faults on ${faults.map((f) => f.node).join(", ")} at once`);
    return {
        faults,
        stopWal: () => {
            walRunning = false;
        },
    };
}

/** Repairs the backup-skip fault's consequence as an operator would: a backup taken, once the stopped replica streams again. */
async function backupAgain(stopped: string, log: (m: string) => void): Promise<string> {
    // The backup job asks the chosen replica's own GET /replica (seen: "running" in the cluster's view before it answers 200).
    const node = labNodes().find((n) => n.name === stopped);
    for (let i = 0; i < 60 && node; i++) {
        const code = (await inNode(stopped, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3", `http://${node.meshAddress}:${DB_PORTS.patroni}/replica`])).stdout.trim();
        if (code === "200") break;
        await sleep(2_000);
    }
    // A member whose own run failed is left with a failed unit (an alert) until a run of its succeeds:
    // a member back from its stop may refuse the first (seen: exit 1 just after GET /replica answered).
    const outcomes: string[] = [];
    for (const m of byRole("db")) {
        let r = await inNode(m.name, ["systemctl", "start", BACKUP_UNIT("incr")], 300_000);
        for (let tries = 1; r.code !== 0 && tries < 6; tries++) {
            await sleep(10_000);
            r = await inNode(m.name, ["systemctl", "start", BACKUP_UNIT("incr")], 300_000);
        }
        outcomes.push(`${m.name} ${r.code === 0 ? "ok" : `exit ${r.code}`}`);
    }
    log(`alerts: the backup taken again: ${outcomes.join(", ")}`);
    return outcomes.join(", ");
}

export const alerts: Drill = {
    name: "alerts",
    description: `a replica stopped, an etcd member stopped, WAL archiving broken, the backup skipped, a disk nearly full, a unit failing, at once on different nodes: each alert at the lab's receiver within its rule's bound + ${DELIVERY_SLACK_SECONDS} s, resolved within ${RESOLVE_BOUND_SECONDS} s of the repair, nothing else sent, after ${CALM_SECONDS / 60} calm minutes that raise none`,
    async run(ctx: DrillContext): Promise<DrillResult> {
        const checks = drillChecks();
        const figures: Record<string, number> = {};
        const start = Date.now();
        // From the end of the bring-up (every node healthy): the heartbeat only. What the bring-up
        // itself sent (nodes not answering yet while others boot) is told, not counted.
        const upAt = labStack()?.upAt ?? 0;
        const during = alertsIn(received(0)).filter((a) => a.at < upAt).map((a) => `${a.name}@${a.instance ?? "-"} ${a.status}`);
        if (during.length) checks.notes.push(`sent during the bring-up, before every node was healthy: ${during.join("; ")}`);
        const sinceUp = alertsIn(received(upAt)).filter((a) => a.status === "firing").map((a) => `${a.name}@${a.instance ?? "-"} at ${new Date(a.at).toISOString()}`);
        checks.check(sinceUp.length === 0, sinceUp.length === 0 ? `no alert fired at the receiver between the bring-up's end (${new Date(upAt).toISOString()}) and the drill` : `alerts fired between the bring-up's end and the drill: ${sinceUp.join("; ")}`);
        if (!ctx.quick) {
            ctx.log(`alerts: ${CALM_SECONDS / 60} calm minutes first`);
            await sleep(CALM_SECONDS * 1000);
            const calm = unexpected(start, [], () => false);
            checks.check(calm.length === 0, calm.length === 0 ? `${CALM_SECONDS / 60} calm minutes raised no alert` : `alerts during the calm minutes: ${calm.join("; ")}`);
        }
        // A new server's backup job skips without failing (pgbackrest.ts): the skipped backup's
        // fault needs members past that age (a --quick run comes sooner than the calm minutes).
        const young = upAt + BACKUP_NEW_SERVER_SECONDS * 1000 - Date.now();
        if (young > 0) {
            ctx.log(`alerts: ${Math.ceil(young / 1000)} s until the members are past the backup job's first ${BACKUP_NEW_SERVER_SECONDS} s`);
            await sleep(young);
        }
        const bounds = await renderedBounds();
        const { faults, stopWal } = await alertFaults(ctx.log);
        const faultStart = Date.now();
        const expected: Expected[] = [];
        let repaired = false;
        const repairAll = async () => {
            if (repaired) return;
            repaired = true;
            stopWal();
            await Promise.all(faults.map((f) => f.repair().catch((e: Error) => ctx.log(`alerts: repair on ${f.node}: ${e.message}`))));
        };
        try {
            await Promise.all(
                faults.map(async (f) => {
                    const at = Date.now();
                    await f.make();
                    ctx.log(`alerts: ${f.what}`);
                    for (const e of f.expect) expected.push({ ...e, faultAt: at, boundSeconds: alertBound(bounds, e.alert) });
                }),
            );
            // Waited for a minute longer than allowed: a late alert is measured, not taken for a lost one.
            const deadline = (e: Expected) => e.faultAt + (e.boundSeconds + 2 * DELIVERY_SLACK_SECONDS) * 1000;
            await waitAtReceiver(expected, "firing", faultStart, deadline);
            for (const e of expected) {
                const took = e.firedAt === undefined ? undefined : (e.firedAt - e.faultAt) / 1000;
                if (took !== undefined) figures[`${e.alert}${e.labels?.name === FAILING_UNIT ? " (unit)" : e.labels?.name ? " (backup)" : ""} s after fault`] = Math.round(took);
                checks.check(took !== undefined && took <= e.boundSeconds + DELIVERY_SLACK_SECONDS,
                    `${describeExpected(e)}: ${took === undefined ? "NEVER arrived" : `arrived ${took.toFixed(0)} s after its fault`} (bound ${e.boundSeconds} s + ${DELIVERY_SLACK_SECONDS} s)`);
            }
            const repairStart = Date.now();
            for (const e of expected) e.repairedAt = repairStart;
            await repairAll();
            // The skipped backup's repair is a backup that succeeds: after the others, as it needs the replica back.
            await backupAgain(faults[1].node, ctx.log);
            const repairSeconds = (Date.now() - repairStart) / 1000;
            figures["repair s"] = Math.round(repairSeconds);
            ctx.log(`alerts: repaired in ${repairSeconds.toFixed(1)} s; waiting for the resolved notifications`);
            await waitAtReceiver(expected, "resolved", faultStart, () => repairStart + (repairSeconds + RESOLVE_BOUND_SECONDS) * 1000);
            for (const e of expected) {
                const took = e.resolvedAt === undefined ? undefined : (e.resolvedAt - repairStart) / 1000;
                checks.check(took !== undefined && took <= repairSeconds + RESOLVE_BOUND_SECONDS, `${describeExpected(e)}: ${took === undefined ? "NEVER resolved" : `resolved ${took.toFixed(0)} s after the repair began`} (bound: the repair's ${repairSeconds.toFixed(0)} s + ${RESOLVE_BOUND_SECONDS} s)`);
            }
            const extra = unexpected(faultStart, expected, backupUnitFailure);
            checks.check(extra.length === 0, extra.length === 0 ? "nothing else was sent during the drill" : `also sent during the drill: ${extra.join("; ")}`);
            // Counted over the whole drill: right after bring-up the monitoring may not have sent its first yet.
            const heartbeats = received(start).filter((r) => r.kind === "heartbeat").length;
            checks.check(heartbeats > 0, `${heartbeats} heartbeat(s) at the receiver during the drill, its faults notwithstanding`);
            const timerRuns = alertsIn(received(faultStart)).filter((a) => backupUnitFailure(a) && !expected.some((e) => matches(e, a)));
            if (timerRuns.length) checks.notes.push(`also sent, and real: a scheduled backup that fired on a broken member: ${[...new Set(timerRuns.map((a) => `${a.labels.name}@${a.instance}`))].join(", ")}`);
        } finally {
            await repairAll();
        }
        await waitHealthy(ctx.log, HEALTHY_TIMEOUT_MS);
        figures["drill wall time s"] = Math.round((Date.now() - start) / 1000);
        return result("alerts", faults.map((f) => f.node).join(", "), expected, checks, figures);
    },
};

// --- monitoring-loss --------------------------------------------------------------------------

const MONITORING_UNITS = [PROMETHEUS_UNIT, ALERTMANAGER_UNIT];
/** How long the drill watches for heartbeats with the monitoring gone, in heartbeat intervals. */
const SILENT_INTERVALS = 2.5;

function heartbeatTimes(since = 0): number[] {
    return received(since).filter((r) => r.kind === "heartbeat").map((r) => r.at);
}

function medianGap(times: number[]): number | undefined {
    const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
    return gaps.length ? gaps[Math.floor(gaps.length / 2)] : undefined;
}

async function monitoringRunning(node: string): Promise<string[]> {
    const r = await inNode(node, ["pgrep", "-f", "^/usr/bin/prometheus(-alertmanager)?( |$)"]);
    return r.stdout.trim().split(/\s+/).filter((p) => p);
}

export const monitoringLoss: Drill = {
    name: "monitoring-loss",
    description: `both monitoring nodes' Prometheus and Alertmanager SIGKILLed: the heartbeat stops reaching the receiver; the last one, the interval before, when a dead-man's switch (interval + ${DEADMAN_GRACE_SECONDS / 60} min grace) would alert; then they come back and it resumes`,
    async run(ctx: DrillContext): Promise<DrillResult> {
        const checks = drillChecks();
        const monitors = byRole("haproxy");
        if (monitors.length === 0) throw new Error("monitoring-loss: the lab has no monitoring node");
        // A few heartbeats to know the interval (bounded: the lab has been up for minutes, usually).
        for (let i = 0; i < 90 && heartbeatTimes().length < 3; i++) await sleep(2_000);
        const seen = heartbeatTimes();
        const intervalMs = medianGap(seen.slice(-10));
        checks.check(intervalMs !== undefined, `heartbeats before the kill: ${seen.length}, every ${intervalMs === undefined ? "?" : secs(intervalMs)} s (median of the last gaps)`);
        const interval = intervalMs ?? 60_000;
        const killedAt = Date.now();
        for (const m of monitors) {
            // Masked for this boot first, so systemd's Restart= does not bring them back at once.
            await execInNode(m.name, ["systemctl", "mask", "--runtime", ...MONITORING_UNITS], { timeoutMs: 20_000 });
            await inNode(m.name, ["systemctl", "kill", "--signal=SIGKILL", ...MONITORING_UNITS]);
        }
        await sleep(3_000);
        const left = (await Promise.all(monitors.map(async (m) => (await monitoringRunning(m.name)).map((p) => `${m.name}:${p}`)))).flat();
        checks.check(left.length === 0, left.length === 0 ? `Prometheus and Alertmanager SIGKILLed on ${monitors.map((m) => m.name).join(", ")}` : `still running after the kill: ${left.join(", ")}`);
        let resumedAt: number | undefined;
        let restartedAt = killedAt;
        try {
            await sleep(SILENT_INTERVALS * interval);
            const last = heartbeatTimes().filter((t) => t <= killedAt).pop();
            // One already on its way at the kill may still land in the first seconds.
            const after = heartbeatTimes(killedAt + 5_000);
            const silent = (Date.now() - killedAt) / 1000;
            checks.check(after.length === 0, after.length === 0 ? `no heartbeat for ${silent.toFixed(0)} s after the kill (${(silent / (interval / 1000)).toFixed(1)} intervals)` : `${after.length} heartbeat(s) arrived after the kill`);
            if (last !== undefined) {
                const alertAt = last + interval + DEADMAN_GRACE_SECONDS * 1000;
                checks.notes.push(`last heartbeat ${new Date(last).toISOString()}, ${secs(killedAt - last)} s before the kill; a dead-man's switch expecting one every ${secs(interval)} s with ${DEADMAN_GRACE_SECONDS / 60} min grace alerts at ${new Date(alertAt).toISOString()}, ${secs(alertAt - killedAt)} s after the monitoring's loss`);
            } else checks.check(false, "no heartbeat arrived before the kill");
        } finally {
            for (const m of monitors) {
                await inNode(m.name, ["systemctl", "unmask", "--runtime", ...MONITORING_UNITS]);
                await inNode(m.name, ["systemctl", "reset-failed", ...MONITORING_UNITS]);
                await inNode(m.name, ["systemctl", "start", ...MONITORING_UNITS], 120_000);
            }
            restartedAt = Date.now();
        }
        for (let i = 0; i < 120 && resumedAt === undefined; i++) {
            resumedAt = heartbeatTimes(restartedAt)[0];
            if (resumedAt === undefined) await sleep(2_000);
        }
        checks.check(resumedAt !== undefined, resumedAt !== undefined ? `the heartbeat resumed ${secs(resumedAt - restartedAt)} s after the restart` : "the heartbeat did NOT resume within 240 s of the restart");
        const last = heartbeatTimes().filter((t) => t <= killedAt).pop();
        const figures: Record<string, number> = {
            "heartbeat interval s": secs(interval),
            "dead-man's switch alert after loss s": last === undefined ? -1 : secs(last + interval + DEADMAN_GRACE_SECONDS * 1000 - killedAt),
            ...(resumedAt !== undefined ? { "heartbeat resumed after restart s": secs(resumedAt - restartedAt) } : {}),
        };
        await waitHealthy(ctx.log, HEALTHY_TIMEOUT_MS);
        return receiverResult(
            {
                drill: "monitoring-loss",
                target: monitors.map((m) => m.name).join(", "),
                rtoSeconds: resumedAt === undefined ? null : secs(resumedAt - restartedAt),
                // The heartbeat's own interval plus a minute: the monitoring's start, its first evaluation, one send.
                rtoTargetSeconds: secs(interval) + DELIVERY_SLACK_SECONDS,
                recoverySeconds: resumedAt === undefined ? null : secs(resumedAt - restartedAt),
            },
            checks,
            figures,
        );
    },
};

// --- restore-check ----------------------------------------------------------------------------

/** The member whose turn it is: vpsha.restore_check's rule (the last healthy replica by name). */
async function restoreCheckMember(): Promise<string> {
    const primary = await currentPrimary();
    const node = labNodes().find((n) => n.name === primary);
    const cluster = node ? await patroniJson<{ members?: { name: string; role?: string; state?: string }[] }>(node, "/cluster") : undefined;
    const ready = (cluster?.members ?? []).filter((m) => ["replica", "sync_standby", "quorum_standby"].includes(m.role ?? "") && ["streaming", "running"].includes(m.state ?? "")).map((m) => m.name).sort();
    const chosen = ready.pop();
    if (!chosen) throw new Error("restore-check: the cluster has no healthy replica to run the check");
    return chosen;
}

/** Runs the scheduled check as its timer would, on every member (only the chosen one restores). */
async function runRestoreCheck(chosen: string): Promise<{ ok: boolean; seconds: number; success?: number; said: string }> {
    const t = Date.now();
    const r = await inNode(chosen, ["systemctl", "start", `${RESTORE_CHECK_UNIT}.service`], 900_000);
    const seconds = secs(Date.now() - t);
    for (const m of byRole("db").filter((n) => n.name !== chosen)) await inNode(m.name, ["systemctl", "start", `${RESTORE_CHECK_UNIT}.service`], 120_000);
    const prom = (await inNode(chosen, ["cat", join(TEXTFILE_DIR, SIGNALS.restoreCheckSuccess.file)])).stdout;
    const value = new RegExp(`^${SIGNALS.restoreCheckSuccess.name}\\{[^}]*\\} (\\S+)$`, "m").exec(prom)?.[1];
    const said = (await inNode(chosen, ["sh", "-c", `journalctl -u ${RESTORE_CHECK_UNIT}.service -o cat --no-pager | grep '^restore-check: ' | tail -n 1`])).stdout.trim();
    return { ok: r.code === 0, seconds, ...(value !== undefined ? { success: Number(value) } : {}), said };
}

/**
 * The check on the member its own rule picks: when the member saw the cluster otherwise at its
 * start (a replica not streaming for a moment), it leaves the check to another and its last
 * signal stands, which must not be taken for this run's.
 */
async function restoreCheckRun(log: (line: string) => void): Promise<{ chosen: string; run: Awaited<ReturnType<typeof runRestoreCheck>> }> {
    for (let attempt = 1; ; attempt++) {
        const chosen = await restoreCheckMember();
        const run = await runRestoreCheck(chosen);
        if (!/another replica runs the check/.test(run.said) || attempt === RESTORE_CHECK_ATTEMPTS) return { chosen, run };
        log(`restore-check: ${chosen} left the check to another member (${run.said}); choosing again`);
        await waitHealthy(log, HEALTHY_TIMEOUT_MS);
    }
}

/** A check's run that restored: it passed or failed, not left to another member. */
const restored = (said: string) => /^restore-check: (passed in|FAILED:)/.test(said);

/** The S3 stand-in's copy of the newest backup's largest file, changed in the middle (the repository's encryption makes any change detectable). */
function corruptNewestBackup(): string {
    const root = join(STATE_DIR, "s3", "data");
    const labels: string[] = [];
    const walk = (dir: string, depth: number) => {
        for (const e of readdirSync(dir, { withFileTypes: true })) {
            if (!e.isDirectory()) continue;
            const p = join(dir, e.name);
            if (/^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/.test(e.name)) labels.push(p);
            else if (depth < 6) walk(p, depth + 1);
        }
    };
    walk(root, 0);
    // Labels sort by time within a stanza: the newest is last by its own (last) timestamp.
    const newest = labels.sort((a, b) => a.split("/").pop()!.replace(/^.*_/, "").localeCompare(b.split("/").pop()!.replace(/^.*_/, ""))).pop();
    if (!newest) throw new Error(`restore-check: no backup in the lab's S3 store (${root})`);
    const files: { path: string; size: number }[] = [];
    const collect = (dir: string) => {
        for (const e of readdirSync(dir, { withFileTypes: true })) {
            const p = join(dir, e.name);
            if (e.isDirectory()) collect(p);
            else if (e.name.endsWith("._S3rver_object") && !e.name.startsWith("backup.manifest")) files.push({ path: p, size: statSync(p).size });
        }
    };
    collect(newest);
    const target = files.sort((a, b) => a.size - b.size).pop();
    if (!target) throw new Error(`restore-check: the newest backup ${newest} holds no file`);
    const data = readFileSync(target.path);
    const at = Math.floor(data.length / 2);
    for (let i = at; i < Math.min(data.length, at + 64); i++) data[i] ^= 0xff;
    writeFileSync(target.path, data);
    return `${target.path.slice(root.length + 1).replace(/\._S3rver_object$/, "")} (${target.size} bytes, 64 bytes flipped at ${at})`;
}

export const restoreCheck: Drill = {
    name: "restore-check",
    description: "the scheduled restore check on its replica passes (its signal 1); with a backup file corrupted in the lab's S3 store it fails (signal 0) and RestoreCheckFailed reaches the receiver; after a new full backup it passes and the alert resolves",
    async run(ctx: DrillContext): Promise<DrillResult> {
        const checks = drillChecks();
        const figures: Record<string, number> = {};
        const start = Date.now();
        await waitHealthy(ctx.log, HEALTHY_TIMEOUT_MS);
        const fullBackup = async () => {
            const out: string[] = [];
            for (const m of byRole("db")) out.push(`${m.name} ${(await inNode(m.name, ["systemctl", "start", BACKUP_UNIT("full")], 600_000)).code === 0 ? "ok" : "FAILED"}`);
            return out.join(", ");
        };
        const firstBackup = await fullBackup();
        checks.check(!firstBackup.includes("FAILED"), `a full backup as the schedule takes it: ${firstBackup}`);
        const bounds = await renderedBounds();
        const { chosen, run: first } = await restoreCheckRun(ctx.log);
        const expected: Expected = { alert: "RestoreCheckFailed", instance: chosen, faultAt: 0, boundSeconds: alertBound(bounds, "RestoreCheckFailed") };
        figures["restore check s"] = first.seconds;
        checks.check(first.ok && first.success === 1 && restored(first.said), `the restore check on ${chosen} (the last healthy replica by name): ${first.ok ? "passed" : "FAILED"} in ${first.seconds} s, signal ${first.success ?? "missing"}; ${first.said}`);

        const corrupted = corruptNewestBackup();
        ctx.log(`restore-check: corrupted ${corrupted}`);
        const { chosen: againOn, run: second } = await restoreCheckRun(ctx.log);
        expected.faultAt = Date.now();
        checks.check(againOn === chosen, `the check with the corrupted file ran on ${againOn}${againOn === chosen ? "" : `, not ${chosen}`}`);
        checks.check(!second.ok && second.success === 0 && restored(second.said), `with ${corrupted} corrupted: the check ${second.ok ? "PASSED" : "failed"} in ${second.seconds} s, signal ${second.success ?? "missing"}; ${second.said}`);
        await waitAtReceiver([expected], "firing", start, (e) => e.faultAt + (e.boundSeconds + 2 * DELIVERY_SLACK_SECONDS) * 1000);
        const took = expected.firedAt === undefined ? undefined : (expected.firedAt - expected.faultAt) / 1000;
        if (took !== undefined) figures["RestoreCheckFailed s after the failed check"] = Math.round(took);
        checks.check(took !== undefined && took <= expected.boundSeconds + DELIVERY_SLACK_SECONDS, `${describeExpected(expected)}: ${took === undefined ? `NEVER arrived within ${expected.boundSeconds + 2 * DELIVERY_SLACK_SECONDS} s` : `arrived ${took.toFixed(0)} s after the failed check`} (bound ${expected.boundSeconds} s + ${DELIVERY_SLACK_SECONDS} s)`);

        const repair = await fullBackup();
        const { chosen: lastOn, run: third } = await restoreCheckRun(ctx.log);
        expected.repairedAt = Date.now();
        checks.check(lastOn === chosen && third.ok && third.success === 1 && restored(third.said), `after a new full backup (${repair}): the check on ${lastOn} ${third.ok ? "passed" : "FAILED"} in ${third.seconds} s, signal ${third.success ?? "missing"}; ${third.said}`);
        await waitAtReceiver([expected], "resolved", start, (e) => (e.repairedAt ?? 0) + RESOLVE_BOUND_SECONDS * 1000);
        const resolved = expected.resolvedAt === undefined ? undefined : (expected.resolvedAt - expected.repairedAt) / 1000;
        checks.check(resolved !== undefined, `${describeExpected(expected)}: ${resolved === undefined ? "NEVER resolved" : `resolved ${resolved.toFixed(0)} s after the passing check`}`);
        // The failed run's unit may have been reported failed meanwhile; nothing else.
        const extra = unexpected(start, [expected], (a) => a.name === "SystemdUnitFailed" && a.instance === chosen && a.labels.name === `${RESTORE_CHECK_UNIT}.service`);
        checks.check(extra.length === 0, extra.length === 0 ? "nothing else was sent during the drill" : `also sent during the drill: ${extra.join("; ")}`);
        return result("restore-check", chosen, [expected], checks, figures);
    },
};
