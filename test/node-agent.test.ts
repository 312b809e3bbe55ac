// The node agent's package (node-agent/vpsha) as nodes get it: each command a launcher of one
// module, each node the modules its tools import and no others, every shared module written once,
// and the launchers run by the lab's Debian 13 python3 over the shipped modules. Also keeps
// node-agent/tests/fixtures/records.json, which pytest verifies with vpsha.records, equal to what
// the program's own signer makes.
import { DESIRED_AGENT } from "../components/render/desired-agent";
import { ETCD_LEAVE_TOOL } from "../components/render/etcd-leave";
import { ETCD_PRUNE_TOOL } from "../components/render/etcd-prune";
import { ROLLOUT_VIEW } from "../components/render/rollout-view";
import { strict as assert } from "node:assert";
import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { directoryIndexName, directoryRecordName, directoryReleaseName, indexParts, signIndexPart, signNodeRecord, signReleaseRecord } from "../components/directory-records";
import { AFTER_PROMOTE_TOOL } from "../components/render/after-promote";
import { FilePart, renderCloudConfig } from "../components/render/cloud-config";
import { DB_RESTORE_TOOL } from "../components/render/db-restore";
import { DIRECTORY_AGENT } from "../components/render/directory-agent";
import { LEADER_AWAY_SCRIPT } from "../components/render/etcd-leader";
import { ETCD_READY_TOOL } from "../components/render/patroni";
import { PATRONI_DYNAMIC_TOOL } from "../components/render/patroni-dynamic";
import { PEER_WATCH } from "../components/render/peer-watch";
import { moduleClosure, moduleImports, PACKAGE_DIR, PACKAGE_SOURCE, PYTHON_LIB, renderLauncher, toolFiles } from "../components/render/python-lib";
import { SWITCHOVER_TOOL } from "../components/render/switchover";
import { POOLER_GUARD_TOOL } from "../components/render/pgbouncer";
import { RESTORE_CHECK_TOOL, SIGNALS_TOOL } from "../components/render/monitoring";
import { HCLOUD_USER_DATA_LIMIT, packUserData } from "../components/providers/user-data";
import { LAB_STACKS_DIR } from "../scripts/lab/program";
import { Evaluation } from "../scripts/lib/mock-program";
import { readStackFile } from "../scripts/lib/stack-file";
import { lintPython } from "../scripts/ruff";
import { evaluate } from "./helpers/program";
import { labRootfs, runInRootfs } from "./helpers/rootfs";
import { requireTools } from "./helpers/tools";
import { DB_ROLES_TOOL } from "../components/render/db-roles";

const FIXTURE = join(PACKAGE_SOURCE, "..", "tests", "fixtures", "records.json");

/** Every tool: its command and module, and whether it prints its usage line (exit 2) on a bad argument. */
const TOOLS = [
    { command: DIRECTORY_AGENT, module: "directory", roles: ["app", "haproxy", "db", "witness"], usage: undefined },
    { command: DESIRED_AGENT, module: "desired", roles: ["app", "haproxy", "db", "witness"], usage: undefined },
    { command: PEER_WATCH, module: "peer_watch", roles: ["app", "haproxy", "db", "witness"], usage: ["--bogus"] },
    { command: SWITCHOVER_TOOL, module: "switchover", roles: ["db"], usage: ["--bogus"] },
    { command: POOLER_GUARD_TOOL, module: "pooler_guard", roles: ["haproxy"], usage: ["--bogus"] },
    { command: ROLLOUT_VIEW, module: "rollout_view", roles: ["haproxy"], usage: ["--bogus"] },
    { command: AFTER_PROMOTE_TOOL, module: "after_promote", roles: ["db"], usage: [] },
    { command: PATRONI_DYNAMIC_TOOL, module: "patroni_config", roles: ["db"], usage: ["--bogus"] },
    { command: LEADER_AWAY_SCRIPT, module: "etcd_leader", roles: ["db"], usage: ["--patroni", "http://x", "--etcd", "http://y", "--every", "soon"] },
    // On voting members (every member of the prod stack), before Patroni starts.
    { command: ETCD_READY_TOOL, module: "etcd_ready", roles: ["db"], usage: ["--etcd", "http://x", "--wait", "soon"] },
    // Members with backups on (the prod stack's) bootstrap through the repository.
    { command: DB_RESTORE_TOOL, module: "db_restore", roles: ["db"], usage: ["--scope=prod"] },
    // The monitoring's own signals everywhere; the restore check on members (backups on).
    { command: SIGNALS_TOOL, module: "signals", roles: ["app", "haproxy", "db", "witness"], usage: undefined },
    { command: RESTORE_CHECK_TOOL, module: "restore_check", roles: ["db"], usage: undefined },
    // Only on a member that does not vote in etcd: none in the prod stack.
    { command: ETCD_LEAVE_TOOL, module: "etcd_leave", roles: [], usage: ["--name", "db-2"] },
    // On every voter (every member of the prod stack).
    { command: ETCD_PRUNE_TOOL, module: "etcd_prune", roles: ["db"], usage: ["--voters", "x"] },
    // On every database member: the secrets version's login roles.
    { command: DB_ROLES_TOOL, module: "db_roles", roles: ["db"], usage: ["--bogus"] },
];

type Files = { path: string; content: string; permissions: string }[];
const filesOf = (e: Evaluation, node: string) => (parse(e.config[node]) as { write_files: Files }).write_files;

/**
 * Records signed by components/directory-records.ts with a fixed test key (Ed25519 signatures
 * are deterministic), and what vpsha.records must read from each.
 */
function recordsFixture(): unknown {
    const seed = createHash("sha256").update("vps-ha records fixture (a test key, signs nothing real)").digest();
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
    const pem = key.export({ format: "pem", type: "pkcs8" }).toString();
    const raw = createPublicKey(key).export({ format: "der", type: "spki" });
    const domain = "prod.nodes.example.com";
    const wg = (n: string) => createHash("sha256").update(n).digest("base64");
    const nodes = [
        { name: "lb-1", role: "haproxy" as const, meshAddress: "10.77.0.47" },
        { name: "db-1", role: "db" as const, meshAddress: "10.77.0.5" },
        { name: "witness-1", role: "witness" as const, meshAddress: "10.77.0.90" },
    ];
    const records = nodes.map((n) => {
        const owner = directoryRecordName(`${n.name}.${domain}`);
        const text = signNodeRecord(owner, { ...n, wireguardKey: wg(n.name), dnsName: `${n.name}.${domain}` }, pem);
        return { owner, kind: "node", text, expect: { name: n.name, role: n.role, mesh: n.meshAddress, wg: wg(n.name), dns: `${n.name}.${domain}` } };
    });
    const index = directoryIndexName(domain);
    const members = Array.from({ length: 80 }, (_, i) => `app-${i + 1}-with-a-name-of-some-length`);
    const parts = indexParts(members, 1767225600000, false);
    assert.ok(parts.length > 1, "an index of more than one part");
    for (const p of parts) records.push({ owner: index, kind: "index", text: signIndexPart(index, p, pem), expect: { generation: p.generation, deliberate: p.deliberate, part: p.part, parts: p.parts, set: p.set, members: p.members } as never });
    const release = directoryReleaseName(domain);
    records.push(
        { owner: release, kind: "release", text: signReleaseRecord(release, { active: "ghcr.io/example/app:1.4.2", activePort: 8921 }, pem), expect: { active: "ghcr.io/example/app:1.4.2", aport: 8921, candidate: null, cport: null } as never },
        { owner: release, kind: "release", text: signReleaseRecord(release, { active: "ghcr.io/example/app:1.4.2", activePort: 8921, candidate: "ghcr.io/example/app@sha256:" + "ab".repeat(32), candidatePort: 8140 }, pem), expect: { candidate: "ghcr.io/example/app@sha256:" + "ab".repeat(32), cport: 8140 } as never },
    );
    return { publicKey: raw.subarray(raw.length - 32).toString("base64"), records };
}

describe("the node agent's package as nodes get it", function () {
    this.timeout(120_000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("node-agent/tests/fixtures/records.json holds what the program's signer makes", () => {
        const want = JSON.stringify(recordsFixture(), null, 1) + "\n";
        assert.equal(readFileSync(FIXTURE, "utf8"), want, `node-agent/tests/fixtures/records.json is out of date; it should read:\n${want}`);
    });

    it("a command is a launcher of its module's main, found where the node keeps the package", () => {
        assert.equal(renderLauncher("switchover"), `#!/usr/bin/python3\nimport sys\nsys.path.insert(0, "${PYTHON_LIB}")\nfrom vpsha.switchover import main\nsys.exit(main(sys.argv[1:]))\n`);
        assert.throws(() => renderLauncher("no_such_tool"), /no_such_tool/);
        assert.throws(() => renderLauncher("../x"), /not a module of vpsha: \.\.\/x/);
        assert.deepEqual(moduleClosure("switchover").sort(), ["records", "rest", "switchover"]);
        assert.deepEqual(moduleClosure("directory").sort(), ["directory", "records"]);
        assert.deepEqual(moduleImports("import json\nfrom vpsha.rest import request\nimport vpsha.records\n\ndef f():\n    from vpsha import a, b_c\n"), ["rest", "records", "a", "b_c"]);
        const files = toolFiles(SWITCHOVER_TOOL, "switchover");
        assert.deepEqual(files.map((f) => [f.path, f.permissions]), [
            [SWITCHOVER_TOOL, "0755"],
            ...["__init__", "switchover", "records", "rest"].map((m) => [`${PACKAGE_DIR}/${m}.py`, "0644"]),
        ]);
    });

    it("gives every node the tools of its role, each module it needs once, and no other", () => {
        const nodes = prod.outputs.nodes as { name: string; role: string }[];
        for (const node of nodes) {
            const files = filesOf(prod, node.name);
            const modules = files.filter((f) => f.path.startsWith(`${PACKAGE_DIR}/`)).map((f) => f.path.slice(PACKAGE_DIR.length + 1).replace(/\.py$/, ""));
            assert.equal(new Set(modules).size, modules.length, `${node.name}: a module written twice`);
            const tools = TOOLS.filter((t) => t.roles.includes(node.role));
            for (const t of tools) assert.equal(files.find((f) => f.path === t.command)?.content, renderLauncher(t.module), `${node.name}: ${t.command}`);
            for (const t of TOOLS.filter((x) => !x.roles.includes(node.role))) assert.equal(files.find((f) => f.path === t.command), undefined, `${node.name} has no ${t.command}`);
            // What the desired-state agent loads for a later generation too: its applier, the rollout gate.
            const needed = new Set(["__init__", ...moduleClosure("update"), ...moduleClosure("rollout"), ...tools.flatMap((t) => moduleClosure(t.module))]);
            assert.deepEqual([...modules].sort(), [...needed].sort(), `${node.name} (${node.role})`);
        }
        assert.ok(!filesOf(prod, "app-1").some((f) => f.path.endsWith("/switchover.py")), "app nodes have no switchover");
    });

    it("keeps every node's packed user data under Hetzner's 32 KiB, on the prod stack and the lab's witness stack", async () => {
        const witness = await evaluate(readStackFile(join(LAB_STACKS_DIR, "witness.yaml")));
        for (const e of [prod, witness]) {
            for (const [node, userData] of Object.entries(e.userData)) {
                const packed = packUserData(userData).length;
                assert.ok(packed < HCLOUD_USER_DATA_LIMIT, `${node}: ${packed} bytes packed`);
            }
        }
    });

    it("writes a file two parts of a node's boot agree on once, and refuses two that differ, naming the path", () => {
        const boot = (files: FilePart[][]) => renderCloudConfig({ hostname: "n-1", fqdn: "n-1.example.com", sshAuthorizedKeys: [], sshEnabled: true, parts: files.map((f) => ({ files: f })) });
        const shared = { path: "/usr/local/lib/x.py", content: "x = 1\n", permissions: "0644" };
        const written = parse(boot([[shared], [{ ...shared }]])).write_files as FilePart[];
        assert.deepEqual(written.map((f) => f.path), [shared.path]);
        assert.throws(() => boot([[shared], [{ ...shared, content: "x = 2\n" }]]), /two parts of n-1's cloud-config write \/usr\/local\/lib\/x\.py, differently/);
        assert.throws(() => boot([[shared], [{ ...shared, permissions: "0755" }]]), /differently/);
    });

    it("lint:python finds nothing in node-agent/, and does find what its settings forbid", () => {
        assert.deepEqual(lintPython(), []);
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-ruff-"));
        try {
            mkdirSync(join(dir, "pkg"));
            writeFileSync(join(dir, "pyproject.toml"), readFileSync(join(PACKAGE_SOURCE, "..", "pyproject.toml")));
            writeFileSync(join(dir, "pkg", "bad.py"), `import sys\nimport os\n\nx = ${"1 + ".repeat(40)}1\n\n\ndef f(l):\n    return l\n`);
            const found = lintPython(dir).map((f) => `${f.file.split("/").slice(-2).join("/")}:${f.line}:${f.code}`);
            assert.deepEqual(found.sort(), ["pkg/bad.py:1:F401", "pkg/bad.py:1:I001", "pkg/bad.py:2:F401", "pkg/bad.py:4:E501", "pkg/bad.py:7:E741"].sort());
            writeFileSync(join(dir, "pyproject.toml"), "[tool.ruff]\nline-lenght = 100\n");
            assert.throws(() => lintPython(dir), /pyproject\.toml \[tool\.ruff\]: .*unknown field `line-lenght`/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    describe("run by the lab's Debian 13 python3 @rootfs", function () {
        this.timeout(900_000);
        let rootfs: string;
        before(async function () {
            requireTools(this, ["debootstrap", "unshare", "chroot"], true);
            rootfs = await labRootfs(prod);
        });

        for (const node of ["app-1", "lb-1", "db-1"]) {
            it(`${node}: every tool's launcher starts over the shipped modules`, () => {
                const files = filesOf(prod, node);
                const python = Object.fromEntries(files.filter((f) => f.path.startsWith(`${PACKAGE_DIR}/`) || TOOLS.some((t) => t.command === f.path)).map((f) => [f.path, f.content]));
                const tools = TOOLS.filter((t) => python[t.command] !== undefined);
                assert.ok(tools.length >= 2);
                // Every module the node has imports on the node's own Python, from where the launchers look.
                const modules = Object.keys(python).filter((p) => p.startsWith(PACKAGE_DIR)).map((p) => p.slice(PACKAGE_DIR.length + 1, -3)).filter((m) => m !== "__init__");
                const imported = runInRootfs(rootfs, python, ["python3", "-c", `import sys; sys.path.insert(0, "${PYTHON_LIB}")\n${modules.map((m) => `import vpsha.${m}`).join("\n")}\nprint("ok")`]);
                assert.equal(imported.status, 0, imported.stderr);
                for (const t of tools.filter((x) => x.usage)) {
                    const r = runInRootfs(rootfs, python, ["python3", t.command, ...(t.usage as string[])]);
                    assert.equal(r.status, 2, `${t.command}: ${r.stdout}${r.stderr}`);
                    assert.match(r.stderr, new RegExp(`^usage: (vps-ha-)?${t.command.split("/").pop()} `), `${t.command} prints its usage line`);
                }
            });
        }
    });
});
