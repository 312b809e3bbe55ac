// The prod stack in the lab: the program's own cloud-configs realized as namespaces, every node
// healthy through the mesh, tried from inside as an attacker would (PostgreSQL's privileged roles
// through HAProxy, the metadata address, the app container), each drill once, then a teardown
// that leaves nothing behind.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseJsonLines } from "../../scripts/lab/load/json-lines";
import { drills, liveChangeDrills, monitoringDrills, whyNotApplicable } from "../../scripts/lab/drills";
import { patroniJson, singleRunSlack } from "../../scripts/lab/drills/db";
import { labHealth } from "../../scripts/lab/health";
import { stackSource } from "../../scripts/lab/program";
import { execInNode, labNodes, nodeLogDir } from "../../scripts/lab/realize";
import { labStack } from "../../scripts/lab/stack";
import { parsePostgresUrl } from "../../scripts/lab/load/writes";
import { METADATA_ADDRESSES } from "../../components/render/nftables";
import { APP_UID_BASE, APP_UID_COUNT } from "../../components/render/app";
import { sleep } from "../../scripts/lab/exec";
import { PATRONI_CONFIG, PATRONI_UNIT } from "../../components/render/patroni";
import { PATRONI_DYNAMIC_SETTINGS, PATRONI_DYNAMIC_UNIT } from "../../components/render/patroni-dynamic";
import { DB_PORTS, HAPROXY_PORTS } from "../../components/plan";
import { ROLLOUT_TOKEN_FILE } from "../../components/render/haproxy";
import { STATUS_VIEW_PATH } from "../../components/render/rollout-view";
import { EDGE_ADDRESS } from "../../scripts/lab/edge";
import { itTearsDownCleanly, labLog as log, labSuite } from "../helpers/lab";

const ROOT = join(__dirname, "..", "..");
const TSX_CLI = join(ROOT, "node_modules", "tsx", "dist", "cli.mjs");
const STATUS_SCRIPT = join(ROOT, "scripts", "status.ts");

/** A connection through an HAProxy node's primary port, from that node: "ok" or the server's refusal. */
function connectScript(host: string, user: string, dbname: string, password: string): string {
    return `import psycopg2\ntry:\n  psycopg2.connect(host=${JSON.stringify(host)}, port=${HAPROXY_PORTS.dbPrimary}, user=${JSON.stringify(user)}, dbname=${JSON.stringify(dbname)}, password=${JSON.stringify(password)}, connect_timeout=5, sslmode="disable").close(); print("ok")\nexcept psycopg2.Error as e: print(str(e).strip().replace("\\n", " "))`;
}

describe("the prod stack in the lab @lab", function () {
    this.timeout(40 * 60_000); // a first run builds the root filesystem; every wait inside is bounded
    const run = labSuite();

    it("brings up every node of the prod stack from the program's cloud-configs", async function () {
        const { specs } = await run.up(stackSource({ stack: "prod" }));
        assert.equal(specs.length, 7);
    });

    it("every node reaches every other over the WireGuard mesh, and its daemons answer", async function () {
        const health = await labHealth();
        assert.equal(health.length, run.specs.length);
        for (const h of health) {
            assert.ok(h.healthy, `${h.name}: ${JSON.stringify(h.checks.filter((c) => !c.ok))}`);
            const mesh = h.checks.find((c) => c.name === "mesh");
            assert.equal(mesh?.detail, `reaches ${run.specs.length - 1} peer(s)`, h.name);
        }
        run.notePids();
    });

    it("npm run status says the stack is healthy, through the edge, as its user runs it", async function () {
        const lb = labNodes().find((n) => n.role === "haproxy");
        assert.ok(lb);
        // The token as pulumi up gives it to the HAProxy nodes (a secret stack output for the user).
        const token = (await execInNode(lb.name, ["cat", ROLLOUT_TOKEN_FILE], { timeoutMs: 5_000 })).stdout.trim();
        const status = () => new Promise<{ code: number; out: string }>((done) => {
            execFile(process.execPath, [TSX_CLI, STATUS_SCRIPT, "--url", `http://${EDGE_ADDRESS}${STATUS_VIEW_PATH}`], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", VPS_HA_STATUS_TOKEN: token }, timeout: 60_000 }, (err, stdout, stderr) =>
                done({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, out: `${stdout}${stderr}` }));
        });
        // Bounded: the monitoring's first scrapes and rule evaluations after the bring-up.
        let last = await status();
        for (let i = 0; i < 30 && last.code !== 0; i++) {
            await sleep(3_000);
            last = await status();
        }
        log(last.out);
        assert.equal(last.code, 0, last.out);
        assert.match(last.out, /: healthy, as of /);
        for (const n of labNodes()) assert.match(last.out, new RegExp(`^  ${n.name} +${n.role} +\\d+ +healthy$`, "m"), n.name);
    });

    it("keeps Patroni's dynamic configuration as the stack file says: a member that boots puts back what was changed", async function () {
        const [changer, booting] = labNodes().filter((n) => n.role === "db");
        const settings = JSON.parse((await execInNode(booting.name, ["cat", PATRONI_DYNAMIC_SETTINGS], { timeoutMs: 5_000 })).stdout) as { desired: Record<string, unknown> };
        const config = async () => (await patroniJson<Record<string, unknown>>(changer, "/config")) ?? {};
        const parameters = (c: Record<string, unknown>) => (c.postgresql as { parameters: Record<string, unknown> }).parameters;
        const agrees = (c: Record<string, unknown>) => c.maximum_lag_on_failover === settings.desired.maximum_lag_on_failover && !("wal_sender_timeout" in parameters(c));
        assert.ok(agrees(await config()), "the cluster starts with the stack file's configuration");
        // As a cluster made by an older stack file would be: another lag limit, a setting the stack no longer sets.
        const patch = { maximum_lag_on_failover: 2097152, postgresql: { parameters: { wal_sender_timeout: "7s" } } };
        const script = `import json,base64,urllib.request,yaml\na=yaml.safe_load(open("${PATRONI_CONFIG}"))["restapi"]["authentication"]\nr=urllib.request.Request("http://${changer.meshAddress}:${DB_PORTS.patroni}/config",method="PATCH",data=json.dumps(${JSON.stringify(patch)}).encode(),headers={"Content-Type":"application/json","Authorization":"Basic "+base64.b64encode(("%s:%s"%(a["username"],a["password"])).encode()).decode()})\nprint(urllib.request.urlopen(r,timeout=5).status)`;
        assert.equal((await execInNode(changer.name, ["python3", "-c", script], { timeoutMs: 10_000 })).stdout.trim(), "200");
        assert.equal(agrees(await config()), false, "the change took");
        // What a member's boot runs: the unit, on another member.
        await execInNode(booting.name, ["systemctl", "restart", PATRONI_DYNAMIC_UNIT], { timeoutMs: 60_000 });
        // Each member reads the configuration from its own view of etcd, updated by a watch: give
        // the other member a moment (bounded) to see the change.
        let after = await config();
        for (let i = 0; i < 20 && !agrees(after); i++) {
            await sleep(500);
            after = await config();
        }
        assert.ok(agrees(after), `the cluster's configuration after the member's boot: ${JSON.stringify(after)}`);
        const log = readFileSync(join(nodeLogDir(booting.name), `${PATRONI_DYNAMIC_UNIT}.log`), "utf8");
        assert.match(log, /bringing the cluster's configuration in line with the stack file: .*"maximum_lag_on_failover": 1048576.*"wal_sender_timeout": null/);
    });

    // Tried as an attacker would from inside (the drills app-compromise, switchover-interrupted and archive-outage below complete it).
    it("PostgreSQL refuses the superuser and the replication role through HAProxy, and takes the app role", async function () {
        const lb = labNodes().find((n) => n.role === "haproxy");
        assert.ok(lb);
        const url = labStack()?.connectionString;
        assert.ok(url, "the lab saved the stack's connection string");
        const app = parsePostgresUrl(url);
        const tries: [string, string, string][] = [["app", "app", app.password], ["postgres", "postgres", "not-the-password"], ["replicator", "postgres", "not-the-password"], ["rewinder", "postgres", "not-the-password"]];
        for (const [user, db, password] of tries) {
            const r = await execInNode(lb.name, ["python3", "-c", connectScript(lb.meshAddress, user, db, password)], { timeoutMs: 20_000 });
            const said = r.stdout.trim();
            log(`${user} to ${db} through ${lb.name}:${HAPROXY_PORTS.dbPrimary}: ${said}`);
            if (user === "app") assert.equal(said, "ok");
            else assert.match(said, /no pg_hba\.conf entry for host/, `${user}: ${said}`);
        }
    });

    it("every node's loaded ruleset refuses the metadata addresses to users other than root", async function () {
        // The lab has no metadata service (no route to it): test/host-firewall.test.ts connects to a
        // stand-in; here, the rule as each node's kernel holds it.
        for (const n of labNodes()) {
            const r = await execInNode(n.name, ["nft", "list", "chain", "inet", "vps_ha", "output"], { timeoutMs: 10_000 });
            assert.match(r.stdout, new RegExp(`ip daddr ${METADATA_ADDRESSES.ipv4.replace(/\./g, "\\.")} meta skuid != (0|"?root"?) reject`), `${n.name}: ${r.stdout}`);
            assert.match(r.stdout, /ip6 daddr fd00:a9fe:a9fe::1 meta skuid != (0|"?root"?) reject/, n.name);
        }
    });

    it("the app container is not root on its node: its own users, no capability, a read-only image", async function () {
        const app = labNodes().find((n) => n.role === "app");
        assert.ok(app);
        const names = (await execInNode(app.name, ["podman", "ps", "--format", "{{.Names}}"], { timeoutMs: 30_000 })).stdout.trim().split("\n");
        const name = names.find((n) => n.startsWith("vps-ha-app-"));
        assert.ok(name, `no app container on ${app.name}: ${names.join(", ")}`);
        const inside = async (cmd: string) => execInNode(app.name, ["podman", "exec", name, "sh", "-c", cmd], { timeoutMs: 30_000, allowFail: true });
        assert.deepEqual((await inside("cat /proc/self/uid_map")).stdout.trim().split(/\s+/), ["0", String(APP_UID_BASE), String(APP_UID_COUNT)]);
        const status = (await inside("cat /proc/self/status")).stdout;
        const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1].trim();
        assert.equal(field("CapEff"), "0000000000000000", status);
        assert.equal(field("CapBnd"), "0000000000000000", status);
        assert.equal(field("NoNewPrivs"), "1", status);
        const write = await inside("echo x > /written && echo wrote");
        assert.notEqual(write.stdout.trim(), "wrote", "the image's root is read-only");
        assert.equal((await inside("echo x > /tmp/x && echo wrote")).stdout.trim(), "wrote", "/tmp is a tmpfs of its own");
        // As the node sees it: the app's processes run as the mapped uid, not root.
        const pid = (await execInNode(app.name, ["podman", "inspect", "--format", "{{.State.Pid}}", name], { timeoutMs: 30_000 })).stdout.trim();
        const hostStatus = (await execInNode(app.name, ["cat", `/proc/${pid}/status`], { timeoutMs: 10_000 })).stdout;
        const uid = /^Uid:\s*(\d+)/m.exec(hostStatus)?.[1];
        log(`${name} on ${app.name}: uid ${uid} on the node, CapEff ${field("CapEff")}, NoNewPrivs ${field("NoNewPrivs")}`);
        assert.ok(Number(uid) >= APP_UID_BASE && Number(uid) < APP_UID_BASE + APP_UID_COUNT, `uid ${uid} on the node`);
    });

    it("the app container's uids reach the HAProxy nodes' pooler and primary port, nothing else of the mesh", async function () {
        const app = labNodes().find((n) => n.role === "app");
        const lb = labNodes().find((n) => n.role === "haproxy");
        const db = labNodes().find((n) => n.role === "db");
        assert.ok(app && lb && db);
        const tries: [string, number, boolean][] = [
            [lb.meshAddress, HAPROXY_PORTS.pooler, true], [lb.meshAddress, HAPROXY_PORTS.dbPrimary, true],
            [lb.meshAddress, HAPROXY_PORTS.stats, false], [db.meshAddress, 2379, false], [db.meshAddress, 5432, false], [db.meshAddress, 8008, false],
        ];
        for (const [host, port, open] of tries) {
            const script = `import socket\ns=socket.socket()\ns.settimeout(3)\ntry:\n  s.connect(("${host}",${port})); print("connected")\nexcept Exception as e: print(type(e).__name__)`;
            // As the node sees the container's root (the uid checked above), from the node.
            const r = await execInNode(app.name, ["setpriv", `--reuid=${APP_UID_BASE}`, `--regid=${APP_UID_BASE}`, "--clear-groups", "python3", "-c", script], { timeoutMs: 10_000 });
            const said = r.stdout.trim();
            log(`uid ${APP_UID_BASE} on ${app.name} to ${host}:${port}: ${said}`);
            if (open) assert.equal(said, "connected", `${host}:${port}`);
            else assert.equal(said, "ConnectionRefusedError", `${host}:${port}`);
        }
    });

    // The drills on changes to a live stack run in their own lab (test/lab/members.test.ts).
    for (const drill of drills.filter((d) => !liveChangeDrills.includes(d))) {
        it(`drill ${drill.name}`, async function () {
            const notHere = whyNotApplicable(drill, "prod", labNodes().map((n) => n.role));
            if (notHere) {
                // A drill that needs what the prod stack lacks runs in its own test (test/lab/witness.test.ts).
                log(`skipping drill ${drill.name}: ${notHere}`);
                this.skip();
            }
            const result = await drill.run({ log });
            run.results.push(result);
            const why = `${drill.name}: ${JSON.stringify(result)}`;
            assert.equal(result.lostWrites, 0, `acknowledged writes lost: ${why}`);
            assert.equal(result.splitBrain, false, `two primaries accepted writes: ${why}`);
            // Every fault under load also sends HTTP through the lab's edges (Cloudflare's load
            // balancer at the configured monitor interval and at 10 s). None may fail unless the
            // drill takes an HAProxy node away; then errors may last no longer than the monitor
            // takes to notice at worst.
            // The monitoring's drills (first in the list) measure at the lab's alert receiver, with no
            // web load; a restore beside the cluster, and attempts from inside the app container, run none either.
            if (!["backup-restore", "app-compromise"].includes(drill.name) && !monitoringDrills.includes(drill)) {
                assert.notEqual(result.failedHttpRequests, null, `no HTTP load ran: ${why}`);
                // Every request and write the clients made is logged, as JSON lines, after the drill.
                const logged = (file: string) => parseJsonLines<{ start: number; ok: boolean }>(readFileSync(join(result.logDir as string, file), "utf8"));
                const requests = logged("requests.jsonl");
                const sinceFault = (result.edges ?? []).reduce((sum, e) => sum + e.requests, 0);
                assert.ok(requests.length >= sinceFault && sinceFault > 0, `requests.jsonl holds ${requests.length} requests, the edges counted ${sinceFault} after the fault: ${why}`);
                assert.equal(requests.filter((r) => !r.ok).length >= (result.failedHttpRequests as number), true, `requests.jsonl misses failed requests: ${why}`);
                assert.ok(logged("writes.jsonl").some((w) => w.ok), `writes.jsonl holds no acknowledged write: ${why}`);
                // Beside them, what every member's Patroni logged meanwhile: its account of a slow failover.
                for (const db of labNodes().filter((n) => n.role === "db")) assert.ok(existsSync(join(result.logDir as string, "nodes", db.name, `${PATRONI_UNIT}.log`)), `no Patroni log of ${db.name} kept: ${why}`);
                assert.equal(result.edges?.length, 2, `the lab's two edges measured nothing: ${why}`);
                const proxyLost = ["haproxy-kill", "provider-loss"].includes(drill.name);
                if (!proxyLost) assert.equal(result.failedHttpRequests, 0, `HTTP requests failed through the web path: ${why}`);
                for (const e of result.edges ?? []) assert.ok(e.errorWindowSeconds <= e.worstDetectionSeconds, `${e.name}: errors for ${e.errorWindowSeconds} s: ${why}`);
            }
            // A release switch: the program's gate passed, visitors moved from one image to the
            // other (and saw nothing else), and the candidate was removed again at the end.
            if (["release-switch", "rollback"].includes(drill.name)) {
                assert.ok(result.passed, `release drill failed: ${why}`);
                for (const edge of ["60", "10"]) assert.ok(result.notes.some((n) => new RegExp(`every ${edge} s\\) visitors were served: \\S+ -> \\S+`).test(n.replace(/vps-ha lab app /g, ""))), `no switch seen through the ${edge} s edge: ${why}`);
                assert.ok(!result.notes.some((n) => /release gate via .*FAILED|cleanup failed/.test(n)), `gate or cleanup: ${why}`);
                assert.ok(result.notes.some((n) => /stopped on every app node/.test(n)), `the candidate still runs: ${why}`);
            }
            // Every attempt from inside the app container refused, the app's own URLs working.
            if (drill.name === "app-compromise") {
                assert.ok(result.passed, `an attempt from inside the app container was not refused, or the app's own access failed: ${why}`);
                assert.ok((result.figures?.["attempts refused"] ?? 0) > 0 && result.figures?.["attempts not refused"] === 0, why);
            }
            // A member rebuilt with an empty disk rejoined by itself: a new etcd member, re-cloned,
            // streaming in the synchronous quorum within the bound, and no write failed meanwhile.
            if (drill.name === "db-member-replace") assert.ok(result.passed, `the rebuilt member did not rejoin: ${why}`);
            assert.notEqual(result.recoverySeconds, null, `the broken node never recovered: ${why}`);
            assert.notEqual(result.rtoSeconds, null, `writes never came back: ${why}`);
            // The RTO target holds for the median of 3 runs (npm run bench -- --lab); one run here
            // may go over it by singleRunSlack (a lost primary's or a planned switchover's), never
            // more; any other drill must meet its target.
            // Time the machine itself stood still during the outage (measured, in the notes) is added.
            const allowance = singleRunSlack(result) + (result.hostStallSeconds ?? 0);
            assert.ok((result.rtoSeconds as number) <= result.rtoTargetSeconds + allowance, `RTO over target: ${why}`);
            // Everything else the drill checks (the isolated primary stops taking writes, the
            // broken node rejoins as it should, the mesh stays up) holds in every run.
            assert.ok(result.checksPassed ?? result.passed, `drill failed: ${why}`);
        });
    }

    itTearsDownCleanly(run);
});
