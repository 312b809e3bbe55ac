import { strict as assert } from "node:assert";
import { ETCD_CLIENT_TLS_FILES, ETCD_TLS_FILES } from "../components/render/etcd";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseStackConfig } from "../components/config";
import { DesiredContent } from "../components/desired-state-records";
import { buildPlan, ROLLOUT_STATUS_PORT, StackPlan } from "../components/plan";
import { hostFirewallRules } from "../components/boot";
import { PYTHON_LIB } from "../components/render/python-lib";
import { ROLLOUT_STATE, ROLLOUT_STATUS_SERVICE, ROLLOUT_STATUS_SOCKET, ROLLOUT_TOOL, rolloutStatusPart, rolloutStatusUnits } from "../components/render/rollout-status";
import { HANDOVER_UNITS, PENDING_RESTART_SETTLE_SECONDS, PENDING_RESTART_UNITS, rolloutSpecs, withRollouts } from "../components/rollout";
import { prodNodes, raw, withConfig } from "./helpers/stack";
import { requireTools } from "./helpers/tools";

function planOf(edits: Record<string, unknown> = {}): StackPlan {
    return buildPlan(parseStackConfig(raw(withConfig(edits)), "prod"));
}

const KEY = Buffer.alloc(32, 7);

function contents(plan: StackPlan, change: Record<string, string> = {}): Record<string, DesiredContent> {
    return Object.fromEntries(plan.nodes.map((n) => [n.name, { files: [{ path: "/etc/vps-ha/x.conf", mode: "0600", owner: "root:root", content: change[n.name] ?? `secret-of-${n.name}` }] }]));
}

describe("rollout", () => {
    const nodes = prodNodes();
    const witnessed = planOf({ nodes: { ...nodes, witness: [{ name: "witness-1", provider: "linode", region: "us-east", size: "g6-nanode-1" }] } });
    const plan = planOf();

    it("groups the database members with the witness, the HAProxy pair, the app nodes; orders each by name", () => {
        const specs = rolloutSpecs({ plan: witnessed, contents: contents(witnessed), key: KEY });
        const group = (g: string) => witnessed.nodes.filter((n) => specs[n.name].group === g).map((n) => n.name).sort();
        assert.deepEqual(group("db"), [...nodes.db.map((n) => n.name), "witness-1"].sort());
        assert.deepEqual(group("haproxy"), nodes.haproxy.map((n) => n.name).sort());
        assert.deepEqual(group("app"), nodes.app.map((n) => n.name).sort());
        for (const n of witnessed.nodes) {
            const s = specs[n.name];
            assert.deepEqual(s.order.map((o) => o.name), group(s.group), n.name);
            assert.equal(s.order.find((o) => o.name === n.name)?.meshAddress, n.meshAddress);
            assert.equal(s.statusPort, ROLLOUT_STATUS_PORT);
            assert.ok(s.healthTimeoutSeconds > 0);
            // One id for the whole group in one change.
            assert.equal(s.id, specs[s.order[0].name].id);
        }
    });

    it("changes a group's id when any member's content changes, and only that group's; the id reveals nothing", () => {
        const before = rolloutSpecs({ plan, contents: contents(plan), key: KEY });
        const db1 = plan.nodes.find((n) => n.role === "db")!.name;
        const after = rolloutSpecs({ plan, contents: contents(plan, { [db1]: "rotated" }), key: KEY });
        for (const n of plan.nodes) {
            if (n.role === "db") assert.notEqual(after[n.name].id, before[n.name].id, n.name);
            else assert.equal(after[n.name].id, before[n.name].id, n.name);
        }
        // Keyed: the same contents under another key give other ids (nobody can test a guess without the key).
        const other = rolloutSpecs({ plan, contents: contents(plan), key: Buffer.alloc(32, 8) });
        assert.notEqual(other[db1].id, before[db1].id);
        assert.ok(!JSON.stringify(before).includes("secret-of-"));
        // The id ignores a rollout already attached (it is computed from the contents without it).
        const attached = withRollouts({ plan, contents: contents(plan), key: KEY });
        assert.equal(rolloutSpecs({ plan, contents: attached, key: KEY })[db1].id, before[db1].id);
        assert.deepEqual(attached[db1].rollout, before[db1]);
    });

    it("health per role, and the handover and pending restart on database members only", () => {
        const specs = rolloutSpecs({ plan: witnessed, contents: contents(witnessed), key: KEY });
        for (const n of witnessed.nodes) {
            const h = specs[n.name].health;
            assert.ok(h.every((argv) => argv[0] === ROLLOUT_TOOL && argv[1] === "health"), n.name);
            const kinds = h.map((argv) => argv[2]);
            const etcd = n.etcdVoter ? ["etcd"] : [];
            const want = { db: ["patroni", ...etcd], witness: etcd, haproxy: ["tcp", "tcp"], app: ["app"] }[n.role];
            assert.deepEqual(kinds, want, n.name);
            assert.deepEqual(specs[n.name].handoverUnits, n.role === "db" ? HANDOVER_UNITS : [], n.name);
            // A member's PostgreSQL restarts where Patroni asks after the dynamic configuration's tool ran; the witness has none.
            assert.deepEqual(specs[n.name].pendingRestart, n.role === "db" ? { units: PENDING_RESTART_UNITS, settleSeconds: PENDING_RESTART_SETTLE_SECONDS } : undefined, n.name);
        }
        const db = witnessed.nodes.find((n) => n.role === "db" && n.etcdVoter)!;
        assert.deepEqual(specs[db.name].health[0], [ROLLOUT_TOOL, "health", "patroni", `http://${db.meshAddress}:8008`]);
        // etcd's /health on its plain metrics port: the client port admits only certificates.
        assert.deepEqual(specs[db.name].health[1], [ROLLOUT_TOOL, "health", "etcd", `http://${db.meshAddress}:2381`]);
        // The database group (members and witness) takes the rollout lock in etcd with its certificate
        // (a member that does not vote, with its client certificate); no other group holds one.
        for (const n of witnessed.nodes) {
            const files = n.etcdVoter ? ETCD_TLS_FILES : ETCD_CLIENT_TLS_FILES;
            assert.deepEqual(specs[n.name].etcdTls, n.role === "db" || n.role === "witness" ? { cacert: files.ca, cert: files.cert, key: files.key } : undefined, n.name);
        }
        assert.ok(witnessed.nodes.some((n) => n.role === "db" && !n.etcdVoter), "a member that does not vote");
        const app = witnessed.nodes.find((n) => n.role === "app")!;
        assert.deepEqual(specs[app.name].health[0], [ROLLOUT_TOOL, "health", "app", app.meshAddress, "/healthz", "/etc/vps-ha/app/release-*.env"]);
    });

    it("says what is wrong with its input", () => {
        const c = contents(plan);
        delete c[plan.nodes[0].name];
        assert.throws(() => rolloutSpecs({ plan, contents: c, key: KEY }), new RegExp(`no desired content for ${plan.nodes[0].name}; the ${plan.nodes[0].role} group's id needs every member's`));
        assert.throws(() => rolloutSpecs({ plan, contents: { ...contents(plan), ghost: { files: [] } }, key: KEY }), /rollout: ghost is not a planned node/);
        // A role component passes its own group only.
        const lbs = Object.fromEntries(Object.entries(contents(plan)).filter(([name]) => plan.nodes.find((n) => n.name === name)?.role === "haproxy"));
        assert.deepEqual(Object.keys(rolloutSpecs({ plan, contents: lbs, key: KEY })).sort(), Object.keys(lbs).sort());
        assert.throws(() => rolloutSpecs({ plan, contents: contents(plan), key: Buffer.alloc(8) }), /rollout key: 8 bytes; expected at least 32/);
        const bad = contents(plan);
        bad[plan.nodes[0].name].files[0].mode = "777";
        assert.throws(() => rolloutSpecs({ plan, contents: bad, key: KEY }), /files\[0\]\.mode is "777"/);
    });

    it("opens the status port to the same group's roles, the HAProxy nodes' rollout view, and the roles that wait for it in a rotation only", () => {
        for (const n of witnessed.nodes) {
            const rules = hostFirewallRules(witnessed, n).filter((r) => r.service === "rollout-status");
            assert.equal(rules.length, 1, n.name);
            assert.equal(rules[0].port, ROLLOUT_STATUS_PORT);
            // The app nodes wait for the HAProxy pair; the members' retirement of the old logins waits for the app nodes.
            const want = n.role === "db" || n.role === "witness" ? ["db", "witness", "haproxy"] : n.role === "app" ? ["app", "haproxy", "db"] : ["haproxy", "app"];
            assert.deepEqual(rules[0].from, { meshRoles: want }, n.name);
        }
    });

    it("renders the status server as a socket on the mesh address, one answer per connection", () => {
        const u = rolloutStatusUnits({ meshAddress: "10.77.0.9", port: ROLLOUT_STATUS_PORT });
        assert.match(u.socket, new RegExp(`^ListenStream=10\\.77\\.0\\.9:${ROLLOUT_STATUS_PORT}$`, "m"));
        assert.match(u.socket, /^Accept=yes$/m);
        assert.match(u.service, new RegExp(`^ExecStart=${ROLLOUT_TOOL} --serve-status$`, "m"));
        const part = rolloutStatusPart({ meshAddress: "10.77.0.9", port: ROLLOUT_STATUS_PORT });
        const paths = part.files!.map((f) => f.path);
        assert.ok(paths.includes(ROLLOUT_TOOL) && paths.includes(`${PYTHON_LIB}/vpsha/rollout.py`) && paths.includes(`${PYTHON_LIB}/vpsha/rest.py`));
        assert.ok(paths.includes(`/etc/systemd/system/${ROLLOUT_STATUS_SOCKET}`) && paths.includes(`/etc/systemd/system/${ROLLOUT_STATUS_SERVICE}`));
    });

    it("names the rollout state where the node agent keeps it", () => {
        const source = readFileSync(join(__dirname, "..", "node-agent", "vpsha", "rollout.py"), "utf8");
        assert.match(source, new RegExp(`^STATE = "${ROLLOUT_STATE}"$`, "m"));
    });

    it("@daemons the status server answers over a real socket with the shipped code (systemd-socket-activate --inetd)", async function () {
        this.timeout(60000);
        requireTools(this, ["systemd-socket-activate", "systemd-analyze"]);
        const root = mkdtempSync(join(tmpdir(), "vps-ha-rollout-status-"));
        const port = await new Promise<number>((resolve) => {
            const s = createServer().listen(0, "127.0.0.1", () => {
                const p = (s.address() as { port: number }).port;
                s.close(() => resolve(p));
            });
        });
        const part = rolloutStatusPart({ meshAddress: "127.0.0.1", port });
        for (const f of part.files!) {
            mkdirSync(dirname(join(root, f.path)), { recursive: true });
            writeFileSync(join(root, f.path), f.content);
        }
        // systemd's own reading of the units: the socket and, beside it, the service template it starts.
        const units = join(root, "etc/systemd/system");
        const verify = spawnSync("systemd-analyze", ["verify", join(units, ROLLOUT_STATUS_SOCKET)], { cwd: units, encoding: "utf8", timeout: 30000 });
        assert.equal(verify.status, 0, verify.stderr);
        assert.equal(verify.stderr.trim(), "");
        // The tool's own launcher finds the package under PYTHON_LIB; here it is under `root`. The child gets only what -E passes.
        const server = spawn("systemd-socket-activate", ["--inetd", "-a", "-l", `127.0.0.1:${port}`, "-E", `PYTHONPATH=${join(root, PYTHON_LIB)}`, "/usr/bin/python3", "-m", "vpsha.rollout", "--serve-status"], {
            stdio: ["ignore", "ignore", "ignore"],
        });
        try {
            const answer = async (): Promise<string> => new Promise((resolve, reject) => {
                let data = "";
                const c = connect(port, "127.0.0.1");
                c.setTimeout(5000, () => c.destroy(new Error("no answer in 5 s")));
                c.on("data", (d) => (data += d));
                c.on("end", () => resolve(data));
                c.on("error", reject);
            });
            let got: string | undefined;
            for (let i = 0; i < 50 && got === undefined; i++) {
                got = await answer().catch(async () => { await new Promise((r) => setTimeout(r, 200)); return undefined; });
            }
            assert.ok(got !== undefined, "the status server did not answer in 10 s");
            // No state yet on this machine: an object with no rollout, and no Patroni here.
            const status = JSON.parse(got!) as Record<string, unknown>;
            assert.equal(status.patroniRole, null);
            assert.equal(status.rolloutState, undefined);
        } finally {
            server.kill();
            rmSync(root, { recursive: true, force: true });
        }
    });
});
