// A closed-loop HTTP benchmark client, run inside a lab node's network namespace (nsenter):
// C clients with keep-alive send GETs back to back for S seconds (or N requests), then the
// figures are printed as one JSON line. Bounded by both limits.
// Over HTTPS it presents the origin-pull certificate when given (HAProxy serves no one else).
//   usage: http-bench.ts --url URL [--host NAME] [--cert FILE --key FILE] --clients C --seconds S --max-requests N
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { readFileSync } from "node:fs";
import { parseArgs } from "../../lib/args";

export interface HttpBenchFigures {
    url: string;
    requests: number;
    failed: number;
    seconds: number;
    requestsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
}

export function percentile(sorted: number[], p: number): number {
    if (sorted.length === 0) return NaN;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function main(): Promise<void> {
    const a = parseArgs(process.argv.slice(2), { values: ["url", "host", "cert", "key", "clients", "seconds", "max-requests"], flags: [] });
    const url = new URL(a.values.url ?? "");
    const tls = url.protocol === "https:";
    const clients = Math.max(1, Math.min(64, Number(a.values.clients ?? 8)));
    const seconds = Math.max(1, Math.min(120, Number(a.values.seconds ?? 10)));
    const maxRequests = Math.max(1, Math.min(10_000_000, Number(a.values["max-requests"] ?? 1_000_000)));
    const host = a.values.host ?? url.hostname;
    const agent = tls ? new HttpsAgent({ keepAlive: true, maxSockets: clients, rejectUnauthorized: false, ...(a.values.cert && a.values.key ? { cert: readFileSync(a.values.cert), key: readFileSync(a.values.key) } : {}) }) : new HttpAgent({ keepAlive: true, maxSockets: clients });
    const send = tls ? httpsRequest : httpRequest;
    const latencies: number[] = [];
    let failed = 0;
    let sent = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const once = () => new Promise<boolean>((resolve) => {
        const req = send({ host: url.hostname, port: url.port || (tls ? 443 : 80), path: url.pathname, agent, headers: { host }, servername: host, timeout: 5000 }, (res) => {
            res.resume();
            res.on("end", () => resolve((res.statusCode ?? 0) === 200));
            res.on("error", () => resolve(false));
        });
        req.on("timeout", () => req.destroy());
        req.on("error", () => resolve(false));
        req.end();
    });
    await Promise.all(Array.from({ length: clients }, async () => {
        while (performance.now() < deadline && sent < maxRequests) {
            sent++;
            const t = performance.now();
            if (await once()) latencies.push(performance.now() - t);
            else failed++;
        }
    }));
    const elapsed = (performance.now() - started) / 1000;
    agent.destroy();
    latencies.sort((x, y) => x - y);
    const figures: HttpBenchFigures = {
        url: url.toString(), requests: latencies.length + failed, failed, seconds: elapsed,
        requestsPerSecond: latencies.length / elapsed, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99),
    };
    console.log(JSON.stringify(figures));
}

if (require.main === module) {
    main().catch((e: Error) => {
        console.error(e.message);
        process.exit(1);
    });
}
