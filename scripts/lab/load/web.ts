// Bounded HTTP load through the web path: HTTPS GETs to the HAProxy nodes' public addresses
// (what Cloudflare's edge does), from the lab's own side of the bridge. Every request is
// recorded with its time, status and which release answered, so a drill can count failed
// requests and see when traffic moved.
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { appendFileSync, writeFileSync } from "node:fs";
import { originPullTls } from "../edge";

export interface WebTarget {
    name: string;
    /** Scheme, address and port: https://<HAProxy node> or http://<lab edge>. */
    url: string;
}

export interface RequestRecord {
    start: number;
    end: number;
    /** The HAProxy node asked. */
    target: string;
    status?: number;
    ok: boolean;
    /** First line of the body: the lab's stand-in app names its image there. */
    served?: string;
    error?: string;
}

export interface WebLoadOptions {
    targets: WebTarget[];
    /** Host header and TLS server name: the app's public hostname. */
    hostname: string;
    path?: string;
    /** Parallel clients, each sending one request after another. */
    clients?: number;
    maxSeconds: number;
    maxRequests: number;
    /** Per-request limit, as a browser or Cloudflare would give up. */
    timeoutMs?: number;
    /** Each client starts a request at most this often: steady load that leaves the CPU to the stack. */
    everyMs?: number;
    /** JSON-lines file that gets every request as it completes. */
    log?: string;
}

export function getOnce(agents: { http: HttpAgent; https: Agent }, target: WebTarget, hostname: string, path: string, timeoutMs: number): Promise<RequestRecord> {
    const start = Date.now();
    const url = new URL(target.url);
    const tls = url.protocol === "https:";
    const send = tls ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
        const done = (r: Omit<RequestRecord, "start" | "end" | "target">) => resolve({ start, end: Date.now(), target: target.name, ...r });
        const options = { host: url.hostname, port: Number(url.port || (tls ? 443 : 80)), path, method: "GET", headers: { host: hostname }, timeout: timeoutMs };
        const req = send(tls ? { ...options, agent: agents.https, servername: hostname } : { ...options, agent: agents.http }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => {
                if (body.length < 4096) body += d;
            });
            res.on("end", () => {
                const status = res.statusCode ?? 0;
                done({ status, ok: status >= 200 && status < 400, served: body.split("\n")[0] });
            });
            res.on("error", (e) => done({ status: res.statusCode, ok: false, error: e.message }));
        });
        req.on("timeout", () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
        req.on("error", (e) => done({ ok: false, error: e.message }));
        req.end();
    });
}

export class WebLoad {
    readonly records: RequestRecord[] = [];
    private stopped = false;
    private readonly loops: Promise<void>[] = [];
    // The origin certificate is the program's own (self-signed until the front door issues one):
    // Cloudflare checks it in "Full (strict)"; the lab's client checks only that TLS works. It
    // presents the origin-pull certificate, as Cloudflare does, or HAProxy refuses it.
    private readonly agents = { https: new Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false, ...originPullTls() }), http: new HttpAgent({ keepAlive: true, maxSockets: 16 }) };

    constructor(private readonly opts: WebLoadOptions) {
        if (opts.targets.length === 0) throw new Error("web load: no HAProxy node to send requests to");
    }

    start(): this {
        const { targets, maxSeconds, maxRequests } = this.opts;
        const deadline = Date.now() + maxSeconds * 1000;
        const log = this.opts.log;
        if (log) writeFileSync(log, "");
        let sent = 0;
        for (let c = 0; c < (this.opts.clients ?? 2); c++) {
            this.loops.push((async () => {
                for (let i = c; !this.stopped && Date.now() < deadline && sent < maxRequests; i++) {
                    sent++;
                    const t = Date.now();
                    const target = targets[i % targets.length];
                    const record = await getOnce(this.agents, target, this.opts.hostname, this.opts.path ?? "/", this.opts.timeoutMs ?? 10_000);
                    this.records.push(record);
                    if (log) appendFileSync(log, JSON.stringify(record) + "\n");
                    const wait = (this.opts.everyMs ?? 0) - (Date.now() - t);
                    if (wait > 0 && !this.stopped) await new Promise((r) => setTimeout(r, wait));
                }
            })());
        }
        return this;
    }

    async stop(): Promise<RequestRecord[]> {
        this.stopped = true;
        await Promise.all(this.loops);
        this.agents.https.destroy();
        this.agents.http.destroy();
        return [...this.records].sort((a, b) => a.start - b.start);
    }
}

export interface WebAnalysis {
    requests: number;
    failed: number;
    /** Failed requests, first few, for the notes. */
    failures: string[];
    /** Seconds from `since` to the last failure (0 when none failed). */
    errorWindowSeconds: number;
    /** Which releases answered, in the order they first did. */
    served: string[];
}

export function analyzeRequests(records: RequestRecord[], since: number): WebAnalysis {
    const after = records.filter((r) => r.end >= since);
    const failed = after.filter((r) => !r.ok);
    const served: string[] = [];
    for (const r of after) if (r.ok && r.served && !served.includes(r.served)) served.push(r.served);
    const last = failed[failed.length - 1];
    return {
        requests: after.length,
        failed: failed.length,
        failures: failed.slice(0, 5).map((r) => `${r.target}: ${r.status ?? r.error}`),
        errorWindowSeconds: last ? Math.max(0, (last.end - since) / 1000) : 0,
        served,
    };
}
