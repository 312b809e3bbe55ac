// The lab's stand-in for Cloudflare's edge in front of the HAProxy pair, run in the lab's edge
// namespace. It does what the program's load balancer asks of Cloudflare, with the monitor's
// own settings: checks each pool's origin (method, path, expected codes, Host header, timeout,
// retries, every interval), sends each request to the first healthy pool in order (steering
// "off") or a random healthy one ("random"), uses the fallback pool when none is healthy, and,
// with failover across pools, retries a request whose connection to an origin failed on the
// next pool at once (Cloudflare's zero-downtime failover for 521-523). Visitors speak plain HTTP
// to it (Cloudflare's own edge certificate is not what the lab tests); it speaks HTTPS to the
// origins and verifies their Origin CA certificate, as SSL "Full (strict)" does, presenting the
// stack's origin-pull certificate (Authenticated Origin Pulls) on every connection. The monitor
// presents none: Cloudflare's monitors do so only when set to simulate the zone (probe_zone),
// which the program does not ask, so the origins must answer the monitor path without one.
//   usage: edge-server.ts --config FILE    (JSON: EdgeConfig)
import { appendFileSync, readFileSync } from "node:fs";
import { createServer, IncomingMessage, ServerResponse } from "node:http";
import { Agent, request } from "node:https";
import { parseArgs } from "../../lib/args";
import { EdgeConfig, EdgeOrigin, expectedCodeMatches } from "./spec";

/** Cloudflare gives up connecting to an origin after 15 s (then 522). */
const CONNECT_TIMEOUT_MS = 15_000;
/** And waits up to 100 s for the response (then 524). */
const RESPONSE_TIMEOUT_MS = 100_000;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

interface OriginState extends EdgeOrigin {
    healthy: boolean;
}

function main(): void {
    const a = parseArgs(process.argv.slice(2), { values: ["config"] });
    const config = JSON.parse(readFileSync(a.values.config ?? "", "utf8")) as EdgeConfig;
    const ca = readFileSync(config.originCaFile, "utf8");
    const pull = { cert: readFileSync(config.originPullCertFile, "utf8"), key: readFileSync(config.originPullKeyFile, "utf8") };
    const agent = new Agent({ keepAlive: true, maxSockets: 64, ca, ...pull });
    // Origins start healthy, as a new Cloudflare pool does until its first check says otherwise.
    const origins: OriginState[] = config.origins.map((o) => ({ ...o, healthy: true }));
    const event = (e: Record<string, unknown>) => appendFileSync(config.eventLog, JSON.stringify({ at: Date.now(), ...e }) + "\n");

    // ---- the monitor --------------------------------------------------------------------------
    const m = config.monitor;
    // A monitor opens a fresh connection for every check (no keep-alive).
    const checkAgent = new Agent({ keepAlive: false, ca, rejectUnauthorized: !m.allowInsecure });
    const checkOnce = (o: OriginState) => new Promise<boolean>((resolve) => {
        const req = request({ host: o.address, port: m.port, method: m.method, path: m.path, agent: checkAgent, servername: m.host, headers: { host: m.host }, timeout: m.timeoutSeconds * 1000 }, (res) => {
            res.resume();
            resolve(expectedCodeMatches(m.expectedCodes, res.statusCode ?? 0));
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", () => resolve(false));
        req.end();
    });
    const check = async (o: OriginState) => {
        let ok = false;
        for (let i = 0; i <= m.retries && !ok; i++) ok = await checkOnce(o);
        if (ok !== o.healthy) {
            o.healthy = ok;
            event({ origin: o.name, healthy: ok });
        }
    };
    for (const o of origins) {
        void check(o);
        setInterval(() => void check(o), m.intervalSeconds * 1000);
    }

    // ---- steering -----------------------------------------------------------------------------
    const pick = (exclude: Set<string>): OriginState | undefined => {
        const healthy = origins.filter((o) => o.healthy && !exclude.has(o.name));
        if (healthy.length === 0) {
            const fallback = origins.find((o) => o.name === config.fallback);
            return fallback && !exclude.has(fallback.name) ? fallback : undefined;
        }
        return config.steering === "random" ? healthy[Math.floor(Math.random() * healthy.length)] : healthy[0];
    };

    const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse, tried: Set<string>, staleRetried = false) => {
        const origin = pick(tried);
        if (!origin) {
            res.writeHead(tried.size ? 521 : 530, { "content-type": "text/plain" }).end("no healthy origin\n");
            return;
        }
        tried.add(origin.name);
        let connected = false;
        const up = request({
            host: origin.address, port: 443, method: req.method, path: req.url, agent, servername: config.hostname,
            headers: { ...req.headers, host: config.hostname, "x-forwarded-for": req.socket.remoteAddress ?? "" },
        }, (upRes) => {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
        });
        const connectTimer = setTimeout(() => up.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })), CONNECT_TIMEOUT_MS);
        up.on("socket", (s) => {
            const done = () => {
                connected = true;
                clearTimeout(connectTimer);
            };
            if (!s.connecting) done();
            else s.once("secureConnect", done);
        });
        up.setTimeout(RESPONSE_TIMEOUT_MS, () => up.destroy(new Error("response timeout")));
        up.on("error", (err: NodeJS.ErrnoException) => {
            clearTimeout(connectTimer);
            if (res.headersSent) return res.destroy();
            // A kept-alive connection the origin closed just as the request went out (a reload
            // retiring its idle connections): no byte of an answer came, so an idempotent request
            // is sent again on a fresh connection, as HTTP clients (and Cloudflare) do.
            if (up.reusedSocket && !staleRetried && IDEMPOTENT.has(req.method ?? "")) {
                tried.delete(origin.name);
                event({ origin: origin.name, retried: `stale connection: ${err.code ?? err.message}` });
                return forward(req, body, res, tried, true);
            }
            // 521 refused / 522 timed out / 523 unreachable: the connection never carried the request.
            if (!connected && config.failoverAcrossPools && pick(tried)) {
                event({ origin: origin.name, retried: err.code ?? err.message });
                return forward(req, body, res, tried);
            }
            const status = err.code === "ECONNREFUSED" ? 521 : err.code === "ETIMEDOUT" ? 522 : !connected ? 523 : 520;
            res.writeHead(status, { "content-type": "text/plain" }).end(`origin ${origin.name}: ${err.message}\n`);
        });
        up.end(body);
    };

    const server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => forward(req, Buffer.concat(chunks), res, new Set()));
    });
    server.keepAliveTimeout = 60_000;
    server.listen(config.listen.port, config.listen.address, () => event({ listening: `${config.listen.address}:${config.listen.port}` }));
}

main();
