// Every node's rendered configuration, checked by the real tools: cloud-init's own schema, and
// WireGuard's wg, loading the config into a live (userspace) interface in a throwaway namespace.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { wireguardPublicKey } from "../components/keys";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate } from "./helpers/program";
import { setTimeout as sleep } from "node:timers/promises";
import { requireTools, run } from "./helpers/tools";

function fileIn(userData: string, path: string): string {
    const f = (parse(userData).write_files as { path: string; content: string }[]).find((w) => w.path === path);
    assert.ok(f, `no ${path} in the cloud-config`);
    return f.content;
}

describe("rendered node configs, checked by the real tools", function () {
    this.timeout(120000);
    let prod: Evaluation;
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-configs-"));
    before(async () => {
        prod = await evaluate();
    });

    it("every cloud-config passes cloud-init's schema (its CLI, once per node) @cli", function () {
        requireTools(this, ["cloud-init"]);
        for (const [node, userData] of Object.entries(prod.userData)) {
            assert.ok(userData.startsWith("#cloud-config\n"), node);
            const file = join(dir, `${node}.yaml`);
            writeFileSync(file, userData);
            const r = run("cloud-init", ["schema", "--config-file", file]);
            assert.equal(r.status, 0, `${node}: ${r.stdout}${r.stderr}`);
            assert.match(r.stdout, /Valid cloud-config/);
        }
    });

    it("cloud-init's schema check does fail on a broken document", function () {
        requireTools(this, ["cloud-init"]);
        const file = join(dir, "broken.yaml");
        writeFileSync(file, prod.config["db-1"].replace("ssh_pwauth: false", "ssh_pwauth: [not, a, bool]"));
        assert.notEqual(run("cloud-init", ["schema", "--config-file", file]).status, 0);
    });

    it("every WireGuard config loads into a live interface with the right keys, and names no peer @daemons", async function () {
        requireTools(this, ["wg", "wg-quick", "wireguard-go", "ip"], true);
        const ns = "vhtest-wg"; // vh-* names belong to the lab's nodes
        const IFACE = "vhtestwg0";
        let daemon: ChildProcess | undefined;
        run("ip", ["netns", "del", ns]);
        assert.equal(run("ip", ["netns", "add", ns]).status, 0);
        try {
            // wireguard-go's control socket lives in /var/run/wireguard, shared by every
            // namespace: a name of its own keeps it clear of the lab's wg0 interfaces.
            // Foreground (-f), so the process is ours to stop by PID when the test ends.
            daemon = spawn("ip", ["netns", "exec", ns, "wireguard-go", "-f", IFACE], { stdio: "ignore" });
            // A deadline, not a count of tries: on a busy machine each try takes longer.
            const deadline = Date.now() + 15000;
            while (Date.now() < deadline && run("ip", ["netns", "exec", ns, "wg", "show", IFACE]).status !== 0) await sleep(100);
            assert.equal(run("ip", ["netns", "exec", ns, "wg", "show", IFACE]).status, 0, `wireguard-go did not bring up ${IFACE} within 15 s`);
            const publicKeys = new Map<string, string>();
            for (const [node, userData] of Object.entries(prod.config)) {
                const conf = fileIn(userData, "/etc/wireguard/wg0.conf");
                publicKeys.set(node, run("wg", ["pubkey"], /PrivateKey = (\S+)/.exec(conf)?.[1] + "\n").stdout.trim());
            }
            for (const [node, userData] of Object.entries(prod.config)) {
                const conf = fileIn(userData, "/etc/wireguard/wg0.conf");
                const path = join(dir, `${node}-wg0.conf`);
                writeFileSync(path, conf, { mode: 0o600 });
                const stripped = run("wg-quick", ["strip", path]);
                assert.equal(stripped.status, 0, `${node}: wg-quick strip: ${stripped.stderr}`);
                writeFileSync(`${path}.stripped`, stripped.stdout, { mode: 0o600 });
                const set = run("ip", ["netns", "exec", ns, "wg", "setconf", IFACE, `${path}.stripped`]);
                assert.equal(set.status, 0, `${node}: wg setconf: ${set.stderr}`);
                const shown = run("ip", ["netns", "exec", ns, "wg", "show", IFACE, "dump"]).stdout.trim().split("\n");
                // The interface line carries the private and public key; each peer line its key and allowed IP.
                const [iface, ...peers] = shown.map((l) => l.split("\t"));
                assert.equal(iface[1], publicKeys.get(node), `${node}: public key wg derives`);
                assert.equal(iface[1], wireguardPublicKey(iface[0]), `${node}: the program's derivation agrees with wg`);
                assert.equal(iface[2], "51820");
                // Peers come from the directory at run time (test/directory-agent.test.ts), never from the boot.
                assert.deepEqual(peers, [], `${node}: peers`);
                assert.doesNotMatch(conf, /\[Peer\]/);
            }
        } finally {
            daemon?.kill("SIGTERM");
            run("ip", ["netns", "del", ns]);
        }
    });
});
