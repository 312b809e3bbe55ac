// Stack config: every key validated before any resource exists. The input is the raw key/value
// map Pulumi hands a program (or the offline plan reads from a stack file); the output is a typed
// StackConfig or the complete list of problems, each naming its key path, the bad value and what
// is allowed. Pure: no Pulumi runtime here, so tests and the offline plan use it unchanged.
import { isIP } from "node:net";
import { z } from "zod";
import { catalogs, isCloudProvider, isOwnHost, providerNames } from "./providers/catalogs";
import { cidrHostCount, inNetwork, intToIpv4, ipInCidr, ipv4ToInt, parseCidr } from "./net";
import { imagePort, RELEASE_PORT_SPAN } from "./release";

export const PROJECT = "vps-ha";
export const ROLES = ["app", "haproxy", "db", "witness"] as const;
export type Role = (typeof ROLES)[number];

/** What Pulumi gives a program: every config value as a string, plus which keys are secret. */
export interface RawConfig {
    values: Readonly<Record<string, string>>;
    secretKeys: ReadonlySet<string>;
    env: Readonly<Record<string, string | undefined>>;
    /**
     * An offline evaluation (the plan, the lab, tests): a secret the stack file leaves out may be
     * set later, so it is listed in `missingSecrets` and stood in by OFFLINE_SECRET, not refused.
     */
    offline?: boolean;
}

/** What an offline evaluation reads for a secret it cannot see (also a stack file's `secure:` value). */
export const OFFLINE_SECRET = "[secret]";
/** Set by the offline evaluation (scripts/lib/mock-program.ts) while the program runs under mocks. */
export const OFFLINE_ENV = "VPS_HA_OFFLINE_EVALUATION";

export interface ConfigIssue {
    /** Full path, e.g. `vps-ha:nodes.db[1].region`. */
    path: string;
    message: string;
}

export class ConfigError extends Error {
    constructor(readonly issues: ConfigIssue[]) {
        super(formatIssues(issues));
        this.name = "ConfigError";
    }
}

export function formatIssues(issues: ConfigIssue[]): string {
    const lines = issues.map((i) => `  - ${i.path}: ${i.message}`);
    return `The stack config has ${issues.length} problem${issues.length === 1 ? "" : "s"}; nothing was created:\n${lines.join("\n")}`;
}

// ---- shapes ---------------------------------------------------------------------------------

const name = z.string().regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/, "must be 2-32 characters of a-z, 0-9 and '-', starting with a letter");
const hex32 = z.string().regex(/^[0-9a-f]{32}$/, "must be the 32 hex digits Cloudflare shows for it");
const image = z.string().regex(/^[a-z0-9][a-z0-9._\/:-]*(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$/, "must name a tag or digest, e.g. ghcr.io/acme/app:1.4.2");
const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const hostName = z.string().regex(/^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, "must be a host name such as app.example.com (lower case)");
/** No control character, '%' or '$': systemd would expand the last two in ExecStart, and a newline ends the line. */
const commandWord = z.string().min(1, "must not be empty").regex(/^[^\u0000-\u001f\u007f%$]*$/, "must not contain a newline or other control character, '%' or '$' (systemd expands % and $ in a unit's command line); pass values through app.env instead");
/** An HTTP path with an optional query, in characters that are inert in HAProxy's config and in a double-quoted shell word. */
const httpPath = z.string().regex(/^\/[A-Za-z0-9._~\/-]*(\?[A-Za-z0-9._~=&-]*)?$/, "must be a path such as /healthz: '/' then letters, digits and . _ ~ / - (optionally ?key=value&...); no spaces, quotes, '$', '`', '\\' or '#'");

/** A URL a daemon calls with a token in it: https only, no user info, nothing a config line could misread. */
const httpsUrl = z.string().regex(/^https:\/\/[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:\d{1,5})?(\/[^\s"'<>\\`]*)?$/, "must be an https:// URL (host, optional port and path) without spaces, quotes or user info");
/** The same, or an offline evaluation's stand-in for a secret it cannot read (refused when not offline, in checkMonitoringAlerts). */
const secretUrl = z.union([httpsUrl, z.literal(OFFLINE_SECRET)], { error: "must be an https:// URL (host, optional port and path) without spaces, quotes or user info" });

/** Pulumi stack names become DNS labels (<node>.<stack>.nodes.<domain>) and parts of resource names. */
export const STACK_NAME = /^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$/;
/** X.509's upper bound on a common name (ub-common-name, RFC 5280): the origin certificate's CN is the app's hostname. */
export const MAX_COMMON_NAME = 64;

/** R2's location hints: Asia-Pacific, Eastern/Western Europe, Eastern/Western North America, Oceania. */
export const R2_LOCATIONS = ["apac", "eeur", "weur", "enam", "wnam", "oc"] as const;

/** Cloudflare plans, cheapest first. */
export const ZONE_PLANS = ["free", "pro", "business", "enterprise"] as const;
export type ZonePlan = (typeof ZONE_PLANS)[number];
/** The shortest health-check interval each plan allows, in seconds. */
export const MIN_CHECK_INTERVAL: Record<ZonePlan, number> = { free: 60, pro: 60, business: 15, enterprise: 10 };

/** vps-ha:rollout.waitSeconds' default. */
export const ROLLOUT_WAIT_SECONDS = 900;

/**
 * vps-ha:app.retireAfterSeconds' default and bounds. The default outlasts the release record's
 * 60 s TTL and a few 15 s agent rounds, so an image swapped out and dropped in one `pulumi up`
 * stops only after every HAProxy node has moved off it. The floor is one agent round (the agent
 * looks once a round); past an hour, keep the image as the candidate, where the stack file shows it.
 */
export const RETIRE_AFTER_SECONDS = 120;
export const MIN_RETIRE_AFTER_SECONDS = 15;
export const MAX_RETIRE_AFTER_SECONDS = 3600;

/** Server connections each pooler opens at most per database and user (pgbouncer's default_pool_size). */
export const POOLER_POOL_SIZE = 20;
/** Bounds of database.maxConnections: room for both poolers' pools and superusers; memory on a small server. */
export const MIN_MAX_CONNECTIONS = 50;
export const MAX_MAX_CONNECTIONS = 1000;

/** Variables the app always gets from vps-ha: the user may not set them. */
export const RESERVED_APP_ENV = ["DATABASE_URL", "DATABASE_POOLED_URL", "HOST", "PORT"];

const nodeShape = z.strictObject({
    name,
    provider: z.string(),
    region: z.string().min(1),
    size: z.string().optional(),
    /** Pin the node's mesh address (to resolve a rare hash collision, or keep an old address). */
    meshAddress: z.string().optional(),
    /** Bring-your-own hosts only. */
    host: z.string().optional(),
    user: z.string().optional(),
    monthlyUsd: z.number().nonnegative().optional(),
    /** Older stack files lifted a member's protection with it; a stack file that still has it is told why not. */
    retire: z.undefined({ error: "is no longer used: remove it. A member is retired by removing it from the stack file, and moved by changing its provider, each in one pulumi up (README: Moving and replacing servers)" }).optional(),
});
export type NodeConfig = z.infer<typeof nodeShape>;

/** The daemons a drill may keep from starting, and the roles that run each. */
export const DRILL_FAIL_UNIT_ROLES = {
    "vps-ha-patroni.service": ["db"],
    "vps-ha-etcd.service": ["db", "witness"],
    "haproxy.service": ["haproxy"],
    "pgbouncer.service": ["haproxy"],
} as const satisfies Record<string, readonly Role[]>;
const DRILL_FAIL_UNITS = Object.keys(DRILL_FAIL_UNIT_ROLES) as [keyof typeof DRILL_FAIL_UNIT_ROLES, ...(keyof typeof DRILL_FAIL_UNIT_ROLES)[]];

const shapes = {
    domain: z.string().regex(/^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, "must be a DNS zone name such as example.com"),
    cloudflare: z.strictObject({
        accountId: hex32,
        zoneId: hex32,
        /** The Load Balancing add-on; false is budget mode (proxied records and health checks). */
        loadBalancer: z.boolean().default(true),
        /** The plan the zone is on: it sets the shortest health-check interval, and budget mode's health checks need Pro. */
        zonePlan: z.enum(ZONE_PLANS).default("free"),
        /** Default app.<domain> for the stack prod, app-<stack>.<domain> for any other; at most one level under the zone. */
        hostname: hostName.optional(),
        /** The release candidate's hostname; default candidate.<domain> (prod) or candidate-<stack>.<domain>. */
        candidateHostname: hostName.optional(),
        /**
         * true: the program also sets the zone-wide TLS settings (SSL Full (strict), Always Use
         * HTTPS, TLS 1.2 minimum). They apply to every hostname of the zone and outlive `destroy`,
         * so at most one stack per zone should; false (default): the zone's SSL mode must already
         * be Full (strict) (npm run preflight checks it) and TLS 1.2 is set per hostname.
         */
        zoneSettings: z.boolean().default(false),
        /** off: ordered failover to the second HAProxy node, back when the first is healthy again; random: both share the traffic. */
        // A YAML 1.1 reader takes an unquoted `off` for false; it means the steering policy "off".
        steering: z.preprocess((v) => (v === false ? "off" : v), z.enum(["off", "random"])).default("off"),
        monitor: z.strictObject({
            interval: z.number().int().max(3600).default(60),
            retries: z.number().int().min(0).max(5).default(2),
            timeout: z.number().int().min(1).max(10).default(5),
            /** Default /healthz; HAProxy answers it itself (200 while an app node is up). */
            path: httpPath.default("/healthz"),
        }).default({ interval: 60, retries: 2, timeout: 5, path: "/healthz" }),
        hstsMaxAgeSeconds: z.number().int().min(0).max(31536000, "must be at most 31536000 (12 months), the longest Cloudflare accepts").default(31536000),
        alerts: z.strictObject({
            enabled: z.boolean().default(true),
            email: z.email("must be an email address").optional(),
            /** Slack-style URLs carry a token: the whole cloudflare key must then be a secret. */
            webhookUrl: z.string().regex(/^https:\/\/[^\s"'<>\\`]+$/, "must be an https:// URL without spaces or quotes").optional(),
            /**
             * Sent in the cf-webhook-auth header; set it (a secret) when the receiver checks it, so the
             * receiver knows it before Cloudflare sends its test at creation. Default: generated.
             */
            webhookSecret: z.string().regex(/^[\x21-\x7e]{16,128}$/, "must be 16-128 printable ASCII characters without spaces").optional(),
        }).optional(),
    }),
    admin: z.strictObject({
        sshCidrs: z.array(z.string()).default([]),
        sshPublicKeys: z.array(z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/=]+( .*)?$/, "must be an OpenSSH public key line (ssh-ed25519 AAAA... comment)")).default([]),
    }).default({ sshCidrs: [], sshPublicKeys: [] }),
    mesh: z.strictObject({
        cidr: z.string().default("10.77.0.0/24"),
        port: z.number().int().min(1024).max(65535).default(51820),
    }).default({ cidr: "10.77.0.0/24", port: 51820 }),
    nodes: z.strictObject({
        app: z.array(nodeShape).default([]),
        haproxy: z.array(nodeShape).default([]),
        db: z.array(nodeShape).default([]),
        witness: z.array(nodeShape).default([]),
    }),
    app: z.strictObject({
        /** Shorthand for release: { active: image }. */
        image: image.optional(),
        /** Red/black releases: the image serving visitors, and one tried beside it on the candidate hostname. */
        release: z.strictObject({
            active: image,
            candidate: image.optional(),
            /** How long `pulumi up` waits for every app node to answer healthy in the new release. */
            gateTimeoutSeconds: z.number().int().min(10).max(3600).default(600),
        }).optional(),
        /**
         * How long an image that left the release keeps running on the app nodes: within it, naming
         * the image again (a rollback after a cleanup) is instant, nothing pulls or starts.
         */
        retireAfterSeconds: z.number({ error: "must be a number of seconds" }).int("must be a whole number of seconds")
            .min(MIN_RETIRE_AFTER_SECONDS, `must be at least ${MIN_RETIRE_AFTER_SECONDS}: one round of the directory agent, which stops retired images`)
            .max(MAX_RETIRE_AFTER_SECONDS, `must be at most ${MAX_RETIRE_AFTER_SECONDS} (an hour); to keep an image longer, keep it as release.candidate`)
            .default(RETIRE_AFTER_SECONDS),
        /** Each image listens on its own port in port .. port+999 (see components/release.ts). */
        port: z.number().int().min(1).max(65535 - (RELEASE_PORT_SPAN - 1), `must leave room for the ${RELEASE_PORT_SPAN} ports releases use (at most ${65535 - (RELEASE_PORT_SPAN - 1)})`).default(8080),
        healthPath: httpPath.default("/healthz"),
        /** The app's environment; every value is kept as a secret (the env file is). */
        env: z.record(
            z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name (letters, digits, '_', not starting with a digit)")
                .refine((k) => !RESERVED_APP_ENV.includes(k), `is set by vps-ha itself; reserved: ${RESERVED_APP_ENV.join(", ")}`),
            z.string().regex(/^[^\n\r\0]*$/, "must be one line (no newline or NUL)"),
        ).default({}),
        /** Overrides the image's command for the web process. */
        command: z.array(commandWord).min(1).optional(),
        /** A background worker on every app node: the same image, this command, no HTTP. */
        worker: z.strictObject({ command: z.array(commandWord).min(1) }).optional(),
    }),
    database: z.strictObject({
        synchronous: z.enum(["quorum", "on", "off"]).default("quorum"),
        /**
         * Patroni's synchronous_mode_strict. true: a primary left with no standby stops acknowledging
         * commits until one returns (no commit is ever held by one copy); false: it goes on alone.
         */
        synchronousStrict: z.boolean().default(true),
        /**
         * The version of every generated database secret (the PostgreSQL users' passwords, the
         * poolers' admin and the REST API's; not the backup cipher's). A deployed stack keeps the
         * version it was created with (components/secrets-version.ts).
         */
        secretsVersion: z.number().int("must be a whole number").min(1, "must be 1 or more").default(1),
        /**
         * PostgreSQL's max_connections, kept in Patroni's dynamic configuration. Absent: Patroni's
         * default (100). A change restarts PostgreSQL on each member in turn, the primary last after a handover.
         */
        maxConnections: z.number({ error: "must be a whole number of connections" }).int("must be a whole number of connections")
            .min(MIN_MAX_CONNECTIONS, `must be at least ${MIN_MAX_CONNECTIONS}: each of the two poolers may open ${POOLER_POOL_SIZE} server connections, and PostgreSQL keeps 3 for superusers`)
            .max(MAX_MAX_CONNECTIONS, `must be at most ${MAX_MAX_CONNECTIONS}: each connection costs memory on a small server; more clients go through the poolers`)
            .optional(),
        backups: z.strictObject({
            /** Default (R2 only): vps-ha-<stack>-backups, so stacks sharing an account never share a bucket. */
            bucket: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, "must be a bucket name (3-63 of a-z, 0-9, '-')").optional(),
            /** S3 endpoint; default: the Cloudflare account's R2 endpoint. */
            endpoint: z.string()
                .regex(/^https:\/\/[a-z0-9.-]+(:\d{1,5})?\/?$/i, "must be an https:// URL of an S3-compatible endpoint, e.g. https://s3.eu-central-1.amazonaws.com")
                .refine((u) => { const port = /:(\d+)\/?$/.exec(u)?.[1]; return port === undefined || (Number(port) >= 1 && Number(port) <= 65535); }, "has a port outside 1-65535")
                .optional(),
            /** S3 region; R2 takes "auto". */
            region: z.string().regex(/^[a-z0-9-]+$/, "must be a region name such as auto or eu-central-1").optional(),
            /** Key prefix inside the bucket; default /<stack>, so stacks can share a bucket. */
            path: z.string().regex(/^\/[A-Za-z0-9._\/-]*$/, "must be an absolute path such as /prod").optional(),
            // Both land in pgBackRest's config file: one printable word each.
            accessKeyId: z.string().regex(/^[\x21-\x7e]{1,256}$/, "must be 1-256 printable ASCII characters, no spaces or newlines").optional(),
            secretAccessKey: z.string().regex(/^[\x21-\x7e]{1,256}$/, "must be 1-256 printable ASCII characters, no spaces or newlines").optional(),
            /** Where the program's R2 bucket should live (a hint R2 honours when it creates the bucket); R2 only. */
            location: z.enum(R2_LOCATIONS).optional(),
            /** false only for a test endpoint with a self-signed certificate (the lab's). */
            verifyTls: z.boolean().default(true),
        }).optional(),
    }).default({ synchronous: "quorum", synchronousStrict: true, secretsVersion: 1 }),
    /** The mesh directory's publication (components/mesh-directory.ts). */
    directory: z.strictObject({
        /**
         * Nodes refuse a directory that drops more than a third of a role's members at once, unless
         * it is marked deliberate: the program marks it when the stack file removes nodes, or when
         * this is true (a recovery, or a change the nodes refused). Set it for one `pulumi up`, then remove it.
         */
        allowLargeRemoval: z.boolean().default(false),
    }).default({ allowLargeRemoval: false }),
    /** How `pulumi up` follows the rollout of what it published (components/rollout-wait.ts). */
    rollout: z.strictObject({
        /**
         * How long `pulumi up` waits for every node to apply its new desired state (a halt fails at
         * once). A first `pulumi up` waits here too, after the release gate: it covers first convergence.
         */
        waitSeconds: z.number({ error: "must be a number of seconds" }).int("must be a whole number of seconds")
            .min(60, "must be at least 60: one database member alone may take 180 s to be healthy again")
            .max(3600, "must be at most 3600 (an hour: deploy.yml gives the whole pulumi up 60 minutes)").default(ROLLOUT_WAIT_SECONDS),
    }).default({ waitSeconds: ROLLOUT_WAIT_SECONDS }),
    /**
     * Lab drills only (scripts/lab/drills/rollout.ts): what the program changes in the desired
     * state it publishes, so a drill rehearses a change through the real path. Never in a real stack.
     */
    drill: z.strictObject({
        /** Stamped into every file published to every node: every file and tool differs, so every daemon restarts (an upgrade's shape). */
        revision: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "must be 1-32 characters of a-z, 0-9 and '-'").optional(),
        /** A drop-in that keeps this node's daemon from starting: its rollout must halt there. */
        failStart: z.strictObject({
            node: name,
            unit: z.enum(DRILL_FAIL_UNITS),
        }).optional(),
    }).optional(),
    /**
     * Where the stack's own monitoring (Prometheus and Alertmanager on both HAProxy nodes) sends
     * alerts, and the outside dead-man's switch it pings. Absent: no alerts are sent. The URLs
     * carry tokens and the SMTP password is one: any of them makes the whole key a secret.
     */
    alerts: z.strictObject({
        /** Pinged every minute while the monitoring runs (any service that alerts on missing pings). */
        heartbeatUrl: secretUrl.optional(),
        /** Alertmanager's JSON, firing and resolved, POSTed here. */
        webhookUrl: secretUrl.optional(),
        email: z.strictObject({
            to: z.email("must be an email address"),
            from: z.email("must be an email address"),
            /** host:port of the SMTP server; STARTTLS is required. */
            smarthost: z.string()
                .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:\d{1,5}$/, "must be host:port of an SMTP server such as smtp.example.com:587")
                .refine((h) => { const port = Number(h.split(":")[1]); return port >= 1 && port <= 65535; }, "has a port outside 1-65535"),
            username: z.string().regex(/^[^\s"'\\]{1,200}$/, "must be 1-200 characters without spaces, quotes or backslashes").optional(),
            password: z.string().regex(/^[^\n\r\0]{1,200}$/, "must be 1-200 characters on one line").optional(),
        }).optional(),
    }).optional(),
} as const;

type Shapes = typeof shapes;

/** Every vps-ha key, and which of them a stack must set (the others have defaults or are optional). */
export const CONFIG_KEYS = Object.keys(shapes) as (keyof Shapes)[];
export const REQUIRED_CONFIG_KEYS = CONFIG_KEYS.filter((k) => !shapes[k].safeParse(undefined).success);
type Parsed = { [K in keyof Shapes]: z.output<Shapes[K]> };

export interface StackConfig extends Parsed {
    stack: string;
    /** Keys that must be supplied as Pulumi secrets, and whether the program found them. */
    secretKeys: string[];
    /** Offline only: the secrets the stack file still lacks, each with how to set it. */
    missingSecrets: ConfigIssue[];
}

/** Config keys that must be secret when set (and where they may come from instead). */
const secretConfig = [{ configKey: "cloudflare:apiToken", envVar: "CLOUDFLARE_API_TOKEN", what: "the Cloudflare API token" }];

// ---- parsing --------------------------------------------------------------------------------

export function parseStackConfig(raw: RawConfig, stack: string): StackConfig {
    const issues: ConfigIssue[] = [];
    const ns = `${PROJECT}:`;
    const parsed: Partial<Record<keyof Shapes, unknown>> = {};
    if (!STACK_NAME.test(stack)) {
        issues.push({
            path: "stack",
            message: `"${stack}" cannot be used as a stack name: it becomes a DNS label (<node>.<stack>.nodes.<domain>) and part of resource names; ` +
                `allowed: 1-20 of a-z, 0-9 and '-', starting with a letter and not ending with '-' (pulumi stack rename ${suggestStack(stack)})`,
        });
    }

    for (const key of Object.keys(raw.values)) {
        if (!key.startsWith(ns)) continue;
        const short = key.slice(ns.length);
        if (!(short in shapes) && short !== "sshPrivateKey") {
            issues.push({ path: key, message: `is not a ${PROJECT} setting; allowed: ${[...Object.keys(shapes), "sshPrivateKey"].join(", ")}` });
        }
    }
    for (const key of Object.keys(shapes) as (keyof Shapes)[]) {
        const fullKey = `${ns}${key}`;
        const text = raw.values[fullKey];
        const value = text === undefined ? undefined : decode(text);
        const result = shapes[key].safeParse(value, { reportInput: true });
        if (result.success) parsed[key] = result.data;
        else issues.push(...result.error.issues.map((i) => zodIssue(fullKey, i)));
    }
    if (issues.length > 0) throw new ConfigError(issues);

    const config = { ...(parsed as Parsed), stack, secretKeys: [] as string[], missingSecrets: [] as ConfigIssue[] };
    issues.push(...checkNodes(config), ...checkNetwork(config), ...checkFrontDoor(config), ...checkRelease(config), ...checkSecrets(config, raw), ...checkDrill(config));
    if (issues.length > 0) throw new ConfigError(issues);
    return config;
}

function suggestStack(stack: string): string {
    const s = stack.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^[^a-z]+/, "").slice(0, 20).replace(/-+$/, "");
    return s || "prod";
}

/** Pulumi hands structured values over as JSON text; plain strings stay strings. */
function decode(text: string): unknown {
    const t = text.trim();
    if (/^[\[{]/.test(t) || /^(true|false|null|-?\d+(\.\d+)?)$/.test(t)) {
        try {
            return JSON.parse(t);
        } catch {
            return text;
        }
    }
    return text;
}

/** Values kept as secrets, whose content an error message must not repeat. */
const SECRET_PATHS = [/\.backups\.(accessKeyId|secretAccessKey)$/, /\.alerts\.(webhookUrl|webhookSecret)$/, /^vps-ha:alerts\.(heartbeatUrl|webhookUrl|email\.password)$/, /^vps-ha:app\.env\./];

function zodIssue(key: string, issue: z.core.$ZodIssue): ConfigIssue {
    const path = key + issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    // A secret's bad value is not echoed: the message ends up in terminals and CI logs.
    const secret = SECRET_PATHS.some((p) => p.test(path));
    const got = "input" in issue && issue.input !== undefined ? (secret ? " (the value is not shown: it is a secret)" : ` (got ${JSON.stringify(issue.input)})`) : "";
    if (issue.code === "invalid_type" && issue.input === undefined) return { path, message: `is required: ${issue.message}` };
    if (issue.code === "unrecognized_keys") return { path, message: `has unknown key(s) ${issue.keys.join(", ")}; allowed: ${allowedKeysAt(key, issue.path)}` };
    // A bad record key (an env variable name): report the key's own problem at the key's path.
    if (issue.code === "invalid_key") return { path, message: issue.issues.map((i) => i.message).join("; ") };
    return { path, message: `${issue.message}${got}` };
}

function allowedKeysAt(key: string, path: PropertyKey[]): string {
    let s: z.ZodType = shapes[key.split(":")[1] as keyof Shapes];
    for (const p of path) {
        const inner = unwrap(s);
        if (inner instanceof z.ZodObject) s = inner.shape[String(p)];
        else if (inner instanceof z.ZodArray) s = inner.element as z.ZodType;
    }
    const obj = unwrap(s);
    return obj instanceof z.ZodObject ? Object.keys(obj.shape).join(", ") : "none";
}

function unwrap(s: z.ZodType): z.ZodType {
    let t = s;
    for (let i = 0; i < 5 && (t instanceof z.ZodDefault || t instanceof z.ZodOptional); i++) t = t.unwrap() as z.ZodType;
    return t;
}

// ---- cross-field checks ---------------------------------------------------------------------

function nodePath(role: Role, i: number, field?: string) {
    return `${PROJECT}:nodes.${role}[${i}]${field ? "." + field : ""}`;
}

export function allNodes(config: Pick<StackConfig, "nodes">): { role: Role; index: number; node: NodeConfig }[] {
    return ROLES.flatMap((role) => config.nodes[role].map((node, index) => ({ role, index, node })));
}

function checkNodes(config: StackConfig): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const seen = new Map<string, string>();
    for (const { role, index, node } of allNodes(config)) {
        const at = (f?: string) => nodePath(role, index, f);
        const previous = seen.get(node.name);
        if (previous) issues.push({ path: at("name"), message: `"${node.name}" is already the name of ${previous}; node names must be unique` });
        seen.set(node.name, at());
        const catalog = catalogs[node.provider];
        if (!catalog) {
            issues.push({ path: at("provider"), message: `"${node.provider}" is not a provider; allowed: ${providerNames.join(", ")}` });
            continue;
        }
        if (isCloudProvider(node.provider)) {
            if (!(node.region in catalog.regions)) {
                issues.push({ path: at("region"), message: `"${node.region}" is not a ${catalog.displayName} region; allowed: ${Object.keys(catalog.regions).join(", ")}` });
            }
            const size = node.size === undefined ? undefined : catalog.sizes[node.size];
            if (node.size === undefined) issues.push({ path: at("size"), message: `is required for ${catalog.displayName}; allowed: ${Object.keys(catalog.sizes).join(", ")}` });
            else if (!size) issues.push({ path: at("size"), message: `"${node.size}" is not a ${catalog.displayName} size; allowed: ${Object.keys(catalog.sizes).join(", ")}` });
            else if (size.regions && node.region in catalog.regions && !size.regions.includes(node.region)) {
                issues.push({ path: at("size"), message: `"${node.size}" is not offered in ${node.region}; it is offered in ${size.regions.join(", ")}` });
            }
            for (const f of ["host", "user", "monthlyUsd"] as const) {
                if (node[f] !== undefined) issues.push({ path: at(f), message: `applies to provider "ssh" only (a host you bring)` });
            }
        } else {
            if (!node.host) issues.push({ path: at("host"), message: `is required for provider "${node.provider}": the host's public IPv4 address or DNS name` });
            else if (isIP(node.host) === 0 && !HOST_NAME.test(node.host)) {
                issues.push({ path: at("host"), message: `"${node.host}" is neither an IP address nor a DNS name; allowed: e.g. 203.0.113.7 or witness.example.net` });
            }
            if (node.user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(node.user)) {
                issues.push({ path: at("user"), message: `"${node.user}" is not a login name; allowed: 1-32 of a-z, 0-9, '_' and '-', starting with a letter or '_'` });
            }
            // A host you bring names its own place; it becomes part of the node's failure domain.
            if (!/^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]?$/.test(node.region)) {
                issues.push({ path: at("region"), message: `"${node.region}" is not a usable place name; allowed: 1-32 of a-z, 0-9 and '-', e.g. home-office` });
            }
            if (node.size !== undefined) issues.push({ path: at("size"), message: `does not apply to provider "${node.provider}" (a host you bring has the size it has)` });
        }
    }
    issues.push(...checkRoleCounts(config));
    return issues;
}

function providersOf(nodes: NodeConfig[]) {
    return new Set(nodes.map((n) => n.provider));
}

function checkRoleCounts(config: StackConfig): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const { app, haproxy, db, witness } = config.nodes;
    if (app.length < 2) issues.push({ path: `${PROJECT}:nodes.app`, message: `has ${app.length} node(s); at least 2 are needed so one can die (on both providers)` });
    else if (providersOf(app).size < 2) issues.push({ path: `${PROJECT}:nodes.app`, message: `all app nodes are on ${[...providersOf(app)][0]}; spread them over two providers` });
    if (haproxy.length < 2) issues.push({ path: `${PROJECT}:nodes.haproxy`, message: `has ${haproxy.length} node(s); exactly 2 are needed, one per provider` });
    else if (haproxy.length > 2) issues.push({ path: `${PROJECT}:nodes.haproxy`, message: `has ${haproxy.length} nodes; the HAProxy pair is exactly 2 nodes, one per provider` });
    else if (providersOf(haproxy).size < 2) issues.push({ path: `${PROJECT}:nodes.haproxy`, message: `both HAProxy nodes are on ${haproxy[0].provider}; put one on each provider` });
    if (![3, 5].includes(db.length)) {
        issues.push({ path: `${PROJECT}:nodes.db`, message: `has ${db.length} member(s); a replica set needs an odd number, 3 or 5, so a majority survives the loss of one` });
    } else if (providersOf(db).size < 2) {
        issues.push({ path: `${PROJECT}:nodes.db`, message: `all database members are on ${db[0].provider}; spread them over two providers so losing one provider keeps a copy` });
    }
    if (witness.length > 1) issues.push({ path: `${PROJECT}:nodes.witness`, message: `has ${witness.length} nodes; at most 1 witness (a third failure domain) is allowed` });
    const domains = new Set(db.map((n) => `${n.provider}/${n.region}`));
    witness.forEach((w, i) => {
        if (domains.has(`${w.provider}/${w.region}`)) {
            issues.push({ path: nodePath("witness", i, "region"), message: `the witness is in ${w.provider}/${w.region}, a failure domain that already holds a database member; put it in a third one` });
        }
    });
    return issues;
}

function checkDrill(config: StackConfig): ConfigIssue[] {
    const fail = config.drill?.failStart;
    if (!fail) return [];
    const node = allNodes(config).find((e) => e.node.name === fail.node);
    const roles: readonly Role[] = DRILL_FAIL_UNIT_ROLES[fail.unit];
    if (!node) return [{ path: `${PROJECT}:drill.failStart.node`, message: `"${fail.node}" is not a node of this stack; allowed: ${allNodes(config).map((e) => e.node.name).join(", ")}` }];
    if (!roles.includes(node.role)) return [{ path: `${PROJECT}:drill.failStart.unit`, message: `${node.node.name} is a ${node.role} node and runs no ${fail.unit}; that unit runs on ${roles.join(" and ")} nodes` }];
    return [];
}

function checkNetwork(config: StackConfig): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    config.admin.sshCidrs.forEach((c, i) => {
        if (!parseCidr(c) || /\s/.test(c)) issues.push({ path: `${PROJECT}:admin.sshCidrs[${i}]`, message: `"${c}" is not a CIDR; allowed: an IPv4 or IPv6 network such as 203.0.113.7/32 or 2001:db8::/48` });
    });
    if (config.admin.sshCidrs.length > 0 && config.admin.sshPublicKeys.length === 0) {
        issues.push({ path: `${PROJECT}:admin.sshPublicKeys`, message: "is empty while admin.sshCidrs opens SSH; add at least one public key (password logins are disabled)" });
    }
    if (config.admin.sshCidrs.length === 0 && allNodes(config).some((n) => isOwnHost(n.node.provider))) {
        issues.push({ path: `${PROJECT}:admin.sshCidrs`, message: "is empty, but hosts you bring (provider ssh) are set up over SSH: add the address Pulumi runs from" });
    }
    const mesh = parseCidr(config.mesh.cidr);
    if (!mesh || /\s/.test(config.mesh.cidr) || mesh.version !== 4 || !isPrivate4(config.mesh.cidr)) {
        issues.push({ path: `${PROJECT}:mesh.cidr`, message: `"${config.mesh.cidr}" must be a private IPv4 network (10/8, 172.16/12 or 192.168/16), e.g. 10.77.0.0/24` });
        return issues;
    }
    const network = networkAddress(mesh.address, mesh.prefix);
    if (network !== mesh.address) {
        issues.push({ path: `${PROJECT}:mesh.cidr`, message: `"${config.mesh.cidr}" has host bits set; a network starts at its first address: ${network}/${mesh.prefix}` });
        return issues;
    }
    const count = allNodes(config).length;
    const hosts = cidrHostCount(config.mesh.cidr);
    // Mesh addresses are derived from node names; keep the network at least 4x larger than the
    // node count so a collision stays rare and every node can still be pinned by hand.
    if (hosts < count * 4) {
        issues.push({ path: `${PROJECT}:mesh.cidr`, message: `${config.mesh.cidr} has ${hosts} host addresses for ${count} nodes; use a network with at least ${count * 4} (4 per node), e.g. a /24` });
    }
    for (const { role, index, node } of allNodes(config)) {
        if (node.meshAddress !== undefined && !ipInCidr(node.meshAddress, config.mesh.cidr)) {
            issues.push({ path: nodePath(role, index, "meshAddress"), message: `"${node.meshAddress}" is not a host address inside mesh.cidr ${config.mesh.cidr}` });
        }
    }
    return issues;
}

function networkAddress(address: string, prefix: number): string {
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    return intToIpv4((ipv4ToInt(address) & mask) >>> 0);
}

function isPrivate4(cidr: string): boolean {
    const [address, prefix] = cidr.split("/");
    return [["10.0.0.0/8", 8], ["172.16.0.0/12", 12], ["192.168.0.0/16", 16]].some(([net, min]) => inNetwork(address, String(net)) && Number(prefix) >= Number(min));
}

// ---- releases -------------------------------------------------------------------------------

export interface AppRelease {
    active: string;
    candidate?: string;
    gateTimeoutSeconds: number;
}

/** The release with app.image read as its shorthand (validation made sure exactly one is set). */
export function appRelease(config: Pick<StackConfig, "app">): AppRelease {
    const r = config.app.release;
    if (r) return r;
    if (config.app.image) return { active: config.app.image, gateTimeoutSeconds: 600 };
    throw new Error("the stack config has neither app.image nor app.release (validation should have said so)");
}

function checkRelease(config: StackConfig): ConfigIssue[] {
    const at = (field: string) => `${PROJECT}:app.${field}`;
    const { image, release, port } = config.app;
    if (image !== undefined && release !== undefined) {
        return [{ path: at("image"), message: "is set together with app.release; image is shorthand for release: { active: <image> }: keep one of them" }];
    }
    if (image === undefined && release === undefined) {
        return [{ path: at("release"), message: "is required (or its shorthand app.image): the image to run, e.g. release: { active: ghcr.io/acme/app:1.4.2 }" }];
    }
    if (!release?.candidate) return [];
    if (release.candidate === release.active) {
        return [{ path: at("release.candidate"), message: `is the same image as release.active (${release.active}); a candidate is another image, or drop candidate` }];
    }
    const a = imagePort(port, release.active);
    if (imagePort(port, release.candidate) === a) {
        return [{ path: at("release.candidate"), message: `"${release.candidate}" would listen on port ${a}, as the active image "${release.active}" does (each image's port is derived from its name); tag the candidate differently` }];
    }
    return [];
}

// ---- the Cloudflare front door ---------------------------------------------------------------

/**
 * The app's and the release candidate's hostnames, defaults applied. Only the stack prod takes
 * app.<domain> and candidate.<domain>; any other stack's carry its name (app-staging.<domain>), so
 * two stacks in one zone never claim the same hostname. One level under the zone, where
 * Cloudflare's Universal SSL certificate reaches.
 */
export function frontDoorHostnames(config: Pick<StackConfig, "cloudflare" | "domain" | "stack">): { app: string; candidate: string } {
    const suffix = config.stack === "prod" ? "" : `-${config.stack}`;
    return {
        app: config.cloudflare.hostname ?? `app${suffix}.${config.domain}`,
        candidate: config.cloudflare.candidateHostname ?? `candidate${suffix}.${config.domain}`,
    };
}

/** The longest node name allowed, as it appears in <node>.<stack>.nodes.<domain>. */
const NODE_RECORD_SPARE = ".nodes.".length + 32 + 1 + 20;

function checkFrontDoor(config: StackConfig): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const cf = config.cloudflare;
    const at = (field: string) => `${PROJECT}:cloudflare.${field}`;
    const names = frontDoorHostnames(config);
    // A default hostname is the domain's doing: report it there, saying where it came from.
    const where = (field: "hostname" | "candidateHostname") => (cf[field] === undefined ? `${PROJECT}:domain` : at(field));
    const from = (field: "hostname" | "candidateHostname") => (cf[field] === undefined ? ` (the default cloudflare.${field})` : "");
    for (const [field, host] of [["hostname", names.app], ["candidateHostname", names.candidate]] as const) {
        if (host !== config.domain && !host.endsWith(`.${config.domain}`)) {
            issues.push({ path: where(field), message: `"${host}" is outside the zone ${config.domain}; allowed: ${config.domain} or a name one level under it, e.g. app.${config.domain}` });
        } else if (host.endsWith(`.nodes.${config.domain}`)) {
            issues.push({ path: where(field), message: `"${host}" is inside nodes.${config.domain}, where the nodes' DNS-only records live; pick a name outside it` });
        } else if (host !== config.domain && host.slice(0, -config.domain.length - 1).includes(".")) {
            issues.push({
                path: where(field),
                message: `"${host}" is two or more levels under the zone ${config.domain}; Cloudflare's Universal SSL certificate covers ${config.domain} and *.${config.domain} only, ` +
                    `so visitors would get a certificate error; allowed: ${config.domain} or one level under it, e.g. ${host.split(".")[0]}.${config.domain}`,
            });
        }
    }
    if (names.app.length > MAX_COMMON_NAME) {
        issues.push({
            path: where("hostname"),
            message: `"${names.app}"${from("hostname")} is ${names.app.length} characters; it is the origin certificate's common name, which takes at most ${MAX_COMMON_NAME} (X.509); use a shorter hostname or domain`,
        });
    }
    if (config.domain.length + NODE_RECORD_SPARE > 253) {
        issues.push({ path: `${PROJECT}:domain`, message: `"${config.domain}" is ${config.domain.length} characters; node records (<node>.<stack>.nodes.<domain>) need it to be at most ${253 - NODE_RECORD_SPARE}` });
    }
    if (names.app === names.candidate) issues.push({ path: at("candidateHostname"), message: `is the same as the app's hostname ${names.app}; the release candidate needs a name of its own` });
    const min = MIN_CHECK_INTERVAL[cf.zonePlan];
    if (cf.monitor.interval < min) {
        const lower = ZONE_PLANS.filter((p) => MIN_CHECK_INTERVAL[p] <= cf.monitor.interval).map((p) => `${p} (${MIN_CHECK_INTERVAL[p]} s)`);
        const hint = lower.length ? `; a shorter one needs another plan: ${lower.join(", ")} (set zonePlan)` : "; no Cloudflare plan checks more often than every 10 s";
        issues.push({ path: at("monitor.interval"), message: `${cf.monitor.interval} s is below the minimum of the ${cf.zonePlan} plan, ${min} s${hint}` });
    }
    if (cf.monitor.timeout >= cf.monitor.interval) {
        issues.push({ path: at("monitor.timeout"), message: `${cf.monitor.timeout} s must be shorter than the interval (${cf.monitor.interval} s), or checks overlap` });
    }
    if (cf.alerts?.enabled && !cf.alerts.email && !cf.alerts.webhookUrl) {
        issues.push({ path: at("alerts"), message: "are enabled but have no target; set email, webhookUrl or both (or enabled: false)" });
    }
    if (cf.alerts?.webhookSecret !== undefined && cf.alerts.webhookUrl === undefined) {
        issues.push({ path: at("alerts.webhookSecret"), message: "is set without alerts.webhookUrl; it is sent to a webhook only" });
    }
    if (!cf.loadBalancer) issues.push(...checkBudgetMode(config));
    return issues;
}

/** Budget mode: Cloudflare's standalone health checks need a paid plan; records need IP addresses. */
function checkBudgetMode(config: StackConfig): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    if (config.cloudflare.zonePlan === "free") {
        issues.push({
            path: `${PROJECT}:cloudflare.zonePlan`,
            message: "is free, but budget mode (loadBalancer: false) watches the HAProxy nodes with Cloudflare health checks, which need the Pro plan or above; " +
                "on the free plan the Load Balancing add-on (loadBalancer: true) is the cheaper way; or set zonePlan to the zone's plan",
        });
    }
    config.nodes.haproxy.forEach((n, i) => {
        if (n.host !== undefined && isIP(n.host) === 0) {
            issues.push({ path: nodePath("haproxy", i, "host"), message: `"${n.host}" is a name, but budget mode points the app's proxied A records at the HAProxy nodes; give the host's IPv4 address, or use loadBalancer: true` });
        }
    });
    return issues;
}

/** Where backups go, with every default applied; undefined when backups are off. */
export interface BackupTarget {
    bucket: string;
    /** Host name (and port) of the S3 endpoint, without the scheme. */
    endpointHost: string;
    endpointPort: number;
    region: string;
    path: string;
    accessKeyId: string;
    secretAccessKey: string;
    verifyTls: boolean;
}

export function backupTarget(config: Pick<StackConfig, "database" | "cloudflare" | "stack">): BackupTarget | undefined {
    const b = config.database.backups;
    if (!b) return undefined;
    const url = new URL(b.endpoint ?? r2Endpoint(config.cloudflare.accountId));
    return {
        bucket: backupBucketName(config) as string,
        endpointHost: url.hostname,
        endpointPort: url.port ? Number(url.port) : 443,
        // R2 takes "auto"; other S3 services need theirs, and most accept us-east-1 by default.
        region: b.region ?? (b.endpoint ? "us-east-1" : "auto"),
        path: b.path ?? `/${config.stack}`,
        accessKeyId: b.accessKeyId ?? "",
        secretAccessKey: b.secretAccessKey ?? "",
        verifyTls: b.verifyTls,
    };
}

/** The bucket backups go to: the configured one, or (R2) vps-ha-<stack>-backups. */
export function backupBucketName(config: Pick<StackConfig, "database" | "stack">): string | undefined {
    const b = config.database.backups;
    if (!b) return undefined;
    return b.bucket ?? `${PROJECT}-${config.stack}-backups`;
}

export function r2Endpoint(accountId: string): string {
    return `https://${accountId}.r2.cloudflarestorage.com`;
}

/**
 * Backups need credentials for the bucket, and they must be secrets. Pulumi keeps a structured
 * key secret as a whole once any value inside it is (`pulumi config set --path --secret`).
 */
function checkBackups(config: StackConfig, raw: RawConfig): ConfigIssue[] {
    const b = config.database.backups;
    if (!b) return [];
    const key = `${PROJECT}:database`;
    const issues: ConfigIssue[] = [];
    if (b.endpoint !== undefined && b.bucket === undefined) {
        issues.push({ path: `${key}.backups.bucket`, message: `is required with backups.endpoint (${b.endpoint}): the bucket there; only the R2 bucket the program creates has a default name` });
    }
    const bucket = backupBucketName(config);
    for (const field of ["accessKeyId", "secretAccessKey"] as const) {
        const path = `${key}.backups.${field}`;
        const how = `pulumi config set --path --secret '${path}' <value>`;
        if (b[field] === undefined) {
            // A token limited to one bucket cannot be made before the bucket exists, and the
            // program creates the bucket: the first run needs a token for the account's buckets.
            const where = b.endpoint
                ? `the S3 endpoint ${b.endpoint}`
                : `Cloudflare R2 (${r2Endpoint(config.cloudflare.accountId)}): create an R2 API token with Object Read & Write for all buckets of the account ` +
                    `(a token for one bucket cannot exist before the program creates "${bucket}") and use its S3 credentials`;
            const message = `is missing: backups to bucket "${bucket}" need the ${field === "accessKeyId" ? "access key id" : "secret access key"} for ${where}; set it with ${how}`;
            if (raw.offline) {
                config.missingSecrets.push({ path, message });
                b[field] = OFFLINE_SECRET;
            } else issues.push({ path, message });
        } else if (!raw.secretKeys.has(key)) {
            issues.push({ path, message: `is stored as plain text; it must be a secret: ${how}` });
        }
    }
    if (b.location !== undefined && b.endpoint !== undefined) {
        issues.push({ path: `${key}.backups.location`, message: `is a Cloudflare R2 location hint, but backups go to ${b.endpoint}; drop it, or drop endpoint to use the R2 bucket the program creates` });
    }
    if (b.accessKeyId !== undefined && b.secretAccessKey !== undefined && (raw.secretKeys.has(key) || raw.offline)) config.secretKeys.push(key);
    return issues;
}

/** A webhook URL (it may carry a token) and a webhook secret live in vps-ha:cloudflare: it must then be a secret. */
function checkAlertSecrets(config: StackConfig, raw: RawConfig): ConfigIssue[] {
    const alerts = config.cloudflare.alerts;
    const key = `${PROJECT}:cloudflare`;
    if (raw.secretKeys.has(key)) return [];
    return (["webhookUrl", "webhookSecret"] as const).filter((f) => alerts?.[f] !== undefined).map((f) => ({
        path: `${key}.alerts.${f}`,
        message: `is stored as plain text; it must be a secret: pulumi config set --path --secret '${key}.alerts.${f}' <value>`,
    }));
}

/**
 * vps-ha:alerts: somewhere to send alerts, a password only with its user name, and the URLs
 * (which carry tokens) and the SMTP password kept secret, as the whole key.
 */
function checkMonitoringAlerts(config: StackConfig, raw: RawConfig): ConfigIssue[] {
    const a = config.alerts;
    if (!a) return [];
    const key = `${PROJECT}:alerts`;
    const issues: ConfigIssue[] = [];
    if (!a.webhookUrl && !a.email) {
        issues.push({ path: key, message: "has no target: set webhookUrl, email or both (heartbeatUrl alone tells nobody of an alert), or drop the key to send no alerts" });
    }
    for (const f of ["heartbeatUrl", "webhookUrl"] as const) {
        if (a[f] === OFFLINE_SECRET && !raw.offline) issues.push({ path: `${key}.${f}`, message: "must be an https:// URL (host, optional port and path) without spaces, quotes or user info" });
    }
    if (a.email?.password !== undefined && a.email.username === undefined) {
        issues.push({ path: `${key}.email.username`, message: "is required with email.password: the SMTP server's user name" });
    }
    const secrets = [a.heartbeatUrl && "heartbeatUrl", a.webhookUrl && "webhookUrl", a.email?.password !== undefined && "email.password"].filter((f): f is string => !!f);
    if (secrets.length > 0 && !raw.secretKeys.has(key)) {
        issues.push(...secrets.map((f) => ({ path: `${key}.${f}`, message: `is stored as plain text; it must be a secret: pulumi config set --path --secret '${key}.${f}' <value>` })));
    }
    if (secrets.length > 0 && raw.secretKeys.has(key)) config.secretKeys.push(key);
    return issues;
}

function checkSecrets(config: StackConfig, raw: RawConfig): ConfigIssue[] {
    const issues: ConfigIssue[] = [...checkBackups(config, raw), ...checkAlertSecrets(config, raw), ...checkMonitoringAlerts(config, raw)];
    const needed = [...secretConfig];
    for (const p of new Set(allNodes(config).map((n) => n.node.provider))) {
        const token = catalogs[p]?.token;
        if (token) needed.push({ ...token, what: `the ${catalogs[p].displayName} API token` });
    }
    if (allNodes(config).some((n) => isOwnHost(n.node.provider))) {
        needed.push({ configKey: `${PROJECT}:sshPrivateKey`, envVar: "", what: "the private key that reaches your own hosts over SSH" });
    }
    for (const s of needed) {
        const set = raw.values[s.configKey] !== undefined;
        if (set && !raw.secretKeys.has(s.configKey)) {
            issues.push({ path: s.configKey, message: `is stored as plain text; it must be a secret: pulumi config set --secret ${s.configKey} <value>` });
        } else if (!set && !(s.envVar && raw.env[s.envVar])) {
            const alt = s.envVar ? ` (or set the ${s.envVar} environment variable)` : "";
            const issue = { path: s.configKey, message: `is missing: ${s.what}; set it with pulumi config set --secret ${s.configKey} <value>${alt}` };
            if (raw.offline) config.missingSecrets.push(issue);
            else issues.push(issue);
        }
        if (set) config.secretKeys.push(s.configKey);
    }
    return issues;
}
