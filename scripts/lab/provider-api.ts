// The lab's and the tests' stand-in of the two providers' server power APIs: exactly what
// scripts/stand-down.ts calls, on one plain-HTTP server on 127.0.0.1 (an ephemeral port).
// Both APIs are served under the same base, `url`, so VPS_HA_STAND_DOWN_API=url stands for
// either provider's base:
//   Hetzner Cloud  https://api.hetzner.cloud/v1/servers/{id}...   ->  {url}/servers/{id}...
//   Linode         https://api.linode.com/v4/linode/instances/{id}... -> {url}/linode/instances/{id}...
// A shutdown or power-off answers at once with what the real API returns (an action), as the real
// APIs do; the server is off when the caller's onShutdown (the lab powers a container off) resolves.
import { createServer, IncomingMessage, ServerResponse } from "node:http";
import { AddressInfo } from "node:net";
import type { StandDownProvider } from "../../components/stand-down";

export interface ProviderApiServer {
    url: string;
    /** Every request in the order it came. */
    requests: { method: string; path: string; at: number }[];
    setStatus(id: string, status: "running" | "off"): void;
    close(): Promise<void>;
}

interface Server {
    provider: StandDownProvider;
    node: string;
    /** The provider's own word: hcloud running/stopping/off, linode running/shutting_down/offline. */
    status: string;
    /** Shutdown requests so far. */
    turn: number;
}

const STATUS = {
    hcloud: { running: "running", stopping: "stopping", off: "off" },
    linode: { running: "running", stopping: "shutting_down", off: "offline" },
} as const;

/** Each provider's error shape: hcloud `{error:{code,message}}`, linode `{errors:[{reason}]}`. */
function errorBody(provider: StandDownProvider, code: string, message: string): unknown {
    return provider === "hcloud" ? { error: { code, message, details: null } } : { errors: [{ reason: message }] };
}

function send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
}

const ID = "([0-9]{1,20})";
const ROUTES: { method: string; re: RegExp; provider: StandDownProvider; action?: "shutdown" | "poweroff" }[] = [
    { method: "GET", re: new RegExp(`^/servers/${ID}$`), provider: "hcloud" },
    { method: "POST", re: new RegExp(`^/servers/${ID}/actions/shutdown$`), provider: "hcloud", action: "shutdown" },
    { method: "POST", re: new RegExp(`^/servers/${ID}/actions/poweroff$`), provider: "hcloud", action: "poweroff" },
    { method: "GET", re: new RegExp(`^/linode/instances/${ID}$`), provider: "linode" },
    { method: "POST", re: new RegExp(`^/linode/instances/${ID}/shutdown$`), provider: "linode", action: "shutdown" },
];

export async function startProviderApi(opts: {
    token: string;
    servers: Record<string, { provider: StandDownProvider; node: string }>;
    onShutdown: (node: string, how: "graceful" | "hard") => Promise<void>;
}): Promise<ProviderApiServer> {
    if (!opts.token) throw new Error("the provider API stand-in needs a token to expect");
    const servers = new Map<string, Server>();
    for (const [id, s] of Object.entries(opts.servers)) {
        if (!/^[0-9]{1,20}$/.test(id)) throw new Error(`the provider API stand-in: server id ${JSON.stringify(id)} is not 1-20 digits`);
        if (s.provider !== "hcloud" && s.provider !== "linode") throw new Error(`the provider API stand-in: server ${id}'s provider ${JSON.stringify(s.provider)} is not hcloud or linode`);
        servers.set(id, { provider: s.provider, node: s.node, status: STATUS[s.provider].running, turn: 0 });
    }
    const requests: ProviderApiServer["requests"] = [];
    let actions = 0;

    /**
     * Calls onShutdown in the background; the server is off when it resolves, as it was if it
     * fails. Only the latest request decides: a graceful shutdown failing under a power-off changes nothing.
     */
    function shutDown(s: Server, how: "graceful" | "hard"): void {
        const before = s.status;
        const turn = ++s.turn;
        s.status = STATUS[s.provider].stopping;
        opts.onShutdown(s.node, how).then(
            () => void (s.status = STATUS[s.provider].off),
            () => void (turn === s.turn && s.status === STATUS[s.provider].stopping && (s.status = before)),
        );
    }

    function handle(req: IncomingMessage, res: ServerResponse): void {
        const path = (req.url ?? "/").split("?")[0];
        const method = req.method ?? "GET";
        requests.push({ method, path, at: Date.now() });
        const r = ROUTES.find((x) => x.method === method && x.re.test(path));
        if (!r) {
            const other = ROUTES.find((x) => x.re.test(path));
            if (other) return send(res, 405, errorBody(other.provider, "method_not_allowed", `${method} is not allowed on ${path}`));
            return send(res, 404, { error: { code: "not_found", message: `no such path: ${path}` } });
        }
        if (req.headers.authorization !== `Bearer ${opts.token}`) {
            return send(res, 401, errorBody(r.provider, "unauthorized", r.provider === "hcloud" ? "unable to authenticate" : "Invalid Token"));
        }
        const id = r.re.exec(path)![1];
        const s = servers.get(id);
        if (!s || s.provider !== r.provider) return send(res, 404, errorBody(r.provider, "not_found", r.provider === "hcloud" ? `server with ID '${id}' not found` : "Not found"));

        if (!r.action) {
            return send(res, 200, r.provider === "hcloud" ? { server: { id: Number(id), name: s.node, status: s.status } } : { id: Number(id), label: s.node, status: s.status });
        }
        const off = STATUS[s.provider].off;
        const stopping = STATUS[s.provider].stopping;
        // A graceful shutdown already under way or done is not started again; a power-off cuts a graceful one short.
        if (r.action === "shutdown" && s.status !== off && s.status !== stopping) shutDown(s, "graceful");
        if (r.action === "poweroff" && s.status !== off) shutDown(s, "hard");
        if (r.provider === "linode") return send(res, 200, {});
        actions += 1;
        return send(res, 201, {
            action: {
                id: actions, command: r.action === "shutdown" ? "shutdown_server" : "poweroff_server", status: "running", progress: 0,
                started: new Date().toISOString(), finished: null, resources: [{ id: Number(id), type: "server" }], error: null,
            },
        });
    }

    const server = createServer((req, res) => {
        // The body is never needed; it is read so that the connection can be reused.
        req.resume();
        req.on("end", () => handle(req, res));
    });
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    return {
        url: `http://127.0.0.1:${port}`,
        requests,
        setStatus(id, status) {
            const s = servers.get(id);
            if (!s) throw new Error(`the provider API stand-in has no server ${id}`);
            s.status = STATUS[s.provider][status];
        },
        close: () => new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
        }),
    };
}
