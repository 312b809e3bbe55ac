// The host firewall's output side: the providers' metadata services (which hand out a node's
// whole user-data) answer root alone, on every node; loaded by the real nft in a namespace and
// tried as root and as another user.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { APP_SERVICE, CONTAINER_MESH_PORTS, CONTAINER_UID_BASE, CONTAINER_UID_COUNT, METADATA_ADDRESSES, NFTABLES_FILE } from "../components/render/nftables";
import { buildPlan, HAPROXY_PORTS } from "../components/plan";
import { parseStackConfig } from "../components/config";
import { prodStack, raw } from "./helpers/stack";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";

type Files = { path: string; content: string; permissions?: string }[];
const nftOf = (e: Evaluation, node: string) => (parse(e.config[node]) as { write_files: Files }).write_files.find((f) => f.path === NFTABLES_FILE)?.content ?? "";

describe("host firewall: the metadata service for root only, app containers kept off the mesh", function () {
    this.timeout(300000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("every node's ruleset rejects the metadata addresses for any socket not owned by root", () => {
        for (const node of Object.keys(prod.config)) {
            const lines = nftOf(prod, node).split("\n").map((l) => l.trim());
            const output = lines.slice(lines.indexOf("chain output {"), lines.indexOf("chain input {"));
            assert.ok(output.includes(`ip daddr ${METADATA_ADDRESSES.ipv4} meta skuid != 0 reject comment "metadata service: root only"`), `${node}: ${output.join(" | ")}`);
            assert.ok(output.includes(`ip6 daddr ${METADATA_ADDRESSES.ipv6} meta skuid != 0 reject comment "metadata service: root only"`), node);
        }
    });

    it("every app node's ruleset lets the app containers' uids open only the HAProxy nodes' database and pooler ports on the mesh", () => {
        const owner = `meta skuid ${CONTAINER_UID_BASE}-${CONTAINER_UID_BASE + CONTAINER_UID_COUNT - 1} ct state new`;
        assert.ok(buildPlan(parseStackConfig(raw(prodStack()), "prod")).ports.app.some((r) => r.service === APP_SERVICE), "the plan's app rule is the one the firewall looks for");
        assert.deepEqual(CONTAINER_MESH_PORTS, [HAPROXY_PORTS.dbPrimary, HAPROXY_PORTS.dbReplicas, HAPROXY_PORTS.pooler]);
        for (const node of Object.keys(prod.config)) {
            const lines = nftOf(prod, node).split("\n").map((l) => l.trim());
            const output = lines.slice(lines.indexOf("chain output {"), lines.indexOf("chain input {"));
            const mine = output.filter((l) => l.startsWith(owner)).map((l) => l.slice(owner.length + 1).replace(/ comment .*$/, ""));
            // The node that admits the app's ports: the plan names that rule APP_SERVICE.
            if (!node.startsWith("app-")) {
                assert.deepEqual(mine, [], `${node} runs no app container`);
                continue;
            }
            assert.deepEqual(mine, [
                `oifname "wg0" ip daddr @mesh_haproxy tcp dport { 5000, 5001, 6432 } accept`,
                `oifname "wg0" reject`,
                `oifname "lo" meta l4proto { tcp, udp } th dport 53 accept`,
                `oifname "lo" reject`,
            ], node);
        }
    });

    describe("loaded by Debian 13's nft in a namespace @rootfs", function () {
        let sb: Sandbox | undefined;
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-host-firewall-"));
        const NODE = "app-1";
        // An HAProxy node's mesh address, and another node's, behind that wg0.
        const LB = "10.77.0.201";
        const DB = "10.77.0.202";
        const exec = (argv: string[], user?: string) => (sb as Sandbox).exec(NODE, argv, { timeoutMs: 30000, ...(user ? { user } : {}) });
        /** A TCP connect to the metadata address, as `user`: how it ended. */
        const connect = (user?: string, prefix: string[] = [], to = `"${METADATA_ADDRESSES.ipv4}",80`) => {
            const script = `import socket\ns=socket.socket()\ns.settimeout(2)\ntry:\n  s.connect((${to})); print("connected")\nexcept Exception as e: print(type(e).__name__)`;
            const r = exec([...prefix, "python3", "-c", script], user);
            assert.equal(r.status, 0, r.stderr);
            return r.stdout.trim();
        };

        before(async function () {
            requireTools(this, ["debootstrap", "unshare", "chroot", "ip", "nsenter"], true);
            const rootfs = await labRootfs(prod);
            const address = (prod.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === NODE)?.meshAddress as string;
            sb = await Sandbox.open(`vhtest-fw${process.pid}`, rootfs, [{ name: NODE, address }]);
            sb.write(NODE, NFTABLES_FILE, nftOf(prod, NODE), "0755");
            const check = exec(["nft", "-c", "-f", NFTABLES_FILE]);
            assert.equal(check.status, 0, `nft -c: ${check.stderr}`);
            assert.equal(exec(["nft", "-f", NFTABLES_FILE]).status, 0);
            // A stand-in metadata service on the node's own loopback.
            const ip = spawnSync("ip", ["-n", sb.netns(NODE), "addr", "add", `${METADATA_ADDRESSES.ipv4}/32`, "dev", "lo"], { encoding: "utf8" });
            assert.equal(ip.status, 0, ip.stderr);
            sb.start(NODE, ["python3", "-m", "http.server", "--bind", METADATA_ADDRESSES.ipv4, "80"], join(dir, "metadata.log"));
            // A service of the node itself, and a resolver, on loopback.
            sb.start(NODE, ["python3", "-m", "http.server", "--bind", "127.0.0.1", "8080"], join(dir, "own.log"));
            sb.start(NODE, ["python3", "-m", "http.server", "--bind", "127.0.0.1", "53"], join(dir, "dns.log"));
            // The mesh as a wg0 leading nowhere (one end of a veth pair) (what passes the firewall goes nowhere: a timeout; what it refuses, a refusal).
            const netns = ["-n", sb.netns(NODE)];
            for (const args of [["link", "add", "wg0", "type", "veth", "peer", "name", "wg0p"], ["link", "set", "wg0", "up"], ["link", "set", "wg0p", "up"], ["route", "add", "10.77.0.0/24", "dev", "wg0"],
                // No neighbour lookup to fail: what leaves, leaves, and nothing answers.
                ["neigh", "add", LB, "lladdr", "02:00:00:00:00:01", "dev", "wg0", "nud", "permanent"], ["neigh", "add", DB, "lladdr", "02:00:00:00:00:02", "dev", "wg0", "nud", "permanent"]]) {
                const r = spawnSync("ip", [...netns, ...args], { encoding: "utf8" });
                assert.equal(r.status, 0, `ip ${args.join(" ")}: ${r.stderr}`);
            }
            assert.equal(exec(["nft", "add", "element", "inet", "vps_ha", "mesh_haproxy", `{ ${LB} }`]).status, 0);
        });

        after(async () => {
            await sb?.close();
            rmSync(dir, { recursive: true, force: true });
        });

        it("answers root, and refuses every other user at once", async () => {
            let root = "";
            for (let i = 0; i < 20 && root !== "connected"; i++) {
                root = connect();
                if (root !== "connected") await new Promise((r) => setTimeout(r, 250));
            }
            assert.equal(root, "connected", "root reaches the stand-in metadata service");
            const users = ["www-data", "postgres", "prometheus"].filter((u) => exec(["id", u]).status === 0);
            assert.ok(users.length > 0, "some account other than root to try as");
            for (const user of users) assert.equal(connect(user), "ConnectionRefusedError", user);
            // A uid no account has, as a container's mapped root would be.
            assert.equal(connect(undefined, ["setpriv", "--reuid=100000", "--regid=100000", "--clear-groups"]), "ConnectionRefusedError", "uid 100000");
        });

        it("lets an app container's uid reach HAProxy's database and pooler ports on the mesh, and nothing else of the mesh or the node", () => {
            const container = ["setpriv", `--reuid=${CONTAINER_UID_BASE}`, `--regid=${CONTAINER_UID_BASE}`, "--clear-groups"];
            const tries: [string, string, string][] = [
                [`"${LB}",${HAPROXY_PORTS.pooler}`, "TimeoutError", "HAProxy node's pooler: let through"],
                [`"${LB}",${HAPROXY_PORTS.dbPrimary}`, "TimeoutError", "HAProxy node's primary port: let through"],
                [`"${LB}",${HAPROXY_PORTS.stats}`, "ConnectionRefusedError", "HAProxy node's stats"],
                [`"${LB}",22`, "ConnectionRefusedError", "HAProxy node's SSH"],
                [`"${DB}",5432`, "ConnectionRefusedError", "a database member's PostgreSQL"],
                [`"${DB}",2379`, "ConnectionRefusedError", "a database member's etcd"],
                [`"127.0.0.1",8080`, "ConnectionRefusedError", "the node's own service"],
                [`"127.0.0.1",53`, "connected", "the node's resolver"],
            ];
            for (const [to, expected, what] of tries) assert.equal(connect(undefined, container, to), expected, `${what} (${to}) as the container's root`);
            // Root on the node is not held back (its own service answers; the mesh goes nowhere here).
            assert.equal(connect(undefined, [], `"127.0.0.1",8080`), "connected");
            assert.equal(connect(undefined, [], `"${DB}",2379`), "TimeoutError");
        });
    });
});
