// WAL cannot fill the disk: the backup store unreachable for a while under writes. Archiving is
// asynchronous, so no commit waits on it; the stall shows in pg_stat_archiver (the last archived
// segment falls behind); once the store is back the queue drains, and no acknowledged write is lost.
import { PG_SOCKET_DIR } from "../../../components/render/patroni";
import { sleep } from "../exec";
import { execInNode, labNodes } from "../realize";
import { currentPrimary, UNAFFECTED_RTO_SECONDS } from "./db";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill } from "./types";

/** How long the store stays unreachable. */
const OUTAGE_SECONDS = 30;
/** How long archiving may take to catch up once the store is back. */
const CATCH_UP_SECONDS = 90;
/** A table of the drill's own in each member's nftables: dropped whole at the repair. */
const OUTAGE_TABLE = "lab_archive_outage";
/** The backup the drill starts during the outage, as its timer would. */
const BACKUP_UNIT = "vps-ha-backup-incr.service";

interface Archiver {
    archived: number;
    failed: number;
    lastArchived: string;
    current: string;
    walBytes: number;
}

async function archiver(node: string): Promise<Archiver | undefined> {
    const sql = "SELECT archived_count, failed_count, coalesce(last_archived_wal, ''), pg_walfile_name(pg_current_wal_lsn()), (SELECT sum(size) FROM pg_ls_waldir()) FROM pg_stat_archiver";
    const r = await execInNode(node, ["psql", "-h", PG_SOCKET_DIR, "-U", "postgres", "-XAtq", "-F", " ", "-c", sql], { user: "postgres", timeoutMs: 10_000, allowFail: true });
    const f = r.stdout.trim().split(" ");
    if (r.code !== 0 || f.length !== 5) return undefined;
    return { archived: Number(f[0]), failed: Number(f[1]), lastArchived: f[2], current: f[3], walBytes: Number(f[4]) };
}

export const archiveOutage: Drill = {
    name: "archive-outage",
    description: `the backup store unreachable from every member for ${OUTAGE_SECONDS} s under writes: no write waits or fails, archiving visibly stalls, and catches up within ${CATCH_UP_SECONDS} s of the store's return`,
    run: async (ctx) => {
        const primary = await pickNode(ctx, currentPrimary, "primary");
        const members = labNodes().filter((n) => n.role === "db");
        const conf = await execInNode(primary, ["cat", "/etc/pgbackrest/pgbackrest.conf"], { timeoutMs: 10_000, allowFail: true });
        const host = /^repo1-s3-endpoint=(.*)$/m.exec(conf.stdout)?.[1];
        if (!host) throw new Error(`archive-outage: ${primary} archives nowhere (no repo1-s3-endpoint in its pgbackrest.conf): the stack has no backups`);
        const port = Number(/^repo1-storage-port=(\d+)$/m.exec(conf.stdout)?.[1] ?? 443);
        const resolved = await execInNode(primary, ["getent", "ahostsv4", host], { timeoutMs: 10_000 });
        const address = resolved.stdout.trim().split(/\s+/)[0];
        let before: Archiver | undefined;
        let during: Archiver | undefined;
        const retried: { node: string; unit: string; ok: boolean }[] = [];
        return faultUnderLoad(ctx, {
            drill: "archive-outage",
            target: primary,
            lost: [],
            fault: async () => {
                before = await archiver(primary);
                const rules = `table inet ${OUTAGE_TABLE} {\n chain output {\n  type filter hook output priority -10; policy accept;\n  ip daddr ${address} tcp dport ${port} reject with tcp reset\n }\n}\n`;
                for (const m of members) await execInNode(m.name, ["nft", "-f", "-"], { timeoutMs: 10_000, input: rules });
                for (const m of members) await execInNode(m.name, ["systemctl", "start", "--no-block", BACKUP_UNIT], { timeoutMs: 10_000 });
                ctx.log(`archive-outage: ${host} (${address}:${port}) unreachable from every member for ${OUTAGE_SECONDS} s`);
            },
            whileBroken: async () => {
                // Segments to archive while the store is away: switch WAL a few times.
                const deadline = Date.now() + OUTAGE_SECONDS * 1000;
                while (Date.now() < deadline) {
                    await execInNode(primary, ["psql", "-h", PG_SOCKET_DIR, "-U", "postgres", "-XAtq", "-c", "SELECT pg_switch_wal()"], { user: "postgres", timeoutMs: 10_000, allowFail: true });
                    await sleep(5_000);
                }
                during = await archiver(primary);
                // The outage shows: segments wait (the last archived one falls behind the current
                // one) and pgBackRest's spool says why; failed pushes count once archive-push gives
                // up waiting on its queue (archive-timeout).
                const spool = await execInNode(primary, ["sh", "-c", "ls /var/spool/pgbackrest/archive/*/out/ 2>/dev/null | grep -c '\\.error$' || true"], { timeoutMs: 10_000, allowFail: true });
                const behind = during !== undefined && during.lastArchived.slice(0, 24) < during.current;
                const ok = before !== undefined && during !== undefined && (behind || during.failed > before.failed);
                return { ok, notes: [`during the outage: ${during ? `archiving ${behind ? "stalled" : "NOT stalled"} (last archived ${during.lastArchived || "none"}, current ${during.current}), ${during.failed - (before?.failed ?? 0)} failed pushes counted in pg_stat_archiver, ${spool.stdout.trim() || "0"} error file(s) in the spool, pg_wal ${(during.walBytes / 2 ** 20).toFixed(0)} MiB` : "no answer from the primary"}`] };
            },
            repair: async () => {
                for (const m of members) await execInNode(m.name, ["nft", "delete", "table", "inet", OUTAGE_TABLE], { timeoutMs: 10_000, allowFail: true });
                // The backup started during the outage (or one whose timer fired then) fails, loudly,
                // as it should; once it has ended it is taken again, and must now succeed.
                for (const m of members) {
                    for (let i = 0; i < 60; i++) {
                        const state = await execInNode(m.name, ["systemctl", "is-active", BACKUP_UNIT], { timeoutMs: 10_000, allowFail: true });
                        if (!["activating", "deactivating", "active"].includes(state.stdout.trim())) break;
                        await sleep(2_000);
                    }
                    const failed = await execInNode(m.name, ["systemctl", "list-units", "--failed", "--plain", "--no-legend", "vps-ha-backup-*.service"], { timeoutMs: 10_000, allowFail: true });
                    for (const unit of failed.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter((u) => u)) {
                        const r = await execInNode(m.name, ["systemctl", "start", unit], { timeoutMs: 300_000, allowFail: true });
                        retried.push({ node: m.name, unit, ok: r.code === 0 });
                    }
                }
            },
            afterRepair: async () => {
                const target = during?.current ?? "";
                let now: Archiver | undefined;
                const started = Date.now();
                while (Date.now() - started < CATCH_UP_SECONDS * 1000) {
                    now = await archiver(primary);
                    // Segment names of one timeline sort as they were written.
                    if (now && now.lastArchived.slice(0, 24) >= target) break;
                    await sleep(2_000);
                }
                const caught = now !== undefined && now.lastArchived.slice(0, 24) >= target;
                const note = `after the store's return: last archived ${now?.lastArchived ?? "?"} (${caught ? `at or past ${target} after ${((Date.now() - started) / 1000).toFixed(1)} s` : `not yet at ${target} after ${CATCH_UP_SECONDS} s`}), ${now ? now.archived - (before?.archived ?? 0) : "?"} segments archived since the fault, pg_wal ${now ? (now.walBytes / 2 ** 20).toFixed(0) : "?"} MiB`;
                const backups = [retried.length === 0 ? "the backup started during the outage did not fail" : `backups that failed during the outage, taken again after it: ${retried.map((b) => `${b.node} ${b.unit} ${b.ok ? "succeeded" : "FAILED again"}`).join(", ")}`];
                return { ok: caught && retried.every((b) => b.ok), notes: [note, ...backups] };
            },
            rtoTargetSeconds: UNAFFECTED_RTO_SECONDS,
            writes: { pooled: true, timeoutMs: 30_000 },
            // Archiving never holds a commit: writes go on as if nothing happened.
            planned: { maxWritePauseSeconds: UNAFFECTED_RTO_SECONDS },
        });
    },
};
