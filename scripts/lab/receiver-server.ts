// The lab's stand-in for the services a stack's alerts go to: a webhook receiver and an outside
// dead-man's switch, over HTTPS on the lab bridge with a certificate from the lab CA. It records
// every POST as one JSON line (when, which path, the alerts in it and their status) and answers 200.
//   usage: receiver-server.ts --address A --port P --key F --cert F --out FILE
import { appendFileSync, readFileSync } from "node:fs";
import { createServer } from "node:https";
import { parseArgs } from "../lib/args";
import { receivedOf } from "./receiver";

/** Alertmanager's webhook bodies are a few KiB; anything far larger is not one. */
const MAX_BODY_BYTES = 1 << 20;

function main(): void {
    const v = parseArgs(process.argv.slice(2), { values: ["address", "port", "key", "cert", "out"] }).values as Record<string, string>;
    const server = createServer({ key: readFileSync(v.key), cert: readFileSync(v.cert) }, (req, res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        req.on("data", (c: Buffer) => {
            size += c.length;
            if (size <= MAX_BODY_BYTES) chunks.push(c);
        });
        req.on("end", () => {
            const at = Date.now();
            const record = receivedOf(at, req.method ?? "", req.url ?? "", Buffer.concat(chunks).toString("utf8"));
            appendFileSync(v.out, JSON.stringify(record) + "\n");
            res.writeHead(record.method === "POST" ? 200 : 405, { "content-type": "text/plain" }).end(record.method === "POST" ? "ok\n" : "POST only\n");
        });
    });
    server.listen(Number(v.port), v.address, () => console.log(`alert receiver on https://${v.address}:${v.port}, recording to ${v.out}`));
    const stop = () => server.close(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main();
