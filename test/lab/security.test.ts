// The prod stack in the lab, tried as an attacker would from inside: the switchover tool killed
// with the poolers paused (switchover-interrupted), PostgreSQL's privileged roles through HAProxy,
// the metadata address as a user other than root.
import assert from "node:assert/strict";
import { switchoverInterrupted } from "../../scripts/lab/drills/pooler";
import { archiveOutage } from "../../scripts/lab/drills/archive";
import { labHealth } from "../../scripts/lab/health";
import { stackSource } from "../../scripts/lab/program";
import { execInNode, labNodes } from "../../scripts/lab/realize";
import { labStack } from "../../scripts/lab/stack";
import { parsePostgresUrl } from "../../scripts/lab/load/writes";
import { HAPROXY_PORTS } from "../../components/plan";
import { METADATA_ADDRESSES } from "../../components/render/nftables";
import { APP_UID_BASE, APP_UID_COUNT } from "../../components/render/app";
import { itTearsDownCleanly, labLog as log, labSuite } from "../helpers/lab";

/** A connection through an HAProxy node's primary port, from that node: "ok" or the server's refusal. */
function connectScript(host: string, user: string, dbname: string, password: string): string {
    return `import psycopg2\ntry:\n  psycopg2.connect(host=${JSON.stringify(host)}, port=${HAPROXY_PORTS.dbPrimary}, user=${JSON.stringify(user)}, dbname=${JSON.stringify(dbname)}, password=${JSON.stringify(password)}, connect_timeout=5, sslmode="disable").close(); print("ok")\nexcept psycopg2.Error as e: print(str(e).strip().replace("\\n", " "))`;
}

describe("the prod stack in the lab, from inside @lab", function () {
    this.timeout(40 * 60_000); // a first run builds the root filesystem; every wait inside is bounded
    const run = labSuite();

    it("brings up the prod stack, every node healthy", async function () {
        await run.up(stackSource({ stack: "prod" }));
        for (const h of await labHealth()) assert.ok(h.healthy, `${h.name}: ${JSON.stringify(h.checks.filter((c) => !c.ok))}`);
        run.notePids();
    });

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

    for (const drill of [switchoverInterrupted, archiveOutage]) it(`drill ${drill.name}`, async function () {
        const result = await drill.run({ log });
        run.results.push(result);
        const why = JSON.stringify(result);
        assert.equal(result.lostWrites, 0, `acknowledged writes lost: ${why}`);
        assert.equal(result.splitBrain, false, why);
        assert.ok(result.checksPassed ?? result.passed, `drill failed: ${why}`);
        assert.ok(result.passed, `drill failed: ${why}`);
    });

    itTearsDownCleanly(run);
});
