import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { HAPROXY_PORTS } from "../components/plan";
import { PGBOUNCER_INI, PGBOUNCER_USERLIST, POOLER_ADMIN_USER, POOLER_GUARD_CONFIG, POOLER_GUARD_TOOL, POOLER_GUARD_UNIT, POOLER_QUERY_WAIT_SECONDS, renderUserlist } from "../components/render/pgbouncer";
import { POOLER_MAX_PAUSE_SECONDS, SWITCHOVER_CONFIG, SWITCHOVER_TOOL } from "../components/render/switchover";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate } from "./helpers/program";

type Files = { path: string; content: string; permissions: string; owner: string }[];
const filesOf = (e: Evaluation, node: string) => (parse(e.config[node]) as { write_files: Files }).write_files;
const fileOf = (e: Evaluation, node: string, path: string) => filesOf(e, node).find((f) => f.path === path);

describe("poolers and planned switchovers (mock runtime)", function () {
    this.timeout(60000);
    let prod: Evaluation;
    let passwords: Record<string, string>;
    before(async () => {
        prod = await evaluate();
        passwords = Object.fromEntries(prod.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword").map((r) => [r.name.replace(/^database-/, ""), String(r.outputs.result)]));
    });

    it("runs pgbouncer on each HAProxy node, in transaction mode, to that node's own primary port", () => {
        const nodes = prod.outputs.nodes as { name: string; role: string; meshAddress: string }[];
        for (const lb of nodes.filter((n) => n.role === "haproxy")) {
            const ini = fileOf(prod, lb.name, PGBOUNCER_INI)?.content ?? "";
            assert.match(ini, new RegExp(`^app = host=${lb.meshAddress.replace(/\./g, "\\.")} port=${HAPROXY_PORTS.dbPrimary} dbname=app$`, "m"));
            assert.match(ini, new RegExp(`^listen_addr = ${lb.meshAddress.replace(/\./g, "\\.")},127\\.0\\.0\\.1$`, "m"), "on the mesh only (and loopback)");
            assert.match(ini, /^pool_mode = transaction$/m);
            assert.match(ini, new RegExp(`^admin_users = ${POOLER_ADMIN_USER}$`, "m"));
            const users = fileOf(prod, lb.name, PGBOUNCER_USERLIST);
            assert.equal(users?.permissions, "0640");
            assert.equal(users?.content, renderUserlist({ app: passwords.app, [POOLER_ADMIN_USER]: passwords.poolerAdmin }));
        }
        for (const n of nodes.filter((x) => x.role !== "haproxy")) assert.equal(fileOf(prod, n.name, PGBOUNCER_INI), undefined, `${n.name} runs no pooler`);
    });

    it("gives every database member the switchover tool, its secrets in a root-only file", () => {
        for (const db of ["db-1", "db-2", "db-3"]) {
            assert.equal(fileOf(prod, db, SWITCHOVER_TOOL)?.permissions, "0755");
            const conf = fileOf(prod, db, SWITCHOVER_CONFIG);
            assert.equal(conf?.permissions, "0600");
            const c = JSON.parse(conf?.content ?? "{}");
            assert.equal(c.poolerAdminPassword, passwords.poolerAdmin);
            assert.equal(c.restPassword, passwords.restApi);
            assert.equal(c.poolerPort, HAPROXY_PORTS.pooler);
            assert.ok(!JSON.stringify(c).includes("10.77.0.47"), "it finds the poolers in the directory, not in its user-data");
        }
    });

    it("guards each pooler on its own node: a pause nobody holds is resumed, and none lasts past the bound", () => {
        // Past the bound a paused client would have failed anyway; below it, it gets through.
        assert.ok(POOLER_MAX_PAUSE_SECONDS < POOLER_QUERY_WAIT_SECONDS, `${POOLER_MAX_PAUSE_SECONDS} s < query_wait_timeout ${POOLER_QUERY_WAIT_SECONDS} s`);
        for (const lb of ["lb-1", "lb-2"]) {
            assert.equal(fileOf(prod, lb, POOLER_GUARD_TOOL)?.permissions, "0755");
            const conf = fileOf(prod, lb, POOLER_GUARD_CONFIG);
            assert.equal(conf?.permissions, "0600");
            assert.equal(conf?.owner, "postgres:postgres");
            const c = JSON.parse(conf?.content ?? "{}");
            assert.deepEqual([c.host, c.port, c.adminUser, c.adminPassword, c.maxPauseSeconds], ["127.0.0.1", HAPROXY_PORTS.pooler, POOLER_ADMIN_USER, passwords.poolerAdmin, POOLER_MAX_PAUSE_SECONDS]);
            const unit = fileOf(prod, lb, `/etc/systemd/system/${POOLER_GUARD_UNIT}`)?.content ?? "";
            assert.match(unit, /^User=postgres$/m);
            assert.match(unit, /^Restart=always$/m);
            const runcmd = (parse(prod.config[lb]) as { runcmd: string[][] }).runcmd.map((c) => c.join(" "));
            assert.ok(runcmd.some((c) => c.startsWith("systemctl enable") && c.includes(POOLER_GUARD_UNIT)), runcmd.join("\n"));
        }
        for (const db of ["db-1", "db-2", "db-3"]) assert.equal(fileOf(prod, db, POOLER_GUARD_TOOL), undefined, `${db} runs no pooler guard`);
    });

    it("exports the pooled URL as a secret, through both HAProxy nodes, and hands it to the apps", () => {
        assert.ok(prod.secretOutputs.includes("pooledConnectionString"));
        const pooled = prod.outputs.pooledConnectionString as string;
        assert.match(pooled, /^postgresql:\/\/app:[A-Za-z0-9]{32}@[0-9.]+:6432,[0-9.]+:6432\/app\?target_session_attrs=read-write$/);
        for (const app of ["app-1", "app-2"]) assert.match(fileOf(prod, app, "/etc/vps-ha/app/app.env")?.content ?? "", new RegExp(`^DATABASE_POOLED_URL=${pooled.replace(/[.?]/g, "\\$&")}$`, "m"));
    });

    it("opens the pooler to apps and database members, the primary port to apps, the stats to those that read them, on the mesh only", () => {
        const nft = fileOf(prod, "lb-1", "/etc/nftables.conf")?.content ?? "";
        for (const [port, roles] of [[HAPROXY_PORTS.pooler, ["mesh_app", "mesh_db"]], [HAPROXY_PORTS.dbPrimary, ["mesh_app"]], [HAPROXY_PORTS.stats, ["mesh_app", "mesh_db", "mesh_haproxy"]]] as const) {
            const lines = nft.split("\n").filter((l) => l.includes(`dport ${port} `));
            const sets = lines.map((l) => /@(\w+)/.exec(l)?.[1]).sort();
            assert.deepEqual(sets, roles, `port ${port}: ${lines.join(" | ")}`);
            for (const l of lines) assert.match(l, /^\s*iifname "wg0" ip saddr @mesh_\w+ tcp dport/, `port ${port} on the mesh only`);
        }
    });
});
