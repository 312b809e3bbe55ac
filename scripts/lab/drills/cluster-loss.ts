// Drill "cluster-loss": every database member's disk lost at once (each server rebuilt with an
// empty disk, all together) after writes were acknowledged. Nobody steps in: the members form a
// new etcd cluster together, Patroni's bootstrap method restores the newest backup from the
// repository and replays the archived WAL, the others clone from it, and writes are accepted
// again. What survives is what was archived: every write acknowledged before the write position
// passed the end of the last archived WAL segment must be there; the ones after it (at most
// archive_timeout's worth) are lost, and the drill says how many and how old.
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BACKUP_SCRIPT } from "../../../components/render/pgbackrest";
import { PATRONI_UNIT } from "../../../components/render/patroni";
import { sleep } from "../exec";
import { waitHealthy } from "../health";
import { analyzeWrites } from "../load/analyze";
import type { WriteRecord } from "../load/db-writer";
import { sql, WriteLoad } from "../load/writes";
import { bootFreshNode, discardNode, labNodeSpec } from "../rebuild";
import { execInNode, labNodes, nodeLogDir } from "../realize";
import { copyNodeLogs, drillLogDir, markNodeLogs } from "./logs";
import { currentPrimary } from "./db";
import { Drill, DrillResult, drillChecks } from "./types";

/**
 * Writes accepted again within this long of the loss: every server booted and configured again
 * (in parallel), a new etcd cluster, the restore of the newest backup and the replay of the WAL
 * archived since, a promotion. The lab's database is small; a real one adds its copy from the repository.
 */
export const CLUSTER_LOSS_RTO_SECONDS = 180;
/** How long the drill waits for writes at most, before it gives up on the cluster. */
const RESTORE_WAIT_SECONDS = 900;
/** The archiver may finish a segment this long after archive_timeout forced the switch. */
const ARCHIVE_SLACK_SECONDS = 5;
/** How long writes run after the backup: past archive_timeout, so at least one segment is archived by it. */
const WRITE_EXTRA_SECONDS = 30;

interface WalSample {
    at: number;
    /** The primary's write position (bytes). */
    lsn: bigint;
    /** The last segment archived, and when. */
    lastArchived: string;
    lastArchivedAt: number | null;
}

/** The first byte after a WAL segment, from its file name (timeline, log, segment). */
export function segmentEnd(name: string, segmentBytes: bigint): bigint | undefined {
    const m = /^[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
    if (!m) return undefined;
    return BigInt(`0x${m[1]}`) * 0x1_0000_0000n + (BigInt(`0x${m[2]}`) + 1n) * segmentBytes;
}

/**
 * The moment before which every acknowledged write is in an archived segment: the last sample
 * whose write position was within the newest segment archived by the end (undefined: none).
 */
export function archivedUntil(samples: WalSample[], segmentBytes: bigint): { at: number; segment: string } | undefined {
    const newest = [...samples].reverse().find((s) => segmentEnd(s.lastArchived, segmentBytes) !== undefined);
    if (!newest) return undefined;
    const end = segmentEnd(newest.lastArchived, segmentBytes) as bigint;
    const within = [...samples].reverse().find((s) => s.lsn <= end);
    return within ? { at: within.at, segment: newest.lastArchived } : undefined;
}

async function walSample(): Promise<WalSample | undefined> {
    try {
        const out = await sql("SELECT pg_current_wal_lsn() - '0/0', coalesce(last_archived_wal, ''), coalesce(extract(epoch FROM last_archived_time)::text, '') FROM pg_stat_archiver");
        const [lsn, wal, at] = out.split("|");
        return { at: Date.now(), lsn: BigInt(lsn.split(".")[0]), lastArchived: wal, lastArchivedAt: at ? Number(at) * 1000 : null };
    } catch {
        return undefined;
    }
}

/** The first write that failed after the loss, and the first acknowledged after it (undefined: not yet). */
export function comeback(records: WriteRecord[], lossAt: number): { firstFailure?: WriteRecord; back?: WriteRecord } {
    const sorted = [...records].sort((x, y) => x.start - y.start);
    const firstFailure = sorted.find((r) => !r.ok && r.end >= lossAt);
    const back = firstFailure && sorted.find((r) => r.ok && r.start >= firstFailure.start);
    return { ...(firstFailure ? { firstFailure } : {}), ...(back ? { back } : {}) };
}

/** Lines of a unit's log on a node (since its current server) that contain `marker`. */
function unitLog(node: string, unit: string, marker: string): string[] {
    const file = join(nodeLogDir(node), `${unit}.log`);
    return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((l) => l.includes(marker)) : [];
}

export const clusterLoss: Drill = {
    name: "cluster-loss",
    description: "lose every database member's disk at once after acknowledged writes: the cluster comes back by itself from the backup repository with every archived write, and takes writes again",
    run: async (ctx): Promise<DrillResult> => {
        const checks = drillChecks();
        const { notes, check } = checks;
        await waitHealthy(ctx.log, 90_000);
        const members = labNodes().filter((n) => n.role === "db");
        if (members.length === 0) throw new Error("cluster-loss needs database members");
        const archiveTimeout = Number(await sql("SELECT setting FROM pg_settings WHERE name = 'archive_timeout'"));
        const segmentBytes = BigInt(await sql("SELECT setting::bigint * CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 ELSE 1 END FROM pg_settings WHERE name = 'wal_segment_size'"));
        if (!(archiveTimeout > 0)) throw new Error(`archive_timeout is ${archiveTimeout}: the drill measures nothing without it`);

        const logDir = drillLogDir("cluster-loss");
        const names = labNodes().map((n) => n.name);
        const marks = markNodeLogs(names);
        const writes = await WriteLoad.start(RESTORE_WAIT_SECONDS + 300 + archiveTimeout + WRITE_EXTRA_SECONDS, []);
        const samples: WalSample[] = [];
        let sampling = true;
        const sampler = (async () => {
            for (let i = 0; sampling && i < 3_600; i++) {
                const s = await walSample();
                if (s) samples.push(s);
                await sleep(1_000);
            }
        })();
        let lossAt = 0;
        let rtoSeconds: number | null = null;
        let recoverySeconds: number | null = null;
        try {
            // A backup as the schedule takes it (only the replica the script picks backs up).
            const t0 = Date.now();
            for (const n of members) {
                const r = await execInNode(n.name, [BACKUP_SCRIPT, "full"], { user: "postgres", timeoutMs: 240_000, allowFail: true });
                notes.push(`backup on ${n.name}: ${r.code === 0 ? "" : `exit ${r.code}: `}${(r.stdout + r.stderr).trim().split("\n").slice(-1)[0]}`);
            }
            notes.push(`backup taken in ${((Date.now() - t0) / 1000).toFixed(1)} s; writes go on for ${archiveTimeout + WRITE_EXTRA_SECONDS} s (archive_timeout ${archiveTimeout} s)`);
            await sleep((archiveTimeout + WRITE_EXTRA_SECONDS) * 1000);
            sampling = false;
            await sampler;
            const primary = await currentPrimary();
            const specs = members.map((n) => labNodeSpec(n.name));

            lossAt = Date.now();
            ctx.log(`cluster-loss: every member's server replaced with an empty disk (${members.map((n) => n.name).join(", ")}; primary ${primary ?? "none"})`);
            await Promise.all(members.map((n) => discardNode(n.name, ctx.log)));
            await Promise.all(specs.map((s) => bootFreshNode(s, ctx.log)));
            notes.push(`every member's new server booted and configured ${((Date.now() - lossAt) / 1000).toFixed(1)} s after the loss`);

            const deadline = lossAt + RESTORE_WAIT_SECONDS * 1000;
            while (Date.now() < deadline) {
                const back = comeback(writes.records(), lossAt).back;
                if (back) {
                    rtoSeconds = (back.end - lossAt) / 1000;
                    break;
                }
                await sleep(1_000);
            }
            check(rtoSeconds !== null, `writes accepted again ${rtoSeconds === null ? `never (waited ${RESTORE_WAIT_SECONDS} s)` : `${rtoSeconds.toFixed(1)} s after the loss`}`);
            if (rtoSeconds !== null) {
                try {
                    await waitHealthy(ctx.log, 300_000);
                    recoverySeconds = (Date.now() - lossAt) / 1000;
                    notes.push(`every node healthy ${recoverySeconds.toFixed(1)} s after the loss`);
                } catch (e) {
                    check(false, `not healthy after writes came back: ${(e as Error).message}`);
                }
            }
        } finally {
            sampling = false;
            await sampler;
            await writes.stop();
            copyNodeLogs(names, marks, logDir);
        }
        copyFileSync(writes.logFile, join(logDir, "writes.jsonl"));
        notes.push(`client log (writes.jsonl) and the nodes' daemon logs (nodes/): ${logDir}`);

        // Who restored, and how: the bootstrap method's own lines in the new leader's Patroni log.
        const leader = await currentPrimary();
        const restored = leader ? unitLog(leader, PATRONI_UNIT, "db-restore:") : [];
        notes.push(...restored.map((l) => `${leader}: ${l.replace(/^.*db-restore:/, "db-restore:")}`));
        check(restored.some((l) => l.includes("restoring backup")) && restored.some((l) => l.includes("promoted: True")), `${leader ?? "no member"} restored the newest backup and replayed the archive`);
        check(!restored.some((l) => /initdb/.test(l)), "no member ran initdb");

        const records = writes.records();
        const present = await writes.presentIds().catch((e: Error) => {
            check(false, `the writes' table cannot be read: ${e.message}`);
            return new Set<number>();
        });
        const a = analyzeWrites(records, lossAt, present);
        // Acknowledged before the outage: up to the first write that failed (the old primary may
        // acknowledge a few more while its server is being stopped).
        const { firstFailure } = comeback(records, lossAt);
        const outageAt = firstFailure?.start ?? lossAt;
        const acked = records.filter((r) => r.ok && r.start < outageAt);
        const lost = acked.filter((r) => !present.has(r.id));
        const archived = archivedUntil(samples, segmentBytes);
        const lostArchived = archived ? lost.filter((r) => r.end <= archived.at) : lost;
        const lastAcked = acked.reduce((m, r) => Math.max(m, r.end), lossAt);
        const oldest = lost.reduce((m, r) => Math.min(m, r.end), Infinity);
        // Ages from the last write acknowledged before the outage: the moment the loss struck, as clients saw it.
        const oldestAge = lost.length ? (lastAcked - oldest) / 1000 : 0;
        check(archived !== undefined, `a WAL segment was archived before the loss (${archived ? `${archived.segment}, holding every write acknowledged up to ${((lastAcked - archived.at) / 1000).toFixed(1)} s before the loss` : "none seen"})`);
        check(lostArchived.length === 0, `every write acknowledged before the last archived segment is there (${acked.length - lost.length} of ${acked.length} acknowledged writes; ${lostArchived.length} lost that were archived)`);
        check(oldestAge <= archiveTimeout + ARCHIVE_SLACK_SECONDS, `${lost.length} acknowledged writes were not archived and are lost, the oldest acknowledged ${oldestAge.toFixed(1)} s before the loss (archive_timeout ${archiveTimeout} s)`);
        const after = records.filter((r) => r.ok && r.start >= outageAt);
        check(after.length > 0 && after.every((r) => present.has(r.id)), `the new cluster took ${after.length} writes and holds them all`);
        check(rtoSeconds !== null && rtoSeconds <= CLUSTER_LOSS_RTO_SECONDS, `writes back within ${CLUSTER_LOSS_RTO_SECONDS} s`);
        return {
            drill: "cluster-loss", target: members.map((n) => n.name).join("+"), logDir, rtoSeconds, rtoTargetSeconds: CLUSTER_LOSS_RTO_SECONDS, recoverySeconds,
            lostWrites: lost.length, failedRequests: a.failed, failedHttpRequests: null, splitBrain: a.splitBrain,
            figures: { unarchivedLostWrites: lost.length, oldestLostWriteAgeSeconds: Math.round(oldestAge * 10) / 10, archivedLostWrites: lostArchived.length },
            checksPassed: checks.ok, passed: checks.ok, notes,
        };
    },
};
