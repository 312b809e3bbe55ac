// The app-compromise drill's reasoning, outside the lab: which ports an app container tries on
// which node (the plan's mesh rules and what really listens), the batch of attempts run in one
// exec (a real shell, BusyBox's nc where the host has it), how each answer reads, the table.
import { strict as assert } from "node:assert";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseStackConfig } from "../components/config";
import { CONTAINER_MESH_PORTS } from "../components/render/nftables";
import { DB_PORTS, HAPROXY_PORTS, MONITORING_PORTS, portRules, ROLLOUT_STATUS_PORT } from "../components/plan";
import { attemptTable, batchScript, BB, connectSnippet, httpSnippet, MeshNode, networkOutcome, parseBatch, parseListeners, pgOutcome, portTargets } from "../scripts/lab/drills/app-compromise-plan";
import { readStackFile } from "../scripts/lib/stack-file";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { requireTools } from "./helpers/tools";

function prodRules() {
    const file = readStackFile(join(__dirname, "..", "Pulumi.prod.yaml"));
    return portRules(parseStackConfig({ values: file.values, secretKeys: new Set(file.secretKeys), env: {}, offline: true }, "prod"));
}

const nodes: MeshNode[] = [
    { name: "app-1", role: "app", meshAddress: "10.77.0.11" },
    { name: "app-2", role: "app", meshAddress: "10.77.0.12" },
    { name: "lb-1", role: "haproxy", meshAddress: "10.77.0.21" },
    { name: "db-1", role: "db", meshAddress: "10.77.0.31" },
];

describe("app-compromise drill: its reasoning", function () {
    it("reads ss's listening sockets, IPv4, IPv6, wildcard and scoped", () => {
        const ss = [
            "LISTEN 0      4096      10.77.0.31:5432      0.0.0.0:*",
            "LISTEN 0      128          0.0.0.0:22        0.0.0.0:*",
            "LISTEN 0      4096               *:9100            *:*",
            "LISTEN 0      128             [::]:22           [::]:*",
            "LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*",
            "LISTEN 0      4096       127.0.0.1:2383      0.0.0.0:*",
            "",
        ].join("\n");
        assert.deepEqual(parseListeners(ss), [
            { address: "10.77.0.31", port: 5432 },
            { address: "0.0.0.0", port: 22 },
            { address: "*", port: 9100 },
            { address: "::", port: 22 },
            { address: "127.0.0.53", port: 53 },
            { address: "127.0.0.1", port: 2383 },
        ]);
    });

    it("tries every mesh port of every other node's role and whatever listens there; only HAProxy's database and pooler ports are open", () => {
        const rules = prodRules();
        const listeners = {
            "db-1": parseListeners("LISTEN 0 1 10.77.0.31:5432 0.0.0.0:*\nLISTEN 0 1 127.0.0.1:5432 0.0.0.0:*\nLISTEN 0 1 0.0.0.0:22 0.0.0.0:*\nLISTEN 0 1 10.77.0.31:7777 0.0.0.0:*"),
            "lb-1": parseListeners("LISTEN 0 1 198.18.0.21:443 0.0.0.0:*\nLISTEN 0 1 10.77.0.21:5000 0.0.0.0:*"),
        };
        const targets = portTargets(nodes[0], nodes, rules, listeners, CONTAINER_MESH_PORTS);
        const at = (node: string, port: number) => targets.find((t) => t.node === node && t.port === port);
        // Every planned mesh rule of each other role, TCP.
        for (const port of [DB_PORTS.postgres, DB_PORTS.patroni, DB_PORTS.etcdClient, DB_PORTS.etcdPeer, MONITORING_PORTS.nodeExporter, MONITORING_PORTS.postgresExporter, MONITORING_PORTS.etcdMetrics, ROLLOUT_STATUS_PORT]) {
            assert.equal(at("db-1", port)?.open, false, `db-1:${port}`);
            assert.equal(at("db-1", port)?.address, "10.77.0.31");
        }
        for (const port of [HAPROXY_PORTS.stats, MONITORING_PORTS.prometheus, MONITORING_PORTS.alertmanager, MONITORING_PORTS.alertmanagerCluster, ROLLOUT_STATUS_PORT]) assert.equal(at("lb-1", port)?.open, false, `lb-1:${port}`);
        for (const port of CONTAINER_MESH_PORTS) assert.equal(at("lb-1", port)?.open, true, `lb-1:${port}`);
        // The other app node: its app port range (by its first port), its exporter and rollout status.
        assert.equal(at("app-2", rules.app.find((r) => r.service === "app")?.port as number)?.open, false);
        assert.equal(at("app-2", MONITORING_PORTS.nodeExporter)?.open, false);
        // What listens but no rule names (SSH on every address, a stray daemon on the mesh) is tried too; loopback and the public side are not the mesh.
        assert.deepEqual(at("db-1", 22)?.services, ["listening"]);
        assert.deepEqual(at("db-1", 7777)?.services, ["listening"]);
        assert.deepEqual(at("db-1", DB_PORTS.postgres)?.services, ["postgres"]);
        assert.equal(at("lb-1", 443), undefined);
        assert.equal(targets.filter((t) => t.address === "127.0.0.1").length, 0, "another node's loopback is not reachable");
    });

    it("tries the container's own node on its mesh address and loopback, but not its resolver or the app's own ports", () => {
        const rules = prodRules();
        const appPort = rules.app.find((r) => r.service === "app")?.port as number;
        const listeners = { "app-1": parseListeners(`LISTEN 0 1 *:9100 *:*\nLISTEN 0 1 127.0.0.53%lo:53 0.0.0.0:*\nLISTEN 0 1 10.77.0.11:${appPort + 7} 0.0.0.0:*\nLISTEN 0 1 127.0.0.1:8125 0.0.0.0:*\nLISTEN 0 1 10.77.0.11:2382 0.0.0.0:*`) };
        const own = portTargets(nodes[0], nodes, rules, listeners, CONTAINER_MESH_PORTS).filter((t) => t.node === "app-1");
        assert.deepEqual(own.map((t) => `${t.address}:${t.port}:${t.services.join("/")}:${t.open}`), ["10.77.0.11:2382:rollout-status:false", "10.77.0.11:9100:node-exporter:false", "127.0.0.1:8125:listening:false", "127.0.0.1:9100:node-exporter:false"]);
    });

    it("a batch reports each snippet's exit status and output on its own line, in a real shell", () => {
        const script = batchScript(["echo one; echo two", "echo bad >&2; exit 3", "printf 'HTTP/1.0 200 OK\\r\\n'"]).replace(new RegExp(BB, "g"), "busybox");
        const r = spawnSync("sh", ["-c", `busybox() { "$@"; }; ${script}`], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(parseBatch(r.stdout, 4), [{ rc: 0, output: "one two" }, { rc: 3, output: "bad" }, { rc: 0, output: "HTTP/1.0 200 OK" }, { rc: -1, output: "no answer (the batch ended first)" }]);
    });

    describe("BusyBox's nc, as the drill runs it in the container (the lab rootfs's static BusyBox) @rootfs", function () {
        this.timeout(20 * 60_000); // a first run builds the root filesystem
        let busybox = "";
        let dir = "";
        let server: Server;
        let port = 0;
        before(async function () {
            requireTools(this, ["debootstrap"], true);
            // Static: the stand-in image copies it alone (scripts/lab/containers.ts); it runs here as there.
            busybox = join(await labRootfs(await evaluate()), "bin", "busybox");
            assert.match(execFileSync(busybox, ["--list"], { encoding: "utf8" }), /^nc$/m);
            dir = mkdtempSync(join(tmpdir(), "app-compromise-"));
            symlinkSync(busybox, join(dir, "true"));
            // A probe that connects and leaves at once resets the connection: not this test's error.
            server = createServer((s) => s.on("error", () => undefined).end("HTTP/1.0 401 Unauthorized\r\n\r\n"));
            await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
            port = (server.address() as { port: number }).port;
        });
        after(() => {
            server?.close();
            if (dir) rmSync(dir, { recursive: true, force: true });
        });
        const runBatch = (snippets: string[]) => {
            const script = batchScript(snippets).replace(new RegExp(BB, "g"), busybox).replace(/\/tmp\/vps-ha-attacker\/true/g, join(dir, "true"));
            // Asynchronous: the listeners are this process's own.
            return new Promise<ReturnType<typeof parseBatch>>((done) => execFile("sh", ["-c", script], { encoding: "utf8", timeout: 30_000 }, (_e, stdout) => done(parseBatch(stdout, snippets.length))));
        };

        it("a listening port reads as reached, a closed one as refused, an HTTP answer by its status line", () => {
            const closed = new Promise<number>((done) => {
                const s = createServer().listen(0, "127.0.0.1", () => {
                    const p = (s.address() as { port: number }).port;
                    s.close(() => done(p));
                });
            });
            return closed.then(async (closedPort) => {
                const [open, shut, http, httpShut] = await runBatch([connectSnippet("127.0.0.1", port), connectSnippet("127.0.0.1", closedPort), httpSnippet("127.0.0.1", port, "PATCH", "/config", "{}"), httpSnippet("127.0.0.1", closedPort, "POST", "/switchover", "{}")]);
                assert.deepEqual(networkOutcome(open), { outcome: "reached", detail: "connected" });
                assert.equal(networkOutcome(shut).outcome, "refused", JSON.stringify(shut));
                assert.match(networkOutcome(shut).detail, /Connection refused/);
                assert.deepEqual(networkOutcome(http), { outcome: "reached", detail: "answered: HTTP/1.0 401 Unauthorized" });
                assert.equal(networkOutcome(httpShut).outcome, "refused", JSON.stringify(httpShut));
                // nc misused (its usage text) is no refusal: unclear, so the drill shows it.
                const [misused] = await runBatch([`${BB} nc -e /tmp/vps-ha-attacker/true 127.0.0.1 ${closedPort}`]);
                assert.equal(networkOutcome(misused).outcome, "unclear", JSON.stringify(misused));
            });
        });
    });

    it("PostgreSQL's answers: pg_hba's refusal, the network's, and anything else (a login, or only the password in the way)", () => {
        assert.equal(pgOutcome({ rc: 2, output: 'psql: error: connection to server at "10.77.0.21", port 5000 failed: FATAL:  no pg_hba.conf entry for host "10.77.0.21", user "postgres", database "postgres", no encryption' }).kind, "pg_hba");
        assert.equal(pgOutcome({ rc: 2, output: 'psql: error: connection to server at "10.77.0.21", port 5000 failed: Connection refused Is the server running on that host and accepting TCP/IP connections?' }).kind, "network");
        assert.equal(pgOutcome({ rc: 2, output: 'psql: error: connection to server at "10.77.0.21", port 5000 failed: FATAL:  password authentication failed for user "postgres"' }).kind, "other");
        assert.deepEqual(pgOutcome({ rc: 0, output: "1" }), { kind: "other", detail: "logged in: 1" });
    });

    it("the table shows each attempt on a line, the unexpected ones marked", () => {
        const table = attemptTable([
            { what: "connect to postgres", target: "db-1 10.77.0.31:5432", expect: "refused", result: "can't connect to remote host (10.77.0.31): Connection refused", ok: true },
            { what: "the app's DATABASE_URL", target: "10.77.0.21:5000", expect: "allowed", result: "logged in as app@10.77.0.31", ok: true },
            { what: "read the node's file", target: "/etc/wireguard/wg0.conf", expect: "refused", result: "READ", ok: false },
        ]);
        const lines = table.split("\n");
        assert.equal(lines.length, 4);
        assert.match(lines[0], /^#\s+attempt\s+target\s+expected\s+verdict\s+result$/);
        assert.match(lines[1], /^1 +connect to postgres +db-1 10\.77\.0\.31:5432 +refused +as expected +can't connect/);
        assert.match(lines[3], /^3 +read the node's file +\/etc\/wireguard\/wg0\.conf +refused +UNEXPECTED +READ$/);
    });
});
