// What the drift check needs before it may call Pulumi, and how to get each missing piece.
// Pure: scripts/drift-check.ts gathers the facts (PATH, `pulumi whoami`, env, stack file).
import { catalogs } from "../../components/providers/catalogs";

export interface PrereqFacts {
    stack: string;
    /** `pulumi version` output; undefined when no `pulumi` is on PATH. */
    cliVersion?: string;
    /** `pulumi whoami`; undefined when it could not be asked (no CLI). */
    login?: { ok: boolean; detail?: string };
    /** ~/.pulumi/credentials.json exists (a previous `pulumi login`). */
    credentialsFile: boolean;
    env: Record<string, string | undefined>;
    stackFile: string;
    /** The parsed stack file; undefined when it is missing or unreadable. */
    stackDoc?: Record<string, unknown>;
}

const CLOUDFLARE = { configKey: "cloudflare:apiToken", envVar: "CLOUDFLARE_API_TOKEN", what: "a Cloudflare API token (the permissions are listed in README.md, Deploying for real)" };
const PLACEHOLDER = /^v1:placeholder/;

const LOGIN_HOW =
    "set PULUMI_ACCESS_TOKEN (a Pulumi Cloud access token: app.pulumi.com, Personal access tokens) or run `pulumi login` " +
    "(`pulumi login --local` or `pulumi login s3://...` for a self-managed backend)";

/** Providers named by the stack's nodes; every cloud provider when the nodes cannot be read. */
function providersOf(config: Record<string, unknown>): string[] {
    const nodes = config["vps-ha:nodes"];
    const all = Object.keys(catalogs).filter((p) => catalogs[p].token);
    if (typeof nodes !== "object" || nodes === null) return all;
    const named = Object.values(nodes).flatMap((list) => (Array.isArray(list) ? list.map((n) => (n as { provider?: unknown })?.provider) : []));
    return [...new Set(named.filter((p): p is string => typeof p === "string" && catalogs[p]?.token !== undefined))];
}

function configured(config: Record<string, unknown>, key: string): "set" | "placeholder" | "absent" {
    const v = config[key];
    if (v === undefined || v === null || v === "") return "absent";
    const secure = typeof v === "object" && "secure" in v ? (v as { secure: unknown }).secure : undefined;
    return typeof secure === "string" && PLACEHOLDER.test(secure) ? "placeholder" : "set";
}

/** Config paths whose `secure:` value is still the example's placeholder. */
function placeholderPaths(value: unknown, path = ""): string[] {
    if (typeof value !== "object" || value === null) return [];
    const secure = (value as { secure?: unknown }).secure;
    if (typeof secure === "string") return PLACEHOLDER.test(secure) ? [path] : [];
    return Object.entries(value).flatMap(([k, v]) => placeholderPaths(v, path ? (Array.isArray(value) ? `${path}[${k}]` : `${path}.${k}`) : k));
}

/** Every missing prerequisite, each with what to do about it; empty when the check can run. */
export function missingPrerequisites(f: PrereqFacts): string[] {
    const out: string[] = [];
    if (f.cliVersion === undefined) {
        out.push(
            "the Pulumi CLI is not on PATH (the drift check drives it through the Automation API): install it with " +
                "`curl -fsSL https://get.pulumi.com | sh` and add ~/.pulumi/bin to PATH (in GitHub Actions: uses: pulumi/actions@v6)",
        );
    }
    const loginKnownBad = f.login ? !f.login.ok : !f.env.PULUMI_ACCESS_TOKEN && !f.env.PULUMI_BACKEND_URL && !f.credentialsFile;
    if (loginKnownBad) out.push(`no Pulumi backend login${f.login?.detail ? ` (${f.login.detail})` : ""}: ${LOGIN_HOW}`);
    if (!f.stackDoc) {
        out.push(`${f.stackFile} is missing or unreadable: it holds the stack's config (see README, "Deploying for real")`);
        return out;
    }
    if (typeof f.stackDoc.encryptionsalt === "string" && !f.env.PULUMI_CONFIG_PASSPHRASE && !f.env.PULUMI_CONFIG_PASSPHRASE_FILE) {
        out.push(`${f.stackFile} uses a passphrase secrets provider: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)`);
    }
    const config = (typeof f.stackDoc.config === "object" && f.stackDoc.config !== null ? f.stackDoc.config : {}) as Record<string, unknown>;
    const placeholders = placeholderPaths(config);
    if (placeholders.length > 0) {
        out.push(
            `${f.stackFile} still holds placeholder secrets, which Pulumi cannot decrypt (${placeholders.join(", ")}): ` +
                `set each with \`pulumi config set --secret KEY <value> --stack ${f.stack}\` (add --path for a key inside an object, e.g. 'vps-ha:database.backups.secretAccessKey')`,
        );
    }
    const needed = [CLOUDFLARE, ...providersOf(config).map((p) => ({ ...catalogs[p].token!, what: `a ${catalogs[p].displayName} API token (read/write)` }))];
    for (const t of needed) {
        if (f.env[t.envVar]) continue;
        const state = configured(config, t.configKey);
        if (state === "set") continue;
        if (state === "placeholder") continue; // named with the placeholders above
        const why = `neither ${t.envVar} nor ${t.configKey} is set`;
        out.push(`${t.what}: ${why}; set the ${t.envVar} environment variable or run \`pulumi config set --secret ${t.configKey} <token> --stack ${f.stack}\``);
    }
    return out;
}
