// The monitoring's files for the prod stack, checked by the real tools: promtool checks
// prometheus.yml and the rules and runs every alert's unit test (test/alert-rules/<Alert>.yml:
// series that fire it and series that do not); amtool checks alertmanager.yml; promtool lints a
// textfile holding every vps-ha signal. The tools are Debian's (`prometheus`,
// `prometheus-alertmanager`); the nodes run Debian 13's, which accept the same files.
import { strict as assert } from "node:assert";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { parseStackConfig } from "../components/config";
import { buildPlan, StackPlan } from "../components/plan";
import { alertmanagerSpec, alertRulesSpec, MONITORING_PORTS, monitoringNodes, monitoringPortRules, prometheusSpec, scrapeJobs } from "../components/monitoring";
import { renderPrometheusConfig, renderPrometheusDefaults } from "../components/render/prometheus";
import { AlertDelivery, renderAlertmanagerConfig, renderAlertmanagerDefaults } from "../components/render/alertmanager";
import { alertNames, renderAlertRules } from "../components/render/alert-rules";
import { renderPostgresExporterDefaults, renderPostgresExporterQueries } from "../components/render/postgres-exporter";
import { renderNodeExporterDefaults } from "../components/render/node-exporter";
import { renderSignalTable, renderTextfile, SIGNALS, SignalKey, SignalSample } from "../components/render/signals";
import { prodStack, raw, ROOT, withConfig } from "./helpers/stack";
import { requireTools, run } from "./helpers/tools";

const FIXTURES = join(ROOT, "test", "alert-rules");
/** The name the unit tests give the rules file (rule_files: in each of them). */
const RULES_NAME = "vps-ha.rules.yml";

function planOf(file = prodStack()): StackPlan {
    return buildPlan(parseStackConfig(raw(file), "prod"));
}

const DELIVERY: AlertDelivery = {
    webhookUrl: "https://hooks.example.com/vps-ha/alerts",
    heartbeatUrl: "https://hc-ping.example.com/0f4c8a6e-1d2b",
    email: { to: "ops@example.com", from: "vps-ha@example.com", smarthost: "smtp.example.com:587", username: "vps-ha", password: true },
};

function tool(cmd: string, args: string[], cwd?: string, timeoutMs?: number): string {
    const r = cwd ? run("sh", ["-c", `cd '${cwd}' && exec "$@"`, "sh", cmd, ...args], undefined, timeoutMs) : run(cmd, args, undefined, timeoutMs);
    assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    return r.stdout + r.stderr;
}

describe("monitoring: Prometheus, Alertmanager and the alert rules", function () {
    this.timeout(120000);
    const plan = planOf();
    const rulesText = renderAlertRules(alertRulesSpec(plan));
    let dir: string;
    before(() => {
        dir = mkdtempSync(join(tmpdir(), "vps-ha-monitoring-"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    describe("placement and scraping (pure)", () => {
        it("runs on both HAProxy nodes, one per provider, each Alertmanager peering with the other", () => {
            const monitors = monitoringNodes(plan);
            assert.deepEqual(monitors.map((n) => n.name), ["lb-1", "lb-2"]);
            assert.equal(new Set(monitors.map((n) => n.provider)).size, 2);
            for (const n of monitors) {
                const spec = alertmanagerSpec(plan, n, DELIVERY);
                assert.deepEqual(spec.peers, monitors.filter((m) => m !== n).map((m) => m.meshAddress));
                assert.equal(spec.listenAddress, n.meshAddress);
            }
            assert.throws(() => prometheusSpec(plan, plan.nodes.find((n) => n.name === "db-1")!), /db-1 does not run Prometheus \(the haproxy nodes do\)/);
        });

        it("scrapes every node's exporter, the database daemons on members and etcd on voters only, by mesh address", () => {
            const jobs = Object.fromEntries(scrapeJobs(plan).map((j) => [j.name, j]));
            const names = (job: string) => jobs[job].targets.map((t) => t.node);
            assert.deepEqual(names("node"), plan.nodes.map((n) => n.name));
            assert.deepEqual(names("postgres"), ["db-1", "db-2", "db-3"]);
            assert.deepEqual(names("patroni"), ["db-1", "db-2", "db-3"]);
            assert.deepEqual(names("etcd"), plan.nodes.filter((n) => n.etcdVoter).map((n) => n.name));
            assert.deepEqual(names("haproxy"), ["lb-1", "lb-2"]);
            for (const j of Object.values(jobs)) for (const t of j.targets) assert.equal(t.address, plan.nodes.find((n) => n.name === t.node)!.meshAddress);
            // A witness makes four etcd members: one database member becomes a non-voter, which runs no etcd to scrape.
            const nodes = JSON.parse(prodStack().values["vps-ha:nodes"]);
            nodes.witness.push({ name: "wit-1", provider: "hcloud", region: "hel1", size: "cx23" });
            const withWitness = planOf(withConfig({ nodes }));
            const etcd = scrapeJobs(withWitness).find((j) => j.name === "etcd")!;
            assert.equal(etcd.targets.length, 3);
            assert.ok(etcd.targets.some((t) => t.node === "wit-1"));
            assert.deepEqual(etcd.targets.map((t) => t.node), withWitness.nodes.filter((n) => n.etcdVoter).map((n) => n.name));
            assert.ok(scrapeJobs(withWitness).find((j) => j.name === "node")!.targets.some((t) => t.node === "wit-1" && t.role === "witness"));
        });

        it("opens each exporter's port on the mesh to the HAProxy role only", () => {
            const rules = monitoringPortRules();
            for (const role of ["app", "haproxy", "db", "witness"] as const) {
                assert.ok(rules[role].some((r) => r.service === "node-exporter" && r.port === MONITORING_PORTS.nodeExporter));
                for (const r of rules[role]) assert.deepEqual(r.from, { kind: "mesh", roles: ["haproxy"] });
            }
            assert.deepEqual(rules.db.map((r) => r.port).sort(), [2381, 9100, 9187]);
            assert.deepEqual(rules.haproxy.map((r) => `${r.port}/${r.protocol}`).sort(), ["9090/tcp", "9093/tcp", "9094/tcp", "9094/udp", "9100/tcp"]);
            // The plan's existing rules already let the HAProxy role reach Patroni's and HAProxy's /metrics.
            assert.ok(plan.ports.db.some((r) => r.port === 8008 && r.from.kind === "mesh" && r.from.roles.includes("haproxy")));
            assert.ok(plan.ports.haproxy.some((r) => r.port === 8404 && r.from.kind === "mesh" && r.from.roles.includes("haproxy")));
        });

        it("listens on the node's mesh address only", () => {
            const lb = monitoringNodes(plan)[0];
            assert.match(renderPrometheusDefaults(prometheusSpec(plan, lb)), new RegExp(`--web.listen-address=${lb.meshAddress.replace(/\./g, "\\.")}:9090 `));
            const am = renderAlertmanagerDefaults(alertmanagerSpec(plan, lb, DELIVERY));
            assert.match(am, new RegExp(`--web.listen-address=${lb.meshAddress.replace(/\./g, "\\.")}:9093 `));
            assert.match(am, new RegExp(`--cluster.listen-address=${lb.meshAddress.replace(/\./g, "\\.")}:9094 `));
            const pg = renderPostgresExporterDefaults({ listenAddress: "10.77.0.177", port: 9187, socketDir: "/var/lib/postgresql/vps-ha-socket" });
            assert.match(pg, /--web.listen-address=10\.77\.0\.177:9187 /);
            assert.match(renderNodeExporterDefaults({ listenAddress: "10.77.0.206", port: MONITORING_PORTS.nodeExporter }), /^ARGS="--web.listen-address=10\.77\.0\.206:9100 --collector.systemd --collector.textfile.directory=\/var\/lib\/prometheus\/node-exporter"$/m);
            assert.throws(() => renderNodeExporterDefaults({ listenAddress: "0.0.0.0; x", port: 9100 }), /node-exporter: listenAddress "0.0.0.0; x" is not an IPv4 address/);
        });
    });

    describe("prometheus.yml and the rules, by promtool", () => {
        before(function () {
            requireTools(this, ["promtool"]);
        });

        it("promtool check config accepts each monitoring node's prometheus.yml and its rule file", () => {
            writeFileSync(join(dir, RULES_NAME), rulesText);
            for (const n of monitoringNodes(plan)) {
                const file = join(dir, `prometheus-${n.name}.yml`);
                writeFileSync(file, renderPrometheusConfig(prometheusSpec(plan, n, [join(dir, RULES_NAME)])));
                assert.match(tool("promtool", ["check", "config", file]), /SUCCESS: 1 rule files found/);
            }
        });

        it("promtool check rules accepts the rules for the prod stack, without backups and without synchronous replication", () => {
            const variants: [string, StackPlan, number][] = [
                ["prod", plan, 35],
                ["no-backups", planOf(withConfig({ database: { synchronous: "quorum" } })), 29],
                ["async", planOf(withConfig({ database: { synchronous: "off", backups: JSON.parse(prodStack().values["vps-ha:database"]).backups } })), 34],
            ];
            for (const [name, p, count] of variants) {
                const file = join(dir, `rules-${name}.yml`);
                writeFileSync(file, renderAlertRules(alertRulesSpec(p)));
                assert.match(tool("promtool", ["check", "rules", file]), new RegExp(`SUCCESS: ${count} rules found`), name);
            }
        });

        it("every alert has a unit test with series that fire it and series that do not", () => {
            const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".yml"));
            assert.deepEqual(files.map((f) => f.replace(/\.yml$/, "")).sort(), alertNames(alertRulesSpec(plan)).sort());
            for (const f of files) {
                const doc = parse(readFileSync(join(FIXTURES, f), "utf8")) as { rule_files: string[]; tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] };
                assert.deepEqual(doc.rule_files, [RULES_NAME], f);
                const cases = doc.tests.flatMap((t) => t.alert_rule_test);
                assert.ok(cases.every((c) => c.alertname === f.replace(/\.yml$/, "")), `${f} tests only its own alert`);
                assert.ok(cases.some((c) => c.exp_alerts.length > 0), `${f} has a case that fires`);
                if (f !== "Watchdog.yml") assert.ok(cases.some((c) => c.exp_alerts.length === 0), `${f} has a case that does not fire`);
            }
        });

        it("promtool test rules: every alert fires on its series, with its labels and annotations, and stays calm on the others", function () {
            this.timeout(300000);
            writeFileSync(join(dir, RULES_NAME), rulesText);
            const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".yml"));
            for (const f of files) copyFileSync(join(FIXTURES, f), join(dir, f));
            const out = tool("promtool", ["test", "rules", ...files], dir, 240000);
            assert.equal((out.match(/SUCCESS/g) ?? []).length, files.length, out);
        });

        it("promtool check metrics accepts a textfile with every vps-ha signal", () => {
            const labelsFor = (key: SignalKey): Record<string, string> => {
                const def = SIGNALS[key] as { labels: readonly string[]; labelValues?: Record<string, readonly string[]> };
                return Object.fromEntries(def.labels.map((l) => [l, def.labelValues?.[l]?.[0] ?? (l === "stanza" ? "prod" : "origin")]));
            };
            const samples: SignalSample[] = (Object.keys(SIGNALS) as SignalKey[]).map((signal) => ({ signal, labels: labelsFor(signal), value: 1 }));
            const text = renderTextfile(samples);
            const r = run("promtool", ["check", "metrics"], text);
            assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}\n${text}`);
            assert.equal(r.stdout + r.stderr, "", "no lint findings");
            for (const def of Object.values(SIGNALS)) assert.match(text, new RegExp(`^# HELP ${def.name} `, "m"));
        });
    });

    describe("alertmanager.yml, by amtool", () => {
        before(function () {
            requireTools(this, ["amtool"]);
        });

        it("amtool check-config accepts the webhook, email and heartbeat deliveries, and each alone", () => {
            const deliveries: AlertDelivery[] = [DELIVERY, { webhookUrl: DELIVERY.webhookUrl }, { email: { to: "ops@example.com", from: "vps-ha@example.com", smarthost: "smtp.example.com:587" } }];
            for (const [i, d] of deliveries.entries()) {
                const file = join(dir, `alertmanager-${i}.yml`);
                writeFileSync(file, renderAlertmanagerConfig(alertmanagerSpec(plan, monitoringNodes(plan)[0], d)));
                assert.match(tool("amtool", ["check-config", file]), /SUCCESS/);
            }
        });

        it("routes the heartbeat every minute to the dead-man's switch and everything else, resolved too, to the user", () => {
            const cfg = parse(renderAlertmanagerConfig(alertmanagerSpec(plan, monitoringNodes(plan)[1], DELIVERY)));
            const hb = cfg.route.routes[0];
            assert.deepEqual([hb.matchers, hb.receiver, hb.repeat_interval, hb.group_interval], [['alertname="Watchdog"'], "heartbeat", "1m", "1m"]);
            const receivers = Object.fromEntries(cfg.receivers.map((r: { name: string }) => [r.name, r]));
            assert.deepEqual(receivers.heartbeat.webhook_configs, [{ url: DELIVERY.heartbeatUrl, send_resolved: false }]);
            assert.deepEqual(receivers.user.webhook_configs, [{ url: DELIVERY.webhookUrl, send_resolved: true }]);
            assert.equal(receivers.user.email_configs[0].send_resolved, true);
            // The SMTP password stays out of the config.
            assert.equal(receivers.user.email_configs[0].auth_password_file, "/etc/prometheus/alertmanager-smtp-password");
        });
    });

    describe("bad input", () => {
        const lb = () => monitoringNodes(plan)[0];
        it("names the bad key and value, and what is allowed", () => {
            assert.throws(() => renderAlertmanagerConfig(alertmanagerSpec(plan, lb(), { webhookUrl: "https://x.example.com/a\"\nb" })), /alertmanager: webhookUrl "https:\/\/x.example.com\/a"\nb" is not an http\(s\):\/\/ URL/);
            assert.throws(() => renderAlertmanagerConfig(alertmanagerSpec(plan, lb(), { heartbeatUrl: "ftp://x" , webhookUrl: DELIVERY.webhookUrl })), /heartbeatUrl "ftp:\/\/x" is not an http\(s\):\/\/ URL/);
            assert.throws(() => renderAlertmanagerConfig(alertmanagerSpec(plan, lb(), { heartbeatUrl: DELIVERY.heartbeatUrl })), /delivery needs a webhookUrl, an email, or both/);
            assert.throws(() => renderAlertmanagerConfig(alertmanagerSpec(plan, lb(), { email: { to: "ops@example.com", from: "a@b.c", smarthost: "smtp.example.com" } })), /email.smarthost "smtp.example.com" is not host:port/);
            assert.throws(() => renderTextfile([{ signal: "backupLastSuccess", labels: { stanza: "prod", type: "weekly" }, value: 1 }]), /label type="weekly" is not one of full, diff, incr/);
            assert.throws(() => renderTextfile([{ signal: "certificateExpiry", labels: { certificate: 'a"}\nx 1' }, value: 1 }]), /label certificate=[\s\S]* must be 1-200 of/);
            assert.throws(() => renderTextfile([{ signal: "poolerPaused", labels: { node: "lb-1" }, value: 1 }]), /labels must be exactly \[\]; got \[node\]/);
            assert.throws(() => renderTextfile([{ signal: "poolerPaused", value: NaN }]), /value NaN is not a finite number/);
            assert.throws(() => renderPostgresExporterDefaults({ listenAddress: "10.77.0.1", port: 9187, socketDir: "/tmp/x y" }), /socketDir "\/tmp\/x y" is not an absolute path/);
        });
    });

    it("ships the signal table and the exporter's query as parseable files", () => {
        const table = JSON.parse(renderSignalTable());
        assert.equal(table.textfileDir, "/var/lib/prometheus/node-exporter");
        assert.equal(Object.keys(table.signals).length, Object.keys(SIGNALS).length);
        const q = parse(renderPostgresExporterQueries());
        assert.match(q.pg_sync_commit_wait.query, /wait_event = 'SyncRep'/);
    });
});
