// `pulumi up` waits for the rollout: the HAProxy nodes' rollout view (node-agent/vpsha/rollout_view.py),
// HAProxy's token-gated route to it, and the wait script the program runs. Renderers and config
// here; then the real thing: Debian 13's HAProxy with the rendered config, the real view service
// from the rendered files, two stand-in status servers answering recorded JSON on their own mesh
// addresses, and the rendered wait script run by sh with curl, as `pulumi up` runs it.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, parseStackConfig, ROLLOUT_WAIT_SECONDS } from "../components/config";
import { buildPlan, ROLLOUT_STATUS_PORT, ROLLOUT_VIEW_PORT } from "../components/plan";
import { DESIRED_STATUS } from "../components/render/desired-agent";
import { DIRECTORY_CACHE } from "../components/render/directory-agent";
import { HAPROXY_CFG, haproxyPart, HaproxyConfig, renderHaproxyConfig, ROLLOUT_BEARER_FILE, ROLLOUT_TOKEN_FILE, rolloutTokenFiles } from "../components/render/haproxy";
import { ROLLOUT_VIEW, ROLLOUT_VIEW_CONFIG, ROLLOUT_VIEW_PATH, ROLLOUT_VIEW_UNIT, rolloutViewConfig, rolloutViewPart, STATUS_VIEW_PATH } from "../components/render/rollout-view";
import { statusViewSpec } from "../components/monitoring";
import { renderRolloutWait, ROLLOUT_TOKEN_ENV, wantQuery } from "../components/render/rollout-wait";
import { haproxyConfig } from "../components/haproxy";
import { rolloutWaitScript } from "../components/rollout-wait";
import { directoryCache, evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { raw, withConfig } from "./helpers/stack";
import { requireTools } from "./helpers/tools";
import { filesOf, STATUS_STAND_IN, withServers } from "./helpers/haproxy-node";
import { originPullClientOf } from "../scripts/lab/edge/spec";

const ROOT = join(__dirname, "..");
const TOKEN = "A".repeat(20) + "b".repeat(20);
const planOf = (edits: Record<string, unknown> = {}) => buildPlan(parseStackConfig(raw(withConfig(edits)), "prod"));

describe("rollout wait: renderers and config", () => {
    const plan = planOf();
    const cfg: HaproxyConfig = haproxyConfig(plan, "10.77.0.20");

    it("HAProxy sends /vps-ha/rollout to the local view with the token only, before any app backend", () => {
        const text = renderHaproxyConfig(cfg);
        assert.match(text, new RegExp(`^    acl view_path path ${ROLLOUT_VIEW_PATH} ${STATUS_VIEW_PATH}$`, "m"));
        assert.match(text, new RegExp(`^    acl rollout_token req\\.fhdr\\(x-vps-ha-token\\) -m str -f ${ROLLOUT_TOKEN_FILE}$`, "m"));
        assert.match(text, new RegExp(`^    acl rollout_bearer req\\.fhdr\\(authorization\\) -m str -f ${ROLLOUT_BEARER_FILE}$`, "m"));
        assert.match(text, /^    http-request return status 404 .* if view_path !rollout_token !rollout_bearer$/m);
        assert.match(text, new RegExp(`^backend rollout-view\\n    timeout server 15s\\n    server view 127\\.0\\.0\\.1:${ROLLOUT_VIEW_PORT}$`, "m"));
        const route = text.indexOf("use_backend rollout-view if view_path");
        assert.ok(route > 0 && route < text.indexOf("use_backend app-candidate") && route < text.indexOf("default_backend app"));
    });

    it("the token files are root's only, reload HAProxy, and take a generated token only", () => {
        const part = haproxyPart(cfg, "PEM", "CA", TOKEN);
        const file = (p: string) => part.files!.find((f) => f.path === p);
        assert.deepEqual([file(ROLLOUT_TOKEN_FILE)?.content, file(ROLLOUT_TOKEN_FILE)?.permissions], [`${TOKEN}\n`, "0600"]);
        assert.deepEqual([file(ROLLOUT_BEARER_FILE)?.content, file(ROLLOUT_BEARER_FILE)?.permissions], [`Bearer ${TOKEN}\n`, "0600"]);
        assert.ok(part.restarts!.some((r) => r.unit === "haproxy.service" && r.reload && r.paths?.includes(ROLLOUT_TOKEN_FILE) && r.paths.includes(ROLLOUT_BEARER_FILE)));
        for (const bad of ["short", `${TOKEN}\nx`, `${TOKEN} `, "#".repeat(40)]) assert.throws(() => rolloutTokenFiles(bad), /rollout token: expected 32-128 letters and digits/);
    });

    it("the view: its config as the module reads it, a unit of no privilege, the package modules it needs", () => {
        const part = rolloutViewPart({ port: ROLLOUT_VIEW_PORT, statusPort: ROLLOUT_STATUS_PORT, status: statusViewSpec(plan) });
        const paths = part.files!.map((f) => f.path);
        for (const p of [ROLLOUT_VIEW, ROLLOUT_VIEW_CONFIG, `/etc/systemd/system/${ROLLOUT_VIEW_UNIT}`]) assert.ok(paths.includes(p), p);
        for (const m of ["rollout_view", "status_view", "rollout", "records", "rest"]) assert.ok(paths.some((p) => p.endsWith(`/vpsha/${m}.py`)), m);
        const unit = part.files!.find((f) => f.path.endsWith(ROLLOUT_VIEW_UNIT))!.content;
        assert.match(unit, new RegExp(`^ExecStart=${ROLLOUT_VIEW}$`, "m"));
        assert.match(unit, /^DynamicUser=yes$/m);
        const config = rolloutViewConfig({ port: ROLLOUT_VIEW_PORT, statusPort: ROLLOUT_STATUS_PORT, status: statusViewSpec(plan) });
        assert.deepEqual([config.listen, config.port, config.statusPort, config.directoryCache], ["127.0.0.1", ROLLOUT_VIEW_PORT, ROLLOUT_STATUS_PORT, DIRECTORY_CACHE]);
        // The module's own reader accepts the rendered config, and the module names the same path and file.
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-rollout-view-"));
        try {
            writeFileSync(join(dir, "view.json"), part.files!.find((f) => f.path === ROLLOUT_VIEW_CONFIG)!.content);
            const r = spawnSync("/usr/bin/python3", ["-c", "import sys, json; from vpsha.rollout_view import load_config, CONFIG, PATH; print(json.dumps([load_config(sys.argv[1]), CONFIG, PATH]))", join(dir, "view.json")],
                { env: { PYTHONPATH: join(ROOT, "node-agent") }, encoding: "utf8" });
            assert.equal(r.status, 0, r.stderr);
            assert.deepEqual(JSON.parse(r.stdout), [config, ROLLOUT_VIEW_CONFIG, ROLLOUT_VIEW_PATH]);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
        const rollout = readFileSync(join(ROOT, "node-agent", "vpsha", "rollout.py"), "utf8");
        assert.match(rollout, new RegExp(`^DESIRED_STATUS = "${DESIRED_STATUS}"$`, "m"));
    });

    it("the wait script: valid sh, every hostname, the generations sorted, no token in it", () => {
        const script = rolloutWaitScript(plan, { "db-2": 12, "app-1": 11, "lb-1": 13 });
        assert.equal(spawnSync("sh", ["-n"], { input: script }).status, 0);
        assert.ok(script.includes(`'https://app.example.com${ROLLOUT_VIEW_PATH}?want=app-1:11,db-2:12,lb-1:13'`), script);
        assert.ok(script.includes(`'https://candidate.example.com${ROLLOUT_VIEW_PATH}?want=app-1:11,db-2:12,lb-1:13'`));
        assert.match(script, new RegExp(`within ${ROLLOUT_WAIT_SECONDS} s`));
        // The token comes from the environment, through curl's stdin.
        assert.match(script, new RegExp(`printf 'X-Vps-Ha-Token: %s\\\\n' "\\$${ROLLOUT_TOKEN_ENV}" \\| curl .* -H @- `));
        assert.throws(() => wantQuery({ "DB 1": 3 }), /node name "DB 1" is not a DNS label/);
        assert.throws(() => wantQuery({ "db-1": 0 }), /db-1's generation 0 is not a positive whole number/);
        assert.throws(() => renderRolloutWait({ hostnames: [], want: {}, timeoutSeconds: 60, everySeconds: 5 }), /no hostname/);
        assert.match(rolloutWaitScript(planOf({ rollout: { waitSeconds: 120 } }), { "db-1": 1 }), /within 120 s/);
    });

    it("vps-ha:rollout.waitSeconds: default, bounds, and what is wrong with a bad one", () => {
        assert.equal(plan.config.rollout.waitSeconds, ROLLOUT_WAIT_SECONDS);
        const issues = (v: unknown) => {
            try {
                planOf({ rollout: v });
                return [];
            } catch (e) {
                assert.ok(e instanceof ConfigError, String(e));
                return e.issues.map((i) => `${i.path}: ${i.message}`);
            }
        };
        assert.deepEqual(issues({ waitSeconds: 30 }), ["vps-ha:rollout.waitSeconds: must be at least 60: one database member alone may take 180 s to be healthy again (got 30)"]);
        assert.deepEqual(issues({ waitSeconds: 90.5 }), ["vps-ha:rollout.waitSeconds: must be a whole number of seconds (got 90.5)"]);
        assert.deepEqual(issues({ waitSeconds: 99999 }), ["vps-ha:rollout.waitSeconds: must be at most 3600 (an hour: deploy.yml gives the whole pulumi up 60 minutes) (got 99999)"]);
        assert.match(issues({ waitSeconds: "long" })[0], /^vps-ha:rollout\.waitSeconds: must be a number of seconds/);
        assert.match(issues({ wait: 60 })[0], /^vps-ha:rollout: has unknown key\(s\) wait; allowed: waitSeconds/);
    });
});

describe("rollout wait, run for real (HAProxy, the view, stand-in nodes, the wait script) @rootfs", function () {
    this.timeout(900000);
    const LB = "lb-1";
    const NODES = ["db-1", "db-2"];

    it("done exits 0; a halt exits 1 naming the node; a wrong token is refused; the bound exits 1 naming the pending nodes", async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "nsenter", "ip"], true);
        const prod = await evaluate();
        const rootfs = await labRootfs(prod);
        const mesh = Object.fromEntries((prod.outputs.nodes as { name: string; meshAddress: string }[]).map((n) => [n.name, n.meshAddress]));
        const sb = await Sandbox.open(`vhtest-rwait${process.pid}`, rootfs, [LB, ...NODES].map((name) => ({ name, address: mesh[name] })));
        try {
            const lbFiles = filesOf(prod.config[LB]);
            const byPath = Object.fromEntries(lbFiles.map((f) => [f.path, f.content]));
            // Everything lb-1 ends up holding: the package, the view's launcher and config, HAProxy's config and token files.
            for (const f of lbFiles) sb.write(LB, f.path, f.content, f.permissions ?? "0644");
            const token = byPath[ROLLOUT_TOKEN_FILE].trim();
            assert.match(token, /^[A-Za-z0-9]{40}$/);
            sb.write(LB, HAPROXY_CFG, withServers(byPath, mesh[LB]));
            // The directory: lb-1 itself (no status server here: unreachable) and the two stand-ins.
            sb.write(LB, DIRECTORY_CACHE, directoryCache(prod, [LB, ...NODES]));
            // The app HAProxy must see up before it takes connections at all.
            sb.write(LB, "/srv/app/healthz", "ok\n");
            sb.start(LB, ["python3", "-m", "http.server", "8921", "--bind", mesh[LB], "--directory", "/srv/app"], join(sb.dir, "app.log"));
            const status = (node: string, s: Record<string, unknown>) => sb.write(node, "/srv/status.json", JSON.stringify(s));
            // The view gives an answer again for cacheSeconds: a changed status shows after that.
            const viewCache = rolloutViewConfig({ port: ROLLOUT_VIEW_PORT, statusPort: ROLLOUT_STATUS_PORT, status: statusViewSpec(planOf()) }).cacheSeconds;
            const settle = () => new Promise((r) => setTimeout(r, viewCache * 1000 + 500));
            for (const n of NODES) {
                sb.write(n, "/srv/stand-in.py", STATUS_STAND_IN);
                status(n, {});
                sb.start(n, ["python3", "/srv/stand-in.py", mesh[n], String(ROLLOUT_STATUS_PORT), "/srv/status.json"], join(sb.dir, `${n}.log`));
            }
            const check = sb.exec(LB, ["haproxy", "-c", "-f", HAPROXY_CFG]);
            assert.equal(check.status, 0, check.stdout + check.stderr);
            sb.exec(LB, ["mkdir", "-p", "/run/haproxy", "/var/lib/haproxy"]);
            sb.start(LB, ["haproxy", "-W", "-f", HAPROXY_CFG, "-p", "/run/haproxy.pid"], join(sb.dir, "haproxy.log"));
            // The view as its unit runs it: the launcher, the rendered config (as a user of no privilege: daemon).
            sb.start(LB, [ROLLOUT_VIEW], join(sb.dir, "view.log"), { user: "daemon" });

            const host = "app.example.com";
            // Cloudflare presents the origin-pull certificate on its way to HAProxy; so does this stand-in.
            const pull = originPullClientOf(prod, host);
            sb.write(LB, "/root/pull.crt", pull.certificate, "0600");
            sb.write(LB, "/root/pull.key", pull.privateKey, "0600");
            const curlArgs = `-k --cert /root/pull.crt --key /root/pull.key --resolve ${host}:443:${mesh[LB]} --resolve candidate.example.com:443:${mesh[LB]}`;
            const ask = (headers: string[], path = ROLLOUT_VIEW_PATH) => {
                const r = sb.exec(LB, ["curl", "-sk", "--max-time", "10", "--cert", "/root/pull.crt", "--key", "/root/pull.key", "--resolve", `${host}:443:${mesh[LB]}`, "-w", "\n%{http_code}", ...headers.flatMap((h) => ["-H", h]), `https://${host}${path}`]);
                const lines = r.stdout.trimEnd().split("\n");
                return { code: Number(lines.pop()), body: lines.join("\n") };
            };
            // Bounded wait for HAProxy and the view to answer.
            let ready = false;
            for (let i = 0; i < 100 && !ready; i++) {
                ready = ask([`X-Vps-Ha-Token: ${token}`]).code === 200;
                if (!ready) await new Promise((r) => setTimeout(r, 200));
            }
            const logs = () => ["haproxy.log", "view.log"].map((f) => existsSync(join(sb.dir, f)) ? `${f}: ${readFileSync(join(sb.dir, f), "utf8")}` : `${f}: none`).join("\n");
            assert.ok(ready, `the view did not answer through HAProxy within 20 s\n${logs()}`);

            // The token, in either header, reaches the view; anything else is a 404 that never reaches it or the app.
            assert.equal(ask([`Authorization: Bearer ${token}`]).code, 200);
            for (const headers of [[], [`X-Vps-Ha-Token: ${token}x`], [`X-Vps-Ha-Token: Bearer ${token}`], [`Authorization: ${token}`], [`Authorization: Bearer ${token.slice(1)}`]]) {
                const got = ask(headers);
                assert.deepEqual([got.code, got.body.trim()], [404, "not found"], headers.join());
            }
            // The app is still the app's: the view's route is that one path.
            assert.equal(ask([`X-Vps-Ha-Token: ${token}`], "/healthz").code, 200);
            assert.equal(ask([`X-Vps-Ha-Token: ${token}`], "/vps-ha/rollout/x").code, 404);

            const want = { "db-1": 20, "db-2": 20 };
            const wait = (script: string, tokenValue = token) => {
                const started = Date.now();
                const r = sb.exec(LB, ["sh", "-s"], { input: script, env: { [ROLLOUT_TOKEN_ENV]: tokenValue, VPS_HA_GATE_CURL_ARGS: curlArgs }, timeoutMs: 120000 });
                return { ...r, seconds: (Date.now() - started) / 1000 };
            };
            const plan = buildPlan(parseStackConfig(raw(withConfig({})), "prod"));
            const script = rolloutWaitScript(plan, want);
            const healthy = (g: number) => ({ rolloutId: "f".repeat(64), rolloutState: "healthy", generation: g, published: g });

            // Done: every wanted node applied at least its generation.
            status("db-1", healthy(20));
            status("db-2", healthy(21));
            await settle();
            const done = wait(script);
            assert.equal(done.status, 0, done.stdout + done.stderr);
            assert.equal(done.stdout.trim(), "rollout wait: every node applied its generation: db-1, db-2");

            // Halted: db-1 read generation 20 and halted; db-2 is held back by it. Fails at once, naming db-1 and why.
            status("db-1", { rolloutId: "e".repeat(64), rolloutState: "halted", generation: 19, published: 20, haltedReason: "not healthy within 180 s after the change: patroni: 503" });
            status("db-2", { rolloutId: "e".repeat(64), rolloutState: "halted", generation: 19, published: 20, haltedBy: "db-1", haltedReason: "rollout halted at db-1: not healthy" });
            await settle();
            const halted = wait(script);
            assert.equal(halted.status, 1, halted.stdout + halted.stderr);
            assert.match(halted.stderr, /^rollout wait: rollout halted at db-1: not healthy within 180 s after the change: patroni: 503 \(held back: db-2\)$/m);
            assert.ok(halted.seconds < 20, `a halt fails at once (${halted.seconds} s)`);

            // The bound: db-2 waits on db-1, which has not read the new generation yet; lb-1 is asked and never answers.
            const bounded = renderRolloutWait({ hostnames: [host], want: { ...want, [LB]: 5 }, timeoutSeconds: 4, everySeconds: 1 });
            status("db-1", healthy(19));
            status("db-2", { rolloutId: "d".repeat(64), rolloutState: "waiting", generation: 19, published: 20, waitingOn: "db-1", waitReason: "not yet healthy" });
            await settle();
            const pending = wait(bounded);
            assert.equal(pending.status, 1, pending.stdout + pending.stderr);
            assert.match(pending.stderr, /^rollout wait: the rollout did not finish within 4 s: pending: db-1 \(generation 19 applied, healthy\); db-2 \(generation 19 applied, 20 read, waiting on db-1 \(not yet healthy\)\); lb-1 \(no answer from its status server\)$/m);
            assert.ok(pending.seconds < 30, `bounded (${pending.seconds} s)`);

            // A wrong token: HAProxy refuses every question, and the wait fails at its bound saying so.
            status("db-1", healthy(20));
            status("db-2", healthy(20));
            const refused = wait(renderRolloutWait({ hostnames: [host], want, timeoutSeconds: 3, everySeconds: 1 }), "wrong".repeat(8));
            assert.equal(refused.status, 1, refused.stdout + refused.stderr);
            assert.match(refused.stderr, /^rollout wait: the rollout did not finish within 3 s: https:\/\/app\.example\.com\/vps-ha\/rollout gave no answer \(curl: \(22\) The requested URL returned error: 404\)$/m);
            // No token at all: refused before asking.
            const unset = wait(script, "");
            assert.equal(unset.status, 2);
            assert.match(unset.stderr, new RegExp(`${ROLLOUT_TOKEN_ENV} is not set`));
        } finally {
            await sb.close();
        }
    });
});
