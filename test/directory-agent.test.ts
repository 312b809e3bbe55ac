// The directory agent, run for real: the rendered agent and an HAProxy node's rendered files in
// a throwaway namespace (vhtest-*) over the lab's Debian 13 root filesystem, with a real
// wireguard-go interface, real nftables and a real HAProxy, reading the program's own DNS records
// from the lab's DNS server (on the namespace's loopback). It must converge, follow a changed
// node set, ignore what is not validly signed, and change nothing while DNS is down.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { directoryIndexName, directoryRecordName, directoryReleaseName, indexParts, ReleaseRecord, signIndexPart, signNodeRecord, signReleaseRecord, txtContent, txtStrings } from "../components/directory-records";
import { imagePort } from "../components/release";
import { DIRECTORY_STATUS } from "../components/render/directory-agent";
import { HAPROXY_CFG } from "../components/render/haproxy";
import { dnsServerCommand, waitServed, writeZone } from "../scripts/lab/dns";
import { LabDnsRecord, programDnsRecords } from "../scripts/lab/dns-zone";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { prodNodes, withConfig } from "./helpers/stack";
import { requireTools } from "./helpers/tools";
import { originPullClientOf } from "../scripts/lab/edge/spec";

const NODE = "lb-1";
const PULL_CURL = ["--cert", "/root/pull.crt", "--key", "/root/pull.key"];
const INDEX = directoryIndexName("prod.nodes.example.com");
const RELEASE = directoryReleaseName("prod.nodes.example.com");
const ACTIVE = "ghcr.io/example/app:1.4.2";
const ACTIVE_PORT = imagePort(8080, ACTIVE);
const NEXT = "ghcr.io/example/app:1.5.0";
const NEXT_PORT = imagePort(8080, NEXT);

interface Peer { key: string; endpoint: string; allowed: string; keepalive: string }

function filesOf(userData: string): { path: string; content: string; permissions: string }[] {
    return parse(userData).write_files as { path: string; content: string; permissions: string }[];
}

function nodesOf(e: Evaluation): { name: string; role: string; meshAddress: string }[] {
    return e.outputs.nodes as { name: string; role: string; meshAddress: string }[];
}

describe("directory agent, run for real (wireguard-go, nftables, HAProxy, the lab's DNS) @rootfs", function () {
    this.timeout(900000);
    let prod: Evaluation;
    let sb: Sandbox | undefined;
    let dns: ChildProcess | undefined;
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-agent-"));
    const zone = join(dir, "zone.json");

    const exec = (argv: string[], timeoutMs = 60000) => {
        const r = (sb as Sandbox).exec(NODE, argv, { timeoutMs });
        assert.equal(r.status, 0, `${argv.join(" ")}: ${r.stdout}${r.stderr}`);
        return r.stdout;
    };
    const agent = () => exec(["/usr/local/sbin/vps-ha-directory", "--once"], 120000);
    const peers = (): Peer[] => exec(["wg", "show", "wg0", "dump"]).trim().split("\n").slice(1).filter(Boolean)
        .map((l) => l.split("\t")).map((f) => ({ key: f[0], endpoint: f[2], allowed: f[3], keepalive: f[7] }))
        .sort((a, b) => a.allowed.localeCompare(b.allowed));
    const set = (role: string): string[] => {
        const listed = JSON.parse(exec(["nft", "-j", "list", "set", "inet", "vps_ha", `mesh_${role}`])) as { nftables: { set?: { elem?: string[] } }[] };
        return (listed.nftables.find((x) => x.set)?.set?.elem ?? []).slice().sort();
    };
    const haproxyServers = (): string[] => {
        const script = "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); s.sendall(b'show servers state\\n'); print(s.makefile().read())";
        return exec(["python3", "-c", script]).split("\n").filter((l) => /^\d+ /.test(l)).map((l) => l.split(" ")).map((f) => `${f[1]}/${f[3]}@${f[4]}`)
            // The node's own rollout view (on 127.0.0.1) is no node of the directory.
            .filter((x) => x !== "rollout-view/view@127.0.0.1").sort();
    };
    const snapshot = () => ({ peers: peers(), sets: ["app", "haproxy", "db", "witness"].map(set), cfg: exec(["cat", HAPROXY_CFG]) });
    const expectFor = (e: Evaluation) => {
        const nodes = nodesOf(e);
        const mesh = (role: string) => nodes.filter((n) => n.role === role).map((n) => n.meshAddress).sort();
        const servers = (backend: string, role: string, port = "") => nodes.filter((n) => n.role === role).map((n) => `${backend}/${n.name}${port && `-${port}`}@${n.meshAddress}`);
        return {
            peers: nodes.filter((n) => n.name !== NODE).map((n) => ({ allowed: `${n.meshAddress}/32`, endpoint: `${e.publicIpv4[n.name]}:51820`, keepalive: "25" })).sort((a, b) => a.allowed.localeCompare(b.allowed)),
            sets: ["app", "haproxy", "db", "witness"].map(mesh),
            servers: [...servers("app", "app", String(ACTIVE_PORT)), ...servers("db-primary", "db"), ...servers("db-replicas", "db")].sort(),
        };
    };
    /** HAProxy's servers once a reload has settled (the new process takes over within moments). */
    const serversSettled = async (want: string[]): Promise<string[]> => {
        for (let i = 0; i < 100 && JSON.stringify(haproxyServers()) !== JSON.stringify(want); i++) await new Promise((r) => setTimeout(r, 100));
        return haproxyServers();
    };
    const publish = async (records: LabDnsRecord[]) => waitServed(zone, writeZone(zone, records), 10000);
    const status = () => JSON.parse(exec(["cat", DIRECTORY_STATUS])) as { source: string; generation: number; members: string[]; refused: string | null; ignoredGenerations: number[]; problems: string[] };
    const txt = (name: string, text: string): LabDnsRecord => ({ name, type: "TXT", ttl: 60, data: txtStrings(txtContent(text)) });
    /** The index records for `names`, of generation `gen`, signed with `key`. */
    const index = (names: string[], gen: number, key: string, deliberate = false): LabDnsRecord[] =>
        indexParts(names, gen, deliberate).map((p) => txt(INDEX, signIndexPart(INDEX, p, key)));

    before(async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "ip", "nsenter"], true);
        prod = await evaluate();
        const rootfs = await labRootfs(prod);
        const mesh = nodesOf(prod).find((n) => n.name === NODE)?.meshAddress as string;
        sb = await Sandbox.open(`vhtest-dir${process.pid}`, rootfs, [{ name: NODE, address: mesh }]);
        // The lab's DNS server, serving what the program gave Cloudflare, on the namespace's loopback.
        const generation = writeZone(zone, programDnsRecords(prod));
        const [cmd, ...args] = dnsServerCommand("127.0.0.1", 53, zone);
        dns = spawn("ip", ["netns", "exec", sb.netns(NODE), cmd, ...args], { stdio: "ignore" });
        await waitServed(zone, generation, 15000);
        // The node's own files, as its cloud-config writes them; HAProxy is run here without systemd.
        for (const f of filesOf(prod.config[NODE])) sb.write(NODE, f.path, f.content, f.permissions);
        // What Cloudflare presents to HAProxy (Authenticated Origin Pulls): the gate's checks through it carry it too.
        const pull = originPullClientOf(prod, "app.example.com");
        sb.write(NODE, "/root/pull.crt", pull.certificate, "0600");
        sb.write(NODE, "/root/pull.key", pull.privateKey, "0600");
        const extra = JSON.parse(exec(["cat", "/etc/vps-ha/directory.d/haproxy.json"])) as { haproxy: Record<string, unknown> };
        extra.haproxy.isActive = ["test", "-e", "/run/haproxy.pid"];
        extra.haproxy.reload = ["sh", "-c", "kill -USR2 $(cat /run/haproxy.pid)"];
        sb.write(NODE, "/etc/vps-ha/directory.d/haproxy.json", JSON.stringify(extra));
        sb.write(NODE, "/etc/resolv.conf", "nameserver 127.0.0.1\n");
        exec(["mkdir", "-p", "/run/haproxy", "/var/lib/haproxy"]);
        exec(["wg-quick", "up", "wg0"]);
        exec(["nft", "-f", "/etc/nftables.conf"]);
        sb.start(NODE, ["haproxy", "-W", "-f", HAPROXY_CFG, "-p", "/run/haproxy.pid"], join(dir, "haproxy.log"));
        for (let i = 0; i < 50 && sb.exec(NODE, ["test", "-S", "/run/haproxy/admin.sock"]).status !== 0; i++) await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(haproxyServers(), [], "HAProxy boots with no server");
        assert.deepEqual(peers(), [], "wg0 boots with no peer");
    });

    after(async () => {
        if (dns?.pid) dns.kill("SIGKILL");
        await sb?.close();
        rmSync(dir, { recursive: true, force: true });
    });

    it("converges WireGuard peers, firewall sets and HAProxy servers to the program's directory", async () => {
        const out = agent();
        const want = expectFor(prod);
        assert.deepEqual(peers().map(({ allowed, endpoint, keepalive }) => ({ allowed, endpoint, keepalive })), want.peers, out);
        assert.deepEqual(["app", "haproxy", "db", "witness"].map(set), want.sets);
        assert.deepEqual(await serversSettled(want.servers), want.servers);
        const status = JSON.parse(exec(["cat", DIRECTORY_STATUS])) as { source: string; members: string[]; problems: string[] };
        assert.deepEqual(status, { ...status, source: "dns", members: nodesOf(prod).map((n) => n.name).sort(), problems: [] });
        // A second round has nothing to do.
        const before = snapshot();
        agent();
        assert.deepEqual(snapshot(), before);
    });

    it("follows a changed node set: a new node is added, a removed one goes, HAProxy reloads in place", async () => {
        const nodes = prodNodes();
        nodes.app = [nodes.app[1], { name: "app-3", provider: "linode", region: "de-fra-2", size: "g6-nanode-1" }];
        const changed = await evaluate(withConfig({ nodes }));
        const master = exec(["cat", "/run/haproxy.pid"]).trim();
        await publish(programDnsRecords(changed));
        agent();
        const want = expectFor(changed);
        assert.deepEqual(peers().map(({ allowed, endpoint, keepalive }) => ({ allowed, endpoint, keepalive })), want.peers);
        assert.deepEqual(["app", "haproxy", "db", "witness"].map(set), want.sets);
        // The reloaded process serves the new list; the master stayed, and saved the states first.
        assert.deepEqual(await serversSettled(want.servers), want.servers);
        assert.equal(exec(["cat", "/run/haproxy.pid"]).trim(), master);
        assert.match(exec(["cat", "/var/lib/haproxy/vps-ha-server-state"]), /app-1/);
        prod = changed;
    });

    it("follows the release record: the candidate's backend and readiness, a swap in place, a foreign release ignored, the candidate removed", async () => {
        const signing = String(prod.resources.find((r) => r.name === "directory-signing-key")?.outputs.privateKeyPem);
        const foreign = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
        const good = programDnsRecords(prod);
        const withRelease = (r: ReleaseRecord, key = signing): LabDnsRecord[] =>
            [...good.filter((x) => x.name !== RELEASE), { name: RELEASE, type: "TXT", ttl: 60, data: txtStrings(txtContent(signReleaseRecord(RELEASE, r, key))) }];
        const apps = nodesOf(prod).filter((n) => n.role === "app");
        const backends = (active: number, candidate?: number) => [
            ...apps.map((n) => `app/${n.name}-${active}@${n.meshAddress}`),
            ...(candidate ? apps.map((n) => `app-candidate/${n.name}-${candidate}@${n.meshAddress}`) : []),
        ];
        const appServers = async (want: string[]) => {
            for (let i = 0; i < 50 && JSON.stringify(haproxyServers().filter((x) => x.startsWith("app"))) !== JSON.stringify(want.sort()); i++) await new Promise((r) => setTimeout(r, 100));
            return haproxyServers().filter((x) => x.startsWith("app"));
        };
        // Stand-ins for both images on every app node's address (on this namespace's loopback),
        // so HAProxy's checks pass and its readiness answer counts real servers.
        exec(["mkdir", "-p", "/tmp/app-www"]);
        exec(["sh", "-c", "echo ok > /tmp/app-www/healthz"]);
        for (const n of apps) {
            exec(["ip", "addr", "add", `${n.meshAddress}/32`, "dev", "lo"]);
            for (const port of [ACTIVE_PORT, NEXT_PORT]) {
                (sb as Sandbox).start(NODE, ["python3", "-m", "http.server", "--bind", n.meshAddress, "--directory", "/tmp/app-www", String(port)], join(dir, `app-${n.name}-${port}.log`));
            }
        }
        // HAProxy itself answers the gate's question on each hostname (over TLS, as Cloudflare asks).
        const ready = async (host: string, want: string) => {
            let got = "";
            for (let i = 0; i < 50 && got !== want; i++) {
                got = (sb as Sandbox).exec(NODE, ["curl", "-sk", "--max-time", "3", ...PULL_CURL, "--resolve", `${host}:443:127.0.0.1`, `https://${host}/vps-ha/ready`]).stdout;
                if (got !== want) await new Promise((r) => setTimeout(r, 200));
            }
            return got;
        };
        const master = exec(["cat", "/run/haproxy.pid"]).trim();

        // 1. A candidate beside the active image: its own backend at its own port.
        await publish(withRelease({ active: ACTIVE, activePort: ACTIVE_PORT, candidate: NEXT, candidatePort: NEXT_PORT }));
        agent();
        assert.deepEqual(await appServers(backends(ACTIVE_PORT, NEXT_PORT)), backends(ACTIVE_PORT, NEXT_PORT).sort());
        assert.equal(await ready("candidate.example.com", `2 ${NEXT_PORT}`), `2 ${NEXT_PORT}`);
        assert.equal(await ready("app.example.com", `2 ${ACTIVE_PORT}`), `2 ${ACTIVE_PORT}`);
        // The gate `pulumi up` runs (the program's own command) passes against this HAProxy.
        const gateFor = async (release: Record<string, unknown>) => {
            const e = await evaluate(withConfig({ app: { release: { ...release, gateTimeoutSeconds: 10 } } }));
            const script = String(e.resources.find((r) => r.type === "command:local:Command" && r.name === "release-gate")?.inputs.create);
            const curl = "-k --cert /root/pull.crt --key /root/pull.key --resolve app.example.com:443:127.0.0.1 --resolve candidate.example.com:443:127.0.0.1";
            return (sb as Sandbox).exec(NODE, ["env", `VPS_HA_GATE_CURL_ARGS=${curl}`, "sh", "-c", script], { timeoutMs: 60000 });
        };
        const passed = await gateFor({ active: ACTIVE, candidate: NEXT });
        assert.equal(passed.status, 0, passed.stdout + passed.stderr);
        assert.match(passed.stdout, /every app node is up in the new release/);

        // 2. The swap: the same nodes, the ports trade backends; the master stays.
        await publish(withRelease({ active: NEXT, activePort: NEXT_PORT, candidate: ACTIVE, candidatePort: ACTIVE_PORT }));
        agent();
        assert.deepEqual(await appServers(backends(NEXT_PORT, ACTIVE_PORT)), backends(NEXT_PORT, ACTIVE_PORT).sort());
        assert.equal(await ready("app.example.com", `2 ${NEXT_PORT}`), `2 ${NEXT_PORT}`);
        assert.equal(await ready("candidate.example.com", `2 ${ACTIVE_PORT}`), `2 ${ACTIVE_PORT}`);
        // The gate of the previous release no longer passes: it names the other ports (bounded, with why).
        const stale = await gateFor({ active: ACTIVE, candidate: NEXT });
        assert.equal(stale.status, 1);
        assert.match(stale.stderr, new RegExp(`within 10 s; https://app\\.example\\.com/vps-ha/ready answered '2 ${NEXT_PORT}', ready is '2 ${ACTIVE_PORT}'`));
        assert.equal(exec(["cat", "/run/haproxy.pid"]).trim(), master);

        // 3. A release signed by another key changes nothing.
        const beforeForeign = snapshot();
        await publish(withRelease({ active: "ghcr.io/evil/app:6.6.6", activePort: 8666 }, foreign));
        assert.match(agent(), /ignoring a record at _release\.prod\.nodes\.example\.com: bad signature[\s\S]*keeping the last verified one/);
        assert.deepEqual(snapshot(), beforeForeign);

        // 4. Cleanup: no candidate, an empty candidate backend.
        await publish(withRelease({ active: NEXT, activePort: NEXT_PORT }));
        agent();
        assert.deepEqual(await appServers(backends(NEXT_PORT)), backends(NEXT_PORT).sort());
        assert.equal(await ready("candidate.example.com", "0 -"), "0 -");

        // Back to the program's own release.
        await publish(good);
        agent();
        assert.deepEqual(await appServers(backends(ACTIVE_PORT)), backends(ACTIVE_PORT).sort());
        for (const n of apps) exec(["ip", "addr", "del", `${n.meshAddress}/32`, "dev", "lo"]);
    });

    it("ignores what is not validly signed, and keeps what it verified", async () => {
        const signing = String(prod.resources.find((r) => r.name === "directory-signing-key")?.outputs.privateKeyPem);
        const foreign = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
        const good = programDnsRecords(prod);
        const before = snapshot();
        const applied = status().generation;
        const without = (names: string[]) => good.filter((r) => !(r.type === "TXT" && names.includes(r.name)));
        const app3 = directoryRecordName("app-3.prod.nodes.example.com");
        const app3Text = (good.find((r) => r.name === app3)?.data as string[]).join("");

        // 1. app-3's record tampered with (another mesh address): app-3 keeps its verified record.
        await publish([...without([app3]), txt(app3, app3Text.replace(/mesh=\S+/, "mesh=10.77.0.250"))]);
        const tampered = agent();
        assert.match(tampered, /ignoring a record at _mesh\.app-3\.\S+: bad signature/);
        assert.deepEqual(snapshot(), before);

        // 2. An index signed by another key, naming this node alone: the whole directory is unreadable.
        await publish([...without([INDEX]), ...index([NODE], applied + 1, foreign)]);
        assert.match(agent(), /directory unreadable .*keeping the last verified one/);
        assert.deepEqual(snapshot(), before);

        // 3. A validly listed newcomer whose own record is signed by another key is left out.
        const names = [...nodesOf(prod).map((n) => n.name), "app-4"];
        const app4 = directoryRecordName("app-4.prod.nodes.example.com");
        const newcomer = signNodeRecord(app4, { name: "app-4", role: "app", meshAddress: "10.77.0.251", wireguardKey: "A".repeat(43) + "=", dnsName: "app-4.prod.nodes.example.com" }, foreign);
        await publish([...without([INDEX]), ...index(names, applied + 1, signing), txt(app4, newcomer)]);
        assert.match(agent(), /app-4 is listed but has no valid record yet/);
        assert.deepEqual(snapshot(), before);
        assert.ok(!set("app").includes("10.77.0.251"));
        // The program's own index again, at a newer generation (the one applied is never gone back below).
        await publish([...without([INDEX]), ...index(nodesOf(prod).map((n) => n.name), applied + 2, signing)]);
        agent();
        assert.deepEqual(snapshot(), before);
        assert.equal(status().generation, applied + 2);
    });

    it("takes the newest of two valid indexes, refuses an older one and a large removal, and applies that removal marked deliberate", async () => {
        const signing = String(prod.resources.find((r) => r.name === "directory-signing-key")?.outputs.privateKeyPem);
        const good = programDnsRecords(prod);
        const withIndex = (records: LabDnsRecord[]) => [...good.filter((r) => !(r.type === "TXT" && r.name === INDEX)), ...records];
        const names = nodesOf(prod).map((n) => n.name);
        const apps = nodesOf(prod).filter((n) => n.role === "app");
        assert.equal(apps.length, 2);
        const before = snapshot();
        const g = status().generation;
        // A newcomer with a valid record of its own, so its index visibly differs from the program's.
        const app4 = directoryRecordName("app-4.prod.nodes.example.com");
        const newcomer = txt(app4, signNodeRecord(app4, { name: "app-4", role: "app", meshAddress: "10.77.0.251", wireguardKey: "B".repeat(42) + "A=", dnsName: "app-4.prod.nodes.example.com" }, signing));
        await publish([...withIndex(index([...names, "app-4"], g + 1, signing)), newcomer]);
        agent();
        assert.ok(set("app").includes("10.77.0.251") && peers().some((p) => p.allowed === "10.77.0.251/32"), "app-4 joined");

        // 1. Two valid complete indexes in DNS (the one with app-4, and a newer one without): the newest counts.
        await publish([...withIndex([...index(names, g + 2, signing), ...index([...names, "app-4"], g + 1, signing)]), newcomer]);
        assert.match(agent(), new RegExp(`ignoring the index of generation ${g + 1}: generation ${g + 2} is newer`));
        assert.deepEqual(snapshot(), before);
        assert.deepEqual(status(), { ...status(), source: "dns", generation: g + 2, refused: null, ignoredGenerations: [g + 1], members: [...names].sort() });

        // 2. The older one alone (a replay, or a stale answer): refused, nothing changes, and the status says so.
        await publish([...withIndex(index([...names, "app-4"], g + 1, signing)), newcomer]);
        assert.match(agent(), new RegExp(`the index in DNS is of generation ${g + 1}, older than the applied ${g + 2}`));
        assert.deepEqual(snapshot(), before);
        assert.equal(status().generation, g + 2);
        assert.match(String(status().refused), /older than the applied/);

        // 3. A newer index dropping both app nodes: refused, WireGuard peers, firewall sets and HAProxy unchanged.
        const dropped = names.filter((n) => !apps.some((a) => a.name === n));
        await publish(withIndex(index(dropped, g + 3, signing)));
        const out = agent();
        const gone = apps.map((a) => a.name).sort().join(", ");
        assert.match(out, new RegExp(`refusing the index of generation ${g + 3}: .*app: 2 -> 0 members \\(${gone} would go\\); keeping generation ${g + 2} \\(7 members\\)`));
        assert.deepEqual(snapshot(), before);
        const refused = status();
        assert.deepEqual({ ...refused, problems: refused.problems.slice(0, 1) }, { ...refused, source: "cache", generation: g + 2, members: [...names].sort(), ignoredGenerations: [g + 3], problems: [refused.refused as string] });
        assert.match(String(refused.refused), new RegExp(`app: 2 -> 0 members \\(${gone} would go\\)`));

        // 4. The same removal marked deliberate (the stack file removed them): applied.
        await publish(withIndex(index(dropped, g + 4, signing, true)));
        agent();
        assert.deepEqual(set("app"), []);
        for (const a of apps) assert.ok(!peers().some((p) => p.allowed === `${a.meshAddress}/32`), `${a.name}'s peer removed`);
        assert.deepEqual(status(), { ...status(), source: "dns", generation: g + 4, refused: null, members: [...dropped].sort() });

        // Back to the program's node set (adding is never bounded), at a newer generation.
        await publish(withIndex(index(names, g + 5, signing)));
        agent();
        assert.deepEqual(snapshot(), before);
    });

    it("changes nothing while DNS is down, and restores lost peers and sets from its last verified directory", () => {
        const before = snapshot();
        assert.ok(before.peers.length > 0);
        dns?.kill("SIGKILL");
        const out = agent();
        assert.match(out, /directory unreadable .*keeping the last verified one \(7 members\)/);
        assert.deepEqual(snapshot(), before);
        // As after a reboot during the outage: an empty interface and empty sets.
        for (const p of before.peers) exec(["wg", "set", "wg0", "peer", p.key, "remove"]);
        exec(["nft", "flush", "set", "inet", "vps_ha", "mesh_db"]);
        assert.deepEqual(peers(), []);
        agent();
        const after = snapshot();
        assert.deepEqual(after.sets, before.sets);
        // Peers come back with key and address; endpoints wait for DNS (or the peers' own handshakes).
        assert.deepEqual(after.peers.map((p) => [p.key, p.allowed, p.keepalive]), before.peers.map((p) => [p.key, p.allowed, p.keepalive]));
    });
});
