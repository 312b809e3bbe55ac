// npm run preflight on recorded API answers (test/fixtures/preflight, written from the providers'
// documented response shapes): never the network. A fetch that is asked for anything not
// recorded fails the test.
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runPreflight } from "../scripts/preflight";
import { API, FetchLike } from "../scripts/lib/preflight-checks";
import { ROOT } from "./helpers/stack";

const A = "0123456789abcdef0123456789abcdef";
const Z = "fedcba9876543210fedcba9876543210";
const fixture = (name: string) => JSON.parse(readFileSync(join(ROOT, "test/fixtures/preflight", `${name}.json`), "utf8")) as { status: number; body: unknown };

/** The answers of a healthy set of accounts for the shipped prod stack, by URL without its query. */
function healthy(): Record<string, string> {
    return {
        [`${API.cloudflare}/user/tokens/verify`]: "cloudflare-token-verify",
        [`${API.cloudflare}/zones/${Z}`]: "cloudflare-zone-active",
        [`${API.cloudflare}/zones/${Z}/settings/ssl`]: "cloudflare-ssl-strict",
        [`${API.cloudflare}/zones/${Z}/dns_records`]: "cloudflare-dns-records",
        [`${API.cloudflare}/accounts/${A}/load_balancers/pools`]: "cloudflare-lb-pools",
        [`${API.cloudflare}/zones/${Z}/load_balancers`]: "cloudflare-zone-load-balancers",
        [`${API.cloudflare}/accounts/${A}/subscriptions`]: "cloudflare-subscriptions-lb",
        [`${API.cloudflare}/accounts/${A}/r2/buckets`]: "cloudflare-r2-buckets",
        [`${API.linode}/profile`]: "linode-profile",
        [`${API.linode}/linode/instances`]: "linode-empty-page",
        [`${API.linode}/networking/firewalls`]: "linode-empty-page",
        [`${API.linode}/account/events`]: "linode-empty-page",
        [`${API.linode}/regions`]: "linode-regions",
        [`${API.linode}/linode/types`]: "linode-types",
        [`${API.hcloud}/ssh_keys`]: "hcloud-ssh-keys-empty",
        [`${API.hcloud}/locations`]: "hcloud-locations",
        [`${API.hcloud}/server_types`]: "hcloud-server-types",
    };
}

const TOKENS = { CLOUDFLARE_API_TOKEN: "cf-token", LINODE_TOKEN: "li-token", HCLOUD_TOKEN: "hc-token" };

async function run(routes: Record<string, string>, env: Record<string, string> = TOKENS, argv: string[] = []) {
    const asked: { url: string; auth: string }[] = [];
    const fetch: FetchLike = async (url, init) => {
        asked.push({ url, auth: init.headers.Authorization });
        const name = routes[url.split("?")[0]];
        if (!name) throw new Error(`no recorded answer for ${url}`);
        const f = fixture(name);
        return { status: f.status, json: async () => f.body };
    };
    const lines: string[] = [];
    const code = await runPreflight(argv, env, fetch, (l) => lines.push(l));
    return { code, out: lines.join("\n"), asked };
}

describe("npm run preflight (recorded API answers)", () => {
    it("passes a stack whose accounts have everything, asking each provider with its own token", async () => {
        const r = await run(healthy());
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /nothing found that would stop pulumi up$/);
        assert.doesNotMatch(r.out, /FAIL|no recorded answer/);
        for (const text of ["cloudflare zone: zone example.com is active", "cloudflare ssl mode: the zone's SSL/TLS mode is Full (strict)", "cloudflare load balancing add-on: the account has a Load Balancing subscription (load_balancing_basic, Paid)",
            "cloudflare load balancing pools: the token reads the account's load balancer pools", "cloudflare load balancing load balancers: the token reads the zone's load balancers",
            "cloudflare r2: R2 is enabled; vps-ha-prod-backups is free to create", "linode region de-fra-2: app-1: region de-fra-2 exists", "linode size g6-standard-1: db-3: size g6-standard-1 exists",
            "hcloud region nbg1: db-2: location nbg1 exists", "hcloud size cx23: app-2: server type cx23 exists", "linode scope Events: the token reads events"]) assert.ok(r.out.includes(text), text);
        for (const a of r.asked) {
            const want = a.url.startsWith(API.cloudflare) ? "cf-token" : a.url.startsWith(API.linode) ? "li-token" : "hc-token";
            assert.equal(a.auth, `Bearer ${want}`, a.url);
        }
        assert.equal(new Set(r.asked.map((a) => a.url.split("?")[0])).size, Object.keys(healthy()).length, "every recorded endpoint asked");
    });

    it("without tokens, says exactly which are missing and how to give them, and asks nothing (exit 2)", async () => {
        const r = await run(healthy(), { LINODE_TOKEN: "x" });
        assert.equal(r.code, 2);
        assert.equal(r.out, [
            `preflight needs the API token of every provider stack "prod" uses; missing:`,
            "  - CLOUDFLARE_API_TOKEN: export CLOUDFLARE_API_TOKEN=$(pulumi config get cloudflare:apiToken) or paste the token",
            "  - HCLOUD_TOKEN: export HCLOUD_TOKEN=$(pulumi config get hcloud:token) or paste the token",
        ].join("\n"));
        assert.deepEqual(r.asked, []);
    });

    it("an invalid Cloudflare token stops the Cloudflare checks there", async () => {
        const r = await run({ ...healthy(), [`${API.cloudflare}/user/tokens/verify`]: "cloudflare-token-invalid" });
        assert.equal(r.code, 1);
        assert.match(r.out, /^FAIL cloudflare token: the API token is not valid \(1000 Invalid API Token\)/m);
        assert.ok(!r.asked.some((a) => a.url.includes("/zones/")));
    });

    it("finds a pending zone, a Flexible SSL mode, no Load Balancing add-on and R2 not enabled", async () => {
        const r = await run({
            ...healthy(),
            [`${API.cloudflare}/zones/${Z}`]: "cloudflare-zone-pending",
            [`${API.cloudflare}/zones/${Z}/settings/ssl`]: "cloudflare-ssl-flexible",
            [`${API.cloudflare}/accounts/${A}/subscriptions`]: "cloudflare-subscriptions-none",
            [`${API.cloudflare}/accounts/${A}/r2/buckets`]: "cloudflare-r2-not-enabled",
        });
        assert.equal(r.code, 1);
        assert.match(r.out, /^FAIL cloudflare zone: zone example.com is pending, not active/m);
        assert.match(r.out, /^FAIL cloudflare ssl mode: the zone's SSL\/TLS mode is flexible; the HAProxy nodes need Full \(strict\)/m);
        assert.match(r.out, /^FAIL cloudflare load balancing add-on: the account has no Load Balancing subscription; buy it/m);
        assert.match(r.out, /^FAIL cloudflare r2: R2 is not enabled on the account/m);
        assert.match(r.out, /^4 problem\(s\) would stop pulumi up$/m);
    });

    it("finds a token without the Load Balancing scope, and a bucket name already taken", async () => {
        const r = await run({ ...healthy(), [`${API.cloudflare}/accounts/${A}/load_balancers/pools`]: "cloudflare-forbidden", [`${API.cloudflare}/accounts/${A}/r2/buckets`]: "cloudflare-r2-taken" });
        assert.equal(r.code, 1);
        assert.match(r.out, /^FAIL cloudflare load balancing pools: the token may not read the account's load balancer pools \(10000 Authentication error\); give it Account - Load Balancing: Monitors And Pools - Edit$/m);
        assert.match(r.out, /^FAIL cloudflare r2: an R2 bucket named vps-ha-prod-backups already exists/m);
        // The add-on is still told apart: the subscription is there.
        assert.match(r.out, /^ok +cloudflare load balancing add-on: the account has a Load Balancing subscription/m);
    });

    describe("the Load Balancing add-on, told apart from the token's permissions", () => {
        const POOLS = `${API.cloudflare}/accounts/${A}/load_balancers/pools`;
        const ZONE_LBS = `${API.cloudflare}/zones/${Z}/load_balancers`;
        const SUBS = `${API.cloudflare}/accounts/${A}/subscriptions`;
        const lines = (out: string) => out.split("\n").filter((l) => l.includes("cloudflare load balancing"));

        it("a token without the zone's Load Balancers permission (9109): the token, not the add-on", async () => {
            const r = await run({ ...healthy(), [ZONE_LBS]: "cloudflare-unauthorized-9109" });
            assert.equal(r.code, 1);
            assert.deepEqual(lines(r.out).map((l) => l.split(":")[0]), ["ok   cloudflare load balancing pools", "FAIL cloudflare load balancing load balancers", "ok   cloudflare load balancing add-on"]);
            assert.match(r.out, /^FAIL cloudflare load balancing load balancers: the token may not read the zone's load balancers \(9109 Unauthorized to access requested resource\); give it Zone - Load Balancers - Edit$/m);
        });

        it("Cloudflare's 1002 (\"load balancing not enabled for zone\", the pools' \"Access Failed\"): the add-on, not the token, and no subscription read", async () => {
            for (const [url, fixture, said] of [[ZONE_LBS, "cloudflare-lb-not-enabled", "load balancing not enabled for zone"], [POOLS, "cloudflare-lb-pools-access-failed", "Access Failed"]]) {
                const r = await run({ ...healthy(), [url]: fixture });
                assert.equal(r.code, 1, r.out);
                assert.match(r.out, new RegExp(`^FAIL cloudflare load balancing add-on: the account has no Load Balancing add-on: Cloudflare answers "1002 [^"]*${said}[^"]*" for the (zone|account)'s [a-z ]+; buy it`, "m"));
                assert.doesNotMatch(r.out, /may not read/);
                assert.ok(!r.asked.some((a) => a.url.startsWith(SUBS)), "decided without the subscriptions");
            }
        });

        it("a subscription list without Load Balancing, with it cancelled, or naming load balancers elsewhere: no add-on", async () => {
            const none = await run({ ...healthy(), [SUBS]: "cloudflare-subscriptions-none" });
            assert.match(none.out, /^FAIL cloudflare load balancing add-on: the account has no Load Balancing subscription; buy it/m);
            const cancelled = await run({ ...healthy(), [SUBS]: "cloudflare-subscriptions-lb-cancelled" });
            assert.match(cancelled.out, /^FAIL cloudflare load balancing add-on: the account's Load Balancing subscription is Cancelled, not in force/m);
            // A zone plan with a "load_balancers" component is not the add-on (a text search would have said it was).
            const other = await run({ ...healthy(), [SUBS]: "cloudflare-subscriptions-other" });
            assert.match(readFileSync(join(ROOT, "test/fixtures/preflight/cloudflare-subscriptions-other.json"), "utf8").toLowerCase(), /load.?balanc/);
            assert.match(other.out, /^FAIL cloudflare load balancing add-on: the account has no Load Balancing subscription/m);
            for (const r of [none, cancelled, other]) {
                assert.equal(r.code, 1);
                assert.doesNotMatch(r.out, /may not read/, "the token is fine");
            }
        });

        it("a token that cannot read the subscriptions: the add-on unconfirmed, said as a note with the permission that would tell", async () => {
            const r = await run({ ...healthy(), [SUBS]: "cloudflare-unauthorized-9109" });
            assert.equal(r.code, 0, r.out);
            assert.match(r.out, /^note cloudflare load balancing add-on: could not read the account's subscriptions \(9109 Unauthorized to access requested resource\), so the Load Balancing add-on is unconfirmed; give the token Account - Billing - Read/m);
        });

        it("budget mode asks nothing about Load Balancing", async () => {
            const dir = mkdtempSync(join(tmpdir(), "vps-ha-preflight-"));
            try {
                const prod = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
                const budget = prod.replace(/loadBalancer: true/, "loadBalancer: false").replace(/zonePlan: free/, "zonePlan: pro");
                assert.notEqual(budget, prod);
                writeFileSync(join(dir, "Pulumi.prod.yaml"), budget);
                const r = await run(healthy(), TOKENS, ["--config", join(dir, "Pulumi.prod.yaml")]);
                assert.ok(r.asked.length > 0, r.out);
                assert.doesNotMatch(r.out, /load balancing/);
                assert.ok(!r.asked.some((a) => /load_balancers|subscriptions/.test(a.url)), JSON.stringify(r.asked));
            } finally {
                rmSync(dir, { recursive: true, force: true });
            }
        });
    });

    it("finds a Linode token without the Events scope, and a bad Linode token", async () => {
        const events = await run({ ...healthy(), [`${API.linode}/account/events`]: "linode-scope-missing" });
        assert.equal(events.code, 1);
        assert.match(events.out, /^FAIL linode scope Events: the token cannot read events \(HTTP 401\); give it Events: Read Only$/m);
        const bad = await run({ ...healthy(), [`${API.linode}/profile`]: "linode-unauthorized" });
        assert.match(bad.out, /^FAIL linode token: the API token is not valid \(HTTP 401\)/m);
    });

    it("notes an admin key already in the Hetzner project, and a bad Hetzner token", async () => {
        const r = await run({ ...healthy(), [`${API.hcloud}/ssh_keys`]: "hcloud-ssh-keys-admin" });
        assert.match(r.out, /^note hcloud admin key: the admin key ssh-ed25519 AAAAC3NzaC1lZDI1NT\.\.\. is already in the project as "laptop"; Hetzner refuses a second copy/m);
        const bad = await run({ ...healthy(), [`${API.hcloud}/ssh_keys`]: "hcloud-unauthorized" });
        assert.equal(bad.code, 1);
        assert.match(bad.out, /^FAIL hcloud token: the API token is not valid for a project \(HTTP 401\)/m);
    });

    it("finds a region or size the provider does not list, or a deprecated one", async () => {
        const regions = { status: 200, body: { data: (fixture("linode-regions").body as { data: { id: string }[] }).data.filter((x) => x.id !== "de-fra-2") } };
        const types = fixture("hcloud-server-types");
        (types.body as { server_types: { name: string; deprecation: unknown }[] }).server_types[0].deprecation = { announced: "2026-01-01T00:00:00+00:00", unavailable_after: "2026-06-01T00:00:00+00:00" };
        const routes = healthy();
        const asked: string[] = [];
        const fetch: FetchLike = async (url) => {
            asked.push(url);
            const path = url.split("?")[0];
            const f = path === `${API.linode}/regions` ? regions : path === `${API.hcloud}/server_types` ? types : fixture(routes[path]);
            return { status: f.status, json: async () => f.body };
        };
        const lines: string[] = [];
        assert.equal(await runPreflight([], TOKENS, fetch, (l) => lines.push(l)), 1);
        const out = lines.join("\n");
        assert.match(out, /^FAIL linode region de-fra-2: app-1: Linode has no region de-fra-2 \(it lists eu-central, us-east\)$/m);
        assert.match(out, /^FAIL hcloud size cx23: app-2: server type cx23 is deprecated/m);
    });

    it("exits 2 with the message for a bad stack file, before asking anything", async () => {
        const r = await run(healthy(), TOKENS, ["--stack", "nope"]);
        assert.equal(r.code, 2);
        assert.match(r.out, /^Pulumi\.nope\.yaml: cannot read .*Pulumi\.nope\.yaml: ENOENT$/);
        assert.deepEqual(r.asked, []);
    });
});
