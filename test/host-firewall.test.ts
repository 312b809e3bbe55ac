// The host firewall's output side: the providers' metadata services (which hand out a node's
// whole user-data) answer root alone, on every node; loaded by the real nft in a namespace and
// tried as root and as another user.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { METADATA_ADDRESSES, NFTABLES_FILE } from "../components/render/nftables";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";

type Files = { path: string; content: string; permissions?: string }[];
const nftOf = (e: Evaluation, node: string) => (parse(e.userData[node]) as { write_files: Files }).write_files.find((f) => f.path === NFTABLES_FILE)?.content ?? "";

describe("host firewall: the metadata service for root only", function () {
    this.timeout(300000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("every node's ruleset rejects the metadata addresses for any socket not owned by root", () => {
        for (const node of Object.keys(prod.userData)) {
            const lines = nftOf(prod, node).split("\n").map((l) => l.trim());
            const output = lines.slice(lines.indexOf("chain output {"), lines.indexOf("chain input {"));
            assert.ok(output.includes(`ip daddr ${METADATA_ADDRESSES.ipv4} meta skuid != 0 reject comment "metadata service: root only"`), `${node}: ${output.join(" | ")}`);
            assert.ok(output.includes(`ip6 daddr ${METADATA_ADDRESSES.ipv6} meta skuid != 0 reject comment "metadata service: root only"`), node);
        }
    });

    describe("loaded by Debian 13's nft in a namespace @rootfs", function () {
        let sb: Sandbox | undefined;
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-host-firewall-"));
        const NODE = "app-1";
        const exec = (argv: string[], user?: string) => (sb as Sandbox).exec(NODE, argv, { timeoutMs: 30000, ...(user ? { user } : {}) });
        /** A TCP connect to the metadata address, as `user`: how it ended. */
        const connect = (user?: string, prefix: string[] = []) => {
            const script = `import socket\ns=socket.socket()\ns.settimeout(3)\ntry:\n  s.connect(("${METADATA_ADDRESSES.ipv4}",80)); print("connected")\nexcept Exception as e: print(type(e).__name__)`;
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
    });
});
