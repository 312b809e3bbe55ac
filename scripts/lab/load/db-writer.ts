// A bounded writer, run inside an app node's network namespace (apps are the database's
// clients): it inserts sequential ids through the HAProxy pair's primary port, trying each
// HAProxy in turn as libpq's multi-host connection strings do, and logs one JSON line per
// attempt. A write is acknowledged only when its COMMIT returned; the drill later checks every
// acknowledged id is still there. When its login file changes it takes the new login from its
// next write on, as an app given new credentials does.
//   usage: db-writer.ts --hosts H1:5000,H2:5000 --login-file F ({"user", "password"}) --database D
//                       --log FILE --max-writes N --max-seconds S [--every-ms MS] [--timeout-ms MS]
import { appendFileSync, readFileSync } from "node:fs";
import { Client } from "pg";
import { parseArgs } from "../../lib/args";

export interface WriteRecord {
    id: number;
    /** Epoch ms when the attempt started and when it ended. */
    start: number;
    end: number;
    ok: boolean;
    /** The server (mesh address) that committed it, from inet_server_addr(). */
    server?: string;
    /** The HAProxy (host:port from the connection string) the write went through. */
    via?: string;
    /** The login it was made with. */
    user?: string;
    error?: string;
}

export const TABLE = "vps_ha_lab_writes";

async function connect(hosts: string[], opts: { user: string; password: string; database: string }, timeoutMs: number): Promise<{ client: Client; via: string }> {
    let last: Error | undefined;
    for (const h of hosts) {
        const [host, port] = h.split(":");
        const c = new Client({ host, port: Number(port), ...opts, connectionTimeoutMillis: 1000, query_timeout: timeoutMs });
        c.on("error", () => undefined); // a dropped connection surfaces on the next query
        try {
            await c.connect();
            return { client: c, via: h };
        } catch (e) {
            last = e as Error;
            await c.end().catch(() => undefined);
        }
    }
    throw last ?? new Error("no hosts");
}

async function main(): Promise<void> {
    const a = parseArgs(process.argv.slice(2), { values: ["hosts", "login-file", "database", "log", "max-writes", "max-seconds", "every-ms", "start-id", "timeout-ms"] });
    const v = a.values as Record<string, string>;
    const hosts = v.hosts.split(",");
    const login = () => ({ ...(JSON.parse(readFileSync(v["login-file"], "utf8")) as { user: string; password: string }), database: v.database });
    let opts = login();
    const maxWrites = Number(v["max-writes"]);
    const deadline = Date.now() + Number(v["max-seconds"]) * 1000;
    const everyMs = Number(v["every-ms"] ?? 50);
    // How long one write may take before the client gives up on it (a client that retries nothing).
    const timeoutMs = Number(v["timeout-ms"] ?? 2000);
    let client: Client | undefined;
    let via: string | undefined;
    let id = Number(v["start-id"] ?? 1);
    for (let n = 0; n < maxWrites && Date.now() < deadline; n++, id++) {
        const start = Date.now();
        const now = login();
        if (now.user !== opts.user || now.password !== opts.password) {
            // Between writes: the connection open under the old login ends cleanly.
            opts = now;
            await client?.end().catch(() => undefined);
            client = undefined;
        }
        const rec: WriteRecord = { id, start, end: start, ok: false, user: opts.user };
        try {
            if (!client) ({ client, via } = await connect(hosts, opts, timeoutMs));
            const r = await client.query(`INSERT INTO ${TABLE} (id) VALUES ($1) RETURNING host(inet_server_addr()) AS server`, [id]);
            rec.ok = true;
            rec.server = r.rows[0].server;
            rec.via = via;
        } catch (e) {
            rec.error = (e as Error).message;
            await client?.end().catch(() => undefined);
            client = undefined;
        }
        rec.end = Date.now();
        appendFileSync(v.log, JSON.stringify(rec) + "\n");
        const wait = everyMs - (Date.now() - start);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await client?.end().catch(() => undefined);
}

if (require.main === module) {
    main().then(() => process.exit(0), (e) => {
        console.error(e);
        process.exit(1);
    });
}
