// Desired-state documents: what the program builds (components/desired-state-records.ts), the
// component that publishes it under the mock runtime, and the node's reader
// (node-agent/vpsha/desired.py) run for real by Debian 13's python3 from the lab's root
// filesystem against the lab's DNS server: it applies only what is signed for it, sealed to it
// and newer than what it applied, and keeps its state through a DNS outage.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, createPrivateKey, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { moduleClosure } from "../components/render/python-lib";
import { ed25519PublicKey, TXT_CONTENT_LIMIT, txtContent, txtStrings } from "../components/directory-records";
import { DesiredState } from "../components/desired-state";
import {
    buildDesiredRecords, BuildInput, canonicalContent, CHUNK_DATA_CHARS, chunksFor, contentDigest, DesiredContent, desiredChunkName, desiredHeadName,
    GENERATION_COMMAND, nextGeneration,
} from "../components/desired-state-records";
import { clampPrivateKey, wireguardPublicKey } from "../components/keys";
import { dnsServerCommand, waitServed, writeZone } from "../scripts/lab/dns";
import { LabDnsRecord } from "../scripts/lab/dns-zone";
import { MOCK_GENERATION_EPOCH_MS, mockGeneration } from "../scripts/lib/mock-program";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { requireTools } from "./helpers/tools";

const ROOT = join(__dirname, "..");
const FIXTURE = join(ROOT, "node-agent/tests/fixtures/desired.json");
const DNS_NAME = "db-1.prod.nodes.example.com";

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const bytesOf = (label: string) => createHash("sha256").update(label).digest();
const ed25519Pem = (label: string) =>
    createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, bytesOf(label)]), format: "der", type: "pkcs8" }).export({ format: "pem", type: "pkcs8" }).toString();
const wgPrivate = (label: string) => clampPrivateKey(bytesOf(label).toString("base64"));

const keysFile = (text: string): DesiredContent => ({ files: [{ path: "/root/.ssh/authorized_keys", mode: "0600", owner: "root:root", content: text }] });

describe("desired-state documents (format)", () => {
    const pem = ed25519Pem("desired test signing key");
    const recipient = wireguardPublicKey(wgPrivate("desired test db-1"));
    const base: BuildInput = { stack: "prod", node: "db-1", generation: 1767225600000, content: keysFile("ssh-ed25519 AAAAC3Nza admin\n"), recipient, signingKeyPem: pem, seed: bytesOf("seed"), chunks: 1 };

    it("builds the same records from the same document, and other records from another", () => {
        const a = buildDesiredRecords(base);
        assert.deepEqual(buildDesiredRecords(base), a, "Ed25519 and the seeded seal are deterministic: an unchanged stack republishes the same records");
        assert.match(a.head, /^v=vhd1 node=db-1 gen=1767225600000 chunks=1 digest=[0-9a-f]{64} sig=[A-Za-z0-9+/]{86}==$/);
        assert.match(a.chunks[0], /^v=vhd1 gen=1767225600000 part=1\/1 data=[A-Za-z0-9+/]+=*$/);
        assert.notDeepEqual(buildDesiredRecords({ ...base, content: keysFile("ssh-ed25519 AAAAC3Nzb admin\n") }), a);
        assert.notDeepEqual(buildDesiredRecords({ ...base, generation: base.generation + 1 }), a);
        // Sealed: the content is nowhere in the records.
        assert.doesNotMatch(JSON.stringify(a), /AAAAC3Nza|authorized_keys/);
        assert.equal(desiredHeadName(DNS_NAME), "_desired.db-1.prod.nodes.example.com");
        assert.equal(desiredChunkName(DNS_NAME, 3), "_desired-3.db-1.prod.nodes.example.com");
    });

    it("cuts a large document into chunks that each fit Cloudflare's TXT limit, as chunksFor planned", () => {
        // Incompressible content: the worst case for the chunk count.
        const content: DesiredContent = { files: [{ path: "/etc/vps-ha/big", mode: "0644", owner: "root:root", content: randomBytes(9000).toString("base64") }] };
        const chunks = chunksFor("prod", "db-1", content);
        const r = buildDesiredRecords({ ...base, content, chunks });
        assert.ok(chunks >= 7 && chunks <= 9, `${chunks} chunks for 12 kB of base64`);
        for (const c of r.chunks) assert.ok(txtContent(c).length <= TXT_CONTENT_LIMIT, `${txtContent(c).length} characters`);
        assert.ok(txtContent(r.head).length <= TXT_CONTENT_LIMIT);
        assert.equal(CHUNK_DATA_CHARS % 4, 0);
        assert.throws(() => buildDesiredRecords({ ...base, content, chunks: 2 }), /desired state for db-1: chunks is 2; the document needs \d+ chunk records/);
    });

    it("refuses bad input naming the key path, the value and what is allowed", () => {
        const bad = (c: DesiredContent, why: RegExp) => assert.throws(() => canonicalContent("db-1", c), why);
        const f = keysFile("x").files[0];
        bad({ files: [{ ...f, path: "/etc/../shadow" }] }, /desired state for db-1: files\[0\]\.path is "\/etc\/\.\.\/shadow"; expected an absolute path/);
        bad({ files: [{ ...f, path: "etc/x" }] }, /files\[0\]\.path is "etc\/x"/);
        bad({ files: [{ ...f, path: "/etc/x;rm -rf /" }] }, /files\[0\]\.path/);
        bad({ files: [{ ...f, mode: "644" }] }, /files\[0\]\.mode is "644"; expected an octal mode like "0644"/);
        bad({ files: [{ ...f, owner: "root" }] }, /files\[0\]\.owner is "root"; expected "user:group"/);
        bad({ files: [f, { ...f }] }, /files is "\/root\/\.ssh\/authorized_keys"; each path may appear once/);
        bad({ files: [f], restarts: [{ unit: "ssh; reboot", paths: [f.path] }] }, /restarts\[0\]\.unit is "ssh; reboot"; expected a systemd unit name/);
        bad({ files: [f], restarts: [{ unit: "ssh.service", paths: ["/etc/other"] }] }, /restarts\[0\]\.paths\[0\] is "\/etc\/other"; expected one of the document's file paths/);
        assert.throws(() => buildDesiredRecords({ ...base, recipient: "not-a-key" }), /desired state for db-1: recipient is "not-a-key"; expected a WireGuard public key/);
        assert.throws(() => buildDesiredRecords({ ...base, generation: 0 }), /generation is 0; expected a positive integer/);
    });

    it("the generation command, run for real, moves forward from the previous generation even when the clock is behind", () => {
        const run = (previous?: string) => {
            const r = spawnSync("sh", ["-c", GENERATION_COMMAND], { encoding: "utf8", timeout: 20000, env: { ...process.env, ...(previous ? { PULUMI_COMMAND_STDOUT: previous } : {}) } });
            assert.equal(r.status, 0, r.stderr);
            return Number(r.stdout);
        };
        const before = Date.now();
        const created = run();
        assert.ok(created >= before && created <= Date.now(), `create gives the time in ms: ${created}`);
        const ahead = Date.now() + 3_600_000; // the last run's machine was an hour ahead
        assert.equal(run(String(ahead)), ahead + 1);
        const later = run(String(before - 1000));
        assert.ok(later >= before, "a previous generation behind the clock gives the clock");
        assert.equal(nextGeneration(ahead, before), ahead + 1);
        assert.equal(nextGeneration(undefined, before), before);
    });

    it("the pytest fixture is what the builder makes (VPSHA_UPDATE_FIXTURES=1 rewrites it)", () => {
        const fixture = JSON.stringify(pytestFixture(), null, 1) + "\n";
        if (process.env.VPSHA_UPDATE_FIXTURES === "1") writeFileSync(FIXTURE, fixture);
        // Byte for byte but for what the compressor makes (another zlib may pack the same document
        // differently): the format, fields, keys and contents must be the builder's.
        const shape = (text: string) => text.replace(/data=[A-Za-z0-9+/=]*/g, "data=…").replace(/digest=[0-9a-f]{64} sig=[A-Za-z0-9+/=]{88}/g, "digest=… sig=…");
        assert.equal(shape(readFileSync(FIXTURE, "utf8")), shape(fixture), "node-agent/tests/fixtures/desired.json is stale: rerun with VPSHA_UPDATE_FIXTURES=1");
    });
});

/** Records for the reader's unit tests: fixed keys, two generations, and the wrong kinds. */
function pytestFixture() {
    const pem = ed25519Pem("desired fixture signing key");
    const own = wgPrivate("desired fixture db-1");
    const other = wgPrivate("desired fixture db-2");
    const records = (generation: number, content: DesiredContent, o: Partial<BuildInput> = {}) => {
        const chunks = chunksFor("prod", "db-1", content);
        return buildDesiredRecords({ stack: "prod", node: "db-1", generation, content, recipient: wireguardPublicKey(own), signingKeyPem: pem, seed: bytesOf("fixture seed"), chunks, ...o });
    };
    const first = keysFile("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst admin@example\n");
    const second: DesiredContent = {
        files: [
            ...keysFile("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISecond admin@example\n").files,
            // Incompressible, so this generation takes several chunks.
            { path: "/etc/vps-ha/example.conf", mode: "0640", owner: "root:root", content: randomLike(5000) + "\n" },
        ],
        restarts: [{ unit: "example.service", paths: ["/etc/vps-ha/example.conf"] }],
    };
    return {
        comment: "Made by test/desired-state.test.ts from fixed keys; do not edit.",
        stack: "prod", node: "db-1", dnsName: DNS_NAME,
        publicKey: ed25519PublicKey(pem),
        otherPublicKey: ed25519PublicKey(ed25519Pem("desired fixture other key")),
        wireguardPrivateKey: own,
        otherWireguardPrivateKey: other,
        generations: {
            first: { generation: 1767225600000, content: canonicalContent("db-1", first), ...records(1767225600000, first) },
            second: { generation: 1767225700000, content: canonicalContent("db-1", second), ...records(1767225700000, second) },
            sealedToOther: records(1767225800000, first, { recipient: wireguardPublicKey(other) }),
            signedByOther: records(1767225800000, first, { signingKeyPem: ed25519Pem("desired fixture other key") }),
            otherNode: buildDesiredRecords({ stack: "prod", node: "db-2", generation: 1767225800000, content: first, recipient: wireguardPublicKey(own), signingKeyPem: pem, seed: bytesOf("fixture seed"), chunks: 1 }),
        },
    };
}

/** Deterministic text that does not compress (hex of a hash chain). */
function randomLike(chars: number): string {
    let out = "";
    for (let i = 0; out.length < chars; i++) out += bytesOf(`fill ${i}`).toString("hex");
    return out.slice(0, chars);
}

/** The value of an Output, under the mock runtime. */
const valueOf = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply((v) => resolve(v)));

interface Registered { type: string; name: string; inputs: Record<string, unknown>; parent?: string }

/** Runs `program` under Pulumi's mock runtime; the generation command as mock-program plays it. */
async function underMocks(stack: string, program: () => pulumi.Output<unknown>): Promise<{ resources: Registered[]; value: unknown }> {
    const resources: Registered[] = [];
    await pulumi.runtime.setMocks({
        newResource(args) {
            const inputs = JSON.parse(JSON.stringify(args.inputs, (_k, v) => (v && typeof v === "object" && "value" in v && Object.keys(v).length <= 2 && "4dabf18193072939515e22adb298388d" in v ? v.value : v))) as Record<string, unknown>;
            resources.push({ type: args.type, name: args.name, inputs });
            let state: Record<string, unknown> = { ...inputs };
            if (args.type === "random:index/randomBytes:RandomBytes") state = { ...inputs, base64: bytesOf(args.name).toString("base64") };
            if (args.type === "command:local:Command") state = { ...inputs, stdout: mockGeneration(stack, args.name, String((inputs.environment as Record<string, string>).VPSHA_DESIRED_DIGEST)) };
            return { id: `${args.name}-id`, state };
        },
        call: () => ({}),
    }, "vps-ha", stack, false);
    const value = await valueOf(program());
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5)); // every registration lands
    return { resources, value };
}

describe("DesiredState component (mock runtime)", () => {
    const pem = ed25519Pem("desired component signing key");
    const recipient = wireguardPublicKey(wgPrivate("desired component db-1"));
    const secret = "pw-" + bytesOf("component secret").toString("hex");
    const content = (extra: string): DesiredContent => ({ files: [{ path: "/etc/vps-ha/secret.conf", mode: "0600", owner: "root:root", content: `password=${secret}\n${extra}` }] });
    const publish = (stack: string, c: DesiredContent) => underMocks(stack, () => {
        const d = new DesiredState("desired-db-1", {
            stack, node: "db-1", dnsName: DNS_NAME, zoneId: "zone", wireguardKey: recipient, signingKey: pulumi.secret(pem),
            content: pulumi.secret(c), chunks: chunksFor(stack, "db-1", c),
        });
        return d.generation;
    });

    it("publishes a head and its chunks as TXT records beside the node's name, sealed, with a generation that moves only when the content does", async () => {
        const stack = `desiredtest${process.pid}`;
        const first = await publish(stack, content(""));
        const dnsRecords = (e: { resources: Registered[] }) => e.resources.filter((r) => r.type === "cloudflare:index/dnsRecord:DnsRecord").sort((a, b) => a.name.localeCompare(b.name));
        const records = dnsRecords(first);
        assert.deepEqual(records.map((r) => r.inputs.name), [desiredChunkName(DNS_NAME, 1), desiredHeadName(DNS_NAME)]);
        assert.deepEqual(records.map((r) => [r.inputs.type, r.inputs.ttl, r.inputs.proxied]), [["TXT", 60, false], ["TXT", 60, false]]);
        assert.ok(records.every((r) => r.name.startsWith("desired-db-1-")), "named from the component");
        assert.doesNotMatch(JSON.stringify(records), new RegExp(secret), "the secret leaves the program sealed only");
        assert.equal(first.value, MOCK_GENERATION_EPOCH_MS);
        const head = txtStrings(String(records[1].inputs.content)).join("");
        assert.match(head, new RegExp(`^v=vhd1 node=db-1 gen=${MOCK_GENERATION_EPOCH_MS} chunks=1 `));
        const digest = (first.resources.find((r) => r.type === "command:local:Command")?.inputs.environment as Record<string, string>).VPSHA_DESIRED_DIGEST;
        assert.equal(digest, contentDigest(bytesOf("desired-db-1-seal-seed"), stack, "db-1", content("")));
        assert.doesNotMatch(digest, new RegExp(secret));

        const again = await publish(stack, content(""));
        assert.equal(again.value, first.value, "unchanged content keeps its generation");
        assert.deepEqual(dnsRecords(again).map((r) => r.inputs.content), records.map((r) => r.inputs.content), "and its records");
        const changed = await publish(stack, content("port=6433\n"));
        assert.equal(changed.value, MOCK_GENERATION_EPOCH_MS + 1, "changed content gets the next generation");
    });
});

describe("desired-state reader, run for real (Debian 13's python3, the lab's DNS server) @rootfs", function () {
    this.timeout(600000);
    let rootfs = "";
    let dns: ChildProcess | undefined;
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-desired-"));
    const zone = join(dir, "zone.json");
    const port = 20000 + (process.pid % 20000);
    const pem = ed25519Pem(`desired live signing ${process.pid}`);
    const own = clampPrivateKey(randomBytes(32).toString("base64"));
    const other = clampPrivateKey(randomBytes(32).toString("base64"));
    const seed = randomBytes(32);
    // Everything the reader touches lives in one host directory, bound over the root filesystem's /mnt.
    const mnt = join(dir, "mnt");

    const records = (generation: number, c: DesiredContent, o: Partial<BuildInput> = {}): LabDnsRecord[] => {
        const chunks = chunksFor("prod", "db-1", c);
        const r = buildDesiredRecords({ stack: "prod", node: "db-1", generation, content: c, recipient: wireguardPublicKey(own), signingKeyPem: pem, seed, chunks, ...o });
        return [
            { name: desiredHeadName(DNS_NAME), type: "TXT", ttl: 60, data: txtStrings(txtContent(r.head)) },
            ...r.chunks.map((c, i) => ({ name: desiredChunkName(DNS_NAME, i + 1), type: "TXT" as const, ttl: 60, data: txtStrings(txtContent(c)) })),
        ];
    };
    const publish = async (recs: LabDnsRecord[]) => waitServed(zone, writeZone(zone, recs), 10000);
    const reader = () => {
        const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
        const script = `mount --bind ${q(mnt)} ${q(join(rootfs, "mnt"))} && exec chroot ${q(rootfs)} env PYTHONPATH=/mnt/agent python3 -m vpsha.desired --once --config /mnt/desired.json`;
        const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], { encoding: "utf8", timeout: 60000 });
        const status = JSON.parse(readFileSync(join(mnt, "status.json"), "utf8")) as { generation: number | null; published: number | null; applied: boolean; lastError: string | null; staleSeconds: number | null; changed: string[] };
        return { code: r.status, out: r.stdout + r.stderr, status };
    };
    const keysOnNode = () => readFileSync(join(mnt, "root/root/.ssh/authorized_keys"), "utf8");
    const restartsLog = () => (existsSync(join(mnt, "restarts.log")) ? readFileSync(join(mnt, "restarts.log"), "utf8") : "");

    before(async function () {
        requireTools(this, ["unshare", "chroot", "debootstrap"], true);
        rootfs = await labRootfs(await evaluate());
        mkdirSync(join(mnt, "agent/vpsha"), { recursive: true });
        // The agent and the modules it loads, as a node gets them (a later document's applier and what it imports).
        for (const m of ["__init__", ...moduleClosure("update")]) writeFileSync(join(mnt, `agent/vpsha/${m}.py`), readFileSync(join(ROOT, `node-agent/vpsha/${m}.py`)));
        writeFileSync(join(mnt, "wg0.conf"), `[Interface]\nAddress = 10.77.0.9/16\nListenPort = 51820\nPrivateKey = ${own}\n`, { mode: 0o600 });
        // Stands in for systemctl: records what the reader asks to restart.
        writeFileSync(join(mnt, "systemctl"), "#!/bin/sh\necho \"$@\" >> /mnt/restarts.log\n", { mode: 0o755 });
        writeFileSync(join(mnt, "desired.json"), JSON.stringify({
            stack: "prod", node: "db-1", dnsName: DNS_NAME, publicKey: ed25519PublicKey(pem), wireguardConfig: "/mnt/wg0.conf",
            stateDir: "/mnt/state", status: "/mnt/status.json", nameservers: ["127.0.0.1"], port, root: "/mnt/root", systemctl: ["/mnt/systemctl"],
        }));
        writeZone(zone, []);
        const [cmd, ...args] = dnsServerCommand("127.0.0.1", port, zone);
        dns = spawn(cmd, args, { stdio: "ignore" });
        await waitServed(zone, 1, 15000);
    });

    after(() => {
        if (dns?.pid) dns.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
    });

    const G1 = 1767225600000;
    const first = keysFile("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst admin@example\n");
    const secondKeys = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISecond admin@example\n";
    // Incompressible, several chunks: the lab's server answers it over TCP (UDP truncates).
    const big = randomBytes(6000).toString("base64");
    const second: DesiredContent = {
        files: [...keysFile(secondKeys).files, { path: "/etc/vps-ha/example.conf", mode: "0640", owner: "root:root", content: big }],
        restarts: [{ unit: "example.service", paths: ["/etc/vps-ha/example.conf"] }],
    };

    it("nothing published yet: changes nothing and says so (exit 3)", async () => {
        const r = reader();
        assert.equal(r.code, 3, r.out);
        assert.equal(r.status.generation, null);
        assert.match(String(r.status.lastError), /holds 0 TXT records/);
    });

    it("applies a document signed for it and sealed to it; the same generation again is nothing to do", async () => {
        await publish(records(G1, first));
        let r = reader();
        assert.equal(r.code, 0, r.out);
        assert.deepEqual({ ...r.status, changed: r.status.changed }, { ...r.status, generation: G1, applied: true, lastError: null, staleSeconds: 0, changed: ["/root/.ssh/authorized_keys"] });
        assert.equal(keysOnNode(), first.files[0].content);
        r = reader();
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(r.status.changed, [], "an equal generation writes nothing");
    });

    it("refuses a document signed with another key, sealed to another node, or for another node", async () => {
        const g = G1 + 50;
        const cases: [LabDnsRecord[], RegExp][] = [
            [records(g, keysFile("x\n"), { signingKeyPem: ed25519Pem("someone else") }), /bad signature on the head/],
            [records(g, keysFile("x\n"), { recipient: wireguardPublicKey(other) }), /does not open with this node's key/],
            [records(g, keysFile("x\n"), { node: "db-2" }), /the head is for node db-2/],
        ];
        for (const [recs, why] of cases) {
            await publish(recs);
            const r = reader();
            assert.equal(r.code, 2, r.out);
            assert.match(String(r.status.lastError), why);
            assert.equal(r.status.generation, G1, "keeps the applied generation");
            assert.equal(keysOnNode(), first.files[0].content);
        }
    });

    it("never mixes generations: a chunk of another generation is not used", async () => {
        const newer = records(G1 + 100, second);
        const older = records(G1 + 99, second);
        assert.ok(newer.length > 2, `the second document takes ${newer.length - 1} chunks`);
        // A full chunk's answer is past what UDP carries (1,232 bytes with EDNS): the reader must ask over TCP.
        assert.ok(newer.slice(1, -1).every((r) => (r.data as string[]).join("").length > 1232));
        // The new head with one chunk still of the previous publication (a cache lagging).
        await publish([newer[0], older[1], ...newer.slice(2)]);
        const r = reader();
        assert.equal(r.code, 2, r.out);
        assert.match(String(r.status.lastError), /chunk 1 is of generation \d+, the head's is \d+ \(an update under way\)/);
        assert.equal(keysOnNode(), first.files[0].content);
    });

    it("applies a newer generation over TCP-sized answers, restarting the unit whose file changed", async () => {
        await publish(records(G1 + 100, second));
        const r = reader();
        assert.equal(r.code, 0, r.out);
        assert.equal(r.status.generation, G1 + 100);
        assert.deepEqual(r.status.changed, ["/etc/vps-ha/example.conf", "/root/.ssh/authorized_keys"]);
        assert.equal(keysOnNode(), secondKeys);
        assert.equal(readFileSync(join(mnt, "root/etc/vps-ha/example.conf"), "utf8"), big);
        assert.equal(restartsLog(), "restart example.service\n");
    });

    it("refuses an older generation after a newer one", async () => {
        await publish(records(G1, first));
        const r = reader();
        assert.equal(r.code, 2, r.out);
        assert.match(String(r.status.lastError), new RegExp(`generation ${G1} in DNS is older than the applied ${G1 + 100}: refused`));
        assert.equal(keysOnNode(), secondKeys);
    });

    it("DNS down: keeps the applied state and reports how stale it is", async () => {
        await publish(records(G1 + 100, second));
        assert.equal(reader().code, 0);
        dns?.kill("SIGKILL");
        await new Promise((r) => setTimeout(r, 2200));
        const r = reader();
        assert.equal(r.code, 2, r.out);
        assert.match(String(r.status.lastError), /DNS lookup of _desired\.db-1\.prod\.nodes\.example\.com failed/);
        assert.equal(r.status.generation, G1 + 100);
        assert.equal(r.status.applied, false);
        assert.ok((r.status.staleSeconds ?? 0) >= 2, `staleSeconds ${r.status.staleSeconds}`);
        assert.equal(keysOnNode(), secondKeys);
    });
});
