// Never an empty cluster over real data (node-agent/vpsha/db_restore.py), run by the real daemons of Debian
// 13 (PostgreSQL 17, Patroni 4.0.7, etcd 3.5, pgBackRest 2.55) on a database member's rendered
// files, in a vhtest-* namespace: a one-member cluster with an empty repository runs initdb and
// its post_bootstrap; after a backup, more archived writes and the loss of every disk (data
// directory and etcd), it comes back from the repository with every archived write; with the
// repository unreachable it creates nothing. The repository is a posix one in the node's overlay
// (the rendered S3 settings swapped for a path; the lab's s3rver plays R2 for the drills).
import { strict as assert } from "node:assert";
import { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parse, stringify } from "yaml";
import { ETCD_READY_TOOL, PATRONI_CONFIG, PG_BIN_DIR, PG_DATA_DIR, PG_SOCKET_DIR } from "../components/render/patroni";
import { PGBACKREST_CONF } from "../components/render/pgbackrest";
import { DIRECTORY_STATUS } from "../components/render/directory-agent";
import { ETCD_JOIN_SCRIPT, ETCD_TLS_FILES, ETCDCTL_TLS_FLAGS } from "../components/render/etcd";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox, withoutSystemctl } from "./helpers/sandbox";
import { startService, Started, waitFor } from "./helpers/units";
import { requireTools } from "./helpers/tools";

const NODE = "db-1";
const STANZA = "prod";
const REPO = "/var/lib/vps-ha-test-repo";
const ETCD_DATA = "/var/lib/etcd/vps-ha";

interface WriteFile { path: string; content: string; owner?: string; permissions?: string }


describe("a new cluster from the backup repository, never an empty one over real data (real daemons) @rootfs", function () {
    this.timeout(20 * 60_000); // a busy machine: the program's evaluation alone took minutes
    let sb: Sandbox | undefined;
    let mesh = "";
    let conf = "";
    let etcd: ChildProcess | undefined;
    let patroni: Started | undefined;
    const exec = (argv: string[], user?: string, timeoutMs = 120_000) => (sb as Sandbox).exec(NODE, argv, { user, timeoutMs, ...(user === "postgres" ? { env: { HOME: "/var/lib/postgresql" } } : {}) });
    const ok = (argv: string[], user?: string) => {
        const r = exec(argv, user);
        assert.equal(r.status, 0, `${argv.join(" ")}: ${r.stdout}${r.stderr}`);
        return r.stdout.trim();
    };
    const sql = (query: string, db = "app") => exec(["psql", "-X", "-At", "-h", PG_SOCKET_DIR, "-d", db, "-v", "ON_ERROR_STOP=1", "-c", query], "postgres");
    // Every start of the unit appends to one log file: this start's part.
    let logFrom = 0;
    const log = () => (patroni && existsSync(patroni.log) ? readFileSync(patroni.log).subarray(logFrom).toString("utf8") : "");
    const startPatroni = async (env: Record<string, string> = {}) => {
        const file = join((sb as Sandbox).dir, "logs", `${NODE}-vps-ha-patroni.service.log`);
        logFrom = existsSync(file) ? statSync(file).size : 0;
        patroni = await startService(sb as Sandbox, NODE, "vps-ha-patroni.service", env);
        assert.equal(patroni.log, file);
    };
    const leader = () => {
        const r = exec(["curl", "-s", "--max-time", "3", `http://${mesh}:8008/cluster`]);
        try {
            const m = (JSON.parse(r.stdout).members ?? []) as { name: string; role: string; state: string }[];
            return m.some((x) => x.name === NODE && x.role === "leader" && x.state === "running") || undefined;
        } catch {
            return undefined;
        }
    };
    const startEtcd = () => {
        const url = (port: number) => `https://${mesh}:${port}`;
        // With the member's certificates and client authentication, as the rendered member runs.
        const tls = ["--client-cert-auth", "--trusted-ca-file", ETCD_TLS_FILES.ca, "--cert-file", ETCD_TLS_FILES.cert, "--key-file", ETCD_TLS_FILES.key,
            "--peer-client-cert-auth", "--peer-trusted-ca-file", ETCD_TLS_FILES.ca, "--peer-cert-file", ETCD_TLS_FILES.cert, "--peer-key-file", ETCD_TLS_FILES.key];
        etcd = (sb as Sandbox).start(NODE, ["etcd", "--name", NODE, "--data-dir", ETCD_DATA, "--listen-peer-urls", url(2380), "--initial-advertise-peer-urls", url(2380),
            "--listen-client-urls", `${url(2379)},https://127.0.0.1:2379`, "--advertise-client-urls", url(2379), "--initial-cluster", `${NODE}=${url(2380)}`, "--initial-cluster-state", "new", "--log-level", "warn", ...tls],
            join((sb as Sandbox).dir, "logs", `etcd-${Date.now()}.log`), { user: "etcd" });
    };
    /** Every disk lost: Patroni, PostgreSQL and etcd stopped, their data gone. */
    const loseEverything = async () => {
        // Patroni may have exited already (a failed bootstrap ends it; systemd would start it again).
        for (const d of [patroni?.child, etcd]) if (d && d.exitCode === null && d.signalCode === null) process.kill((sb as Sandbox).daemonPid(d), "SIGKILL");
        exec([`${PG_BIN_DIR}/pg_ctl`, "-D", PG_DATA_DIR, "-m", "immediate", "-w", "stop"], "postgres");
        await sleep(500);
        ok(["sh", "-c", `rm -rf ${PG_DATA_DIR} ${PG_DATA_DIR}.failed ${ETCD_DATA}/member && install -d -o postgres -g postgres -m 0700 ${PG_DATA_DIR}`]);
    };
    /** The join script's own check (DECIDED), run against this member's peer port: 0 when it holds a cluster's data. */
    const holdsData = () => {
        const script = exec(["cat", ETCD_JOIN_SCRIPT]).stdout;
        const decided = /^DECIDED='(.*)'$/m.exec(script)?.[1] as string;
        return exec(["python3", "-c", decided, `https://${mesh}:2380/version`, ETCD_TLS_FILES.ca, ETCD_TLS_FILES.cert, ETCD_TLS_FILES.key]).status;
    };
    const useRepository = (text: string) => (sb as Sandbox).write(NODE, PGBACKREST_CONF, text, "0600", "postgres:postgres");

    before(async function () {
        requireTools(this, ["ip", "unshare", "nsenter", "chroot", "mount"], true);
        const prod = await evaluate();
        const rootfs = await labRootfs(prod);
        mesh = (prod.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === NODE)?.meshAddress as string;
        sb = await Sandbox.open(`vhtest-rs${process.pid}`, rootfs, [{ name: NODE, address: mesh }]);
        const doc = parse(prod.config[NODE]) as { write_files: WriteFile[]; runcmd: string[][] };
        for (const f of doc.write_files) sb.write(NODE, f.path, f.content, f.permissions ?? "0644", f.owner ?? "root:root");
        for (const cmd of withoutSystemctl(doc.runcmd)) ok(cmd);
        // One member: its own etcd only, and commits that do not wait for standbys it does not have.
        const yml = parse(doc.write_files.find((f) => f.path === PATRONI_CONFIG)?.content as string, { version: "1.1" });
        yml.etcd3.hosts = [`${mesh}:2379`];
        yml.bootstrap.dcs.synchronous_mode_strict = false;
        sb.write(NODE, PATRONI_CONFIG, stringify(yml, { version: "1.1" }), "0600", "postgres:postgres");
        // The rendered repository is R2 (unreachable here); the same settings on a posix path, one PostgreSQL host.
        conf = doc.write_files.find((f) => f.path === PGBACKREST_CONF)?.content as string;
        const posix = conf.split("\n").filter((l) => !/^(repo1-s3|repo1-storage|pg[2-8]-)/.test(l)).map((l) => (l === "repo1-type=s3" ? "repo1-type=posix" : l.startsWith("repo1-path=") ? `repo1-path=${REPO}` : l));
        useRepository(posix.join("\n"));
        ok(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0750", REPO]);
        startEtcd();
    });

    after(async () => {
        await sb?.close();
    });

    it("an empty repository (no stanza): initdb, and post_bootstrap's role and database exist", async () => {
        await startPatroni();
        await waitFor("the member leads a new cluster", 120_000, leader, log);
        assert.match(log(), /db-restore: \(0, 1, \{1\}, 0\) missing stanza path/);
        assert.match(log(), /db-restore: \/usr\/lib\/postgresql\/17\/bin\/initdb -D \S+ --encoding=UTF8 --locale=C\.UTF-8 --data-checksums --username=postgres/);
        assert.doesNotMatch(log(), /restoring backup/);
        assert.equal(sql("SELECT rolname FROM pg_roles WHERE rolname IN ('app', 'replicator', 'rewinder') ORDER BY 1").stdout.trim(), "app\nreplicator\nrewinder");
        assert.equal(sql("SELECT datname FROM pg_database WHERE datname = 'app'", "postgres").stdout.trim(), "app");
        assert.equal(sql("SHOW data_checksums", "postgres").stdout.trim(), "on");
        assert.equal(sql("SELECT timeline_id FROM pg_control_checkpoint()", "postgres").stdout.trim(), "1");
        // An etcd member with data: the join script's check on another member would wait for it.
        assert.equal(holdsData(), 0);
    });

    it("every disk lost after a backup and more archived writes: the cluster comes back from the repository with every archived write", async () => {
        ok(["pgbackrest", `--stanza=${STANZA}`, "stanza-create"], "postgres");
        assert.equal(sql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)").status, 0);
        ok(["pgbackrest", `--stanza=${STANZA}`, "--type=full", "backup"], "postgres");
        assert.equal(sql("INSERT INTO t SELECT generate_series(1001, 1500)").status, 0);
        // check switches WAL and waits until the segment holding those rows is in the repository.
        ok(["pgbackrest", `--stanza=${STANZA}`, "check"], "postgres");
        await loseEverything();
        assert.equal(exec(["test", "-e", `${PG_DATA_DIR}/PG_VERSION`]).status, 1);
        const started = Date.now();
        startEtcd();
        await startPatroni();
        await waitFor("the member leads the restored cluster", 180_000, leader, log);
        console.log(`      restored and leading in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        assert.match(log(), /restoring backup \d{8}-\d{6}F/);
        assert.match(log(), /promoted: True/);
        assert.doesNotMatch(log(), /bin\/initdb/);
        assert.equal(sql("SELECT count(*), max(x) FROM t").stdout.trim(), "1500|1500");
        // A new timeline, and it archives there: a write after, then pgBackRest's own check.
        assert.ok(Number(sql("SELECT timeline_id FROM pg_control_checkpoint()", "postgres").stdout.trim()) > 1);
        assert.equal(sql("INSERT INTO t VALUES (1501)").status, 0);
        ok(["pgbackrest", `--stanza=${STANZA}`, "check"], "postgres");
        // post_bootstrap ran again, harmlessly, and the app logs in with its password over the mesh.
        const appPassword = /PASSWORD '([A-Za-z0-9]+)'/.exec(exec(["cat", "/usr/local/lib/vps-ha/db-post-bootstrap"]).stdout)?.[1];
        const r = exec(["psql", "-X", "-At", `postgresql://app:${appPassword}@${mesh}:5432/app`, "-c", "SELECT current_user"]);
        assert.equal(r.stdout.trim(), "app", r.stderr);
    });

    it("the repository unreachable: nothing is created and Patroni does not bootstrap", async () => {
        await loseEverything();
        useRepository(conf); // R2's address: no route from here
        startEtcd();
        await startPatroni({ PGBACKREST_IO_TIMEOUT: "1" });
        await waitFor("the bootstrap refused", 120_000, () => /not now: /.test(log()) || undefined, log);
        await waitFor("Patroni gives up this attempt", 30_000, () => /Failed to bootstrap cluster|removing initialize key/.test(log()) || undefined, log);
        for (const dir of [PG_DATA_DIR, `${PG_DATA_DIR}.failed`]) assert.equal(exec(["test", "-e", `${dir}/PG_VERSION`]).status, 1, `${dir} holds a cluster`);
        assert.doesNotMatch(log(), /bin\/initdb|restoring backup/);
        const key = exec(["etcdctl", "--endpoints=https://127.0.0.1:2379", ...ETCDCTL_TLS_FLAGS, "get", "--prefix", "--keys-only", "/vps-ha/prod/initialize"]);
        assert.equal(key.stdout.trim(), "", "no initialize key is left");
        assert.equal(leader(), undefined);
    });

    it("a member rebuilt alone behind a partition (the other voters unreachable) starts nothing: no etcd leader, no bootstrap, no initdb", async () => {
        await loseEverything();
        useRepository(conf);
        // The directory agent has read the directory: the join script decides on what it can reach.
        (sb as Sandbox).write(NODE, DIRECTORY_STATUS, JSON.stringify({ at: 0, source: "dns", members: ["db-1", "db-2", "db-3"], problems: [] }), "0644", "root:root");
        const member = await startService(sb as Sandbox, NODE, "vps-ha-etcd.service");
        etcd = member.child;
        const said = member.pre.map((r) => r.stdout).join("");
        assert.match(said, /starting a new cluster from the static member list/, said);
        // Patroni's start waits for its etcd's cluster version (its ExecStartPre), which a member
        // alone never gets: the wait, longer than Patroni's ttl and etcd's election timeout, runs
        // out, and systemd would only try again.
        const held = exec([ETCD_READY_TOOL, "--etcd", `https://${mesh}:2379`, "--cacert", ETCD_TLS_FILES.ca, "--cert", ETCD_TLS_FILES.cert, "--key", ETCD_TLS_FILES.key, "--wait", "30"], "postgres", 45_000);
        assert.equal(held.status, 1, held.stdout + held.stderr);
        assert.match(held.stdout, /no answer/);
        // Never had a leader: its clients get nothing, and its peer port says it holds no cluster's data.
        assert.match(exec(["curl", "-s", "--http1.1", "--max-time", "3", "--cacert", ETCD_TLS_FILES.ca, "--cert", ETCD_TLS_FILES.cert, "--key", ETCD_TLS_FILES.key, `https://${mesh}:2380/version`]).stdout, /"etcdcluster":"not_decided"/);
        assert.equal(holdsData(), 1, "the join script's check finds no data here");
        assert.notEqual(exec(["etcdctl", "--endpoints=https://127.0.0.1:2379", ...ETCDCTL_TLS_FLAGS, "--command-timeout=3s", "endpoint", "health"]).status, 0);
        assert.equal(exec(["test", "-e", `${PG_DATA_DIR}/PG_VERSION`]).status, 1, "no cluster on disk");
        assert.equal(leader(), undefined);
    });
});
