// The lab's alert receiver, run for real on the loopback with a throwaway certificate: it records
// what Alertmanager's webhook sends, per path, and says what it could not read.
import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unexpectedIn } from "../scripts/lab/drills/monitoring";
import { Received, receivedOf } from "../scripts/lab/receiver";

const ROOT = join(__dirname, "..");
const PORT = 19_443;

function post(path: string, body: string): Promise<number> {
    return new Promise((done, fail) => {
        const req = request({ host: "127.0.0.1", port: PORT, path, method: "POST", rejectUnauthorized: false, timeout: 5_000 }, (res) => {
            res.resume();
            res.on("end", () => done(res.statusCode ?? 0));
        });
        req.on("error", fail);
        req.end(body);
    });
}

describe("the lab's alert receiver", function () {
    this.timeout(30_000);
    let dir = "";
    let server: ChildProcess | undefined;

    before(async function () {
        dir = mkdtempSync(join(tmpdir(), "vps-ha-receiver-"));
        execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
        server = spawn(process.execPath, [join(ROOT, "node_modules/tsx/dist/cli.mjs"), join(ROOT, "scripts/lab/receiver-server.ts"), "--address", "127.0.0.1", "--port", String(PORT), "--key", join(dir, "key.pem"), "--cert", join(dir, "cert.pem"), "--out", join(dir, "out.jsonl")], { stdio: ["ignore", "pipe", "inherit"] });
        await new Promise<void>((done, fail) => {
            const t = setTimeout(() => fail(new Error("the receiver did not start within 20 s")), 20_000);
            server?.stdout?.once("data", () => (clearTimeout(t), done()));
        });
    });

    after(function () {
        if (server?.pid) process.kill(server.pid, "SIGTERM");
        rmSync(dir, { recursive: true, force: true });
    });

    it("records each POST: path, kind, every alert's name, instance and status", async function () {
        const body = { version: "4", status: "firing", alerts: [{ status: "firing", labels: { alertname: "DiskAlmostFull", instance: "app-1", mountpoint: "/srv" } }, { status: "resolved", labels: { alertname: "NodeDown", instance: "db-2" } }] };
        assert.equal(await post("/webhook", JSON.stringify(body)), 200);
        assert.equal(await post("/heartbeat", JSON.stringify({ status: "firing", alerts: [{ status: "firing", labels: { alertname: "Watchdog" } }] })), 200);
        assert.equal(await post("/heartbeat", "not json"), 200);
        const got = readFileSync(join(dir, "out.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Received);
        assert.deepEqual(got.map((r) => [r.kind, r.status, r.alerts.map((a) => `${a.name}@${a.instance ?? "-"}:${a.status}`)]), [
            ["webhook", "firing", ["DiskAlmostFull@app-1:firing", "NodeDown@db-2:resolved"]],
            ["heartbeat", "firing", ["Watchdog@-:firing"]],
            ["heartbeat", undefined, []],
        ]);
        assert.equal(got[0].alerts[0].labels.mountpoint, "/srv");
        assert.match(got[2].error ?? "", /^not Alertmanager's webhook JSON/);
        assert.ok(got.every((r) => r.at > 0 && r.method === "POST"));
    });

    it("tells the paths apart", function () {
        assert.equal(receivedOf(1, "POST", "/elsewhere", "{\"alerts\":[]}").kind, "other");
    });
});

describe("what a monitoring drill counts as sent during it", function () {
    const note = (at: number, status: string, name: string, instance: string) => receivedOf(at, "POST", "/webhook", JSON.stringify({ status, alerts: [{ status, labels: { alertname: name, instance } }] }));
    const none = () => false;

    it("a resolution of an alert that fired before the drill is the last drill's tail, a new firing is not", function () {
        const records = [note(100, "firing", "EtcdVoterDown", "db-2"), note(150, "resolved", "EtcdVoterDown", "db-2"), note(250, "resolved", "EtcdVoterDown", "db-2"), note(260, "firing", "EtcdVoterDown", "db-2"), note(270, "resolved", "NodeDown", "db-1")];
        assert.deepEqual(unexpectedIn(records, 200, [], none).map((s) => s.replace(/ at .*/, "")), ["EtcdVoterDown@db-2 firing", "NodeDown@db-1 resolved"]);
    });

    it("leaves out what the drill expects or allows, and what came before it", function () {
        const records = [note(100, "firing", "NodeDown", "db-1"), note(210, "firing", "RestoreCheckFailed", "db-3"), note(220, "firing", "SystemdUnitFailed", "db-3")];
        assert.deepEqual(unexpectedIn(records, 200, [{ alert: "RestoreCheckFailed", instance: "db-3" }], (a) => a.name === "SystemdUnitFailed"), []);
    });
});
