// vps-ha-patroni-config, the rendered tool itself, against a stand-in for Patroni's REST API
// that behaves as Patroni's /config does (GET the cluster's configuration, PATCH with basic
// authentication, a key set to null is removed). The lab runs it against real Patroni.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, IncomingMessage, Server } from "node:http";
import { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { patroniDynamicFiles, PATRONI_DYNAMIC_SETTINGS, PATRONI_DYNAMIC_TOOL, PATRONI_DYNAMIC_UNIT, patroniDynamicSettings } from "../components/render/patroni-dynamic";
import { patroniDynamicConfig, PG_BIN_DIR, SynchronousSpec } from "../components/render/patroni";
import { AFTER_PROMOTE_TOOL, afterPromoteFiles } from "../components/render/after-promote";
import { requireTools } from "./helpers/tools";
import { moduleSource, PACKAGE_DIR, PYTHON_LIB, renderLauncher } from "../components/render/python-lib";
import { SWITCHOVER_TOOL, switchoverFiles } from "../components/render/switchover";

type Json = Record<string, unknown>;

/** Patroni's patch_config: dictionaries merge, null removes the key. */
function patchConfig(config: Json, patch: Json): Json {
    const out: Json = { ...config };
    for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete out[k];
        else if (typeof v === "object" && !Array.isArray(v) && typeof out[k] === "object" && out[k] !== null) out[k] = patchConfig(out[k] as Json, v as Json);
        else out[k] = v;
    }
    return out;
}

class FakePatroni {
    config: Json;
    patches: Json[] = [];
    /** GETs answered 503 before the cluster "exists". */
    notReadyFor = 0;
    private server: Server;

    constructor(config: Json, readonly password = "rest-secret") {
        this.config = config;
        this.server = createServer((req, res) => {
            void this.handle(req).then(([status, body]) => {
                res.writeHead(status, { "Content-Type": "application/json" });
                res.end(JSON.stringify(body));
            });
        });
    }

    private async handle(req: IncomingMessage): Promise<[number, unknown]> {
        if (req.url !== "/config") return [404, {}];
        if (req.method === "GET") return this.notReadyFor-- > 0 ? [503, { error: "no cluster yet" }] : [200, this.config];
        if (req.method !== "PATCH") return [405, {}];
        if (req.headers.authorization !== `Basic ${Buffer.from(`patroni:${this.password}`).toString("base64")}`) return [401, { error: "no" }];
        let body = "";
        for await (const chunk of req) body += chunk;
        const patch = JSON.parse(body) as Json;
        this.patches.push(patch);
        this.config = patchConfig(this.config, patch);
        return [200, this.config];
    }

    /** Its URL, listening from the first call on. */
    async url(): Promise<string> {
        if (!this.server.listening) await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
        return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    close(): Promise<void> {
        return new Promise((r) => this.server.close(() => r()));
    }
}

/**
 * The tool's files as a member gets them, under a scratch directory, its launcher pointed at the
 * package there (on a node it looks in PYTHON_LIB).
 */
function installTool(dir: string): string {
    for (const f of patroniDynamicFiles("10.77.0.5", sync(1)).filter((x) => x.path.startsWith(PACKAGE_DIR) || x.path === PATRONI_DYNAMIC_TOOL)) {
        const content = f.path === PATRONI_DYNAMIC_TOOL ? f.content.replace(`"${PYTHON_LIB}"`, JSON.stringify(join(dir, PYTHON_LIB))) : f.content;
        mkdirSync(dirname(join(dir, f.path)), { recursive: true });
        writeFileSync(join(dir, f.path), content);
    }
    return join(dir, PATRONI_DYNAMIC_TOOL);
}

function runTool(settings: Json, restPassword = "rest-secret"): Promise<{ code: number; out: string }> {
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-patroni-config-"));
    const tool = installTool(dir);
    const patroniYml = join(dir, "patroni.yml");
    writeFileSync(patroniYml, `restapi:\n  authentication:\n    username: patroni\n    password: ${restPassword}\n`);
    writeFileSync(join(dir, "settings.json"), JSON.stringify({ ...settings, patroniConfig: patroniYml }));
    return new Promise((resolve) => {
        // Debian's python3 (python3-yaml), as on a member.
        const p = spawn("/usr/bin/python3", [tool, "--settings", join(dir, "settings.json")]);
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
        p.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code: code ?? -1, out });
        });
    });
}

const sync = (nodeCount: number, strict = true, mode: SynchronousSpec["mode"] = "quorum"): SynchronousSpec => ({ mode, nodeCount, strict });

describe("vps-ha-patroni-config: the cluster's dynamic configuration kept as the stack file says", function () {
    this.timeout(60_000);
    let patroni: FakePatroni;
    const settingsFor = async (s: SynchronousSpec, waitSeconds = 10): Promise<Json> => ({ ...patroniDynamicSettings("10.77.0.5", s), patroniUrl: await patroni.url(), waitSeconds, retrySeconds: 0.2 });

    beforeEach(function () {
        requireTools(this, ["/usr/bin/python3", "cloud-init"]); // cloud-init brings python3-yaml, as patroni does on a node
    });
    afterEach(async () => patroni?.close());

    it("is rendered for every member with its settings and a unit that waits for Patroni", () => {
        const files = patroniDynamicFiles("10.77.0.5", sync(2, false));
        const settings = JSON.parse(files.find((f) => f.path === PATRONI_DYNAMIC_SETTINGS)?.content as string) as Json;
        assert.equal(settings.patroniUrl, "http://10.77.0.5:8008");
        assert.deepEqual(settings.desired, patroniDynamicConfig(sync(2, false)));
        assert.doesNotMatch(JSON.stringify(settings), /"(username|password)"/, "credentials stay in patroni.yml");
        assert.match(files.find((f) => f.path.endsWith(PATRONI_DYNAMIC_UNIT))?.content as string, /After=vps-ha-patroni\.service/);
    });

    it("shares its REST client with the switchover tool and the after-promotion hook: one module, shipped with each", () => {
        const tools = [
            { command: PATRONI_DYNAMIC_TOOL, module: "patroni_config", files: patroniDynamicFiles("10.77.0.5", sync(1)) },
            { command: AFTER_PROMOTE_TOOL, module: "after_promote", files: afterPromoteFiles(PG_BIN_DIR) },
            { command: SWITCHOVER_TOOL, module: "switchover", files: switchoverFiles({ patroniUrl: "", restUser: "", restPassword: "", poolerPort: 0, poolerAdminUser: "", poolerAdminPassword: "", database: "", haproxyStatsPort: 0, haproxyPrimaryListen: "" }) },
        ];
        for (const t of tools) {
            assert.equal(t.files.find((f) => f.path === t.command)?.content, renderLauncher(t.module));
            assert.ok(t.files.some((f) => f.path === `${PACKAGE_DIR}/rest.py`), `${t.command} ships with vpsha/rest.py`);
            const source = moduleSource(t.module);
            assert.match(source, /^from vpsha\.rest import .*\brequest\b/m);
            assert.doesNotMatch(source, /urlopen\(req/, "no REST client of its own");
        }
        // Both tools that read patroni.yml for the REST API's password read it the one way.
        for (const t of [tools[0], tools[1]]) {
            assert.match(moduleSource(t.module), /\brest_auth\(/);
            assert.doesNotMatch(moduleSource(t.module), /\["restapi"\]\["authentication"\]/, "no credentials lookup of its own");
        }
    });

    it("brings a cluster made for k = 1 to what a witness needs: k = 2, not strict, a short wal_sender_timeout", async () => {
        patroni = new FakePatroni(patroniDynamicConfig(sync(1)));
        const r = await runTool(await settingsFor(sync(2, false)));
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(patroni.patches, [{ synchronous_node_count: 2, synchronous_mode_strict: false, postgresql: { parameters: { wal_sender_timeout: "3s" } } }]);
        assert.deepEqual(patroni.config, patroniDynamicConfig(sync(2, false)));
        // A second member booting finds nothing to change and writes nothing.
        const again = await runTool(await settingsFor(sync(2, false)));
        assert.equal(again.code, 0, again.out);
        assert.match(again.out, /as the stack file says/);
        assert.equal(patroni.patches.length, 1);
    });

    it("removes what the stack no longer sets, and takes numbers given as strings for the same value", async () => {
        const old = patroniDynamicConfig(sync(2, false)) as unknown as Json;
        (old.postgresql as { parameters: Json }).parameters.max_wal_senders = "10";
        patroni = new FakePatroni(old);
        const r = await runTool(await settingsFor(sync(1)));
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(patroni.patches, [{ synchronous_node_count: 1, synchronous_mode_strict: true, postgresql: { parameters: { wal_sender_timeout: null } } }]);
        // Synchronous replication turned off: Patroni's keys for it go.
        const off = await runTool(await settingsFor(sync(1, true, "off")));
        assert.equal(off.code, 0, off.out);
        assert.deepEqual(patroni.patches[1], { synchronous_mode: null, synchronous_mode_strict: null, synchronous_node_count: null });
        assert.equal("synchronous_mode" in patroni.config, false);
    });

    it("waits for a cluster that is still bootstrapping, and gives up after its bound", async () => {
        patroni = new FakePatroni(patroniDynamicConfig(sync(1)));
        patroni.notReadyFor = 2;
        const r = await runTool(await settingsFor(sync(2, false)));
        assert.equal(r.code, 0, r.out);
        assert.equal(patroni.patches.length, 1);
        patroni.notReadyFor = 1000;
        const never = await runTool(await settingsFor(sync(2, false), 1));
        assert.equal(never.code, 1);
        assert.match(never.out, /gave up: .*\/config answered 503/);
    });

    it("fails, changing nothing, when Patroni refuses its credentials", async () => {
        patroni = new FakePatroni(patroniDynamicConfig(sync(1)));
        const r = await runTool(await settingsFor(sync(2, false)), "wrong");
        assert.equal(r.code, 1);
        assert.match(r.out, /Patroni refused: 401/);
        assert.deepEqual(patroni.config, patroniDynamicConfig(sync(1)));
    });
});
