// The monitoring pair run for real: both HAProxy nodes' Prometheus and Alertmanager, started with
// the rendered files and flags, in a network namespace of the test's own that holds the prod
// stack's mesh addresses on loopback. Every other node's exporters are stood in for by a small
// server that answers each scrape with metrics of the real exporters' shape, and a receiver records
// what Alertmanager delivers. Checked: both Prometheus servers load the rules and reach both
// Alertmanagers; the two Alertmanagers form one cluster; the Watchdog heartbeat reaches its URL
// about once a minute, not once per server; an alert sent to both Alertmanagers (as both Prometheus
// servers do) reaches the user once, and its resolution once. One database member (db-1) runs what
// its parts give it instead of a stand-in: the real node_exporter with its rendered flags, reading
// the signals its shipped vpsha.signals writes from its own config (a pgBackRest certificate that
// expires in 20 days: its alert must reach the user). Reports the memory each daemon uses.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseStackConfig } from "../components/config";
import { buildPlan } from "../components/plan";
import { alertmanagerSpec, alertRulesSpec, monitoringNodes, prometheusDirectory, prometheusSpec, scrapeJobs } from "../components/monitoring";
import { PROMETHEUS_TARGETS_DIR, renderPrometheusConfig, renderPrometheusDefaults } from "../components/render/prometheus";
import { renderAlertmanagerConfig, renderAlertmanagerDefaults } from "../components/render/alertmanager";
import { parse } from "yaml";
import { renderAlertRules } from "../components/render/alert-rules";
import { FilePart } from "../components/render/cloud-config";
import { monitoringParts, SIGNALS_CONFIG, SIGNALS_TOOL } from "../components/render/monitoring";
import { NODE_EXPORTER_DEFAULTS } from "../components/render/node-exporter";
import { PYTHON_LIB } from "../components/render/python-lib";
import { renderSignalTable, TEXTFILE_DIR } from "../components/render/signals";
import { prodStack, raw } from "./helpers/stack";
import { requireTools } from "./helpers/tools";
import { waitFor as waitUntil } from "./helpers/units";

const RECEIVER = { address: "10.77.0.250", port: 9999 };
/** The member that runs its real node_exporter and signal collectors. */
const REAL_NODE = "db-1";

/** The stand-in exporters and the receiver, run by this same Node inside the namespace. */
const HELPER = `
const http = require("node:http"), fs = require("node:fs");
const [targets, log] = [JSON.parse(fs.readFileSync(process.argv[2], "utf8")), process.argv[3]];
for (const t of targets.scrape) {
    http.createServer((req, res) => { res.setHeader("content-type", "text/plain; version=0.0.4"); res.end(fs.readFileSync(t.file)); }).listen(t.port, t.address);
}
http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => { fs.appendFileSync(log, JSON.stringify({ at: Date.now(), path: req.url, body: JSON.parse(body || "null") }) + "\\n"); res.end("ok"); });
}).listen(targets.receiver.port, targets.receiver.address);
`;

/** Metrics shaped like each exporter's, sized like a real node's (node_exporter with the systemd collector: ~1500 series). */
function payload(job: string, node: string): string {
    const lines: string[] = [];
    const add = (name: string, n: number, label: string) => {
        lines.push(`# TYPE ${name} gauge`);
        for (let i = 0; i < n; i++) lines.push(`${name}{${label}="${i}"} ${i}`);
    };
    if (job === "node") {
        lines.push("# TYPE vpsha_directory_last_success_timestamp_seconds gauge", `vpsha_directory_last_success_timestamp_seconds ${Math.floor(Date.now() / 1000) + 86400}`);
        lines.push("# TYPE vpsha_desired_state_last_success_timestamp_seconds gauge", `vpsha_desired_state_last_success_timestamp_seconds ${Math.floor(Date.now() / 1000) + 86400}`);
        lines.push("# TYPE node_systemd_unit_state gauge");
        for (let u = 0; u < 150; u++) for (const s of ["activating", "active", "deactivating", "failed", "inactive"]) lines.push(`node_systemd_unit_state{name="unit-${u}.service",state="${s}",type="simple"} ${s === "active" ? 1 : 0}`);
        add("node_cpu_seconds_total", 16, "cpu");
        add("node_network_receive_bytes_total", 20, "device");
        add("node_filler_gauge", 700, "i");
    } else if (job === "etcd") add("etcd_server_filler", 400, "i");
    else if (job === "haproxy") add("haproxy_server_filler", 600, "i");
    else if (job === "postgres") add("pg_filler", 300, "i");
    else if (job === "patroni") lines.push("# TYPE patroni_postgres_running gauge", `patroni_postgres_running{scope="prod",name="${node}"} 1`);
    return lines.join("\n") + "\n";
}

describe("monitoring pair, run by the real Prometheus and Alertmanager @daemons", function () {
    this.timeout(10 * 60_000);
    const plan = buildPlan(parseStackConfig(raw(prodStack()), "prod"));
    const monitors = monitoringNodes(plan);
    let dir = "";
    let holder: ChildProcess | undefined;
    let inner = 0;
    const daemons: { name: string; proc: ChildProcess }[] = [];

    const inNs = (argv: string[]) => spawnSync("nsenter", ["-t", String(inner), "-n", "--", ...argv], { encoding: "utf8", timeout: 15000 });
    const get = (url: string): string | undefined => {
        const r = inNs(["curl", "-sf", "--max-time", "5", url]);
        return r.status === 0 ? r.stdout : undefined;
    };
    const received = (): { at: number; path: string; body: { status: string; alerts: { labels: Record<string, string>; status: string }[] } }[] =>
        existsSync(join(dir, "received.jsonl")) ? readFileSync(join(dir, "received.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
    const logs = () => daemons.map((d) => `--- ${d.name}\n${existsSync(join(dir, `${d.name}.log`)) ? readFileSync(join(dir, `${d.name}.log`), "utf8").split("\n").slice(-15).join("\n") : ""}`).join("\n");
    /** Seconds, and the daemons' logs when it fails. */
    const waitFor = <T>(what: string, seconds: number, check: () => T | undefined | false, why: () => string = logs): Promise<T> =>
        waitUntil(what, seconds * 1000, check, why);
    function start(name: string, argv: string[]): void {
        const out = openSync(join(dir, `${name}.log`), "a");
        // -p: the daemon joins the namespace's PID namespace and dies with it.
        daemons.push({ name, proc: spawn("nsenter", ["-t", String(inner), "-n", "-p", "--", ...argv], { stdio: ["ignore", out, out] }) });
    }
    function argsOf(defaults: string): string[] {
        const m = /^ARGS="([^"]*)"$/m.exec(defaults);
        assert.ok(m, defaults);
        return m[1].split(" ");
    }
    const rssMiB = (pid: number): number => {
        const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).map(Number);
        const status = readFileSync(`/proc/${kids[0]}/status`, "utf8");
        return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
    };

    /**
     * REAL_NODE's monitoring parts, laid out under the test's directory: the shipped Python, the
     * signal table and config (paths moved there), its status files and certificates; then its
     * signal collectors run once and its node_exporter starts with the rendered flags.
     */
    function startRealNode(): void {
        const node = plan.nodes.find((n) => n.name === REAL_NODE)!;
        const files = monitoringParts(plan, node).flatMap((p) => p.files ?? []);
        const at = (path: string): FilePart => files.find((f) => f.path === path)!;
        const root = join(dir, "node");
        const textfile = join(root, "textfile");
        for (const f of files.filter((x) => x.path.startsWith(`${PYTHON_LIB}/`))) {
            mkdirSync(join(root, "python", "vpsha"), { recursive: true });
            writeFileSync(join(root, "python", f.path.slice(PYTHON_LIB.length)), f.content);
        }
        const cfg = JSON.parse(at(SIGNALS_CONFIG).content);
        const table = JSON.parse(renderSignalTable());
        table.textfileDir = textfile;
        writeFileSync(join(root, "table.json"), JSON.stringify(table));
        const now = Date.now() / 1000;
        writeFileSync(join(root, "desired-status.json"), JSON.stringify({ at: now, generation: 1796200000123, published: 1796200000123, applied: true, lastError: null, staleSeconds: 0, changed: [] }));
        writeFileSync(join(root, "directory-status.json"), JSON.stringify({ at: now, source: "dns", members: [], release: null, problems: [] }));
        const cert = (name: string, days: number) => {
            const r = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", String(days), "-subj", `/CN=${name}`, "-keyout", join(root, `${name}.key`), "-out", join(root, `${name}.crt`)], { encoding: "utf8" });
            assert.equal(r.status, 0, r.stderr);
            return join(root, `${name}.crt`);
        };
        // The node's own certificate expires within the alert's 30 days; its CA does not.
        const certificates = { "pgbackrest-ca": cert("ca", 3650), pgbackrest: cert(REAL_NODE, 20) };
        assert.deepEqual(Object.keys(cfg.certificates).sort(), Object.keys(certificates).sort());
        writeFileSync(join(root, "signals.json"), JSON.stringify({ ...cfg, signalTable: join(root, "table.json"), desiredStatus: join(root, "desired-status.json"), directoryStatus: join(root, "directory-status.json"), certificates }));
        // The collectors the every-minute unit runs, as its ExecStart names them.
        const exec = /^ExecStart=(\S+) --config \S+ (.+)$/m.exec(at("/etc/systemd/system/vps-ha-signals.service").content)!;
        assert.equal(exec[1], SIGNALS_TOOL);
        const r = spawnSync("/usr/bin/python3", ["-m", "vpsha.signals", "--config", join(root, "signals.json"), ...exec[2].split(" ")], { encoding: "utf8", env: { ...process.env, PYTHONPATH: join(root, "python") } });
        assert.equal(r.status, 0, r.stdout + r.stderr);
        const args = argsOf(at(NODE_EXPORTER_DEFAULTS).content).map((a) => (a === `--collector.textfile.directory=${TEXTFILE_DIR}` ? `--collector.textfile.directory=${textfile}` : a));
        assert.ok(args.includes(`--collector.textfile.directory=${textfile}`), args.join(" "));
        start(`node-exporter-${REAL_NODE}`, ["prometheus-node-exporter", ...args]);
    }

    before(async function () {
        requireTools(this, ["prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "openssl", "unshare", "nsenter", "ip", "curl"], true);
        dir = mkdtempSync(join(tmpdir(), "vps-ha-monitoring-daemons-"));
        holder = spawn("unshare", ["--net", "--pid", "--fork", "--mount-proc", "--kill-child", "sleep", "900"], { stdio: "ignore" });
        inner = await waitFor("the namespace's first process", 10, () => {
            try {
                return Number(readFileSync(`/proc/${holder!.pid}/task/${holder!.pid}/children`, "utf8").trim()) || undefined;
            } catch {
                return undefined;
            }
        });
        assert.equal(inNs(["ip", "link", "set", "lo", "up"]).status, 0);
        for (const a of [...plan.nodes.map((n) => n.meshAddress), RECEIVER.address]) assert.equal(inNs(["ip", "addr", "add", `${a}/32`, "dev", "lo"]).status, 0);

        const scrape = scrapeJobs(plan).filter((j) => j.name !== "prometheus" && j.name !== "alertmanager").flatMap((j) => j.targets.filter((t) => !(j.name === "node" && t.node === REAL_NODE)).map((t) => {
            const file = join(dir, `metrics-${j.name}-${t.node}.txt`);
            writeFileSync(file, payload(j.name, t.node));
            return { address: t.address, port: j.port, file };
        }));
        writeFileSync(join(dir, "targets.json"), JSON.stringify({ scrape, receiver: RECEIVER }));
        writeFileSync(join(dir, "helper.js"), HELPER);
        start("helper", [process.execPath, join(dir, "helper.js"), join(dir, "targets.json"), join(dir, "received.jsonl")]);

        startRealNode();

        const rules = join(dir, "vps-ha.rules.yml");
        writeFileSync(rules, renderAlertRules(alertRulesSpec(plan)));
        const base = `http://${RECEIVER.address}:${RECEIVER.port}`;
        // The scrape targets as the monitoring nodes' directory agent writes them (vpsha.directory), from the plan's members.
        const targets = join(dir, "targets");
        const members = Object.fromEntries(plan.nodes.map((n) => [n.name, { name: n.name, role: n.role, mesh: n.meshAddress }]));
        writeFileSync(join(dir, "directory-prometheus.json"), JSON.stringify({ prometheus: { ...prometheusDirectory(plan), dir: targets } }));
        writeFileSync(join(dir, "members.json"), JSON.stringify(members));
        mkdirSync(targets);
        const converge = spawnSync("/usr/bin/python3", ["-c", "import json, sys\nfrom vpsha import directory\ndirectory.converge_prometheus(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), [])",
            join(dir, "directory-prometheus.json"), join(dir, "members.json")], { encoding: "utf8", env: { ...process.env, PYTHONPATH: join(__dirname, "..", "node-agent") } });
        assert.equal(converge.status, 0, converge.stderr);
        for (const n of monitors) {
            const p = prometheusSpec(plan, n, [rules]);
            writeFileSync(join(dir, `prometheus-${n.name}.yml`), renderPrometheusConfig(p).split(`${PROMETHEUS_TARGETS_DIR}/`).join(`${targets}/`));
            const pArgs = argsOf(renderPrometheusDefaults(p)).map((a) => (a.startsWith("--config.file=") ? `--config.file=${join(dir, `prometheus-${n.name}.yml`)}` : a));
            start(`prometheus-${n.name}`, ["prometheus", ...pArgs, `--storage.tsdb.path=${join(dir, `tsdb-${n.name}`)}`]);
            const a = alertmanagerSpec(plan, n, { webhookUrl: `${base}/user`, heartbeatUrl: `${base}/heartbeat` });
            writeFileSync(join(dir, `alertmanager-${n.name}.yml`), renderAlertmanagerConfig(a));
            const aArgs = argsOf(renderAlertmanagerDefaults(a)).map((x) =>
                x.startsWith("--config.file=") ? `--config.file=${join(dir, `alertmanager-${n.name}.yml`)}` : x.startsWith("--storage.path=") ? `--storage.path=${join(dir, `am-${n.name}`)}` : x,
            );
            start(`alertmanager-${n.name}`, ["prometheus-alertmanager", ...aArgs]);
        }
    });

    after(() => {
        // The namespace's first process takes every daemon with it.
        holder?.kill("SIGKILL");
        for (const d of daemons) d.proc.kill("SIGKILL");
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("both Prometheus servers load the rules and reach both Alertmanagers, which form one cluster", async () => {
        for (const n of monitors) {
            await waitFor(`Prometheus on ${n.name} ready`, 60, () => get(`http://${n.meshAddress}:9090/-/ready`));
            const groups = JSON.parse((await waitFor(`rules on ${n.name}`, 30, () => get(`http://${n.meshAddress}:9090/api/v1/rules`)))).data.groups;
            // Every rule of the rendered file, none dropped (the stack's rule count follows the stack file).
            const rendered = (parse(readFileSync(join(dir, "vps-ha.rules.yml"), "utf8")) as { groups: { rules: unknown[] }[] }).groups.flatMap((g) => g.rules).length;
            assert.ok(rendered > 20, `${rendered} rules rendered`);
            assert.equal(groups.flatMap((g: { rules: unknown[] }) => g.rules).length, rendered);
            await waitFor(`both Alertmanagers known to Prometheus on ${n.name}`, 60, () => {
                const r = get(`http://${n.meshAddress}:9090/api/v1/alertmanagers`);
                return r !== undefined && JSON.parse(r).data.activeAlertmanagers.length === monitors.length;
            });
            await waitFor(`Alertmanager on ${n.name} in a cluster of ${monitors.length}`, 60, () => {
                const r = get(`http://${n.meshAddress}:9093/api/v2/status`);
                return r !== undefined && JSON.parse(r).cluster.status === "ready" && JSON.parse(r).cluster.peers.length === monitors.length;
            });
        }
    });

    it("the Watchdog heartbeat reaches its URL, and the stand-in exporters are scraped", async () => {
        await waitFor("a heartbeat", 180, () => received().some((r) => r.path === "/heartbeat" && r.body.alerts.some((a) => a.labels.alertname === "Watchdog" && a.labels.stack === "prod")));
        // Every target answers on both servers: up is 1 after a target's last scrape, and a busy
        // machine can leave the first scrapes of some targets failed or not yet made.
        const targets = scrapeJobs(plan).reduce((s, j) => s + j.targets.length, 0);
        for (const n of monitors) {
            const down = () => get(`http://${n.meshAddress}:9090/api/v1/targets?state=active`) ?? "no answer";
            await waitFor(`every target up on ${n.name}`, 90, () => {
                const r = get(`http://${n.meshAddress}:9090/api/v1/query?query=sum(up)`);
                return r !== undefined && Number(JSON.parse(r).data.result[0]?.value[1]) === targets;
            }, () => `${logs()}\n${down()}`);
        }
    });

    it("an alert from both Prometheus servers reaches the user once, and its resolution once", async () => {
        const alert = (endsAt?: string) => JSON.stringify([{ labels: { alertname: "TestAlert", instance: "db-2", severity: "warning", stack: "prod" }, annotations: { summary: "test" }, ...(endsAt ? { endsAt } : {}) }]);
        const post = (body: string) => {
            for (const n of monitors) {
                const r = inNs(["curl", "-sf", "--max-time", "5", "-XPOST", "-H", "content-type: application/json", "--data", body, `http://${n.meshAddress}:9093/api/v2/alerts`]);
                assert.equal(r.status, 0, r.stderr);
            }
        };
        const userMessages = (status: string) => received().filter((r) => r.path === "/user" && r.body.status === status && r.body.alerts.some((a) => a.labels.alertname === "TestAlert"));
        post(alert());
        await waitFor("the firing message", 120, () => userMessages("firing").length > 0);
        await sleep(25000);
        assert.equal(userMessages("firing").length, 1, "one firing message, not one per Alertmanager");
        post(alert(new Date().toISOString()));
        await waitFor("the resolved message", 150, () => userMessages("resolved").length > 0);
        await sleep(25000);
        assert.equal(userMessages("resolved").length, 1, "one resolved message");
    });

    it(`${REAL_NODE}'s own signals, by its real node_exporter, reach both Prometheus servers, and its certificate's alert the user`, async () => {
        for (const n of monitors) {
            await waitFor(`${REAL_NODE}'s desired-state generation on ${n.name}`, 90, () => {
                const r = get(`http://${n.meshAddress}:9090/api/v1/query?query=${encodeURIComponent(`vpsha_desired_state_generation{instance="${REAL_NODE}"}`)}`);
                return r !== undefined && JSON.parse(r).data.result[0]?.value[1] === "1796200000123";
            });
            const r = JSON.parse(get(`http://${n.meshAddress}:9090/api/v1/query?query=${encodeURIComponent(`node_textfile_scrape_error{instance="${REAL_NODE}"}`)}`)!);
            assert.equal(r.data.result[0]?.value[1], "0", "node_exporter read every signal file");
        }
        const expiring = () => received().filter((m) => m.path === "/user" && m.body.status === "firing").flatMap((m) => m.body.alerts)
            .filter((a) => a.labels.alertname === "CertificateExpiringSoon" && a.labels.instance === REAL_NODE);
        await waitFor("CertificateExpiringSoon for the node's certificate", 180, () => expiring().length > 0);
        assert.deepEqual([...new Set(expiring().map((a) => a.labels.certificate))], ["pgbackrest"], "the CA's ten years raise nothing");
    });

    it("sends the heartbeat about once a minute, not once per Alertmanager, and reports the daemons' memory", async () => {
        await waitFor("three heartbeats", 200, () => received().filter((r) => r.path === "/heartbeat").length >= 3);
        const at = received().filter((r) => r.path === "/heartbeat").map((r) => r.at);
        const gaps = at.slice(1).map((t, i) => Math.round((t - at[i]) / 1000));
        assert.ok(gaps.every((g) => g >= 30), `heartbeats ${gaps.join(", ")} s apart: a duplicate went out`);
        const series = JSON.parse(get(`http://${monitors[0].meshAddress}:9090/api/v1/query?query=prometheus_tsdb_head_series`)!).data.result.map((r: { metric: { instance: string }; value: [number, string] }) => `${r.metric.instance} ${r.value[1]}`);
        const memory = daemons.filter((d) => d.name !== "helper").map((d) => `${d.name} ${rssMiB(d.proc.pid!)} MiB`);
        console.log(`      heartbeat gaps: ${gaps.join(", ")} s; head series: ${series.join(", ")}; RSS: ${memory.join(", ")}`);
    });
});
