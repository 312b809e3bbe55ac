// A promotion without idle seconds (render/after-promote.ts), run for real on a database member's
// rendered files over the lab's Debian 13 root filesystem (a vhtest-* namespace): PostgreSQL 17
// promoted through the pg_ctl Patroni runs must be in production when it returns; the
// on_role_change hook must wake Patroni's loop (PATCH /config, changing nothing) while commits
// wait for standbys that are not there, and stop once they no longer wait. Patroni's REST API is
// played by a recorder here; that a PATCH /config wakes the real Patroni's loop is checked in
// database-daemons.test.ts, and the whole chain in the lab's provider-loss-majority drill.
import { strict as assert } from "node:assert";
import { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "yaml";
import { AFTER_PROMOTE_TOOL, NO_CHANGE, PG_CTL_WRAPPER, PROMOTE_WAIT_SECONDS } from "../components/render/after-promote";
import { PATRONI_CONFIG, PG_BIN_DIR, PG_SOCKET_DIR } from "../components/render/patroni";
import { PYTHON_LIB } from "../components/render/python-lib";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";

const NODE = "db-1";
const DATA = "/var/lib/postgresql/promote-check";
const RECORDER_LOG = "/tmp/rest-requests.jsonl";

/** Stands in for Patroni's REST API: answers 200 and records each request (method, path, auth, body). */
const RECORDER = `
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def handle_one(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with open("${RECORDER_LOG}", "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}) + "\\n")
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(b"{}")
    do_GET = do_PATCH = do_POST = handle_one
    def log_message(self, *a): pass
host, port = sys.argv[1].rsplit(":", 1)
HTTPServer((host, int(port)), H).serve_forever()
`;

interface Recorded { method: string; path: string; auth: string | null; body: string }

describe("a promotion without idle seconds, run for real (PostgreSQL 17, the pg_ctl wrapper, the role-change hook) @rootfs", function () {
    this.timeout(300000);
    let sb: Sandbox | undefined;
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-after-promote-"));
    let restAuth = "";

    const run = (argv: string[], user?: string) => {
        const r = (sb as Sandbox).exec(NODE, argv, { user, timeoutMs: 60000, ...(user === "postgres" ? { env: { HOME: "/var/lib/postgresql" } } : {}) });
        assert.equal(r.status, 0, `${argv.join(" ")}: ${r.stdout}${r.stderr}`);
        return r.stdout;
    };
    const sql = (query: string) => run(["psql", "-X", "-At", "-h", PG_SOCKET_DIR, "-d", "postgres", "-c", query], "postgres").trim();
    const clusterState = () => /^Database cluster state:\s+(.*)$/m.exec(run([`${PG_BIN_DIR}/pg_controldata`, "-D", DATA], "postgres"))?.[1];
    const recorded = (): Recorded[] => {
        const r = (sb as Sandbox).exec(NODE, ["sh", "-c", `cat ${RECORDER_LOG} 2>/dev/null || true`]);
        return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Recorded);
    };
    const hook = (args: string[]): ChildProcess => (sb as Sandbox).start(NODE, [AFTER_PROMOTE_TOOL, "--patroni-config", PATRONI_CONFIG, ...args], join(dir, "hook.log"), { user: "postgres" });
    const exited = async (child: ChildProcess, seconds: number) => {
        for (let i = 0; i < seconds * 10 && child.exitCode === null; i++) await sleep(100);
        return child.exitCode;
    };

    before(async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "ip", "nsenter"], true);
        const prod = await evaluate();
        const rootfs = await labRootfs(prod);
        const address = (prod.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === NODE)?.meshAddress as string;
        sb = await Sandbox.open(`vhtest-ap${process.pid}`, rootfs, [{ name: NODE, address }]);
        const files = parse(prod.config[NODE]).write_files as { path: string; content: string; permissions?: string; owner?: string }[];
        for (const f of files) sb.write(NODE, f.path, f.content, f.permissions ?? "0644", f.owner ?? "root:root");
        const yml = parse(files.find((f) => f.path === PATRONI_CONFIG)?.content as string, { version: "1.1" });
        restAuth = "Basic " + Buffer.from(`${yml.restapi.authentication.username}:${yml.restapi.authentication.password}`).toString("base64");
        sb.write(NODE, "/tmp/recorder.py", RECORDER);
        sb.start(NODE, ["python3", "/tmp/recorder.py", yml.restapi.connect_address], join(dir, "recorder.log"));

        run(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0755", PG_SOCKET_DIR]);
        run([`${PG_BIN_DIR}/initdb`, "-D", DATA, "-U", "postgres", "--auth=peer", "-N"], "postgres");
        run(["sh", "-c", `printf "listen_addresses = ''\\nunix_socket_directories = '${PG_SOCKET_DIR}'\\n" >> ${DATA}/postgresql.conf && touch ${DATA}/standby.signal`], "postgres");
        // A standby with no primary to follow: in archive recovery until promoted.
        run([`${PG_BIN_DIR}/pg_ctl`, "-D", DATA, "-l", `${DATA}/log`, "-w", "-t", "60", "start"], "postgres");
        assert.equal(clusterState(), "in archive recovery");
    });

    after(async () => {
        await sb?.close();
        rmSync(dir, { recursive: true, force: true });
    });

    it("pg_ctl: a promotion returns once PostgreSQL is in production; other commands are PostgreSQL's own", () => {
        run([PG_CTL_WRAPPER, "promote", "-D", DATA, "-W"], "postgres");
        // What Patroni's first look (pg_controldata, right after pg_ctl returns) now sees.
        assert.equal(clusterState(), "in production");
        assert.equal(sql("SELECT pg_is_in_recovery()"), "f");
        const status = (sb as Sandbox).exec(NODE, [PG_CTL_WRAPPER, "status", "-D", DATA], { user: "postgres" });
        assert.equal(status.status, 0);
        assert.match(status.stdout, /server is running/);
        const none = (sb as Sandbox).exec(NODE, [PG_CTL_WRAPPER, "status", "-D", "/nonexistent"], { user: "postgres" });
        assert.equal(none.status, 4, "pg_ctl's own exit status for a missing data directory");
        // Already a primary: pg_ctl itself refuses, and so does the wrapper, without waiting.
        const again = (sb as Sandbox).exec(NODE, [PG_CTL_WRAPPER, "promote", "-D", DATA, "-W"], { user: "postgres" });
        assert.notEqual(again.status, 0);
        assert.match(again.stderr, /not in standby mode/);
        assert.ok(PROMOTE_WAIT_SECONDS <= 1, "never holds Patroni's promotion past its own next look");
    });

    it("hook: while commits wait for absent standbys it wakes Patroni's loop, changing nothing, and stops when they go on", async () => {
        sql(`ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ("db-2","db-3")'`);
        sql("SELECT pg_reload_conf()");
        const child = hook(["on_role_change", "primary", "prod"]);
        let nudges: Recorded[] = [];
        for (let i = 0; i < 50 && nudges.length < 4; i++) {
            await sleep(100);
            nudges = recorded();
        }
        assert.ok(nudges.length >= 4, `woke Patroni ${nudges.length} times in 5 s: ${readFileSync(join(dir, "hook.log"), "utf8")}`);
        for (const n of nudges) {
            assert.deepEqual({ method: n.method, path: n.path, auth: n.auth }, { method: "PATCH", path: "/config", auth: restAuth });
            // Removing a key Patroni's configuration does not have: its PATCH writes nothing.
            assert.deepEqual(JSON.parse(n.body), NO_CHANGE);
        }
        assert.equal(child.exitCode, null, "still at it while commits wait");
        sql("ALTER SYSTEM RESET synchronous_standby_names");
        sql("SELECT pg_reload_conf()");
        assert.equal(await exited(child, 5), 0, "done once commits no longer wait");
        const seen = recorded().length;
        await sleep(600);
        assert.equal(recorded().length, seen, "no wake-up after it stopped");
        assert.match(readFileSync(join(dir, "hook.log"), "utf8"), /commits go on .* after \d+ wake-ups/);
    });

    it("hook: a standby that streams satisfies the setting; other roles and actions do nothing", async () => {
        const before = recorded().length;
        sql(`ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ("db-2","db-3")'`);
        sql("SELECT pg_reload_conf()");
        for (const args of [["on_role_change", "replica", "prod"], ["on_start", "primary", "prod"]]) {
            assert.equal(await exited(hook(args), 10), 0, args.join(" "));
        }
        assert.equal(recorded().length, before, "no request for a replica or another action");
        sql("ALTER SYSTEM RESET synchronous_standby_names");
        sql("SELECT pg_reload_conf()");
        // The rule itself, for every form PostgreSQL takes (names compared without case, as PostgreSQL does).
        const cases: [string, string[], boolean][] = [
            ["", [], false],
            ['ANY 1 ("db-2","db-3")', ["db-3"], false],
            ['ANY 1 ("db-2","db-3")', [], true],
            ['ANY 2 ("db-2","db-3")', ["DB-2"], true],
            ['ANY 2 ("db-2","db-3")', ["db-2", "db-3"], false],
            ['FIRST 1 ("db-2")', ["db-3"], true],
            ['1 ("db-2")', ["db-2"], false],
            ["db-2, db-3", ["db-3"], false],
            ["ANY 1 (*)", ["anyone"], false],
            ["*", [], true],
        ];
        const script = `import json, sys\nsys.path.insert(0, "${PYTHON_LIB}")\nfrom vpsha.after_promote import commits_wait\nprint(json.dumps([commits_wait(s, l) for s, l in json.loads(sys.stdin.read())]))`;
        const r = (sb as Sandbox).exec(NODE, ["python3", "-c", script], { input: JSON.stringify(cases.map(([s, l]) => [s, l])) });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), cases.map((c) => c[2]));
    });
});
