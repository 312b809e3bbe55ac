// The scheduled backup job's decision, run for real: the rendered script under sh with curl and
// python3, against an HTTP server answering Patroni's GET /cluster and GET /replica as Patroni 4
// does, with a recording `pgbackrest` first on PATH. Every member's timer fires; exactly one
// backs up, and when none would, the job fails (a failed unit, which FailedUnit reports), but on a
// server younger than five minutes (a new stack still forming).
import { strict as assert } from "node:assert";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DB_PORTS } from "../components/plan";
import { BACKUP_NEW_SERVER_SECONDS, renderBackupScript } from "../components/render/pgbackrest";

/** A loopback address of its own, so Patroni's fixed port never meets a real Patroni on 127.0.0.1. */
const ADDRESS = `127.77.${1 + (process.pid % 250)}.${1 + Math.floor(Math.random() * 250)}`;

interface Member { name: string; role: string; state: string }

const member = (name: string, role: string, state: string): Member => ({ name, role, state });

interface Patroni { cluster: Member[] | string; replica: number }

async function serve(p: Patroni): Promise<Server> {
    const server = createServer((req, res) => {
        if (req.url === "/cluster") {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(typeof p.cluster === "string" ? p.cluster : JSON.stringify({ members: p.cluster, scope: "prod" }));
        } else if (req.url === "/replica") {
            res.writeHead(p.replica).end();
        } else {
            res.writeHead(404).end();
        }
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(DB_PORTS.patroni, ADDRESS, resolve));
    assert.equal((server.address() as AddressInfo).port, DB_PORTS.patroni);
    return server;
}

describe("the scheduled backup job: one replica backs up, and no backup fails the job", function () {
    this.timeout(30000);
    let dir: string;
    let server: Server | undefined;
    before(() => {
        dir = mkdtempSync(join(tmpdir(), "vps-ha-backup-job-"));
        // pgBackRest played by a recorder: which commands the job ran, and its exit code to give.
        writeFileSync(join(dir, "pgbackrest"), `#!/bin/sh\necho "$*" >> '${dir}/calls'\nexit \${PGBACKREST_EXIT:-0}\n`);
        chmodSync(join(dir, "pgbackrest"), 0o755);
    });
    afterEach(async () => {
        if (server) await new Promise((r) => server!.close(r));
        server = undefined;
        rmSync(join(dir, "calls"), { force: true });
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    /**
     * The job on `name`, on a server whose init started `serverAgeSeconds` ago (a stand-in /proc:
     * uptime, and PID 1's stat with a command name holding a space and a parenthesis).
     */
    async function job(name: string, patroni: Patroni | undefined, pgbackrestExit = 0, serverAgeSeconds = 86400): Promise<{ code: number; out: string; calls: string[] }> {
        if (patroni) server = await serve(patroni);
        const script = join(dir, `backup-${name}`);
        writeFileSync(script, renderBackupScript({ stanza: "prod", name, meshAddress: ADDRESS }));
        const proc = join(dir, "proc");
        mkdirSync(join(proc, "1"), { recursive: true });
        const hz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));
        const uptime = 100000;
        writeFileSync(join(proc, "uptime"), `${uptime}.50 190000.00\n`);
        writeFileSync(join(proc, "1", "stat"), `1 (sys (temd)) S 0 1 1 0 -1 4194560 402 62 0 0 0 0 0 0 20 0 1 0 ${(uptime - serverAgeSeconds) * hz} 17080320 1876\n`);
        const child = spawn("sh", [script, "incr"], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, PGBACKREST_EXIT: String(pgbackrestExit), VPS_HA_PROC: proc } });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? -1)));
        const calls = existsSync(join(dir, "calls")) ? readFileSync(join(dir, "calls"), "utf8").trim().split("\n") : [];
        return { code, out, calls };
    }

    const healthy = [member("db-1", "leader", "running"), member("db-2", "sync_standby", "streaming"), member("db-3", "replica", "streaming")];

    it("the first healthy replica by name backs up, from the standby", async () => {
        const r = await job("db-2", { cluster: healthy, replica: 200 });
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(r.calls, ["--stanza=prod stanza-create", "--stanza=prod --type=incr --backup-standby=y backup"]);
    });

    it("the primary and the other replicas leave it to that replica, successfully", async () => {
        for (const name of ["db-1", "db-3"]) {
            const r = await job(name, { cluster: healthy, replica: name === "db-1" ? 503 : 200 });
            assert.equal(r.code, 0, r.out);
            assert.match(r.out, /backup: replica db-2 takes this backup, not db-/);
            assert.deepEqual(r.calls, []);
            await new Promise((res) => server!.close(res));
            server = undefined;
        }
    });

    it("fails on every member when the cluster has no healthy replica", async () => {
        const degraded = [member("db-1", "leader", "running"), member("db-2", "replica", "starting"), member("db-3", "replica", "stopped")];
        const r = await job("db-1", { cluster: degraded, replica: 503 });
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, /backup: the cluster has no healthy replica; no backup is taken/);
        assert.deepEqual(r.calls, []);
    });

    it("on a server that started less than 5 minutes ago (a new stack still forming), skips without failing; from 5 minutes on it fails", async () => {
        const forming = [member("db-1", "leader", "running"), member("db-2", "replica", "creating replica")];
        const young = await job("db-1", { cluster: forming, replica: 503 }, 0, BACKUP_NEW_SERVER_SECONDS - 10);
        assert.equal(young.code, 0, young.out);
        assert.match(young.out, new RegExp(`backup: the cluster has no healthy replica; this server started ${BACKUP_NEW_SERVER_SECONDS - 10} s ago and the cluster may still be forming: no backup this time, not a failure`));
        assert.deepEqual(young.calls, []);
        await new Promise((res) => server!.close(res));
        server = undefined;
        const down = await job("db-3", undefined, 0, 30);
        assert.equal(down.code, 0, down.out);
        assert.match(down.out, /backup: Patroni's cluster view is unreadable on db-3; this server started 30 s ago/);
        const old = await job("db-1", { cluster: forming, replica: 503 }, 0, BACKUP_NEW_SERVER_SECONDS);
        assert.equal(old.code, 1, old.out);
        assert.match(old.out, /backup: the cluster has no healthy replica; no backup is taken/);
    });

    it("fails when the replica chosen is itself not healthy (its GET /replica is not 200)", async () => {
        const r = await job("db-2", { cluster: healthy, replica: 503 });
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, /backup: db-2, the replica chosen, is not healthy \(GET \/replica: 503\); no backup is taken/);
        assert.deepEqual(r.calls, []);
    });

    it("fails when Patroni does not answer, or answers with something that is not its cluster view", async () => {
        const down = await job("db-2", undefined);
        assert.equal(down.code, 1, down.out);
        assert.match(down.out, /backup: Patroni's cluster view is unreadable on db-2; no backup is taken/);
        const garbled = await job("db-2", { cluster: "<html>", replica: 200 });
        assert.equal(garbled.code, 1, garbled.out);
        assert.match(garbled.out, /backup: Patroni's cluster view is not JSON; no backup is taken/);
        assert.deepEqual([...down.calls, ...garbled.calls], []);
    });

    it("fails when pgBackRest's backup fails", async () => {
        const r = await job("db-2", { cluster: healthy, replica: 200 }, 56);
        assert.notEqual(r.code, 0, r.out);
        assert.deepEqual(r.calls, ["--stanza=prod stanza-create"]);
    });

    it("refuses a type it does not know", async () => {
        const script = join(dir, "backup-weekly");
        writeFileSync(script, renderBackupScript({ stanza: "prod", name: "db-2", meshAddress: ADDRESS }));
        const bad = spawn("sh", [script, "weekly"]);
        const code = await new Promise<number>((resolve) => bad.on("close", (c) => resolve(c ?? -1)));
        assert.equal(code, 2);
    });
});
