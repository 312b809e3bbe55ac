// The old server of a database member moved to another provider: shut down through its provider's
// API before the new one is created, so that the member's identity never runs twice. `pulumi up`
// runs it on the deploy machine (scripts/stand-down.ts) with its parameters in the environment.
// No Pulumi here: the program, the tool and the lab import it.

/** What the program's step runs (from the project's directory, as `pulumi up` does). */
export const STAND_DOWN_COMMAND = "npx --no-install tsx scripts/stand-down.ts";

/** The program's stand-down step for a member's old server, by the member's node name. */
export function standDownStepName(node: string): string {
    return `${node}-stand-down`;
}

export type StandDownProvider = "hcloud" | "linode";
export const STAND_DOWN_PROVIDERS: readonly StandDownProvider[] = ["hcloud", "linode"];

/** The tool's parameters: environment variables only. */
export const STAND_DOWN_ENV = {
    node: "VPS_HA_STAND_DOWN_NODE",
    provider: "VPS_HA_STAND_DOWN_PROVIDER",
    server: "VPS_HA_STAND_DOWN_SERVER",
    seconds: "VPS_HA_STAND_DOWN_SECONDS",
    api: "VPS_HA_STAND_DOWN_API",
} as const;

/** The provider's API token: the same variable its Pulumi provider reads. */
export const STAND_DOWN_TOKEN_ENV: Readonly<Record<StandDownProvider, string>> = { hcloud: "HCLOUD_TOKEN", linode: "LINODE_TOKEN" };

export const STAND_DOWN_API_BASE: Readonly<Record<StandDownProvider, string>> = { hcloud: "https://api.hetzner.cloud/v1", linode: "https://api.linode.com/v4" };

/** How long a graceful shutdown may take: long enough for a primary to hand over on its way down. */
export const STAND_DOWN_DEFAULT_SECONDS = 300;
export const STAND_DOWN_MIN_SECONDS = 30;
export const STAND_DOWN_MAX_SECONDS = 3600;
/** After a hard power-off (Hetzner only) the server is off within moments; this bounds the wait. */
export const HARD_POWER_OFF_SECONDS = 60;
const DEFAULT_POLL_MS = 2000;
/** Each API call; a provider that does not answer fails the step rather than holding `pulumi up`. */
const REQUEST_TIMEOUT_MS = 30000;

const NODE_RE = /^[a-z][a-z0-9-]{0,39}$/;
const SERVER_RE = /^[0-9]{1,20}$/;
const SECONDS_RE = /^[0-9]{1,4}$/;
/** Printable ASCII without spaces: anything else cannot travel in an Authorization header. */
const TOKEN_RE = /^[\x21-\x7e]{1,512}$/;

const PROVIDER_NAMES: Record<StandDownProvider, string> = { hcloud: "Hetzner Cloud", linode: "Linode" };

export type StandDownOutcome = "gone" | "already-off" | "shut-down" | "forced-off";

export interface StandDownOptions {
    provider: StandDownProvider;
    serverId: string;
    node: string;
    token: string;
    /** Replaces the provider's API base (the lab's and the tests' stand-in). */
    apiBase?: string;
    gracefulSeconds: number;
    pollMs?: number;
    fetch?: typeof fetch;
    log?: (line: string) => void;
    sleep?: (ms: number) => Promise<void>;
}

/** A value quoted for a message, cut short: the environment may hold anything. */
function shown(v: string): string {
    return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
}

/** Why an API base URL is refused, or undefined. http:// only to this machine: the token travels with it. */
function apiBaseProblem(v: string): string | undefined {
    const allowed = "allowed an https:// URL, or http:// to 127.0.0.1, ::1 or localhost, with no user, query or fragment";
    let url: URL;
    try {
        url = new URL(v);
    } catch {
        return `${shown(v)} is not a URL: ${allowed}`;
    }
    const loopback = /^127(\.[0-9]{1,3}){3}$/.test(url.hostname) || url.hostname === "[::1]" || url.hostname === "localhost";
    if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) return `${shown(v)} is refused: ${allowed}`;
    if (url.username || url.password || url.search || url.hash) return `${shown(v)} is refused: ${allowed}`;
    return undefined;
}

/**
 * Every problem with the tool's environment at once, each naming the variable, what is wrong and
 * what is allowed; never a token's value. The program's step leaves the token to be inherited
 * from the deploy machine's environment, so it is required only when asked (the tool asks).
 */
export function standDownEnvProblems(env: Record<string, string | undefined>, opts: { requireToken?: boolean } = {}): string[] {
    const problems: string[] = [];
    const node = env[STAND_DOWN_ENV.node];
    if (node === undefined || node === "") problems.push(`${STAND_DOWN_ENV.node} is not set: the node's name is required (1-40 of a-z, 0-9 and '-', starting with a letter)`);
    else if (!NODE_RE.test(node)) problems.push(`${STAND_DOWN_ENV.node}: ${shown(node)} is not a node name: allowed 1-40 of a-z, 0-9 and '-', starting with a letter`);

    const provider = env[STAND_DOWN_ENV.provider];
    const providers = STAND_DOWN_PROVIDERS.join(" or ");
    if (provider === undefined || provider === "") problems.push(`${STAND_DOWN_ENV.provider} is not set: the old server's provider is required (${providers})`);
    else if (!(STAND_DOWN_PROVIDERS as readonly string[]).includes(provider)) problems.push(`${STAND_DOWN_ENV.provider}: ${shown(provider)} is not a provider the tool can shut a server down on: allowed ${providers}`);

    const server = env[STAND_DOWN_ENV.server];
    if (server === undefined || server === "") problems.push(`${STAND_DOWN_ENV.server} is not set: the provider's id of the old server is required (1-20 digits)`);
    else if (!SERVER_RE.test(server)) problems.push(`${STAND_DOWN_ENV.server}: ${shown(server)} is not a server id: allowed 1-20 digits`);

    const seconds = env[STAND_DOWN_ENV.seconds];
    if (seconds !== undefined && seconds !== "" && (!SECONDS_RE.test(seconds) || Number(seconds) < STAND_DOWN_MIN_SECONDS || Number(seconds) > STAND_DOWN_MAX_SECONDS)) {
        problems.push(`${STAND_DOWN_ENV.seconds}: ${shown(seconds)} is not a number of seconds the tool waits: allowed a whole number from ${STAND_DOWN_MIN_SECONDS} to ${STAND_DOWN_MAX_SECONDS} (unset: ${STAND_DOWN_DEFAULT_SECONDS})`);
    }

    const api = env[STAND_DOWN_ENV.api];
    if (api !== undefined && api !== "") {
        const why = apiBaseProblem(api);
        if (why) problems.push(`${STAND_DOWN_ENV.api}: ${why} (unset: the provider's own API)`);
    }

    if (provider === "hcloud" || provider === "linode") {
        const name = STAND_DOWN_TOKEN_ENV[provider];
        const token = env[name];
        if (token === undefined || token === "") {
            if (opts.requireToken) problems.push(`${name} is not set: ${PROVIDER_NAMES[provider]}'s API token is required (in the environment, or as the provider's token in the stack's config)`);
        } else if (!TOKEN_RE.test(token)) {
            problems.push(`${name} does not look like an API token (value not shown): allowed 1-512 printable characters without spaces`);
        }
    }
    return problems;
}

/** The tool's options from an environment standDownEnvProblems accepted (with the token). */
export function standDownOptionsFromEnv(env: Record<string, string | undefined>): Pick<StandDownOptions, "provider" | "serverId" | "node" | "token" | "apiBase" | "gracefulSeconds"> {
    const problems = standDownEnvProblems(env, { requireToken: true });
    if (problems.length > 0) throw new Error(problems.join("; "));
    const provider = env[STAND_DOWN_ENV.provider] as StandDownProvider;
    const api = env[STAND_DOWN_ENV.api];
    const seconds = env[STAND_DOWN_ENV.seconds];
    return {
        provider,
        serverId: env[STAND_DOWN_ENV.server]!,
        node: env[STAND_DOWN_ENV.node]!,
        token: env[STAND_DOWN_TOKEN_ENV[provider]]!,
        ...(api ? { apiBase: api } : {}),
        gracefulSeconds: seconds ? Number(seconds) : STAND_DOWN_DEFAULT_SECONDS,
    };
}

/** Each provider's API as the tool uses it: where a server is, how it is shut down, what off is. */
interface ProviderApi {
    serverPath(id: string): string;
    shutdownPath(id: string): string;
    /** Hetzner's hard power-off; Linode has none. */
    powerOffPath?(id: string): string;
    /** The server's status and id from its GET, or undefined when the answer holds none. */
    statusOf(body: unknown): { status: string; id?: unknown } | undefined;
    off: string;
    /** The API's own error message, if its answer carries one. */
    errorOf(body: unknown): string | undefined;
}

const obj = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

const APIS: Record<StandDownProvider, ProviderApi> = {
    hcloud: {
        serverPath: (id) => `/servers/${id}`,
        shutdownPath: (id) => `/servers/${id}/actions/shutdown`,
        powerOffPath: (id) => `/servers/${id}/actions/poweroff`,
        statusOf: (body) => {
            const server = obj(obj(body)?.server);
            return typeof server?.status === "string" ? { status: server.status, id: server.id } : undefined;
        },
        off: "off",
        errorOf: (body) => {
            const message = obj(obj(body)?.error)?.message;
            return typeof message === "string" ? message : undefined;
        },
    },
    linode: {
        serverPath: (id) => `/linode/instances/${id}`,
        shutdownPath: (id) => `/linode/instances/${id}/shutdown`,
        statusOf: (body) => {
            const b = obj(body);
            return typeof b?.status === "string" ? { status: b.status, id: b.id } : undefined;
        },
        off: "offline",
        errorOf: (body) => {
            const errors = obj(body)?.errors;
            const reasons = Array.isArray(errors) ? errors.map((e) => obj(e)?.reason).filter((r): r is string => typeof r === "string") : [];
            return reasons.length > 0 ? reasons.join("; ") : undefined;
        },
    },
};

/** Checks what standDown is given, so that nothing unchecked reaches a URL or a header. */
function optionProblems(o: StandDownOptions): string[] {
    const problems: string[] = [];
    if (!(STAND_DOWN_PROVIDERS as readonly string[]).includes(o.provider)) problems.push(`provider ${shown(String(o.provider))} is not ${STAND_DOWN_PROVIDERS.join(" or ")}`);
    if (!SERVER_RE.test(o.serverId)) problems.push(`server id ${shown(String(o.serverId))} is not 1-20 digits`);
    if (!NODE_RE.test(o.node)) problems.push(`node ${shown(String(o.node))} is not a node name`);
    if (!TOKEN_RE.test(o.token)) problems.push("the token is not 1-512 printable characters without spaces");
    if (o.apiBase !== undefined) {
        const why = apiBaseProblem(o.apiBase);
        if (why) problems.push(`API base ${why}`);
    }
    if (!(Number.isFinite(o.gracefulSeconds) && o.gracefulSeconds > 0 && o.gracefulSeconds <= STAND_DOWN_MAX_SECONDS)) problems.push(`gracefulSeconds ${o.gracefulSeconds} is not more than 0 and at most ${STAND_DOWN_MAX_SECONDS}`);
    if (o.pollMs !== undefined && !(Number.isInteger(o.pollMs) && o.pollMs >= 1 && o.pollMs <= 60000)) problems.push(`pollMs ${o.pollMs} is not a whole number from 1 to 60000`);
    return problems;
}

/** One line of an API's message: no line breaks, bounded, and never the token (should it echo it). */
function oneLine(text: string, token: string): string {
    const flat = text.split(token).join("[token]").replace(/\s+/g, " ").trim();
    return flat.length > 300 ? `${flat.slice(0, 300)}...` : flat;
}

const seconds1 = (ms: number) => (ms / 1000).toFixed(1);

/**
 * Shuts the server down through its provider's API and waits until the provider reports it off:
 * an ACPI shutdown (which hands a primary over on its way down), then on Hetzner a hard power-off
 * if the graceful one did not finish in time. Every wait is bounded; a failure is an Error with
 * one line that names the node, the provider and the server, never the token.
 */
export async function standDown(opts: StandDownOptions): Promise<{ outcome: StandDownOutcome; seconds: number }> {
    const bad = optionProblems(opts);
    if (bad.length > 0) throw new Error(`stand-down of ${NODE_RE.test(opts.node) ? opts.node : "a node"} refused: ${bad.join("; ")}`);
    const { provider, serverId: id, node, token } = opts;
    const api = APIS[provider];
    const base = (opts.apiBase ?? STAND_DOWN_API_BASE[provider]).replace(/\/+$/, "");
    const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    const doFetch = opts.fetch ?? fetch;
    const log = opts.log ?? (() => undefined);
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    const start = Date.now();
    const done = (outcome: StandDownOutcome) => ({ outcome, seconds: Math.round((Date.now() - start) / 100) / 10 });

    /** One call; `gone` for a 404 where the server's absence is an answer. */
    async function call(method: "GET" | "POST", path: string, notFoundIsGone: boolean): Promise<{ gone: true } | { gone: false; body: unknown }> {
        let res: Response;
        try {
            res = await doFetch(`${base}${path}`, {
                method,
                headers: { Authorization: `Bearer ${token}`, Accept: "application/json", ...(method === "POST" ? { "Content-Type": "application/json" } : {}) },
                ...(method === "POST" ? { body: "{}" } : {}),
                redirect: "error",
                signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
            });
        } catch (e) {
            const err = e as Error & { cause?: { code?: string; message?: string } };
            const why = err.name === "TimeoutError" ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : (err.cause?.code ?? err.cause?.message ?? err.message);
            throw new Error(`${node}: ${provider}'s API did not answer ${method} ${path}: ${oneLine(String(why), token)}`);
        }
        const text = await res.text().catch(() => "");
        let body: unknown;
        try {
            body = text ? JSON.parse(text) : undefined;
        } catch {
            body = undefined;
        }
        if (res.status === 404 && notFoundIsGone) return { gone: true };
        if (res.status < 200 || res.status > 299) {
            const message = api.errorOf(body);
            throw new Error(`${node}: ${provider} answered ${method} ${path} with ${res.status}${message ? `: ${oneLine(message, token)}` : ""}`);
        }
        return { gone: false, body };
    }

    /** The server's status, or "gone". */
    async function status(): Promise<string> {
        const path = api.serverPath(id);
        const r = await call("GET", path, true);
        if (r.gone) return "gone";
        const s = api.statusOf(r.body);
        if (!s) throw new Error(`${node}: ${provider} answered GET ${path} without a server status`);
        // Ids beyond a safe integer cannot be compared as JSON numbers; those are taken as they come.
        if (typeof s.id === "number" && Number.isSafeInteger(s.id) && String(s.id) !== id) throw new Error(`${node}: ${provider} answered GET ${path} with server ${s.id}, not ${id}`);
        if (typeof s.id === "string" && s.id !== id) throw new Error(`${node}: ${provider} answered GET ${path} with server ${oneLine(s.id, token)}, not ${id}`);
        return s.status;
    }

    /**
     * Polls until off or gone: at once (a server may be off by then), then every pollMs, for at
     * most `ms` and at most ms / pollMs sleeps, so that a sleep which does not wait still ends.
     */
    async function waitOff(ms: number, since: number): Promise<string> {
        const deadline = Date.now() + ms;
        const polls = Math.ceil(ms / pollMs) + 1;
        let last = "unknown";
        for (let i = 0; i < polls; i++) {
            if (i > 0) await sleep(pollMs);
            last = await status();
            if (last === api.off || last === "gone") {
                log(`${node}: server ${id} is ${last === "gone" ? "gone" : "off"} after ${seconds1(Date.now() - since)} s`);
                return last;
            }
            if (Date.now() >= deadline) break;
        }
        return last;
    }

    const first = await status();
    if (first === "gone") {
        log(`${node}: ${provider} has no server ${id}: nothing to shut down`);
        return done("gone");
    }
    if (first === api.off) {
        log(`${node}: server ${id} is off already`);
        return done("already-off");
    }

    log(`${node}: asking ${provider} to shut server ${id} down`);
    const asked = Date.now();
    await call("POST", api.shutdownPath(id), false);
    let last = await waitOff(opts.gracefulSeconds * 1000, asked);
    if (last === "gone") return done("gone");
    if (last === api.off) return done("shut-down");

    if (!api.powerOffPath) {
        throw new Error(`${node}: ${provider} server ${id} is still ${last} after ${opts.gracefulSeconds} s of a graceful shutdown, and ${PROVIDER_NAMES[provider]} has no hard power-off: power it off in ${PROVIDER_NAMES[provider]}'s console, then run pulumi up again`);
    }
    log(`${node}: server ${id} is still ${last} after ${opts.gracefulSeconds} s: asking ${provider} to power it off`);
    await call("POST", api.powerOffPath(id), false);
    last = await waitOff(HARD_POWER_OFF_SECONDS * 1000, asked);
    if (last === "gone") return done("gone");
    if (last === api.off) return done("forced-off");
    throw new Error(`${node}: ${provider} server ${id} is still ${last} ${HARD_POWER_OFF_SECONDS} s after a hard power-off was asked for: it is not off, so its new server was not created`);
}
