// backup-restore: a backup taken on a replica (as the schedule would), rows written before and
// after a moment T, then the stanza restored to T from the lab's R2 into a fresh data directory
// and started on its own: exactly the rows committed before T must be there.
import { BACKUP_SCRIPT, RESTORE_SCRIPT } from "../../../components/render/pgbackrest";
import { APP_DATABASE, PG_BIN_DIR } from "../../../components/render/patroni";
import { sleep } from "../exec";
import { waitHealthy } from "../health";
import { sql } from "../load/writes";
import { execInNode, labNodes } from "../realize";
import { currentPrimary } from "./db";
import { Drill, DrillResult } from "./types";

const TABLE = "vps_ha_lab_restore";
const BEFORE = 50;
const AFTER = 50;
const RESTORE_DIR = "/var/lib/postgresql/vps-ha-restore-drill";
const RESTORE_SOCKET = "/tmp/vps-ha-restore-drill";
const RESTORE_TIMEOUT_MS = 300_000;

const asPostgres = (node: string, argv: string[], timeoutMs = 120_000) => execInNode(node, argv, { user: "postgres", timeoutMs, allowFail: true });

export const backupRestore: Drill = {
    name: "backup-restore",
    description: "back up from a replica, write, restore to a point in time into a fresh data dir, check exactly the rows before it are there",
    async run(ctx): Promise<DrillResult> {
        const notes: string[] = [];
        await waitHealthy(ctx.log, 90_000);
        const primary = await currentPrimary();
        const replica = labNodes().find((n) => n.role === "db" && n.name !== primary && !n.isolated)?.name;
        if (!primary || !replica) throw new Error("backup-restore needs a primary and a replica");

        // The schedule's own script, on every member: only the replica it picks backs up.
        const t0 = Date.now();
        for (const n of labNodes().filter((x) => x.role === "db")) {
            const r = await asPostgres(n.name, [BACKUP_SCRIPT, "full"], 240_000);
            notes.push(`${n.name}: ${r.code === 0 ? "" : `exit ${r.code}: `}${(r.stdout + r.stderr).trim().split("\n").slice(-1)[0]}`);
        }
        const backupSeconds = (Date.now() - t0) / 1000;

        await sql(`DROP TABLE IF EXISTS ${TABLE}; CREATE TABLE ${TABLE} (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
        await sql(`INSERT INTO ${TABLE} (id) SELECT generate_series(1, ${BEFORE})`);
        await sleep(1_000);
        const target = await sql(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`);
        await sleep(1_000);
        await sql(`INSERT INTO ${TABLE} (id) SELECT generate_series(${BEFORE + 1}, ${BEFORE + AFTER})`);
        // pgBackRest's check switches WAL and waits until the segment is in the archive.
        const check = await asPostgres(primary, ["pgbackrest", `--stanza=${await stanza(primary)}`, "check"]);
        if (check.code !== 0) notes.push(`pgbackrest check: ${check.stderr.trim().slice(-300)}`);

        const r0 = Date.now();
        let present = -1;
        let after = -1;
        try {
            await asPostgres(replica, ["rm", "-rf", RESTORE_DIR, RESTORE_SOCKET]);
            const restore = await asPostgres(replica, [RESTORE_SCRIPT, target, RESTORE_DIR], RESTORE_TIMEOUT_MS);
            if (restore.code !== 0) throw new Error(`restore failed: ${(restore.stdout + restore.stderr).trim().slice(-500)}`);
            await asPostgres(replica, ["mkdir", "-p", RESTORE_SOCKET]);
            // Its own port and socket, no listening address, no archiving: it never touches the live cluster.
            const start = await asPostgres(replica, [`${PG_BIN_DIR}/pg_ctl`, "-D", RESTORE_DIR, "-w", "-t", "120", "-l", `${RESTORE_DIR}.log`, "start", "-o",
                `-p 5499 -c listen_addresses='' -c unix_socket_directories=${RESTORE_SOCKET} -c archive_mode=off -c synchronous_standby_names='' -c hot_standby=on`], 150_000);
            if (start.code !== 0) throw new Error(`the restored cluster did not start: ${start.stderr.trim().slice(-300)}`);
            for (let i = 0; i < 120; i++) {
                const q = await asPostgres(replica, ["psql", "-h", RESTORE_SOCKET, "-p", "5499", "-d", APP_DATABASE, "-XAtq", "-c", `SELECT NOT pg_is_in_recovery(), count(*) FILTER (WHERE id <= ${BEFORE}), count(*) FILTER (WHERE id > ${BEFORE}) FROM ${TABLE}`], 10_000);
                const [promoted, p, a] = q.stdout.trim().split("|");
                if (q.code === 0 && promoted === "t") {
                    present = Number(p);
                    after = Number(a);
                    break;
                }
                await sleep(1_000);
            }
            if (present < 0) {
                const log = await asPostgres(replica, ["tail", "-n", "15", `${RESTORE_DIR}.log`]);
                notes.push(`the restored cluster never finished recovery; its log ends:\n${log.stdout}`);
            }
        } finally {
            await asPostgres(replica, [`${PG_BIN_DIR}/pg_ctl`, "-D", RESTORE_DIR, "-m", "immediate", "stop"], 60_000);
            await asPostgres(replica, ["rm", "-rf", RESTORE_DIR, RESTORE_SOCKET, `${RESTORE_DIR}.log`]);
        }
        const restoreSeconds = (Date.now() - r0) / 1000;
        notes.push(`full backup ${backupSeconds.toFixed(1)} s; restored to ${target} on ${replica} in ${restoreSeconds.toFixed(1)} s: ${present} of ${BEFORE} rows from before, ${after} of ${AFTER} from after`);
        return {
            drill: "backup-restore",
            target: replica,
            rtoSeconds: restoreSeconds,
            rtoTargetSeconds: RESTORE_TIMEOUT_MS / 1000,
            recoverySeconds: 0,
            lostWrites: present < 0 ? BEFORE : BEFORE - present,
            failedRequests: after < 0 ? 0 : after,
            failedHttpRequests: null, // a restore beside the cluster: no web traffic involved
            splitBrain: false,
            passed: present === BEFORE && after === 0,
            notes,
        };
    },
};

async function stanza(node: string): Promise<string> {
    const r = await execInNode(node, ["sh", "-c", "sed -n 's/^\\[\\(.*\\)\\]$/\\1/p' /etc/pgbackrest/pgbackrest.conf | grep -v '^global$' | head -1"], { timeoutMs: 5_000 });
    return r.stdout.trim();
}
