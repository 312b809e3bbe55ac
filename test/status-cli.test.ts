// `npm run status`: its arguments, where its URL and token come from (the program's outputs), how
// it renders the status view's answer, and the CLI run as the user runs it against a real HTTP
// server answering recorded status documents (the view itself: test_status_view.py and, through
// real HAProxy, status-view.test.ts).
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { statusViewSpec } from "../components/monitoring";
import { buildPlan, ROLLOUT_STATUS_PORT, ROLLOUT_VIEW_PORT } from "../components/plan";
import { parseStackConfig } from "../components/config";
import { ROLLOUT_TOKEN_FILE } from "../components/render/haproxy";
import { ROLLOUT_VIEW_CONFIG, rolloutViewConfig, STATUS_VIEW_PATH } from "../components/render/rollout-view";
import { SIGNALS } from "../components/render/signals";
import { UsageError } from "../scripts/lib/args";
import { age, bytes, exitCodeOf, formatStatus, fromStackOutputs, parseStatusArgs, parseStatusDoc, pulumiFailure, StatusDoc, StatusError } from "../scripts/lib/status-report";
import { evaluate } from "./helpers/program";
import { raw, withConfig } from "./helpers/stack";

const ROOT = join(__dirname, "..");
const TOKEN = "Q".repeat(20) + "7".repeat(20);
const NOW = 1764690000;

const healthy: StatusDoc = {
    state: "healthy",
    problems: [],
    checkedAt: NOW,
    nodes: {
        "db-1": { role: "db", answered: true, generation: 12, published: 12, rolloutState: "healthy" },
        "db-2": { role: "db", answered: true, generation: 12, published: 13, rolloutState: "waiting", waitingOn: "db-1" },
        "lb-1": { role: "haproxy", answered: true, generation: 9, published: 9, rolloutState: "healthy" },
    },
    patroni: { answered: true, from: "db-1", paused: false, members: [
        { name: "db-1", role: "leader", state: "running", lag: null, timeline: 4 },
        { name: "db-2", role: "sync_standby", state: "streaming", lag: 0, timeline: 4 },
        { name: "db-3", role: "replica", state: "streaming", lag: 3 * 1024 * 1024, timeline: 4 },
    ] },
    alerts: { answered: true, from: "lb-1", firing: [] },
    backups: { enabled: true, stanza: "prod", answered: true, from: "lb-1", lastBackup: { finishedAt: NOW - 1800, type: "incr" }, lastWalArchiveAt: NOW - 40,
        restoreCheck: { node: "db-2", lastRunAt: NOW - 10 * 3600, passed: true, lastPassedAt: NOW - 10 * 3600 } },
};

const degraded: StatusDoc = {
    ...healthy,
    state: "degraded",
    problems: ["node db-3: no answer from its status server", "patroni: member db-3 is stopped", "alert ReplicaDown (instance=db-3): db-3 has been down for 2 minutes"],
    nodes: { ...healthy.nodes, "db-3": { role: "db", answered: false }, "lb-2": { role: "haproxy", answered: true, generation: 8, published: 9, rolloutState: "halted", haltedReason: "not healthy within 180 s" } },
    patroni: { ...healthy.patroni, members: [...healthy.patroni.members!.slice(0, 2), { name: "db-3", role: "replica", state: "stopped", lag: "unknown", timeline: null }] },
    alerts: { answered: true, from: "lb-2", firing: [{ name: "ReplicaDown", severity: "critical", summary: "db-3 has been down for 2 minutes", since: new Date((NOW - 300) * 1000).toISOString(), labels: { instance: "db-3" } }] },
    backups: { enabled: true, stanza: "prod", answered: false, error: "lb-1: timed out; lb-2: Connection refused" },
};

describe("npm run status: arguments, outputs, rendering", () => {
    it("takes --stack NAME (as the program names stacks, optionally ORG/) or --url, and --json; says what is wrong", () => {
        assert.deepEqual(parseStatusArgs(["--stack", "prod"]), { stack: "prod", json: false });
        assert.deepEqual(parseStatusArgs(["--stack=acme/prod", "--json"]), { stack: "acme/prod", json: true });
        assert.deepEqual(parseStatusArgs(["--stack", "acme/vps-ha/staging-2"]), { stack: "acme/vps-ha/staging-2", json: false });
        assert.deepEqual(parseStatusArgs(["--url", "http://10.77.0.20/vps-ha/status"]), { url: "http://10.77.0.20/vps-ha/status", json: false });
        const bad = (argv: string[]) => {
            try {
                parseStatusArgs(argv);
            } catch (e) {
                assert.ok(e instanceof UsageError, String(e));
                return e.message;
            }
            return "accepted";
        };
        assert.equal(bad([]), "--stack NAME is required");
        assert.equal(bad(["prod"]), "unexpected argument prod");
        assert.equal(bad(["--stack"]), "--stack needs a value");
        assert.equal(bad(["--verbose"]), "unknown option --verbose");
        assert.equal(bad(["--stack", "prod", "--url", "https://x.example.com/vps-ha/status"]), "give --stack or --url, not both");
        for (const name of ["Prod", "1prod", "prod-", "a".repeat(21), "a/b/c/prod", "a b/prod", "prod_1"]) {
            assert.match(bad(["--stack", name]), /^--stack: ".*" is not a stack name: allowed 1-20 of a-z, 0-9 and '-', starting with a letter and not ending with '-', optionally after ORG\/ or ORG\/PROJECT\/$/, name);
        }
        assert.match(bad(["--url", "http://app.example.com/vps-ha/status"]), /must be https:\/\/ \(http:\/\/ only to an IPv4 address\): the token travels with it/);
        assert.match(bad(["--url", "https://me:pw@app.example.com/"]), /user info is not taken; the token goes in VPS_HA_STATUS_TOKEN/);
        assert.match(bad(["--url", "nope"]), /"nope" is not a URL/);
    });

    it("reads the URL and token from the stack's outputs, and says what is missing", () => {
        assert.deepEqual(fromStackOutputs("prod", JSON.stringify({ statusUrl: "https://app.example.com/vps-ha/status", statusToken: TOKEN, hostname: "app.example.com" })),
            { url: "https://app.example.com/vps-ha/status", token: TOKEN });
        const why = (text: string) => {
            try {
                fromStackOutputs("prod", text);
            } catch (e) {
                assert.ok(e instanceof StatusError, String(e));
                return e.message;
            }
            return "accepted";
        };
        assert.equal(why("{}"), "stack prod has no statusUrl and statusToken outputs: run `pulumi up` with this version of the program first");
        assert.equal(why("not json"), "pulumi stack output --stack prod gave no JSON");
        assert.equal(why(JSON.stringify({ statusUrl: "https://a.example.com/", statusToken: "[secret]" })), "stack prod's statusToken output is not a status token (32-128 letters and digits)");
        assert.match(pulumiFailure("nope", "error: no stack named 'nope' found\n"), /^no stack nope in the Pulumi backend you are logged in to \(pulumi stack ls lists them; name another organisation with --stack ORG\/nope\)$/);
        assert.equal(pulumiFailure("prod", "\nerror: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions\nmore"), "pulumi stack output --stack prod failed: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions");
    });

    it("the program gives statusUrl and the token as a secret output, the one the HAProxy nodes hold", async function () {
        this.timeout(300000);
        const prod = await evaluate();
        assert.equal(prod.outputs.statusUrl, `https://app.example.com${STATUS_VIEW_PATH}`);
        assert.ok(prod.secretOutputs.includes("statusToken"));
        assert.ok(!prod.secretOutputs.includes("statusUrl"));
        for (const lb of ["lb-1", "lb-2"]) {
            const files = parse(prod.config[lb]).write_files as { path: string; content: string }[];
            assert.equal(files.find((f) => f.path === ROLLOUT_TOKEN_FILE)?.content.trim(), prod.outputs.statusToken);
            // The view's status settings as the node gets them: both monitoring nodes, the stack's stanza, the signals' names.
            const cfg = JSON.parse(files.find((f) => f.path === ROLLOUT_VIEW_CONFIG)!.content);
            assert.deepEqual(cfg.status.monitors.map((m: { name: string }) => m.name), ["lb-1", "lb-2"]);
            assert.equal(cfg.status.stanza, "prod");
            assert.equal(cfg.status.signals.backupLastSuccess, SIGNALS.backupLastSuccess.name);
            assert.deepEqual(cfg.status.ignoreAlerts, ["Watchdog"]);
        }
        // The token reaches no other node.
        for (const [name, userData] of Object.entries(prod.config)) if (!name.startsWith("lb-")) assert.ok(!userData.includes(String(prod.outputs.statusToken)), name);
    });

    it("the status view's spec: Patroni's port, both monitoring nodes, the stanza (null without backups)", () => {
        const plan = buildPlan(parseStackConfig(raw(withConfig({})), "prod"));
        const spec = statusViewSpec(plan);
        assert.deepEqual(spec, { patroniPort: 8008, monitors: plan.nodes.filter((n) => n.role === "haproxy").map((n) => ({ name: n.name, address: n.meshAddress })), prometheusPort: 9090, stanza: "prod" });
        // The host firewalls let the HAProxy nodes (where the view runs) reach every source it asks.
        const opens = (role: "db" | "haproxy", port: number) => plan.ports[role].some((r) => r.port === port && r.protocol === "tcp" && r.from.kind === "mesh" && r.from.roles.includes("haproxy"));
        assert.ok(opens("db", spec.patroniPort) && opens("haproxy", spec.prometheusPort));
        const off = { ...plan, config: { ...plan.config, database: { ...plan.config.database, backups: undefined } } };
        assert.equal(statusViewSpec(off).stanza, null);
        assert.equal(rolloutViewConfig({ port: ROLLOUT_VIEW_PORT, statusPort: ROLLOUT_STATUS_PORT, status: spec }).status.timeoutSeconds, 3);
    });

    it("renders a healthy stack compactly, exit 0", () => {
        const text = formatStatus("prod", healthy);
        assert.equal(exitCodeOf(healthy), 0);
        assert.equal(text, [
            "prod: healthy, as of 2025-12-02 15:40 UTC",
            "",
            "Database members (from db-1)",
            "  NAME  ROLE          STATE      LAG      TL",
            "  db-1  leader        running    -        4",
            "  db-2  sync_standby  streaming  0 B      4",
            "  db-3  replica       streaming  3.0 MiB  4",
            "",
            "Backups of stanza prod (from lb-1)",
            "  last backup        incr, 2025-12-02 15:10 UTC, 30 min ago",
            "  last WAL archived  2025-12-02 15:39 UTC, 40 s ago",
            "  restore check      passed on db-2, 2025-12-02 05:40 UTC, 10 h 0 min ago",
            "",
            "Alerts firing (from lb-1): none",
            "",
            "Nodes",
            "  NAME  ROLE     GENERATION    ROLLOUT",
            "  db-1  db       12            healthy",
            "  db-2  db       12 (13 read)  waiting on db-1",
            "  lb-1  haproxy  9             healthy",
        ].join("\n"));
    });

    it("renders a degraded stack with its problems first, exit 1", () => {
        const text = formatStatus("prod", degraded);
        assert.equal(exitCodeOf(degraded), 1);
        const lines = text.split("\n");
        assert.deepEqual(lines.slice(0, 4), [
            "prod: DEGRADED (3 problems), as of 2025-12-02 15:40 UTC",
            "  ! node db-3: no answer from its status server",
            "  ! patroni: member db-3 is stopped",
            "  ! alert ReplicaDown (instance=db-3): db-3 has been down for 2 minutes",
        ]);
        assert.ok(lines.includes("  db-3  replica       stopped    unknown  -"), text);
        assert.ok(lines.includes("  no answer: lb-1: timed out; lb-2: Connection refused"), text);
        assert.ok(lines.includes("Alerts firing (from lb-2): 1"), text);
        assert.ok(lines.includes("  critical  ReplicaDown  instance=db-3  for 5 min  db-3 has been down for 2 minutes"), text);
        assert.ok(lines.includes("  db-3  db       -             no answer"), text);
        assert.ok(lines.includes("  lb-2  haproxy  8 (9 read)    HALTED: not healthy within 180 s"), text);
        // Backups off, and a failed restore check with its last pass.
        assert.ok(formatStatus("x", { ...healthy, backups: { enabled: false } }).includes("  off (vps-ha:database.backups is not set)"));
        const failed = formatStatus("x", { ...healthy, backups: { ...healthy.backups, restoreCheck: { node: "db-3", lastRunAt: NOW - 60, passed: false, lastPassedAt: null } } });
        assert.ok(failed.includes("  restore check      FAILED on db-3, 2025-12-02 15:39 UTC, 60 s ago; last passed: never"), failed);
    });

    it("ages and sizes read at a glance; an answer that is not the view's is refused", () => {
        assert.deepEqual([age(5), age(89), age(600), age(7200 + 300), age(3 * 86400 + 7200)], ["5 s", "89 s", "10 min", "2 h 5 min", "3 d 2 h"]);
        assert.deepEqual([bytes(0), bytes(2048), bytes(50 * 1024 * 1024), bytes(3 * 1024 ** 4)], ["0 B", "2.0 KiB", "50 MiB", "3.0 TiB"]);
        assert.throws(() => parseStatusDoc("https://x/", "<html>"), /https:\/\/x\/ answered something that is not JSON/);
        assert.throws(() => parseStatusDoc("https://x/", JSON.stringify({ state: "done" })), /answered JSON that is not the status view's/);
        assert.equal(parseStatusDoc("u", JSON.stringify(healthy)).state, "healthy");
    });
});

/** Runs `npm run status` as the user does (tsx, the script), asynchronously: the test's own server must answer meanwhile. */
function runCli(args: string[], env: Record<string, string>): Promise<{ status: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [join(ROOT, "node_modules/tsx/dist/cli.mjs"), join(ROOT, "scripts/status.ts"), ...args], { cwd: ROOT, env: { PATH: "/usr/bin:/bin", ...env } });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        const timer = setTimeout(() => child.kill("SIGKILL"), 60000);
        child.on("error", reject);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ status: code ?? -1, stdout, stderr });
        });
    });
}

describe("npm run status, run as the user runs it @cli", function () {
    this.timeout(180000);
    let server: Server;
    let url = "";
    let answer: { status: number; body: string } = { status: 200, body: JSON.stringify(healthy) };
    const seen: (string | undefined)[] = [];
    let dir = "";

    before(async () => {
        dir = mkdtempSync(join(tmpdir(), "vps-ha-status-cli-"));
        // As HAProxy does: the token in X-Vps-Ha-Token, or a 404 as for any unknown path.
        server = createServer((req, res) => {
            seen.push(req.headers["x-vps-ha-token"] as string | undefined);
            const ok = req.url === STATUS_VIEW_PATH && req.headers["x-vps-ha-token"] === TOKEN;
            res.writeHead(ok ? answer.status : 404, { "content-type": ok ? "application/json" : "text/plain" });
            res.end(ok ? answer.body : "not found");
        });
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${STATUS_VIEW_PATH}`;
    });
    after(() => {
        server?.close();
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("healthy: the table, exit 0; degraded: exit 1; --json: the view's answer", async () => {
        answer = { status: 200, body: JSON.stringify(healthy) };
        const ok = await runCli(["--url", url], { VPS_HA_STATUS_TOKEN: TOKEN });
        assert.equal(ok.status, 0, ok.stderr);
        assert.match(ok.stdout, /^127\.0\.0\.1:\d+: healthy, as of 2025-12-02 15:40 UTC$/m);
        assert.match(ok.stdout, /^  db-3  replica       streaming  3\.0 MiB  4$/m);
        assert.equal(seen.at(-1), TOKEN);
        answer = { status: 200, body: JSON.stringify(degraded) };
        const bad = await runCli(["--url", url], { VPS_HA_STATUS_TOKEN: TOKEN });
        assert.equal(bad.status, 1, bad.stderr);
        assert.match(bad.stdout, /DEGRADED \(3 problems\)/);
        const json = await runCli(["--url", url, "--json"], { VPS_HA_STATUS_TOKEN: TOKEN });
        assert.equal(json.status, 1);
        assert.deepEqual(JSON.parse(json.stdout), degraded);
    });

    it("one line, exit 2, no stack trace: a wrong or missing token, no answer, an answer of another kind, usage", async () => {
        answer = { status: 200, body: JSON.stringify(healthy) };
        const one = (r: { status: number; stdout: string; stderr: string }, re: RegExp) => {
            assert.equal(r.status, 2, r.stdout + r.stderr);
            assert.match(r.stderr, re);
            assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
        };
        one(await runCli(["--url", url], { VPS_HA_STATUS_TOKEN: "W".repeat(40) }), /^status: http:\/\/127\.0\.0\.1:\d+\/vps-ha\/status answered 404: the token is not the stack's \(or its HAProxy nodes do not serve the status view yet: run pulumi up\)\n$/);
        one(await runCli(["--url", url], {}), /^status: VPS_HA_STATUS_TOKEN is not set: the token is the stack's statusToken output/);
        one(await runCli(["--url", url], { VPS_HA_STATUS_TOKEN: "short" }), /^status: VPS_HA_STATUS_TOKEN is not a status token \(32-128 letters and digits\)\n$/);
        // A port nothing listens on: one just closed.
        const closed = createServer();
        await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
        const port = (closed.address() as AddressInfo).port;
        await new Promise((r) => closed.close(r));
        one(await runCli(["--url", `http://127.0.0.1:${port}/vps-ha/status`], { VPS_HA_STATUS_TOKEN: TOKEN }), /^status: no answer from http:\/\/127\.0\.0\.1:\d+\/vps-ha\/status: ECONNREFUSED\n$/);
        answer = { status: 200, body: "<html>hello</html>" };
        one(await runCli(["--url", url], { VPS_HA_STATUS_TOKEN: TOKEN }), /answered something that is not JSON/);
        answer = { status: 503, body: "" };
        one(await runCli(["--url", url], { VPS_HA_STATUS_TOKEN: TOKEN }), /answered 503: the status view cannot answer/);
        const usage = await runCli(["--stack", "Prod"], {});
        one(usage, /^status: --stack: "Prod" is not a stack name/);
        assert.match(usage.stderr, /Exit status: 0 healthy; 1 degraded/);
    });

    it("--stack: no Pulumi CLI, an unknown stack, and the outputs read through a stand-in `pulumi` that prints them", async () => {
        answer = { status: 200, body: JSON.stringify(healthy) };
        const r = await runCli(["--stack", "prod"], {});
        assert.equal(r.status, 2);
        assert.match(r.stderr, /^status: the Pulumi CLI is not on PATH: install it \(curl -fsSL https:\/\/get\.pulumi\.com \| sh\), or give --url with VPS_HA_STATUS_TOKEN\n$/);
        // A stand-in for the CLI: prints the outputs for stack "prod" (as `pulumi stack output --json` does), Pulumi's own error for any other.
        const bin = join(dir, "bin");
        const outputs = JSON.stringify({ statusUrl: url, statusToken: TOKEN });
        writeFileSync(join(dir, "outputs.json"), outputs);
        mkdirSync(bin, { recursive: true });
        writeFileSync(join(bin, "pulumi"), `#!/bin/sh
[ "$1 $2 $3 $5 $6" = "stack output --stack --show-secrets --json" ] || { echo "unexpected: $*" >&2; exit 3; }
[ "$4" = prod ] && exec cat ${join(dir, "outputs.json")}
echo "error: no stack named '$4' found" >&2; exit 255
`);
        chmodSync(join(bin, "pulumi"), 0o755);
        const unknown = await runCli(["--stack", "staging"], { PATH: `${bin}:/usr/bin:/bin` });
        assert.equal(unknown.status, 2, unknown.stderr);
        assert.equal(unknown.stderr, "status: no stack staging in the Pulumi backend you are logged in to (pulumi stack ls lists them; name another organisation with --stack ORG/staging)\n");
        // http:// to 127.0.0.1 is taken from the outputs too (an IPv4 address); the table names the stack.
        const found = await runCli(["--stack", "prod"], { PATH: `${bin}:/usr/bin:/bin` });
        assert.equal(found.status, 0, found.stderr);
        assert.match(found.stdout, /^prod: healthy, as of /);
    });
});
