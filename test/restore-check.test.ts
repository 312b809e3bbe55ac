// The scheduled restore check run for real, in the lab's Debian 13 root filesystem (an overlay, so
// the cached one never changes): PostgreSQL 17 archiving into a pgBackRest 2.55 repository, one
// full backup and rows written after it (and, before that backup, a run on the empty repository,
// as a new stack's first check finds it); the check, as the node's launcher and shipped modules run
// it, restores the newest backup and the archive into a scratch directory, starts it, checks it
// and removes it, and reports success; with a backup file corrupted in the repository it reports
// failure (exit 1, success 0) and keeps the time of the last passing run.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { RESTORE_CHECK_TOOL, restoreCheckConfig, restoreCheckFiles } from "../components/render/monitoring";
import { PG_BIN_DIR } from "../components/render/patroni";
import { renderSignalTable } from "../components/render/signals";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { requireTools } from "./helpers/tools";

const STANZA = "demo";

/** Inside the chroot: a cluster archiving to a posix repository, the check, a backup, rows after it; then the check twice. */
const SCRIPT = `set -eu
mkdir -p /etc/pgbackrest /var/lib/pgbackrest /var/log/pgbackrest /tmp/pg /tmp/textfile
cat > /etc/pgbackrest/pgbackrest.conf <<C
[global]
repo1-path=/var/lib/pgbackrest
repo1-retention-full=2
repo1-bundle=y
log-level-console=warn
start-fast=y
[${STANZA}]
pg1-path=/tmp/pg/data
pg1-socket-path=/tmp/pg
pg1-port=5498
C
chown -R postgres:postgres /etc/pgbackrest /var/lib/pgbackrest /var/log/pgbackrest /tmp/pg /tmp/textfile /var/lib/postgresql
cd /tmp
su postgres -s /bin/sh -c '
set -e
${PG_BIN_DIR}/initdb -D /tmp/pg/data -A trust >/dev/null
${PG_BIN_DIR}/pg_ctl -D /tmp/pg/data -l /tmp/pg/log -w -o "-p 5498 -c listen_addresses= -c unix_socket_directories=/tmp/pg -c archive_mode=on -c archive_command=\\"pgbackrest --stanza=${STANZA} archive-push %p\\" -c wal_level=replica" start >/dev/null
psql -h /tmp/pg -p 5498 -d postgres -qc "CREATE DATABASE app"
pgbackrest --stanza=${STANZA} stanza-create
'
# As its unit runs it: root, PostgreSQL and pgBackRest as postgres.
check() { ${RESTORE_CHECK_TOOL} --config /etc/vps-ha/restore-check.json; }
set +e
check; echo "empty=$?"
ls /tmp/textfile | sed 's/^/reported: /'
set -e
su postgres -s /bin/sh -c '
set -e
pgbackrest --stanza=${STANZA} --type=full backup
psql -h /tmp/pg -p 5498 -d app -qc "CREATE TABLE t AS SELECT generate_series(1, 10000) AS i"
pgbackrest --stanza=${STANZA} check
'
set +e
check; echo "first=$?"
cp /tmp/textfile/vpsha-restore-check.prom /out/first.prom
ls -d /var/lib/postgresql/vps-ha-restore-check* 2>/dev/null | sed 's/^/left: /'
# Corrupt the backup's largest file in the repository (a bundle): the restore must notice.
f=$(find /var/lib/pgbackrest/backup/${STANZA} -type f -path '*F/*' -printf '%s %p\\n' | sort -n | tail -1 | cut -d' ' -f2)
size=$(stat -c %s "$f")
dd if=/dev/urandom of="$f" bs=1 count=4096 seek=$((size / 2)) conv=notrunc 2>/dev/null
check; echo "second=$?"
cp /tmp/textfile/vpsha-restore-check.prom /out/second.prom
ls -d /var/lib/postgresql/vps-ha-restore-check* 2>/dev/null | sed 's/^/left: /'
su postgres -s /bin/sh -c "${PG_BIN_DIR}/pg_ctl -D /tmp/pg/data -w stop -m fast" >/dev/null
`;

describe("the scheduled restore check, run for real on PostgreSQL 17 and pgBackRest 2.55 @rootfs", function () {
    this.timeout(10 * 60_000);
    let dir = "";
    let output = "";
    before(async function () {
        requireTools(this, ["unshare", "chroot"], true);
        const rootfs = await labRootfs(await evaluate());
        dir = mkdtempSync(join(tmpdir(), "vps-ha-restore-check-"));
        const files: Record<string, string> = {};
        for (const f of restoreCheckFiles()) files[f.path] = f.content;
        const table = JSON.parse(renderSignalTable());
        table.textfileDir = "/tmp/textfile";
        files["/etc/vps-ha/signal-table.json"] = JSON.stringify(table);
        const cfg = restoreCheckConfig({ stanza: STANZA, node: "db-1" });
        // No Patroni here: this member runs the check unconditionally.
        delete (cfg as { patroniUrl?: string }).patroniUrl;
        files["/etc/vps-ha/restore-check.json"] = JSON.stringify({ ...cfg, database: "app" });
        files["/inner.sh"] = SCRIPT;
        const stage = join(dir, "stage");
        for (const [path, content] of Object.entries(files)) {
            mkdirSync(join(stage, dirname(path)), { recursive: true });
            writeFileSync(join(stage, path), content, { mode: path === RESTORE_CHECK_TOOL ? 0o755 : 0o644 });
        }
        for (const d of ["up", "work", "m", "out"]) mkdirSync(join(dir, d));
        const m = join(dir, "m");
        const script = [
            `mount -t overlay overlay -o lowerdir=${rootfs},upperdir=${dir}/up,workdir=${dir}/work ${m}`,
            `mount -t proc proc ${m}/proc`,
            `cp -a ${stage}/. ${m}/`,
            `mkdir -p ${m}/out && mount --bind ${dir}/out ${m}/out && chmod 777 ${dir}/out`,
            `exec chroot ${m} sh /inner.sh`,
        ].join(" && ");
        const r = spawnSync("unshare", ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "sh", "-c", script], { encoding: "utf8", timeout: 8 * 60_000 });
        output = `${r.stdout}\n${r.stderr}`;
        assert.equal(r.status, 0, output);
    });
    after(() => dir && rmSync(dir, { recursive: true, force: true }));

    const sample = (file: string, metric: string) => {
        const line = readFileSync(join(dir, "out", file), "utf8").split("\n").find((l) => l.startsWith(`${metric}{stanza="${STANZA}"} `));
        return line === undefined ? undefined : Number(line.split(" ")[1]);
    };

    it("before the first backup: exits 0, says so, and reports nothing (a new stack is not a failed check)", () => {
        assert.match(output, /^empty=0$/m, output);
        assert.match(output, /restore-check: the repository holds no backup yet: nothing to check/);
        assert.doesNotMatch(output, /^reported: /m, output);
    });

    it("restores the newest backup and the archive, checks the copy, removes it, and reports success", () => {
        assert.match(output, /^first=0$/m, output);
        assert.match(output, /restore-check: passed in \d+ s/);
        assert.equal(sample("first.prom", "vpsha_restore_check_success"), 1);
        const at = sample("first.prom", "vpsha_restore_check_last_run_timestamp_seconds")!;
        assert.ok(Math.abs(at - Date.now() / 1000) < 600, String(at));
        assert.equal(sample("first.prom", "vpsha_restore_check_last_success_timestamp_seconds"), at);
        assert.doesNotMatch(output, /^left: /m, "the scratch directory is removed");
    });

    it("with a corrupted backup file, fails (exit 1, success 0) and keeps the last passing run's time", () => {
        assert.match(output, /^second=1$/m, output);
        assert.match(output, /restore-check: FAILED: pgbackrest restore: exit \d+/);
        assert.equal(sample("second.prom", "vpsha_restore_check_success"), 0);
        assert.equal(sample("second.prom", "vpsha_restore_check_last_success_timestamp_seconds"), sample("first.prom", "vpsha_restore_check_last_run_timestamp_seconds"));
        assert.doesNotMatch(output, /^left: /m, "the scratch directory is removed after a failure too");
    });
});
