// The wait `pulumi up` runs between enabling Authenticated Origin Pulls and telling the HAProxy
// nodes to require the certificate: the very script the program creates, run by sh against a
// stand-in for Cloudflare's API (a real HTTP server on loopback) that reports each hostname's
// association pending, then active, or never.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderOriginPullWait } from "../components/render/origin-pull-wait";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate, ofType } from "./helpers/program";

const ZONE = "0123456789abcdef0123456789abcdef";
const TOKEN = "test-token-123";

/** Answers GET .../hostnames/<h>: pending for the first `pending[h]` asks, then active; logs each ask. */
const STAND_IN = `
import http.server, json, sys
pending = json.loads(sys.argv[2])
seen = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.path.rsplit("/", 1)[-1]
        seen[host] = seen.get(host, 0) + 1
        with open(sys.argv[3], "a") as log:
            log.write(json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}) + "\\n")
        status = "pending_deployment" if pending.get(host, 0) < 0 or seen[host] <= pending.get(host, 0) else "active"
        body = json.dumps({"success": True, "result": {"hostname": host, "cert_id": "c1", "cert_status": "active", "status": status, "enabled": True}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
`;

async function withStandIn<T>(pending: Record<string, number>, run: (api: string, log: string) => Promise<T> | T): Promise<T> {
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-aop-wait-"));
    const log = join(dir, "asks.jsonl");
    writeFileSync(log, "");
    writeFileSync(join(dir, "api.py"), STAND_IN);
    const server = spawn("python3", [join(dir, "api.py"), "0", JSON.stringify(pending), log], { stdio: ["ignore", "pipe", "inherit"] });
    try {
        const port = await new Promise<string>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("the stand-in API did not start within 10 s")), 10000);
            server.stdout?.once("data", (d: Buffer) => {
                clearTimeout(timer);
                resolve(d.toString().trim());
            });
        });
        return await run(`http://127.0.0.1:${port}/client/v4`, log);
    } finally {
        if (server.pid) process.kill(server.pid);
        rmSync(dir, { recursive: true, force: true });
    }
}

interface ScriptRun {
    status: number | null;
    stdout: string;
    stderr: string;
    seconds: number;
    /** What the stand-in API was asked (none without one). */
    asks: { path: string; auth: string }[];
}

/** The script run by sh against `api`, killed at `timeoutMs`. */
function runScript(script: string, api: string, log?: string, timeoutMs = 30000): Promise<ScriptRun> {
    const started = Date.now();
    return new Promise((resolve) => {
        const child = spawn("sh", ["-c", script], { env: { ...process.env, VPS_HA_CF_API: api, CLOUDFLARE_API_TOKEN: TOKEN } });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("close", (status) => {
            clearTimeout(timer);
            const asks = log ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { path: string; auth: string }) : [];
            resolve({ status, stdout, stderr, seconds: (Date.now() - started) / 1000, asks });
        });
    });
}

describe("origin pull wait (the script pulumi up runs, against a stand-in API)", function () {
    this.timeout(120000);
    // The three runs mostly wait on the script's one-second rounds: they run at once.
    let waited: ScriptRun;
    let gaveUp: ScriptRun;
    let unreachable: ScriptRun;
    before(async () => {
        const hostnames = ["app.example.com", "candidate.example.com"];
        [waited, gaveUp, unreachable] = await Promise.all([
            withStandIn({ "candidate.example.com": 2 }, (api, log) => runScript(renderOriginPullWait({ zoneId: ZONE, hostnames, timeoutSeconds: 20, everySeconds: 1 }), api, log)),
            withStandIn({ "candidate.example.com": -1 }, (api, log) => runScript(renderOriginPullWait({ zoneId: ZONE, hostnames, timeoutSeconds: 2, everySeconds: 1 }), api, log)),
            runScript(renderOriginPullWait({ zoneId: ZONE, hostnames: ["app.example.com"], timeoutSeconds: 1, everySeconds: 1 }), "http://127.0.0.1:9/client/v4"),
        ]);
    });

    it("waits until every hostname's association is active, asking with the token", () => {
        const r = waited;
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /origin pulls: active for every hostname/);
        assert.ok(r.asks.every((a) => a.auth === `Bearer ${TOKEN}`));
        assert.ok(r.asks.every((a) => a.path.startsWith(`/client/v4/zones/${ZONE}/origin_tls_client_auth/hostnames/`)));
        // Pending twice, active the third time: three rounds, about two seconds.
        assert.equal(r.asks.filter((a) => a.path.endsWith("/candidate.example.com")).length, 3);
        assert.ok(r.seconds >= 1.5 && r.seconds < 10, `took ${r.seconds} s`);
    });

    it("gives up at its bound, naming each hostname still pending and what to do", () => {
        const r = gaveUp;
        assert.equal(r.status, 1, r.stdout + r.stderr);
        // The script counts whole seconds (date +%s): its bound ends up to one second early.
        assert.ok(r.seconds >= 1 && r.seconds < 10, `took ${r.seconds} s`);
        assert.match(r.stderr, /^origin pulls: not active within 2 s; candidate\.example\.com: "status": ?"pending_deployment"$/m);
        assert.doesNotMatch(r.stderr, /app\.example\.com/);
        assert.match(r.stderr, /run pulumi up again once Cloudflare shows it active/);
    });

    it("an unreachable API is a failure, never taken for active", () => {
        const r = unreachable;
        assert.equal(r.status, 1);
        assert.match(r.stderr, /app\.example\.com: no answer \(curl: /);
    });

    it("refuses a zone id that is not 32 hex digits (it goes into the script)", () => {
        assert.throws(() => renderOriginPullWait({ zoneId: "zone'; rm -rf /", hostnames: ["a.example.com"], timeoutSeconds: 1, everySeconds: 1 }), /zone id "zone'; rm -rf \/" is not 32 hex digits/);
    });

    describe("in the program (mock runtime)", () => {
        let prod: Evaluation;
        before(async () => {
            prod = await evaluate();
        });

        it("runs after both associations, for both hostnames, and again when the certificate or a hostname changes", () => {
            const wait = ofType(prod, "command:local:Command").find((r) => r.name === "origin-pull-wait");
            assert.ok(wait, "the program creates the wait");
            assert.match(String(wait.inputs.create), /ask 'app\.example\.com'\n {2}ask 'candidate\.example\.com'\n/);
            assert.deepEqual([...(prod.options[wait.name]?.dependsOn ?? [])].sort(), ["origin-pull-app", "origin-pull-candidate", "origin-pull-upload"]);
            const upload = ofType(prod, "cloudflare:index/authenticatedOriginPullsHostnameCertificate:AuthenticatedOriginPullsHostnameCertificate")[0];
            assert.deepEqual(wait.inputs.triggers, [upload.id, "app.example.com", "candidate.example.com"]);
        });

        it("the HAProxy nodes' published desired state (which asks for the certificate) waits for it; no other node's does", () => {
            const records = ofType(prod, "cloudflare:index/dnsRecord:DnsRecord").filter((r) => /-desired-chunk-\d+$/.test(r.name));
            assert.ok(records.some((r) => r.name.startsWith("lb-")) && records.some((r) => r.name.startsWith("app-")));
            for (const r of records) {
                const waits = (prod.options[r.name]?.dependsOn ?? []).includes("origin-pull-wait");
                assert.equal(waits, r.name.startsWith("lb-"), r.name);
            }
        });
    });
});
