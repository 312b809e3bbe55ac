// The HAProxy pair's rendered config and origin certificate, checked by Debian 13's own HAProxy 3.0.
import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { Evaluation } from "../scripts/lib/mock-program";
import { HAPROXY_CFG, ORIGIN_PEM, ORIGIN_PULL_CA, ROLLOUT_BEARER_FILE, ROLLOUT_TOKEN_FILE, SERVER_STATE_FILE } from "../components/render/haproxy";
import { DirectoryHaproxy } from "../components/render/directory-agent";
import { evaluate } from "./helpers/program";
import { labRootfs, runInRootfs } from "./helpers/rootfs";
import { startEdge } from "./helpers/haproxy-node";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";

function filesOf(userData: string): Record<string, string> {
    return Object.fromEntries((parse(userData).write_files as { path: string; content: string }[]).map((f) => [f.path, f.content]));
}

/** The files haproxy.cfg names besides itself (the certificate, the origin-pull CA, the rollout token's pattern files), as the node holds them. */
function named(files: Record<string, string>, pem = files[ORIGIN_PEM]): Record<string, string> {
    return { [ORIGIN_PEM]: pem, [ORIGIN_PULL_CA]: files[ORIGIN_PULL_CA], [ROLLOUT_TOKEN_FILE]: files[ROLLOUT_TOKEN_FILE], [ROLLOUT_BEARER_FILE]: files[ROLLOUT_BEARER_FILE] };
}

/** haproxy.cfg with two app servers per colour (at `address`) between the agent's markers, as the directory agent writes them. */
function withServers(files: Record<string, string>, address = (i: number) => `10.77.0.${i + 10}`): string {
    const agent = (JSON.parse(files["/etc/vps-ha/directory.d/haproxy.json"]) as { haproxy: DirectoryHaproxy }).haproxy;
    let filled = files[HAPROXY_CFG];
    for (const b of agent.blocks) {
        const port = b.release === "candidate" ? "8140" : "8921";
        const lines = [1, 2].map((i) => b.line.replace("{name}", `${b.role}-${i}`).replace("{address}", address(i)).replaceAll("{port}", port));
        filled = filled.replace(`${b.begin}\n`, `${b.begin}\n${lines.join("\n")}\n`);
    }
    for (const b of agent.releaseBlocks) {
        filled = filled.replace(`${b.begin}\n`, `${b.begin}\n${b.lines.map((l) => l.replace("{aport}", "8921").replace("{cport}", "8140")).join("\n")}\n`);
    }
    return filled;
}

describe("HAProxy pair config", function () {
    this.timeout(900000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("routes 5000 to the Patroni primary and 5001 to replicas on the mesh address only", () => {
        for (const lb of ["lb-1", "lb-2"]) {
            const cfg = filesOf(prod.config[lb])[HAPROXY_CFG];
            const mesh = (prod.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === lb)?.meshAddress;
            assert.match(cfg, new RegExp(`bind ${mesh}:5000\\n`));
            assert.match(cfg, new RegExp(`bind ${mesh}:5001\\n`));
            assert.match(cfg, /option httpchk OPTIONS \/primary/);
            assert.match(cfg, /on-marked-down shutdown-sessions/);
            assert.doesNotMatch(cfg, /bind (0\.0\.0\.0|\*):50/);
            // No node is named: the directory agent keeps the server lines between these markers (the one
            // server here is this node's own rollout view, on 127.0.0.1).
            assert.doesNotMatch(cfg.replace(/^    server view 127\.0\.0\.1:2383$/m, ""), /^\s*server /m);
            for (const n of ["app-1", "app-2", "db-1", "db-2", "db-3"]) assert.ok(!cfg.includes(n), `${lb}'s haproxy.cfg names ${n}`);
            const agent = (JSON.parse(filesOf(prod.config[lb])["/etc/vps-ha/directory.d/haproxy.json"]) as { haproxy: DirectoryHaproxy }).haproxy;
            assert.deepEqual(agent.blocks.map((b) => [b.id, b.role, b.line.trim(), b.release]), [
                ["app", "app", "server {name}-{port} {address}:{port} check", "active"],
                ["app-candidate", "app", "server {name}-{port} {address}:{port} check", "candidate"],
                ["db-primary", "db", "server {name} {address}:5432 check port 8008", undefined],
                ["db-replicas", "db", "server {name} {address}:5432 check port 8008", undefined],
            ]);
            // The candidate hostname's requests go to the candidate's backend; both colours are checked alike.
            assert.match(cfg, /acl candidate_host req\.hdr\(host\),field\(1,:\) -i candidate\.example\.com\n/);
            assert.match(cfg, /use_backend app-candidate if candidate_host\n\s+default_backend app\n/);
            const backend = (name: string) => (new RegExp(`\\nbackend ${name}\\n([\\s\\S]*?)# vps-ha directory`).exec(cfg) ?? [])[1];
            assert.equal(backend("app"), backend("app-candidate"));
            for (const b of agent.releaseBlocks) assert.ok(cfg.includes(`${b.begin}\n${b.end}\n`), `${lb}: markers of ${b.id}`);
            for (const b of agent.blocks) assert.ok(cfg.includes(`${b.begin}\n${b.end}\n`), `${lb}: markers of ${b.id}`);
            // Health state survives the agent's reloads.
            assert.match(cfg, new RegExp(`server-state-file ${SERVER_STATE_FILE}`));
            assert.match(cfg, /load-server-state-from-file global/);
        }
        assert.equal(filesOf(prod.config["db-1"])[HAPROXY_CFG], undefined);
    });

    it("every rendered haproxy.cfg passes haproxy -c (Debian 13, HAProxy 3.0) @rootfs", async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot"], true);
        const rootfs = await labRootfs(prod);
        for (const lb of ["lb-1", "lb-2"]) {
            const files = filesOf(prod.config[lb]);
            // As booted (no servers yet), and with servers between the markers as the agent writes them.
            const filled = withServers(files);
            assert.match(filled, /server app-1-8921 10\.77\.0\.11:8921 check\n/);
            assert.match(filled, /lf-string "%\[nbsrv\(app-candidate\)\] 8140" if \{ path \/vps-ha\/ready \} candidate_host\n/);
            for (const cfg of [files[HAPROXY_CFG], filled]) {
                const r = runInRootfs(rootfs, { [HAPROXY_CFG]: cfg, ...named(files) }, ["haproxy", "-c", "-V", "-f", HAPROXY_CFG]);
                assert.equal(r.status, 0, `${lb}: ${r.stdout}${r.stderr}`);
                assert.match(r.stdout + r.stderr, /Configuration file is valid/);
            }
        }
        const version = runInRootfs(rootfs, {}, ["haproxy", "-v"]);
        assert.match(version.stdout, /HAProxy version 3\.0\./);
        // And the check does catch a broken file.
        const broken = runInRootfs(rootfs, { [HAPROXY_CFG]: filesOf(prod.config["lb-1"])[HAPROXY_CFG].replace("balance roundrobin", "balance sideways"), ...named(filesOf(prod.config["lb-1"])) }, ["haproxy", "-c", "-V", "-f", HAPROXY_CFG]);
        assert.notEqual(broken.status, 0);
        // It loads the origin certificate too: the Origin CA certificate with a key that is not its own is refused.
        const files = filesOf(prod.config["lb-1"]);
        const otherKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "sec1" }).toString();
        const wrongPem = files[ORIGIN_PEM].replace(/-----BEGIN EC PRIVATE KEY-----[\s\S]+-----END EC PRIVATE KEY-----\n/, otherKey);
        assert.notEqual(wrongPem, files[ORIGIN_PEM]);
        const mismatched = runInRootfs(rootfs, { [HAPROXY_CFG]: files[HAPROXY_CFG], ...named(files, wrongPem) }, ["haproxy", "-c", "-V", "-f", HAPROXY_CFG]);
        assert.notEqual(mismatched.status, 0, mismatched.stdout + mismatched.stderr);
    });

    it("serves only clients presenting the origin-pull certificate (the monitor path excepted), redirects on the visitor's scheme as Cloudflare reports it, sends HSTS on HTTPS answers only, never redirects the monitor path (real HAProxy, curl) @rootfs", async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "nsenter", "ip"], true);
        const rootfs = await labRootfs(prod);
        const lb = "lb-1";
        const files = filesOf(prod.config[lb]);
        const mesh = (prod.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === lb)?.meshAddress as string;
        const sb = await Sandbox.open(`vhtest-https${process.pid}`, rootfs, [{ name: lb, address: mesh }]);
        try {
            const exec = (argv: string[]) => {
                const r = sb.exec(lb, argv, { timeoutMs: 20000 });
                assert.equal(r.status, 0, `${argv.join(" ")}: ${r.stdout}${r.stderr}`);
                return r.stdout;
            };
            // The app: a static server on this node's mesh address, at the active image's port (8921).
            sb.write(lb, "/srv/app/page", "the app's page\n");
            sb.write(lb, "/srv/app/healthz", "ok\n");
            sb.start(lb, ["python3", "-m", "http.server", "8921", "--bind", mesh, "--directory", "/srv/app"], join(sb.dir, "app.log"));
            sb.write(lb, HAPROXY_CFG, withServers(files, () => mesh));
            for (const [path, content] of Object.entries(named(files))) sb.write(lb, path, content, "0600");
            // What Cloudflare presents: the certificate and key the program uploaded to it.
            const upload = prod.resources.find((r) => r.type === "cloudflare:index/authenticatedOriginPullsHostnameCertificate:AuthenticatedOriginPullsHostnameCertificate");
            assert.ok(upload, "the program uploads an origin-pull certificate");
            sb.write(lb, "/root/pull.crt", String(upload.inputs.certificate), "0600");
            sb.write(lb, "/root/pull.key", String(upload.inputs.privateKey), "0600");
            // Another Cloudflare account's certificate (or any other): self-signed, not the stack's.
            exec(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=someone else", "-days", "1", "-keyout", "/root/other.key", "-out", "/root/other.crt"]);
            const PULL = ["--cert", "/root/pull.crt", "--key", "/root/pull.key"];
            exec(["mkdir", "-p", "/run/haproxy", "/var/lib/haproxy"]);
            const check = sb.exec(lb, ["haproxy", "-c", "-f", HAPROXY_CFG]);
            assert.equal(check.status, 0, check.stdout + check.stderr);
            sb.start(lb, ["haproxy", "-W", "-f", HAPROXY_CFG, "-p", "/run/haproxy.pid"], join(sb.dir, "haproxy.log"));

            /** One request the way Cloudflare's edge makes it: to this origin, with the visitor's hostname (SNI and Host). */
            const ask = (scheme: "http" | "https", host: string, path: string, headers: Record<string, string>, cert: string[] = PULL) => {
                const port = scheme === "https" ? 443 : 80;
                const argv = ["curl", "-sk", "--max-time", "5", "-o", "/dev/null", "--resolve", `${host}:${port}:${mesh}`, ...(scheme === "https" ? cert : []),
                    "-w", "%{http_code}\\n%header{location}\\n%header{strict-transport-security}",
                    ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), `${scheme}://${host}${path}`];
                const [status, location, hsts] = exec(argv).split("\n");
                return { status: Number(status), location, hsts };
            };
            // Bounded wait for HAProxy to take connections with an app server up.
            let ready = false;
            for (let i = 0; i < 50 && !ready; i++) {
                ready = sb.exec(lb, ["curl", "-sk", "--max-time", "1", "-o", "/dev/null", "-f", ...PULL, "--resolve", `app.example.com:443:${mesh}`, "https://app.example.com/page"]).status === 0;
                if (!ready) await new Promise((r) => setTimeout(r, 100));
            }
            const log = join(sb.dir, "haproxy.log");
            assert.ok(ready, `HAProxy did not serve within 5 s: ${existsSync(log) ? readFileSync(log, "utf8") : "no log"}`);

            // Authenticated Origin Pulls: without the certificate only the monitor path answers
            // (the monitors need not present it), anything else is refused; a wrong certificate
            // fails the handshake; plain HTTP (port 80) carries no certificate, so the same.
            const visitor = { "CF-Visitor": '{"scheme":"https"}' };
            // (No candidate image runs here: its hostname's requests get past the check to an empty backend, 503.)
            for (const [host, served] of [["app.example.com", 200], ["candidate.example.com", 503]] as const) {
                assert.equal(ask("https", host, "/page", visitor).status, served, `${host} with the certificate`);
                assert.equal(ask("https", host, "/page", visitor, []).status, 403, `${host} without a certificate`);
                assert.equal(ask("https", host, "/vps-ha/ready", visitor, []).status, 403, `${host} readiness without a certificate`);
                assert.equal(ask("http", host, "/page", {}).status, 403, `${host} over port 80`);
                assert.equal(ask("https", host, "/healthz", visitor, []).status, 200, `${host} monitor path without a certificate`);
                const other = sb.exec(lb, ["curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "--cert", "/root/other.crt", "--key", "/root/other.key", "--resolve", `${host}:443:${mesh}`, `https://${host}/page`], { timeoutMs: 20000 });
                assert.notEqual(other.status, 0, `${host} with another certificate: ${other.stdout}${other.stderr}`);
                assert.equal(other.stdout, "000", `${host} with another certificate: no HTTP answer at all`);
            }

            const HSTS = "max-age=31536000";
            const visitorHttp = { "CF-Visitor": '{"scheme":"http"}', "X-Forwarded-Proto": "http" };
            const visitorHttps = { "CF-Visitor": '{"scheme":"https"}', "X-Forwarded-Proto": "https" };
            // A visitor who used plain HTTP is sent to HTTPS, same host, path and query, though Cloudflare reached us over TLS.
            assert.deepEqual(ask("https", "app.example.com", "/page?x=1&y=2", visitorHttp), { status: 301, location: "https://app.example.com/page?x=1&y=2", hsts: "" });
            assert.deepEqual(ask("https", "candidate.example.com", "/page", visitorHttp), { status: 301, location: "https://candidate.example.com/page", hsts: "" });
            assert.equal(ask("https", "app.example.com", "/page", { "CF-Visitor": '{ "scheme": "http" }' }).status, 301, "spaces in the JSON");
            assert.equal(ask("https", "app.example.com", "/page", { "CF-Visitor": '{ "scheme" : "https" }' }).hsts, HSTS, "spaces in the JSON");
            // CF-Visitor decides; X-Forwarded-Proto alone is read only when CF-Visitor is absent.
            assert.equal(ask("https", "app.example.com", "/page", { "CF-Visitor": '{"scheme":"https"}', "X-Forwarded-Proto": "http" }).status, 200);
            assert.deepEqual(ask("https", "app.example.com", "/page", { "X-Forwarded-Proto": "http" }), { status: 301, location: "https://app.example.com/page", hsts: "" });
            // A visitor on HTTPS is served, with HSTS (no includeSubDomains: the stack does not own the zone).
            assert.deepEqual(ask("https", "app.example.com", "/page", visitorHttps), { status: 200, location: "", hsts: HSTS });
            assert.deepEqual(ask("https", "app.example.com", "/page", { "X-Forwarded-Proto": "https" }), { status: 200, location: "", hsts: HSTS });
            // The monitor path answers 200 whatever scheme the check says it used, and is not redirected.
            for (const scheme of ["http", "https"] as const) {
                for (const headers of [visitorHttp, visitorHttps]) assert.equal(ask(scheme, "app.example.com", "/healthz", headers).status, 200, `${scheme} ${JSON.stringify(headers)}`);
            }
            // A request with the certificate and no Cloudflare header is answered as it is, without HSTS.
            assert.deepEqual(ask("https", "app.example.com", "/page", {}), { status: 200, location: "", hsts: "" });

            // The lab's edge, as the lab runs it (in the namespace, from the program's load
            // balancer), in front of this HAProxy: visitors get through, for it presents the
            // origin-pull certificate; its monitor (which presents none) holds the origin healthy.
            const { child: edge, eventLog } = startEdge(sb, lb, prod, "app.example.com", mesh, 8080);
            let edgeErr = "";
            edge.stderr?.on("data", (d: Buffer) => (edgeErr += d.toString()));
            try {
                let viaEdge = "";
                for (let i = 0; i < 100 && viaEdge !== "200"; i++) {
                    viaEdge = sb.exec(lb, ["curl", "-s", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: app.example.com", `http://${mesh}:8080/page`]).stdout;
                    if (viaEdge !== "200") await new Promise((r) => setTimeout(r, 100));
                }
                assert.equal(viaEdge, "200", `through the lab's edge: ${edgeErr}`);
                // Several monitor rounds: the origin never went unhealthy.
                await new Promise((r) => setTimeout(r, 2500));
                const events = readFileSync(eventLog, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { healthy?: boolean });
                assert.ok(!events.some((e) => e.healthy === false), `the edge's monitor marked the origin down: ${JSON.stringify(events)}`);
            } finally {
                if (edge.pid) process.kill(edge.pid);
            }

            // A reload (as a rollout does) under a client holding an idle keep-alive connection, as
            // Cloudflare's edge does: its next request on it is still answered (without
            // idle-close-on-response the old process closes the connection under it).
            const keepAlive = [
                "import http.client, os, signal, ssl, sys, time",
                "t = ssl.create_default_context(); t.check_hostname = False; t.verify_mode = ssl.CERT_NONE",
                "t.load_cert_chain('/root/pull.crt', '/root/pull.key')",
                `c = http.client.HTTPSConnection(${JSON.stringify(mesh)}, 443, timeout=5, context=t)`,
                "c.request('GET', '/page', headers={'Host': 'app.example.com'}); r = c.getresponse(); r.read(); print(r.status)",
                "os.kill(int(open('/run/haproxy.pid').read().split()[0]), signal.SIGUSR2); time.sleep(1)",
                "c.request('GET', '/page', headers={'Host': 'app.example.com'}); r = c.getresponse(); r.read(); print(r.status)",
            ].join("\n");
            assert.deepEqual(exec(["python3", "-c", keepAlive]).trim().split("\n"), ["200", "200"]);
        } finally {
            await sb.close();
        }
    });
});

