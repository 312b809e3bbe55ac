// What `npm run preflight` asks each provider before a first `pulumi up`: read-only API calls
// only, through an injected fetch, so the checks run on recorded responses in tests. Each answer
// becomes a finding: ok, a problem that would stop `pulumi up`, or a note it cannot confirm.
import { backupBucketName, frontDoorHostnames, StackConfig } from "../../components/config";

export type FetchLike = (url: string, init: { headers: Record<string, string> }) => Promise<{ status: number; json(): Promise<unknown> }>;

export interface Finding {
    provider: "cloudflare" | "linode" | "hcloud";
    check: string;
    status: "ok" | "problem" | "note";
    detail: string;
}

export interface Tokens {
    cloudflare?: string;
    linode?: string;
    hcloud?: string;
}

/** Where each token comes from, as the providers read it. */
export const TOKEN_ENV = { cloudflare: "CLOUDFLARE_API_TOKEN", linode: "LINODE_TOKEN", hcloud: "HCLOUD_TOKEN" } as const;

export const API = {
    cloudflare: "https://api.cloudflare.com/client/v4",
    linode: "https://api.linode.com/v4",
    hcloud: "https://api.hetzner.cloud/v1",
} as const;

type Config = Pick<StackConfig, "stack" | "domain" | "cloudflare" | "nodes" | "admin" | "database">;

/** The providers a stack's nodes use, and which tokens it needs that are absent. */
export function missingTokens(config: Config, tokens: Tokens): (keyof Tokens)[] {
    const needed = new Set<keyof Tokens>(["cloudflare"]);
    for (const n of Object.values(config.nodes).flat()) if (n.provider === "linode" || n.provider === "hcloud") needed.add(n.provider);
    return [...needed].filter((p) => !tokens[p]);
}

interface Answer {
    status: number;
    body: unknown;
}

async function get(fetch: FetchLike, url: string, token: string): Promise<Answer> {
    try {
        const r = await fetch(url, { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" } });
        let body: unknown;
        try {
            body = await r.json();
        } catch {
            body = undefined;
        }
        return { status: r.status, body };
    } catch (e) {
        return { status: 0, body: { error: (e as Error).message } };
    }
}

/** Cloudflare's error list, as text. */
function cfErrors(a: Answer): string {
    const errors = (a.body as { errors?: { code: number; message: string }[] } | undefined)?.errors ?? [];
    return errors.length ? errors.map((e) => `${e.code} ${e.message}`).join("; ") : `HTTP ${a.status}`;
}

const ok = (a: Answer) => a.status >= 200 && a.status < 300;

export async function cloudflareChecks(config: Config, token: string, fetch: FetchLike): Promise<Finding[]> {
    const out: Finding[] = [];
    const f = (check: string, status: Finding["status"], detail: string) => out.push({ provider: "cloudflare", check, status, detail });
    const cf = config.cloudflare;
    const verify = await get(fetch, `${API.cloudflare}/user/tokens/verify`, token);
    const verifyStatus = (verify.body as { result?: { status?: string } })?.result?.status;
    if (!ok(verify) || verifyStatus !== "active") {
        f("token", "problem", `the API token is not valid (${ok(verify) ? `status ${verifyStatus}` : cfErrors(verify)}); make one as README.md, Deploying for real, lists`);
        return out;
    }
    f("token", "ok", "the API token is active");

    const zone = await get(fetch, `${API.cloudflare}/zones/${cf.zoneId}`, token);
    const z = (zone.body as { result?: { name?: string; status?: string; account?: { id?: string }; plan?: { legacy_id?: string } } })?.result;
    if (!ok(zone) || !z) {
        f("zone", "problem", `cannot read zone ${cf.zoneId} (${cfErrors(zone)}); the token needs Zone Read on it (Zone - Zone - Read)`);
    } else {
        if (z.name !== config.domain) f("zone", "problem", `zone ${cf.zoneId} is ${z.name}, but domain is ${config.domain}`);
        else if (z.status !== "active") f("zone", "problem", `zone ${z.name} is ${z.status}, not active: point the domain's name servers at Cloudflare and wait for it to be active`);
        else f("zone", "ok", `zone ${z.name} is active`);
        if (z.account?.id && z.account.id !== cf.accountId) f("account", "problem", `zone ${z.name} belongs to account ${z.account.id}, but cloudflare.accountId is ${cf.accountId}`);
        const plan = z.plan?.legacy_id;
        if (plan && plan !== cf.zonePlan) f("plan", "problem", `the zone is on the ${plan} plan, but cloudflare.zonePlan says ${cf.zonePlan}`);
    }

    if (!cf.zoneSettings) {
        const ssl = await get(fetch, `${API.cloudflare}/zones/${cf.zoneId}/settings/ssl`, token);
        const value = (ssl.body as { result?: { value?: string } })?.result?.value;
        if (!ok(ssl)) f("ssl mode", "problem", `cannot read the zone's SSL mode (${cfErrors(ssl)}); the token needs Zone Settings Read`);
        else if (value !== "strict") {
            f("ssl mode", "problem", `the zone's SSL/TLS mode is ${value}; the HAProxy nodes need Full (strict) (SSL/TLS > Overview), or set cloudflare.zoneSettings: true to have this stack set it for the whole zone`);
        } else f("ssl mode", "ok", "the zone's SSL/TLS mode is Full (strict)");
    }

    const dns = await get(fetch, `${API.cloudflare}/zones/${cf.zoneId}/dns_records?per_page=5&name.endswith=${encodeURIComponent(frontDoorHostnames(config).app)}`, token);
    f("dns", ok(dns) ? "ok" : "problem", ok(dns) ? "the token reads the zone's DNS records (DNS Edit is needed to write them)" : `cannot read DNS records (${cfErrors(dns)}); the token needs Zone - DNS - Edit`);

    if (cf.loadBalancer) out.push(...(await loadBalancingChecks(cf, token, fetch)));

    if (config.database.backups && !config.database.backups.endpoint) {
        const r2 = await get(fetch, `${API.cloudflare}/accounts/${cf.accountId}/r2/buckets`, token);
        const buckets = (r2.body as { result?: { buckets?: { name: string }[] } })?.result?.buckets ?? [];
        const bucket = backupBucketName(config) as string;
        if (!ok(r2)) {
            const notEnabled = (r2.body as { errors?: { code: number }[] })?.errors?.some((e) => e.code === 10042);
            f("r2", "problem", notEnabled
                ? "R2 is not enabled on the account: enable it in the dashboard (R2 Object Storage > Overview; a payment method is asked for)"
                : `cannot list R2 buckets (${cfErrors(r2)}); the token needs Account - Workers R2 Storage - Edit`);
        } else if (buckets.some((b) => b.name === bucket)) {
            f("r2", "problem", `an R2 bucket named ${bucket} already exists; the program creates it: pick another database.backups.bucket, or import it (pulumi import)`);
        } else f("r2", "ok", `R2 is enabled; ${bucket} is free to create`);
    }
    return out;
}

/** Cloudflare's own answer when the token may not make the call: HTTP 403, or 10000 / 9109 in its error list. */
function cfForbidden(a: Answer): boolean {
    const codes = ((a.body as { errors?: { code: number }[] } | undefined)?.errors ?? []).map((e) => e.code);
    return a.status === 403 || codes.includes(10000) || codes.includes(9109);
}

/** Cloudflare's answer when the account or zone has no Load Balancing: code 1002, "load balancing not enabled for zone" or the pools' "Access Failed". */
function cfNoLoadBalancing(a: Answer): boolean {
    const errors = (a.body as { errors?: { code: number; message?: string }[] } | undefined)?.errors ?? [];
    return errors.some((e) => e.code === 1002 && /load balancing not enabled|access failed/i.test(e.message ?? ""));
}

/** Subscription states in force (Cloudflare's list: Trial, Provisioned, Paid, AwaitingPayment, Cancelled, Failed, Expired). */
const SUBSCRIPTION_IN_FORCE = ["Trial", "Provisioned", "Paid"];

interface Subscription {
    state?: string;
    rate_plan?: { id?: string; public_name?: string };
}

/**
 * The Load Balancing add-on, told apart from the token's permissions. Cloudflare answers the
 * reads (pools, the zone's load balancers) without the add-on and refuses only the writes, with
 * 1002: so a read says whether the token may, and 1002 on a read is taken as the add-on missing
 * too; whether the add-on is there is read from the account's subscriptions, by rate plan and
 * state (Billing Read), and only a token that cannot read them leaves it unconfirmed.
 */
export async function loadBalancingChecks(cf: Config["cloudflare"], token: string, fetch: FetchLike): Promise<Finding[]> {
    const out: Finding[] = [];
    const f = (check: string, status: Finding["status"], detail: string) => out.push({ provider: "cloudflare", check, status, detail });
    let missing: string | undefined;
    const reads = [
        ["pools", `/accounts/${cf.accountId}/load_balancers/pools`, "the account's load balancer pools", "Account - Load Balancing: Monitors And Pools - Edit"],
        ["load balancers", `/zones/${cf.zoneId}/load_balancers`, "the zone's load balancers", "Zone - Load Balancers - Edit"],
    ] as const;
    for (const [what, path, whose, permission] of reads) {
        const a = await get(fetch, `${API.cloudflare}${path}`, token);
        const check = `load balancing ${what}`;
        if (ok(a)) f(check, "ok", `the token reads ${whose}`);
        else if (cfNoLoadBalancing(a)) {
            f(check, "ok", `the token reads ${whose}`);
            missing ??= `Cloudflare answers "${cfErrors(a)}" for ${whose}`;
        } else if (cfForbidden(a)) f(check, "problem", `the token may not read ${whose} (${cfErrors(a)}); give it ${permission}`);
        else f(check, "problem", `cannot read ${whose} (${cfErrors(a)})`);
    }
    const buy = "buy it (Traffic > Load Balancing, or the account's Billing > Subscriptions) before pulumi up, or set cloudflare.loadBalancer: false (budget mode)";
    if (missing) {
        f("load balancing add-on", "problem", `the account has no Load Balancing add-on: ${missing}; ${buy}`);
        return out;
    }
    const subs = await get(fetch, `${API.cloudflare}/accounts/${cf.accountId}/subscriptions`, token);
    if (!ok(subs)) {
        f("load balancing add-on", "note", `could not read the account's subscriptions (${cfErrors(subs)}), so the Load Balancing add-on is unconfirmed; give the token Account - Billing - Read to check it`);
        return out;
    }
    const lb = ((subs.body as { result?: Subscription[] })?.result ?? []).filter((x) => /^load_balancing/.test(x.rate_plan?.id ?? "") || x.rate_plan?.public_name === "Load Balancing");
    const inForce = lb.find((x) => SUBSCRIPTION_IN_FORCE.includes(x.state ?? ""));
    if (inForce) f("load balancing add-on", "ok", `the account has a Load Balancing subscription (${inForce.rate_plan?.id}, ${inForce.state})`);
    else if (lb.length) f("load balancing add-on", "problem", `the account's Load Balancing subscription is ${lb.map((x) => x.state).join(", ")}, not in force; ${buy}`);
    else f("load balancing add-on", "problem", `the account has no Load Balancing subscription; ${buy}`);
    return out;
}

export async function linodeChecks(config: Config, token: string, fetch: FetchLike): Promise<Finding[]> {
    const out: Finding[] = [];
    const f = (check: string, status: Finding["status"], detail: string) => out.push({ provider: "linode", check, status, detail });
    const nodes = Object.values(config.nodes).flat().filter((n) => n.provider === "linode");
    const profile = await get(fetch, `${API.linode}/profile`, token);
    if (!ok(profile)) {
        f("token", "problem", `the API token is not valid (HTTP ${profile.status}); make a personal access token as README.md lists`);
        return out;
    }
    f("token", "ok", `the token works (user ${(profile.body as { username?: string }).username ?? "?"})`);
    // A scope the token lacks answers 401; these are the reads behind the writes pulumi up makes.
    for (const [what, path, scope] of [["instances", "/linode/instances?page_size=25", "Linodes"], ["firewalls", "/networking/firewalls?page_size=25", "Firewalls"], ["events", "/account/events?page_size=25", "Events"]] as const) {
        const a = await get(fetch, `${API.linode}${path}`, token);
        f(`scope ${scope}`, ok(a) ? "ok" : "problem", ok(a) ? `the token reads ${what}` : `the token cannot read ${what} (HTTP ${a.status}); give it ${scope}: ${scope === "Events" ? "Read Only" : "Read/Write"}`);
    }
    const regions = await get(fetch, `${API.linode}/regions?page_size=500`, token);
    const known = new Map(((regions.body as { data?: { id: string; status?: string; capabilities?: string[] }[] })?.data ?? []).map((r) => [r.id, r]));
    const types = await get(fetch, `${API.linode}/linode/types?page_size=500`, token);
    const sizes = new Set(((types.body as { data?: { id: string }[] })?.data ?? []).map((t) => t.id));
    for (const n of nodes) {
        const r = known.get(n.region);
        if (!r) f(`region ${n.region}`, "problem", `${n.name}: Linode has no region ${n.region} (it lists ${[...known.keys()].join(", ") || "none"})`);
        else if (r.status && r.status !== "ok") f(`region ${n.region}`, "problem", `${n.name}: Linode region ${n.region} is ${r.status}`);
        else if (r.capabilities && !r.capabilities.includes("Cloud Firewall")) f(`region ${n.region}`, "problem", `${n.name}: Linode region ${n.region} has no Cloud Firewall`);
        else f(`region ${n.region}`, "ok", `${n.name}: region ${n.region} exists`);
        if (n.size !== undefined) f(`size ${n.size}`, sizes.has(n.size) ? "ok" : "problem", sizes.has(n.size) ? `${n.name}: size ${n.size} exists` : `${n.name}: Linode has no type ${n.size}`);
    }
    return dedupe(out);
}

export async function hcloudChecks(config: Config, token: string, fetch: FetchLike): Promise<Finding[]> {
    const out: Finding[] = [];
    const f = (check: string, status: Finding["status"], detail: string) => out.push({ provider: "hcloud", check, status, detail });
    const nodes = Object.values(config.nodes).flat().filter((n) => n.provider === "hcloud");
    const keys = await get(fetch, `${API.hcloud}/ssh_keys?per_page=50`, token);
    if (!ok(keys)) {
        f("token", "problem", `the API token is not valid for a project (HTTP ${keys.status}); make a Read & Write token in the project (Security > API tokens)`);
        return out;
    }
    f("token", "ok", "the project token works");
    const existing = (keys.body as { ssh_keys?: { name: string; public_key: string }[] })?.ssh_keys ?? [];
    const keyBody = (k: string) => k.trim().split(/\s+/).slice(0, 2).join(" ");
    for (const k of config.admin.sshPublicKeys) {
        const same = existing.find((e) => keyBody(e.public_key) === keyBody(k));
        if (same) f("admin key", "note", `the admin key ${keyBody(k).slice(0, 30)}... is already in the project as "${same.name}"; Hetzner refuses a second copy of a key (uniqueness_error)`);
    }
    const locations = await get(fetch, `${API.hcloud}/locations?per_page=50`, token);
    const places = new Set(((locations.body as { locations?: { name: string }[] })?.locations ?? []).map((l) => l.name));
    const types = await get(fetch, `${API.hcloud}/server_types?per_page=50`, token);
    const sizes = new Map(((types.body as { server_types?: { name: string; deprecation?: unknown }[] })?.server_types ?? []).map((t) => [t.name, t]));
    for (const n of nodes) {
        f(`region ${n.region}`, places.has(n.region) ? "ok" : "problem", places.has(n.region) ? `${n.name}: location ${n.region} exists` : `${n.name}: Hetzner has no location ${n.region} (it lists ${[...places].join(", ") || "none"})`);
        if (n.size === undefined) continue;
        const t = sizes.get(n.size);
        if (!t) f(`size ${n.size}`, "problem", `${n.name}: Hetzner has no server type ${n.size}`);
        else if (t.deprecation) f(`size ${n.size}`, "problem", `${n.name}: server type ${n.size} is deprecated; pick a current one`);
        else f(`size ${n.size}`, "ok", `${n.name}: server type ${n.size} exists`);
    }
    return dedupe(out);
}

/** One finding per check and outcome (several nodes share a region or size). */
function dedupe(findings: Finding[]): Finding[] {
    const seen = new Set<string>();
    return findings.filter((x) => {
        const key = `${x.check}|${x.status}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
    });
}

export async function preflight(config: Config, tokens: Tokens, fetch: FetchLike): Promise<Finding[]> {
    const findings: Finding[] = [];
    if (tokens.cloudflare) findings.push(...(await cloudflareChecks(config, tokens.cloudflare, fetch)));
    if (tokens.linode) findings.push(...(await linodeChecks(config, tokens.linode, fetch)));
    if (tokens.hcloud) findings.push(...(await hcloudChecks(config, tokens.hcloud, fetch)));
    return findings;
}
