// The monitoring on the nodes: what each node's parts hold (components/render/monitoring.ts) for
// the prod stack, and the mesh-only ports the program's own host firewalls open for it. The parts
// are a role's parts like the others (packages, files, commands); the files Prometheus, Alertmanager
// and promtool read are checked by those tools; the secrets sit only where they are needed.
import { ETCD_TLS_FILES } from "../components/render/etcd";
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseStackConfig } from "../components/config";
import { hostFirewallRules } from "../components/boot";
import { buildPlan, MONITORING_PORTS, StackPlan } from "../components/plan";
import { CloudConfigPart, FilePart, renderCloudConfig } from "../components/render/cloud-config";
import { ALERTMANAGER_CONFIG, ALERTMANAGER_SMTP_PASSWORD_FILE } from "../components/render/alertmanager";
import { PROMETHEUS_RULES_FILE } from "../components/monitoring";
import { alertDelivery, BACKUP_SIGNALS_UNIT, DESIRED_STATUS, monitoringParts, PROMETHEUS_DIRECTORY, RESTORE_CHECK_CONFIG, SIGNAL_TABLE, SIGNALS_CONFIG, SIGNALS_UNIT } from "../components/render/monitoring";
import { PROMETHEUS_CONFIG } from "../components/render/prometheus";
import { renderSignalTable } from "../components/render/signals";
import { POSTGRES_EXPORTER_DEFAULTS } from "../components/render/postgres-exporter";
import { pgHba, renderPatroniConfig } from "../components/render/patroni";
import { PACKAGE_SOURCE } from "../components/render/python-lib";
import { evaluate } from "./helpers/program";
import { prodStack, raw, withConfig } from "./helpers/stack";
import { requireTools, run } from "./helpers/tools";
import { readFileSync } from "node:fs";
import { StackFile } from "../scripts/lib/stack-file";

const HOOK = "https://hooks.example.com/services/T0/B0/hook-token";
const PING = "https://hc-ping.example.com/ping-token";
const SMTP = "smtp-password-9f8e";
const ALERTS = { heartbeatUrl: PING, webhookUrl: HOOK, email: { to: "ops@example.com", from: "vps-ha@example.com", smarthost: "smtp.example.com:587", username: "vps-ha", password: SMTP } };
const POOLER_PW = "poolerAdminPasswordXyz";

function withAlerts(value: unknown = ALERTS): StackFile {
    const file = withConfig({ alerts: value });
    return { ...file, secretKeys: [...file.secretKeys, "vps-ha:alerts"] };
}

const planOf = (file: StackFile): StackPlan => buildPlan(parseStackConfig(raw(file), "prod"));
const filesOf = (parts: CloudConfigPart[]): FilePart[] => parts.flatMap((p) => p.files ?? []);
const fileAt = (parts: CloudConfigPart[], path: string): FilePart | undefined => filesOf(parts).find((f) => f.path === path);
const cmds = (parts: CloudConfigPart[]) => parts.flatMap((p) => p.commands ?? []).map((c) => c.join(" "));

describe("monitoring on the nodes: every node's parts and ports", function () {
    this.timeout(120000);
    const plan = planOf(withAlerts());
    const partsOf = (name: string) => {
        const node = plan.nodes.find((n) => n.name === name)!;
        return monitoringParts(plan, node, node.role === "haproxy" ? { poolerAdminPassword: POOLER_PW } : {});
    };

    it("gives every node node_exporter on its mesh address and the signal collectors on a timer", () => {
        for (const node of plan.nodes) {
            const parts = partsOf(node.name);
            assert.ok(parts.flatMap((p) => p.packages ?? []).includes("prometheus-node-exporter"), node.name);
            const defaults = fileAt(parts, "/etc/default/prometheus-node-exporter");
            assert.ok(defaults?.defer, `${node.name}: the exporter's defaults after its package (a conffile)`);
            assert.match(defaults!.content, new RegExp(`--web.listen-address=${node.meshAddress.replace(/\./g, "\\.")}:9100 `));
            assert.ok(fileAt(parts, "/usr/local/lib/vps-ha/python/vpsha/signals.py"), node.name);
            assert.equal(fileAt(parts, SIGNAL_TABLE)?.content, renderSignalTable());
            const cfg = JSON.parse(fileAt(parts, SIGNALS_CONFIG)!.content);
            assert.equal(cfg.desiredStatus, DESIRED_STATUS);
            const unit = fileAt(parts, `/etc/systemd/system/${SIGNALS_UNIT}.service`)!.content;
            const expected = ["desired", "directory", ...(node.role === "db" || node.role === "haproxy" ? ["certificates"] : []), ...(node.role === "haproxy" ? ["pooler"] : [])];
            assert.match(unit, new RegExp(`^ExecStart=/usr/local/sbin/vps-ha-signals --config ${SIGNALS_CONFIG} ${expected.join(" ")}$`, "m"), node.name);
            assert.ok(cmds(parts).includes(`systemctl enable --now --no-reload ${SIGNALS_UNIT}.timer`));
            assert.ok(cmds(parts).includes("systemctl restart prometheus-node-exporter.service"));
        }
    });

    it("gives database members postgres_exporter, its role, and the backup collector", () => {
        for (const node of plan.nodes.filter((n) => n.role === "db")) {
            const parts = partsOf(node.name);
            assert.ok(parts.flatMap((p) => p.packages ?? []).includes("prometheus-postgres-exporter"));
            assert.match(fileAt(parts, POSTGRES_EXPORTER_DEFAULTS)!.content, new RegExp(`--web.listen-address=${node.meshAddress.replace(/\./g, "\\.")}:9187 `));
            const cfg = JSON.parse(fileAt(parts, SIGNALS_CONFIG)!.content);
            assert.deepEqual([cfg.stanza, cfg.pgbackrestUser], ["prod", "postgres"]);
            assert.deepEqual(Object.keys(cfg.certificates).sort(), ["pgbackrest", "pgbackrest-ca"]);
            assert.match(fileAt(parts, `/etc/systemd/system/${BACKUP_SIGNALS_UNIT}.timer`)!.content, /^OnUnitActiveSec=10min$/m);
            assert.ok(cmds(parts).includes("systemctl enable --now --no-reload vps-ha-monitor-role.timer"));
            // The daily restore check, on whichever healthy replica's turn it is (Patroni's view on this member).
            const check = JSON.parse(fileAt(parts, RESTORE_CHECK_CONFIG)!.content);
            assert.deepEqual([check.stanza, check.node, check.patroniUrl], ["prod", node.name, `http://${node.meshAddress}:8008`]);
            assert.match(fileAt(parts, "/etc/systemd/system/vps-ha-restore-check.timer")!.content, /^OnCalendar=\*-\*-\* 05:00:00$/m);
            assert.ok(fileAt(parts, "/usr/local/lib/vps-ha/python/vpsha/restore_check.py"));
        }
        // Without backups, neither the backup collector nor the restore check.
        const database = JSON.parse(withConfig({}).values["vps-ha:database"]);
        delete database.backups;
        const bare = planOf(withConfig({ database }));
        const member = monitoringParts(bare, bare.nodes.find((n) => n.role === "db")!);
        assert.equal(fileAt(member, RESTORE_CHECK_CONFIG), undefined);
        assert.equal(fileAt(member, `/etc/systemd/system/${BACKUP_SIGNALS_UNIT}.timer`), undefined);
        assert.equal(JSON.parse(fileAt(member, SIGNALS_CONFIG)!.content).stanza, undefined);
        // Patroni lets the exporter's OS user in as that role only, over the socket.
        const db = plan.nodes.find((n) => n.role === "db")!;
        assert.ok(pgHba("10.77.0.0/24", [db.meshAddress]).includes("local postgres vps_ha_monitor peer map=monitor"));
        const patroni = renderPatroniConfig({ scope: "prod", name: db.name, meshAddress: db.meshAddress, meshCidr: "10.77.0.0/24", memberAddresses: [db.meshAddress], etcdHosts: ["10.77.0.1:2379"], etcdTls: ETCD_TLS_FILES, synchronous: { mode: "quorum", nodeCount: 1, strict: true }, logins: { replication: "replicator", rewind: "rewinder" }, passwords: { superuser: "a", replication: "b", rewind: "c", restApi: "d" } });
        assert.match(patroni, /pg_ident:\n\s+- monitor prometheus vps_ha_monitor/);
    });

    it("runs Prometheus and Alertmanager on both HAProxy nodes only, and the pooler's signal there", () => {
        for (const node of plan.nodes) {
            const parts = partsOf(node.name);
            const monitor = node.role === "haproxy";
            assert.equal(!!fileAt(parts, PROMETHEUS_CONFIG), monitor, node.name);
            assert.equal(!!fileAt(parts, ALERTMANAGER_CONFIG), monitor, node.name);
            assert.equal(!!fileAt(parts, PROMETHEUS_RULES_FILE), monitor, node.name);
            assert.equal(JSON.parse(fileAt(parts, SIGNALS_CONFIG)!.content).pooler !== undefined, monitor, node.name);
        }
        const lb = partsOf("lb-1");
        assert.ok(cmds(lb).includes("systemctl restart prometheus-alertmanager.service"));
        // Every node's targets come from the directory (its agent writes them), so no node joining or leaving changes these files.
        const sd = JSON.parse(fileAt(lb, PROMETHEUS_DIRECTORY)!.content).prometheus;
        assert.deepEqual(sd.jobs.map((j: { name: string }) => j.name), ["node", "postgres", "patroni", "haproxy"]);
        assert.match(fileAt(lb, PROMETHEUS_CONFIG)!.content, /job_name: node\n\s+metrics_path: \/metrics\n\s+file_sd_configs:\n\s+- files:\n\s+- \/etc\/prometheus\/targets\/node\.json/);
        assert.ok(!fileAt(lb, PROMETHEUS_CONFIG)!.content.includes(plan.nodes.find((n) => n.name === "app-1")!.meshAddress), "no app node's address in Prometheus' files");
        assert.match(fileAt(lb, "/etc/default/prometheus-alertmanager")!.content, /--cluster\.peer=[\d.]+:9094/);
    });

    it("keeps each secret on the nodes that need it, readable by root and the daemon's group only", () => {
        for (const node of plan.nodes) {
            const text = JSON.stringify(partsOf(node.name));
            const monitor = node.role === "haproxy";
            for (const secret of [HOOK, PING, SMTP, POOLER_PW]) assert.equal(text.includes(secret), monitor, `${node.name} and ${secret}`);
        }
        const lb = partsOf("lb-2");
        const am = fileAt(lb, ALERTMANAGER_CONFIG)!;
        assert.deepEqual([am.permissions, am.owner, am.defer], ["0640", "root:prometheus", true]);
        assert.ok(am.content.includes(HOOK) && am.content.includes(PING) && !am.content.includes(SMTP));
        const pw = fileAt(lb, ALERTMANAGER_SMTP_PASSWORD_FILE)!;
        assert.deepEqual([pw.content, pw.permissions, pw.owner], [SMTP, "0640", "root:prometheus"]);
        assert.equal(fileAt(lb, SIGNALS_CONFIG)!.permissions, "0600");
    });

    it("without vps-ha:alerts, sends nothing: Alertmanager stays off, Prometheus still evaluates", () => {
        const quiet = planOf(prodStack());
        const lb = quiet.nodes.find((n) => n.name === "lb-1")!;
        assert.equal(alertDelivery(quiet.config), undefined);
        const parts = monitoringParts(quiet, lb, { poolerAdminPassword: POOLER_PW });
        assert.equal(fileAt(parts, ALERTMANAGER_CONFIG), undefined);
        assert.ok(cmds(parts).includes("env SYSTEMCTL_SKIP_SYSV=1 systemctl disable --now --no-reload prometheus-alertmanager.service"));
        assert.match(fileAt(parts, PROMETHEUS_CONFIG)!.content, /alertmanagers:\n\s+- static_configs:\n\s+- targets: \[\]/);
    });

    it("composes with the rest of a node's boot: no file written twice, differently", () => {
        for (const node of plan.nodes) assert.doesNotThrow(() => renderCloudConfig({ hostname: node.name, fqdn: node.dnsName, sshAuthorizedKeys: [], sshEnabled: false, parts: partsOf(node.name) }));
    });

    it("opens each exporter's and daemon's port on the mesh to the monitoring nodes only, on every node's host firewall", async () => {
        for (const node of plan.nodes) {
            const rules = hostFirewallRules(plan, node).filter((r) => Object.values(MONITORING_PORTS).includes(r.port as never) && r.service !== "etcd-client");
            const want = { app: [9100], haproxy: [9090, 9093, 9094, 9094, 9100], db: [2381, 9100, 9187], witness: [2381, 9100] }[node.role];
            assert.deepEqual(rules.map((r) => r.port).sort(), want, node.name);
            for (const r of rules) assert.deepEqual(r.from, { meshRoles: ["haproxy"] }, `${node.name} ${r.service}`);
        }
        // What the program gives each node (its desired state holds the host firewall), and no provider firewall opens them.
        const e = await evaluate(withAlerts());
        for (const node of plan.nodes) {
            assert.match(e.config[node.name], /ip saddr @mesh_haproxy tcp dport 9100 accept comment "node-exporter"/, node.name);
        }
        const publicPorts = JSON.stringify(e.resources.filter((r) => /firewall/i.test(r.type)).map((r) => r.inputs));
        for (const port of Object.values(MONITORING_PORTS)) assert.ok(!new RegExp(`"${port}"|:${port}\\b|"port":${port}\\b`).test(publicPorts), `port ${port} on a provider firewall`);
    });

    it("ships the signal table the node agent's tests read (node-agent/tests/fixtures/signals-table.json)", () => {
        const fixture = join(PACKAGE_SOURCE, "..", "tests", "fixtures", "signals-table.json");
        assert.equal(readFileSync(fixture, "utf8"), renderSignalTable(), `${fixture} is out of date: write renderSignalTable()'s output there`);
    });

    describe("the files, by the daemons' own checkers", () => {
        let dir: string;
        before(function () {
            requireTools(this, ["promtool", "amtool"]);
            dir = mkdtempSync(join(tmpdir(), "vps-ha-monitoring-parts-"));
        });
        after(() => dir && rmSync(dir, { recursive: true, force: true }));

        it("promtool accepts each monitoring node's prometheus.yml with its rules, and amtool its alertmanager.yml", () => {
            for (const node of plan.nodes.filter((n) => n.role === "haproxy")) {
                const parts = partsOf(node.name);
                const rules = join(dir, "vps-ha.yml");
                writeFileSync(rules, fileAt(parts, PROMETHEUS_RULES_FILE)!.content);
                const prom = join(dir, `prometheus-${node.name}.yml`);
                writeFileSync(prom, fileAt(parts, PROMETHEUS_CONFIG)!.content.replace(PROMETHEUS_RULES_FILE, rules));
                const p = run("promtool", ["check", "config", prom]);
                assert.equal(p.status, 0, p.stdout + p.stderr);
                const am = join(dir, `alertmanager-${node.name}.yml`);
                writeFileSync(am, fileAt(parts, ALERTMANAGER_CONFIG)!.content);
                const a = run("amtool", ["check-config", am]);
                assert.equal(a.status, 0, a.stdout + a.stderr);
            }
        });
    });
});
