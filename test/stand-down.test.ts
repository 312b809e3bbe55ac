// The stand-down tool (components/stand-down.ts, scripts/stand-down.ts): a moved member's old
// server shut down through its provider's API before the new one is created, against the lab's
// stand-in of both APIs (scripts/lab/provider-api.ts) on 127.0.0.1.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { HARD_POWER_OFF_SECONDS, STAND_DOWN_COMMAND, STAND_DOWN_DEFAULT_SECONDS, STAND_DOWN_ENV, STAND_DOWN_TOKEN_ENV, StandDownProvider, standDown, standDownEnvProblems, standDownOptionsFromEnv } from "../components/stand-down";
import { startProviderApi } from "../scripts/lab/provider-api";

const ROOT = join(__dirname, "..");
const TOKEN = "tok3n-" + "A".repeat(30);
const IDS: Record<StandDownProvider, string> = { hcloud: "4711", linode: "31337" };
const PATHS: Record<StandDownProvider, { server: string; shutdown: string }> = {
    hcloud: { server: "/servers/4711", shutdown: "/servers/4711/actions/shutdown" },
    linode: { server: "/linode/instances/31337", shutdown: "/linode/instances/31337/shutdown" },
};

type How = "graceful" | "hard";

/** The stand-in with one server per provider, and what it was asked to do. */
async function api(onShutdown: (node: string, how: How) => Promise<void> = async () => undefined) {
    const calls: [string, How][] = [];
    const server = await startProviderApi({
        token: TOKEN,
        servers: { [IDS.hcloud]: { provider: "hcloud", node: "db-2" }, [IDS.linode]: { provider: "linode", node: "db-3" } },
        onShutdown: (node, how) => {
            calls.push([node, how]);
            return onShutdown(node, how);
        },
    });
    return { server, calls };
}

const never = () => new Promise<void>(() => undefined);
const after = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe("stand-down: a moved member's old server shut down through its provider's API", () => {
    for (const provider of ["hcloud", "linode"] as const) {
        const id = IDS[provider];
        const node = provider === "hcloud" ? "db-2" : "db-3";
        const paths = PATHS[provider];
        const run = (url: string, extra: Partial<Parameters<typeof standDown>[0]> = {}) => {
            const log: string[] = [];
            const result = standDown({ provider, serverId: id, node, token: TOKEN, apiBase: url, gracefulSeconds: 2, pollMs: 10, log: (l) => log.push(l), ...extra });
            return { result, log };
        };

        it(`${provider}: a running server is shut down gracefully and waited for`, async () => {
            const { server, calls } = await api(() => after(40));
            try {
                const { result, log } = run(server.url);
                assert.equal((await result).outcome, "shut-down");
                assert.deepEqual(calls, [[node, "graceful"]]);
                const seen = server.requests.map((r) => `${r.method} ${r.path}`);
                assert.deepEqual(seen.slice(0, 2), [`GET ${paths.server}`, `POST ${paths.shutdown}`]);
                assert.ok(seen.length >= 3 && seen.slice(2).every((r) => r === `GET ${paths.server}`), seen.join(", "));
                assert.equal(log[0], `${node}: asking ${provider} to shut server ${id} down`);
                assert.match(log[log.length - 1], new RegExp(`^${node}: server ${id} is off after [0-9]+\\.[0-9] s$`));
            } finally {
                await server.close();
            }
        });

        it(`${provider}: a server already off is left as it is`, async () => {
            const { server, calls } = await api();
            try {
                server.setStatus(id, "off");
                const { result, log } = run(server.url);
                assert.equal((await result).outcome, "already-off");
                assert.deepEqual(calls, []);
                assert.deepEqual(server.requests.map((r) => `${r.method} ${r.path}`), [`GET ${paths.server}`]);
                assert.deepEqual(log, [`${node}: server ${id} is off already`]);
            } finally {
                await server.close();
            }
        });

        it(`${provider}: a server the provider does not know is gone`, async () => {
            const { server, calls } = await api();
            try {
                const gone = provider === "hcloud" ? IDS.linode : IDS.hcloud;
                const r = await standDown({ provider, serverId: gone, node, token: TOKEN, apiBase: server.url, gracefulSeconds: 2, pollMs: 10 });
                assert.equal(r.outcome, "gone");
                assert.deepEqual(calls, []);
                assert.equal(server.requests.length, 1);
            } finally {
                await server.close();
            }
        });

        it(`${provider}: a graceful shutdown that never finishes: ${provider === "hcloud" ? "a hard power-off" : "a clear error (Linode has no hard power-off)"}`, async () => {
            const { server, calls } = await api((_, how) => (how === "hard" ? Promise.resolve() : never()));
            try {
                const { result, log } = run(server.url, { gracefulSeconds: 0.1 });
                if (provider === "hcloud") {
                    assert.equal((await result).outcome, "forced-off");
                    assert.deepEqual(calls, [[node, "graceful"], [node, "hard"]]);
                    const posts = server.requests.filter((r) => r.method === "POST").map((r) => r.path);
                    assert.deepEqual(posts, [paths.shutdown, "/servers/4711/actions/poweroff"]);
                    assert.ok(log.includes(`${node}: server ${id} is still stopping after 0.1 s: asking hcloud to power it off`), log.join("\n"));
                } else {
                    await assert.rejects(result, (e: Error) => {
                        assert.match(e.message, /^db-3: linode server 31337 is still shutting_down after 0\.1 s of a graceful shutdown, and Linode has no hard power-off: power it off in Linode's console, then run pulumi up again$/);
                        return true;
                    });
                    assert.deepEqual(calls, [[node, "graceful"]]);
                }
            } finally {
                await server.close();
            }
        });

        it(`${provider}: a wrong token is refused with the status and the API's message, never the token`, async () => {
            const { server, calls } = await api();
            const wrong = "wr0ng-" + "B".repeat(30);
            try {
                await assert.rejects(run(server.url, { token: wrong }).result, (e: Error) => {
                    assert.equal(e.message, `${node}: ${provider} answered GET ${paths.server} with 401: ${provider === "hcloud" ? "unable to authenticate" : "Invalid Token"}`);
                    assert.ok(!e.message.includes(wrong) && !e.message.includes(TOKEN));
                    return true;
                });
                assert.deepEqual(calls, []);
            } finally {
                await server.close();
            }
        });
    }

    it("hcloud: a power-off that does not finish either ends in an error naming the node, provider, server and status", async () => {
        const { server, calls } = await api(never);
        try {
            // A sleep that does not wait: the loops end by their count.
            const r = standDown({ provider: "hcloud", serverId: IDS.hcloud, node: "db-2", token: TOKEN, apiBase: server.url, gracefulSeconds: 1, pollMs: 1000, sleep: async () => undefined });
            await assert.rejects(r, new RegExp(`^Error: db-2: hcloud server 4711 is still stopping ${HARD_POWER_OFF_SECONDS} s after a hard power-off was asked for`));
            assert.deepEqual(calls, [["db-2", "graceful"], ["db-2", "hard"]]);
            assert.equal(server.requests.length, 1 + 1 + 2 + 1 + (HARD_POWER_OFF_SECONDS + 1), "one GET, the shutdown, its polls, the power-off, its polls");
        } finally {
            await server.close();
        }
    });

    it("nothing unchecked reaches a URL: a bad server id or base is refused before any request", async () => {
        const { server } = await api();
        try {
            const base = { provider: "hcloud" as const, node: "db-2", token: TOKEN, gracefulSeconds: 2 };
            await assert.rejects(standDown({ ...base, serverId: "4711/actions/poweroff", apiBase: server.url }), /server id "4711\/actions\/poweroff" is not 1-20 digits/);
            await assert.rejects(standDown({ ...base, serverId: "4711", apiBase: "http://example.com" }), /API base "http:\/\/example.com" is refused/);
            await assert.rejects(standDown({ ...base, serverId: "4711", apiBase: server.url, token: "a b" }), (e: Error) => !e.message.includes("a b"));
            assert.equal(server.requests.length, 0);
        } finally {
            await server.close();
        }
    });

    it("the environment: every problem at once, each naming the variable and what is allowed, never the token", () => {
        const good = { [STAND_DOWN_ENV.node]: "db-2", [STAND_DOWN_ENV.provider]: "hcloud", [STAND_DOWN_ENV.server]: "4711" };
        // The program's step leaves the token to the deploy machine's environment.
        assert.deepEqual(standDownEnvProblems(good), []);
        assert.deepEqual(standDownEnvProblems(good, { requireToken: true }), ["HCLOUD_TOKEN is not set: Hetzner Cloud's API token is required (in the environment, or as the provider's token in the stack's config)"]);
        assert.deepEqual(standDownOptionsFromEnv({ ...good, HCLOUD_TOKEN: TOKEN }), { provider: "hcloud", serverId: "4711", node: "db-2", token: TOKEN, gracefulSeconds: STAND_DOWN_DEFAULT_SECONDS });
        for (const ok of [{ [STAND_DOWN_ENV.seconds]: "30" }, { [STAND_DOWN_ENV.seconds]: "3600" }, { [STAND_DOWN_ENV.api]: "https://api.example.com/v1" }, { [STAND_DOWN_ENV.api]: "http://127.0.0.1:8080" }, { [STAND_DOWN_ENV.api]: "http://[::1]:8080" }]) {
            assert.deepEqual(standDownEnvProblems({ ...good, ...ok, HCLOUD_TOKEN: TOKEN }, { requireToken: true }), [], JSON.stringify(ok));
        }

        const bad = standDownEnvProblems({ [STAND_DOWN_ENV.node]: "DB_2", [STAND_DOWN_ENV.provider]: "aws", [STAND_DOWN_ENV.server]: "12/../1", [STAND_DOWN_ENV.seconds]: "5", [STAND_DOWN_ENV.api]: "ftp://example.com" }, { requireToken: true });
        assert.deepEqual(bad, [
            `VPS_HA_STAND_DOWN_NODE: "DB_2" is not a node name: allowed 1-40 of a-z, 0-9 and '-', starting with a letter`,
            `VPS_HA_STAND_DOWN_PROVIDER: "aws" is not a provider the tool can shut a server down on: allowed hcloud or linode`,
            `VPS_HA_STAND_DOWN_SERVER: "12/../1" is not a server id: allowed 1-20 digits`,
            `VPS_HA_STAND_DOWN_SECONDS: "5" is not a number of seconds the tool waits: allowed a whole number from 30 to 3600 (unset: 300)`,
            `VPS_HA_STAND_DOWN_API: "ftp://example.com" is refused: allowed an https:// URL, or http:// to 127.0.0.1, ::1 or localhost, with no user, query or fragment (unset: the provider's own API)`,
        ]);
        assert.deepEqual(standDownEnvProblems({}).map((p) => p.split(" ")[0]), [STAND_DOWN_ENV.node, STAND_DOWN_ENV.provider, STAND_DOWN_ENV.server]);
        for (const seconds of ["29", "3601", "300.5", "abc", "-60"]) {
            assert.match(standDownEnvProblems({ ...good, [STAND_DOWN_ENV.seconds]: seconds }).join("\n"), /^VPS_HA_STAND_DOWN_SECONDS: .* allowed a whole number from 30 to 3600/, seconds);
        }
        for (const api of ["http://api.example.com", "https://user:pw@api.example.com", "https://api.example.com/?x=1", "not a url"]) {
            assert.match(standDownEnvProblems({ ...good, [STAND_DOWN_ENV.api]: api }).join("\n"), /^VPS_HA_STAND_DOWN_API: .*: allowed an https:\/\/ URL/, api);
        }
        const secret = "s3cret with space";
        const token = standDownEnvProblems({ ...good, [STAND_DOWN_ENV.provider]: "linode", LINODE_TOKEN: secret });
        assert.deepEqual(token, ["LINODE_TOKEN does not look like an API token (value not shown): allowed 1-512 printable characters without spaces"]);
        assert.deepEqual(STAND_DOWN_TOKEN_ENV, { hcloud: "HCLOUD_TOKEN", linode: "LINODE_TOKEN" });
    });
});

/** The tool as `pulumi up` runs it: its fixed command, its parameters in the environment. */
function tool(env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
    const [cmd, ...args] = STAND_DOWN_COMMAND.split(" ");
    return new Promise((resolve, reject) => {
        // Asynchronous: the stand-in answers from this process meanwhile.
        const p = spawn(cmd, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...(process.env.HOME ? { HOME: process.env.HOME } : {}), ...env }, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (err += d));
        p.on("error", reject);
        p.on("close", (code) => resolve({ code, out, err }));
    });
}

describe("stand-down, as pulumi up runs it @cli", () => {
    it("shuts the server down and prints the outcome", async () => {
        const { server, calls } = await api();
        try {
            const r = await tool({ [STAND_DOWN_ENV.node]: "db-2", [STAND_DOWN_ENV.provider]: "hcloud", [STAND_DOWN_ENV.server]: IDS.hcloud, [STAND_DOWN_ENV.api]: server.url, HCLOUD_TOKEN: TOKEN });
            assert.equal(r.code, 0, r.err);
            assert.equal(r.err, "");
            const lines = r.out.trim().split("\n");
            assert.equal(lines[0], "db-2: asking hcloud to shut server 4711 down");
            assert.match(lines[lines.length - 1], /^db-2: shut-down \(hcloud server 4711, [0-9]+\.[0-9] s\)$/);
            assert.deepEqual(calls, [["db-2", "graceful"]]);
        } finally {
            await server.close();
        }
    });

    it("exits 2 with every problem of its environment, one line each, no stack trace", async () => {
        const r = await tool({ [STAND_DOWN_ENV.node]: "db-2", [STAND_DOWN_ENV.provider]: "linode", [STAND_DOWN_ENV.server]: "x1", [STAND_DOWN_ENV.seconds]: "10" });
        assert.equal(r.code, 2);
        assert.equal(r.out, "");
        assert.deepEqual(r.err.trim().split("\n"), [
            `stand-down: VPS_HA_STAND_DOWN_SERVER: "x1" is not a server id: allowed 1-20 digits`,
            `stand-down: VPS_HA_STAND_DOWN_SECONDS: "10" is not a number of seconds the tool waits: allowed a whole number from 30 to 3600 (unset: 300)`,
            `stand-down: LINODE_TOKEN is not set: Linode's API token is required (in the environment, or as the provider's token in the stack's config)`,
        ]);
    });
});
