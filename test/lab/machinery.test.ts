// The lab machinery on its own: two nodes joined by a WireGuard mesh configured by hand-written
// cloud-configs, then every way the lab breaks a node, then a teardown that leaves nothing.
import { seen, SeenProcess } from "../../scripts/lab/procs";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { leftovers } from "../../scripts/lab/cleanup";
import { missingTools } from "../../scripts/lab/preflight";
import { packagesOf } from "../../scripts/lab/cloudinit";
import { evaluate } from "../helpers/program";
import {
    LabNodeSpec,
    execInNode,
    healNode,
    isolateNode,
    killNode,
    nodePids,
    nodeUnits,
    realizeNodes,
    rebootNode,
    spawnInNode,
    teardown,
} from "../../scripts/lab/realize";

const log = (m: string) => console.log(`      ${m}`);

/** Why the lab cannot run here, or undefined when it can. */
function missingPrerequisite(): string | undefined {
    if (process.platform !== "linux") return "the lab needs Linux";
    if (typeof process.getuid !== "function" || process.getuid() !== 0) return "the lab must run as root";
    if (!existsSync("/dev/net/tun")) return "no /dev/net/tun (wireguard-go needs it)";
    const tools = missingTools().filter((t) => !t.startsWith("debootstrap")); // the lab installs debootstrap itself
    if (tools.length) return `missing host tools: ${tools.join(", ")}`;
    return undefined;
}

function wgKeys(): { priv: string; pub: string } {
    const priv = execFileSync("wg", ["genkey"], { encoding: "utf8" }).trim();
    const pub = execFileSync("wg", ["pubkey"], { input: priv, encoding: "utf8" }).trim();
    return { priv, pub };
}

/**
 * The packages the prod stack's nodes get, all named by node A: the lab builds (once) and
 * caches one rootfs per package set, so this test shares the one the full lab uses.
 */
async function prodPackages(): Promise<string[]> {
    const e = await evaluate();
    return packagesOf(Object.entries(e.config).map(([name, userData]) => ({ name, userData })));
}

interface Peer {
    name: string;
    packages: string[];
    ip: string;
    mesh: string;
    dns: string;
    keys: { priv: string; pub: string };
}

function userData(me: Peer, peer: Peer): string {
    return `#cloud-config
packages: [${me.packages.join(", ")}]
write_files:
  - path: /etc/wireguard/wg0.conf
    permissions: "0600"
    content: |
      [Interface]
      PrivateKey = ${me.keys.priv}
      Address = ${me.mesh}/24
      ListenPort = 51820

      [Peer]
      PublicKey = ${peer.keys.pub}
      AllowedIPs = ${peer.mesh}/32
      Endpoint = ${peer.dns}:51820
      PersistentKeepalive = 5
runcmd:
  - systemctl enable --now wg-quick@wg0
`;
}

/** Ping over the mesh, retrying while the first handshake completes (bounded). */
async function meshPing(from: string, to: string, attempts: number): Promise<boolean> {
    for (let i = 0; i < attempts; i++) {
        const r = await execInNode(from, ["ping", "-c1", "-W2", to], { timeoutMs: 10_000, allowFail: true });
        if (r.code === 0) return true;
    }
    return false;
}

/** Proportional set size of the node's processes, in MiB (shared rootfs pages split fairly). */
function nodePssMiB(name: string): number {
    let kb = 0;
    for (const pid of nodePids(name)) {
        try {
            const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
            if (m) kb += Number(m[1]);
        } catch {
            // exited
        }
    }
    return kb / 1024;
}

describe("lab machinery: namespaces, overlays, cloud-init, WireGuard @lab", function () {
    this.timeout(30 * 60_000); // the first run builds the rootfs (a few minutes); waits inside are bounded
    let realized = false;
    let seenPids: SeenProcess[] = [];

    const a: Peer = { name: "lab-a", packages: [], ip: "198.18.10.1", mesh: "10.77.0.1", dns: "lab-a.lab.example.com", keys: { priv: "", pub: "" } };
    const b: Peer = { name: "lab-b", packages: ["wireguard-tools"], ip: "198.18.10.2", mesh: "10.77.0.2", dns: "lab-b.lab.example.com", keys: { priv: "", pub: "" } };

    before(async function () {
        const missing = missingPrerequisite();
        if (missing) {
            if (process.env.CI) throw new Error(`lab tests cannot run in CI: ${missing}`);
            console.log(`      skipping lab tests: ${missing}`);
            this.skip();
        }
        a.packages = await prodPackages();
    });

    after(async function () {
        if (realized) await teardown(log); // also after a failed test: nothing may stay behind
    });

    it("realizes two nodes from their cloud-configs", async function () {
        a.keys = wgKeys();
        b.keys = wgKeys();
        const spec = (p: Peer, peer: Peer): LabNodeSpec => ({
            name: p.name,
            role: "db",
            provider: "lab",
            publicIpv4: p.ip,
            meshAddress: p.mesh,
            userData: userData(p, peer),
            dnsNames: [p.dns],
        });
        const t = Date.now();
        realized = true; // from here on, `after` tears down whatever exists
        // The nodes find each other's endpoints through the lab's DNS server, as real nodes do.
        await realizeNodes([spec(a, b), spec(b, a)], log, { dns: [a, b].map((p) => ({ name: p.dns, type: "A" as const, ttl: 60, data: p.ip })) });
        log(`realize took ${((Date.now() - t) / 1000).toFixed(1)} s`);
        for (const p of [a, b]) assert.ok(existsSync(`/run/netns/vh-${p.name}`), `namespace vh-${p.name} exists`);
        const who = await execInNode(a.name, ["id", "-un"], { user: "postgres", timeoutMs: 10_000 });
        assert.equal(who.stdout.trim(), "postgres", "execInNode runs as the requested user");
        const units = (await nodeUnits(a.name)).map((u) => `${u.unit}=${u.state}`);
        assert.ok(units.includes("wg-quick@wg0.service=active"), `wg-quick@wg0 active on ${a.name}: ${units.join(", ")}`);
    });

    it("pings B from A over the WireGuard mesh (wireguard-go)", async function () {
        assert.ok(await meshPing(a.name, b.mesh, 10), `ping ${a.mesh} -> ${b.mesh} over wg0`);
        const wg = await execInNode(a.name, ["wg", "show", "wg0", "latest-handshakes"], { timeoutMs: 10_000 });
        assert.match(wg.stdout, new RegExp(`^${b.keys.pub.replace(/[+/]/g, "\\$&")}\\s+[1-9]\\d*$`, "m"), "a handshake with B happened");
        for (const p of [a, b]) {
            const pids = nodePids(p.name);
            assert.ok(pids.length > 0, `${p.name} has lab processes`);
            seenPids.push(...seen(pids));
            const upper = execFileSync("du", ["-sm", `/run/vps-ha-lab/nodes/${p.name}/upper`], { encoding: "utf8" }).split("\t")[0];
            log(`${p.name}: ${pids.length} processes, ${nodePssMiB(p.name).toFixed(1)} MiB PSS idle, overlay upper ${upper} MB`);
        }
    });

    it("stops a unit on one node only, though the same unit runs on another", async function () {
        // Nodes share the host's PID namespace: a unit's processes must be told apart by node.
        const unit = "vh-twin.service";
        const install = `printf '[Service]\\nExecStart=/bin/sleep 600\\n' > /etc/systemd/system/${unit} && systemctl daemon-reload && systemctl start ${unit}`;
        for (const n of [a.name, b.name]) await execInNode(n, ["sh", "-c", install], { timeoutMs: 30_000 });
        const running = async (n: string) => (await execInNode(n, ["systemctl", "is-active", unit], { timeoutMs: 10_000, allowFail: true })).stdout.trim();
        assert.equal(await running(a.name), "active");
        await execInNode(b.name, ["systemctl", "kill", "-s", "TERM", unit], { timeoutMs: 30_000 });
        await execInNode(b.name, ["systemctl", "stop", unit], { timeoutMs: 30_000 });
        assert.notEqual(await running(b.name), "active", "stopped where it was stopped");
        assert.equal(await running(a.name), "active", "still running on the other node");
        await execInNode(a.name, ["systemctl", "stop", unit], { timeoutMs: 30_000 });
    });

    it("isolates and heals a node", async function () {
        await isolateNode(b.name);
        const cut = await execInNode(a.name, ["ping", "-c2", "-W1", b.ip], { timeoutMs: 10_000, allowFail: true });
        assert.notEqual(cut.code, 0, "B's public address is unreachable while isolated");
        await healNode(b.name);
        assert.ok(await meshPing(a.name, b.mesh, 10), "mesh works again after heal");
    });

    it("kills a node's processes and reboots it", async function () {
        const daemon = spawnInNode(b.name, ["sleep", "600"], { logName: "sleeper" });
        assert.ok(nodePids(b.name).includes(daemon), "a spawned daemon is listed among the node's PIDs");
        seenPids.push(...seen([daemon]));
        await killNode(b.name, log);
        assert.deepEqual(nodePids(b.name), [], "no process left in B after node-kill");
        assert.equal(await meshPing(a.name, b.mesh, 2), false, "mesh to a killed node is down");
        await rebootNode(b.name, log);
        assert.ok(await meshPing(a.name, b.mesh, 15), "mesh works after B reboots (wg-quick@wg0 enabled)");
        seenPids.push(...seen(nodePids(b.name)));
    });

    it("tears down without leaving anything behind", async function () {
        await teardown(log);
        realized = false;
        const left = await leftovers([a.name, b.name], seenPids);
        assert.deepEqual(left, [], "nothing left after teardown");
        assert.ok(!existsSync("/etc/netns/vh-lab-a"), "netns hosts entries removed");
        seenPids = [];
    });
});
