// `npm run status` through the real path: Debian 13's HAProxy with the rendered config and token
// files, the real view service (rollout view + status view) from the rendered files, Debian 13's
// Prometheus answering the view's queries (its rules firing), and the CLI (scripts/status.ts) run
// by this Node inside lb-1's namespace, through the lab's edge (Cloudflare's part: it presents the
// origin-pull certificate). Patroni's REST API, the nodes' rollout status servers and
// a database member's signal exporter are stand-ins answering recorded documents of their shape.
import { strict as assert } from "node:assert";
import { ChildProcess, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROLLOUT_STATUS_PORT, MONITORING_PORTS, DB_PORTS } from "../components/plan";
import { DIRECTORY_CACHE } from "../components/render/directory-agent";
import { HAPROXY_CFG, ROLLOUT_TOKEN_FILE, ROLLOUT_TOKEN_HEADER } from "../components/render/haproxy";
import { ROLLOUT_VIEW, ROLLOUT_VIEW_CONFIG, STATUS_VIEW_PATH } from "../components/render/rollout-view";
import { SIGNALS } from "../components/render/signals";
import { directoryCache, evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";
import { filesOf, startEdge, STATUS_STAND_IN, withServers } from "./helpers/haproxy-node";

/** The lab edge's port here (it stands in for Cloudflare in front of HAProxy). */
const EDGE_PORT = 8080;

const ROOT = join(__dirname, "..");

/**
 * A stand-in HTTP server: each GET gets the current content of the file named by its path under
 * a directory (/cluster -> DIR/cluster), or a 404. As Patroni's REST API or an exporter answers.
 */
const HTTP_STAND_IN = `import http.server, os, sys
root = sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        p = os.path.join(root, self.path.split("?")[0].strip("/") or "index")
        body = open(p, "rb").read() if os.path.isfile(p) else None
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"not found")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
`;

describe("npm run status through real HAProxy, the view and Prometheus @rootfs @daemons", function () {
    this.timeout(900000);
    const LB = "lb-1";
    const DBS = ["db-1", "db-2"];

    it("healthy exits 0; an alert firing and a stopped member exit 1 naming them; a wrong or missing token is refused", async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "nsenter", "ip"], true);
        const prod = await evaluate();
        const rootfs = await labRootfs(prod);
        const mesh = Object.fromEntries((prod.outputs.nodes as { name: string; meshAddress: string }[]).map((n) => [n.name, n.meshAddress]));
        const sb = await Sandbox.open(`vhtest-status${process.pid}`, rootfs, [LB, ...DBS].map((name) => ({ name, address: mesh[name] })));
        let edge: ChildProcess | undefined;
        try {
            const lbFiles = filesOf(prod.config[LB]);
            const byPath = Object.fromEntries(lbFiles.map((f) => [f.path, f.content]));
            for (const f of lbFiles) sb.write(LB, f.path, f.content, f.permissions ?? "0644");
            const token = byPath[ROLLOUT_TOKEN_FILE].trim();
            assert.equal(token, prod.outputs.statusToken);
            sb.write(LB, HAPROXY_CFG, withServers(byPath, mesh[LB]));
            // The directory: lb-1 and the two members. lb-2 (the other monitoring node) is not there at all: a source that never answers.
            sb.write(LB, DIRECTORY_CACHE, directoryCache(prod, [LB, ...DBS]));
            const viewConfig = JSON.parse(byPath[ROLLOUT_VIEW_CONFIG]);
            assert.deepEqual(viewConfig.status.monitors.map((m: { name: string }) => m.name), ["lb-1", "lb-2"]);

            sb.write(LB, "/srv/app/healthz", "ok\n");
            sb.start(LB, ["python3", "-m", "http.server", "8921", "--bind", mesh[LB], "--directory", "/srv/app"], join(sb.dir, "app.log"));
            const healthy = (g: number) => JSON.stringify({ rolloutId: "f".repeat(64), rolloutState: "healthy", generation: g, published: g });
            for (const n of [LB, ...DBS]) {
                sb.write(n, "/srv/status-stand-in.py", STATUS_STAND_IN);
                sb.write(n, "/srv/status.json", healthy(n === LB ? 9 : 7));
                sb.start(n, ["python3", "/srv/status-stand-in.py", mesh[n], String(ROLLOUT_STATUS_PORT), "/srv/status.json"], join(sb.dir, `status-${n}.log`));
            }
            // Patroni's GET /cluster on both members (the shape Patroni 4 answers); db-2 also stands in for the node exporter with vps-ha's backup signals.
            const cluster = (db2: string) => JSON.stringify({ scope: "prod", members: [
                { name: "db-1", role: "leader", state: "running", api_url: `http://${mesh["db-1"]}:8008/patroni`, host: mesh["db-1"], port: 5432, timeline: 3 },
                { name: "db-2", role: "sync_standby", state: db2, api_url: `http://${mesh["db-2"]}:8008/patroni`, host: mesh["db-2"], port: 5432, timeline: 3, lag: db2 === "streaming" ? 0 : "unknown" },
            ] });
            const t = Math.floor(Date.now() / 1000);
            const signals = [
                `${SIGNALS.backupLastSuccess.name}{stanza="prod",type="full"} ${t - 7200}`,
                `${SIGNALS.backupLastSuccess.name}{stanza="prod",type="incr"} ${t - 600}`,
                `${SIGNALS.walArchiveLastSuccess.name}{stanza="prod"} ${t - 30}`,
                `${SIGNALS.restoreCheckLastRun.name}{stanza="prod"} ${t - 3600}`,
                `${SIGNALS.restoreCheckSuccess.name}{stanza="prod"} 1`,
                `${SIGNALS.restoreCheckLastSuccess.name}{stanza="prod"} ${t - 3600}`,
            ].join("\n") + "\n";
            // A member's liveness as the stand-in exporter reports it: the test's own alert rule reads it.
            const exporterMetrics = (up: number) => `${signals}vpsha_test_member_up ${up}\n`;
            for (const n of DBS) {
                sb.write(n, "/srv/http-stand-in.py", HTTP_STAND_IN);
                sb.write(n, "/srv/patroni/cluster", cluster("streaming"));
                sb.start(n, ["python3", "/srv/http-stand-in.py", mesh[n], String(DB_PORTS.patroni), "/srv/patroni"], join(sb.dir, `patroni-${n}.log`));
            }
            sb.write("db-2", "/srv/exporter/metrics", exporterMetrics(1));
            sb.start("db-2", ["python3", "/srv/http-stand-in.py", mesh["db-2"], String(MONITORING_PORTS.nodeExporter), "/srv/exporter"], join(sb.dir, "exporter.log"));

            // Prometheus on lb-1's mesh address at the port the view asks. It scrapes db-2's signals
            // every second with the instance label the rendered config gives (the node's name), and
            // evaluates two rules: the always-firing heartbeat and one on the stand-in's liveness.
            sb.write(LB, "/srv/rules.yml", [
                "groups:",
                "  - name: status-view-test",
                "    rules:",
                "      - { alert: Watchdog, expr: vector(1), labels: { severity: none }, annotations: { summary: the monitoring is alive } }",
                "      - { alert: PatroniMemberDown, expr: vpsha_test_member_up == 0, labels: { severity: critical }, annotations: { summary: '{{ $labels.instance }} is not running' } }",
            ].join("\n") + "\n");
            sb.write(LB, "/srv/prometheus.yml", [
                "global: { scrape_interval: 1s, evaluation_interval: 1s }",
                "rule_files: [/srv/rules.yml]",
                "scrape_configs:",
                "  - job_name: node",
                `    static_configs: [{ targets: ["${mesh["db-2"]}:${MONITORING_PORTS.nodeExporter}"], labels: { instance: db-2, role: db } }]`,
            ].join("\n") + "\n");
            sb.exec(LB, ["mkdir", "-p", "/srv/tsdb"]);
            sb.start(LB, ["prometheus", "--config.file=/srv/prometheus.yml", "--storage.tsdb.path=/srv/tsdb", `--web.listen-address=${mesh[LB]}:${MONITORING_PORTS.prometheus}`], join(sb.dir, "prometheus.log"));

            const check = sb.exec(LB, ["haproxy", "-c", "-f", HAPROXY_CFG]);
            assert.equal(check.status, 0, check.stdout + check.stderr);
            sb.exec(LB, ["mkdir", "-p", "/run/haproxy", "/var/lib/haproxy"]);
            sb.start(LB, ["haproxy", "-W", "-f", HAPROXY_CFG, "-p", "/run/haproxy.pid"], join(sb.dir, "haproxy.log"));
            sb.start(LB, [ROLLOUT_VIEW], join(sb.dir, "view.log"), { user: "daemon" });
            const logs = () => ["haproxy.log", "view.log", "prometheus.log"].map((f) => existsSync(join(sb.dir, f)) ? `${f}: ${readFileSync(join(sb.dir, f), "utf8").split("\n").slice(-10).join("\n")}` : `${f}: none`).join("\n");
            const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

            // Cloudflare's part, played by the lab's edge as the lab runs it (in lb-1's namespace, from the
            // program's load balancer): it presents the origin-pull certificate HAProxy asks for.
            edge = startEdge(sb, LB, prod, "app.example.com", mesh[LB], EDGE_PORT).child;

            // The CLI as the user runs it, by this Node in lb-1's network namespace, through the edge (http:// to an IPv4 address).
            const url = `http://${mesh[LB]}:${EDGE_PORT}${STATUS_VIEW_PATH}`;
            const cli = (args: string[], tokenValue: string | undefined) => {
                const r = spawnSync("nsenter", [`--net=/run/netns/${sb.netns(LB)}`, "--", process.execPath, join(ROOT, "node_modules/tsx/dist/cli.mjs"), join(ROOT, "scripts/status.ts"), "--url", url, ...args], {
                    cwd: ROOT, encoding: "utf8", timeout: 60000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...(tokenValue !== undefined ? { VPS_HA_STATUS_TOKEN: tokenValue } : {}) },
                });
                return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
            };
            const json = () => {
                const r = cli(["--json"], token);
                try {
                    return { ...r, doc: JSON.parse(r.stdout) };
                } catch {
                    return { ...r, doc: undefined };
                }
            };

            // Bounded: HAProxy, the view and Prometheus' first scrapes and rule evaluations.
            let last: ReturnType<typeof json> | undefined;
            for (let i = 0; i < 60; i++) {
                last = json();
                if (last.status === 0 && last.doc?.backups?.lastBackup) break;
                await sleep(1000);
            }
            assert.equal(last?.status, 0, `not healthy within 60 s: ${last?.stdout}${last?.stderr}\n${logs()}`);
            const doc = last!.doc;
            assert.deepEqual(doc.problems, []);
            assert.deepEqual(Object.keys(doc.nodes).sort(), [LB, ...DBS].sort());
            assert.deepEqual([doc.nodes["db-1"].generation, doc.nodes[LB].generation], [7, 9]);
            assert.deepEqual(doc.patroni.members.map((m: { name: string; role: string; state: string }) => `${m.name} ${m.role} ${m.state}`), ["db-1 leader running", "db-2 sync_standby streaming"]);
            assert.equal(doc.patroni.from, "db-1");
            // From lb-1's Prometheus; lb-2 never answered. The heartbeat, firing there, is not a problem.
            assert.deepEqual([doc.alerts.from, doc.alerts.firing], ["lb-1", []]);
            assert.deepEqual(doc.backups.lastBackup, { finishedAt: t - 600, type: "incr" });
            assert.equal(doc.backups.lastWalArchiveAt, t - 30);
            assert.deepEqual(doc.backups.restoreCheck, { node: "db-2", lastRunAt: t - 3600, passed: true, lastPassedAt: t - 3600 });
            const table = cli([], token);
            assert.equal(table.status, 0, table.stderr);
            assert.match(table.stdout, /: healthy, as of /);
            assert.match(table.stdout, /^  restore check      passed on db-2, .*, 6[01] min ago$/m);

            // Degraded: db-2 stopped, and Prometheus's rule on it firing.
            for (const n of DBS) sb.write(n, "/srv/patroni/cluster", cluster("stopped"));
            sb.write("db-2", "/srv/exporter/metrics", exporterMetrics(0));
            let degraded: ReturnType<typeof cli> | undefined;
            for (let i = 0; i < 20; i++) {
                degraded = cli([], token);
                if (degraded.status === 1 && degraded.stdout.includes("PatroniMemberDown")) break;
                await sleep(1000);
            }
            assert.equal(degraded?.status, 1, `${degraded?.stdout}${degraded?.stderr}\n${logs()}`);
            assert.match(degraded!.stdout, /DEGRADED \(2 problems\)/);
            assert.match(degraded!.stdout, /^  ! patroni: member db-2 is stopped$/m);
            assert.match(degraded!.stdout, /^  ! alert PatroniMemberDown \(instance=db-2\): db-2 is not running$/m);

            // HAProxy refuses a wrong or missing token as a path it does not know; the CLI says so in one line.
            const wrong = cli([], "W".repeat(40));
            assert.equal(wrong.status, 2);
            assert.match(wrong.stderr, /^status: http:\/\/[0-9.:]+\/vps-ha\/status answered 404: the token is not the stack's/);
            const bare = sb.exec(LB, ["curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", url]);
            assert.deepEqual(bare.stdout.trim().split("\n"), ["not found", "404"]);
            // Around the edge, with the token but without the origin-pull certificate: refused before any route.
            const around = sb.exec(LB, ["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "-H", `${ROLLOUT_TOKEN_HEADER}: ${token}`, `http://${mesh[LB]}${STATUS_VIEW_PATH}`]);
            assert.equal(around.stdout, "403");
        } finally {
            if (edge?.pid) process.kill(edge.pid);
            await sb.close();
        }
    });
});
