// The Cloudflare front door under Pulumi's mock runtime: what the program asks of Cloudflare in
// each mode, read back from the resources' inputs; the origin certificate checked with openssl.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { checkRegionNear } from "../components/front-door-spec";
import { HAPROXY_CFG, ORIGIN_PEM } from "../components/render/haproxy";
import { Evaluation, RecordedResource } from "../scripts/lib/mock-program";
import { mockOriginCa } from "../scripts/lib/mock-tls";
import { evaluate, ofType } from "./helpers/program";
import { prodStack, withConfig } from "./helpers/stack";
import { StackFile } from "../scripts/lib/stack-file";

const T = {
    monitor: "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor",
    pool: "cloudflare:index/loadBalancerPool:LoadBalancerPool",
    lb: "cloudflare:index/loadBalancer:LoadBalancer",
    record: "cloudflare:index/dnsRecord:DnsRecord",
    check: "cloudflare:index/healthcheck:Healthcheck",
    setting: "cloudflare:index/zoneSetting:ZoneSetting",
    hostnameTls: "cloudflare:index/hostnameTlsSetting:HostnameTlsSetting",
    originCert: "cloudflare:index/originCaCertificate:OriginCaCertificate",
    policy: "cloudflare:index/notificationPolicy:NotificationPolicy",
    webhook: "cloudflare:index/notificationPolicyWebhooks:NotificationPolicyWebhooks",
    bucket: "cloudflare:index/r2Bucket:R2Bucket",
} as const;

const PROD_CLOUDFLARE = () => JSON.parse(prodStack().values["vps-ha:cloudflare"]);
const withCloudflare = (edits: Record<string, unknown>) => withConfig({ cloudflare: { ...PROD_CLOUDFLARE(), ...edits } });
const BUDGET = { loadBalancer: false, zonePlan: "pro" };
/** As after `pulumi config set --path --secret 'vps-ha:cloudflare.alerts.webhookUrl' ...`: the whole key is secret. */
const secretCloudflare = (file: StackFile): StackFile => ({ ...file, secretKeys: [...file.secretKeys, "vps-ha:cloudflare"] });

function one(e: Evaluation, type: string, pick: (r: RecordedResource) => boolean = () => true): RecordedResource {
    const found = ofType(e, type).filter(pick);
    assert.equal(found.length, 1, `expected one ${type}, found ${found.length}`);
    return found[0];
}

/** Provider and public IPv4 of each HAProxy node, from the program's own outputs. */
function haproxyNodes(e: Evaluation): { name: string; provider: string; publicIpv4: string; publicIpv6?: string }[] {
    return (e.outputs.nodes as { name: string; role: string; provider: string; publicIpv4: string; publicIpv6?: string }[]).filter((n) => n.role === "haproxy");
}

function filesOf(userData: string): Record<string, string> {
    return Object.fromEntries((parse(userData).write_files as { path: string; content: string }[]).map((f) => [f.path, f.content]));
}

function openssl(args: string[], files: Record<string, string>): { status: number | null; out: string } {
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-front-door-"));
    try {
        for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
        const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8", timeout: 10000 });
        return { status: r.status, out: r.stdout + r.stderr };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

describe("Cloudflare front door (mock runtime)", function () {
    this.timeout(60000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    describe("with the Load Balancing add-on", () => {
        it("monitors the HAProxy nodes with an HTTPS GET of the configured path, expecting 200, at the configured pace", async () => {
            const e = await evaluate(withCloudflare({ zonePlan: "business", monitor: { interval: 15, retries: 3, timeout: 4, path: "/ready" } }));
            const m = one(e, T.monitor).inputs;
            assert.deepEqual(
                { type: m.type, method: m.method, port: m.port, path: m.path, expectedCodes: m.expectedCodes, interval: m.interval, retries: m.retries, timeout: m.timeout, header: m.header },
                { type: "https", method: "GET", port: 443, path: "/ready", expectedCodes: "200", interval: 15, retries: 3, timeout: 4, header: { Host: ["app.example.com"] } },
            );
            assert.equal(m.accountId, PROD_CLOUDFLARE().accountId);
            // HAProxy answers that very path itself.
            for (const lb of ["lb-1", "lb-2"]) assert.match(filesOf(e.config[lb])[HAPROXY_CFG], /\n\s+monitor-uri \/ready\n/);
            const d = one(prod, T.monitor).inputs;
            assert.deepEqual([d.path, d.interval, d.retries, d.timeout], ["/healthz", 60, 2, 5]);
        });

        it("has one pool per provider, holding that provider's HAProxy node by its public IP, watched by the monitor", () => {
            const monitor = one(prod, T.monitor);
            const pools = ofType(prod, T.pool);
            const nodes = haproxyNodes(prod);
            assert.equal(pools.length, new Set(nodes.map((n) => n.provider)).size);
            for (const node of nodes) {
                const pool = pools.filter((p) => (p.inputs.origins as { address: string }[]).some((o) => o.address === node.publicIpv4));
                assert.equal(pool.length, 1, `${node.name} (${node.provider}) is in ${pool.length} pools`);
                assert.deepEqual((pool[0].inputs.origins as { address: string; name: string }[]).map((o) => [o.name, o.address]), [[node.name, node.publicIpv4]]);
                assert.equal(pool[0].inputs.monitor, monitor.id);
                assert.match(String(pool[0].inputs.description), new RegExp(node.provider));
                // Checked from the Cloudflare region nearest the node (both are in Germany).
                assert.deepEqual(pool[0].inputs.checkRegions, ["WEU"]);
            }
        });

        it("puts the app's and the candidate's hostnames, proxied, over both pools: ordered failover with a fallback pool", () => {
            const poolOf = (node: string) => one(prod, T.pool, (p) => (p.inputs.origins as { name: string }[])[0].name === node).id;
            const lbs = ofType(prod, T.lb);
            assert.deepEqual(lbs.map((l) => l.inputs.name).sort(), ["app.example.com", "candidate.example.com"]);
            for (const lb of lbs) {
                assert.equal(lb.inputs.proxied, true);
                assert.equal(lb.inputs.steeringPolicy, "off");
                assert.equal(lb.inputs.zoneId, PROD_CLOUDFLARE().zoneId);
                // The config's order: lb-1 first; lb-2 takes over, and is the fallback.
                assert.deepEqual(lb.inputs.defaultPools, [poolOf("lb-1"), poolOf("lb-2")]);
                assert.equal(lb.inputs.fallbackPool, poolOf("lb-2"));
                assert.deepEqual(lb.inputs.adaptiveRouting, { failoverAcrossPools: true });
            }
            assert.equal(ofType(prod, T.check).length, 0);
            assert.equal(ofType(prod, T.record).filter((r) => r.inputs.proxied === true).length, 0, "no proxied records beside the load balancer");
        });

        it("steers at random when asked, and follows configured hostnames", async () => {
            const e = await evaluate(withCloudflare({ steering: "random", hostname: "www.example.com", candidateHostname: "next.example.com" }));
            const lbs = ofType(e, T.lb);
            assert.deepEqual(lbs.map((l) => l.inputs.name).sort(), ["next.example.com", "www.example.com"]);
            for (const lb of lbs) {
                assert.equal(lb.inputs.steeringPolicy, "random");
                assert.deepEqual(lb.inputs.randomSteering, { defaultWeight: 1 });
            }
            assert.deepEqual(one(e, T.monitor).inputs.header, { Host: ["www.example.com"] });
        });

        it("alerts on pool and origin health changes to the email and the webhook, whose URL and secret stay secret", async () => {
            const e = await evaluate(secretCloudflare(withCloudflare({ alerts: { email: "ops@example.com", webhookUrl: "https://hooks.example.com/cf" } })));
            const webhook = one(e, T.webhook);
            assert.equal(webhook.inputs.url, "https://hooks.example.com/cf");
            assert.ok(webhook.secretInputs.includes("url"), "the webhook's URL (it may carry a token) must be a Pulumi secret");
            assert.ok(webhook.secretInputs.includes("secret"), "the webhook's secret must be a Pulumi secret");
            // The generated secret exists before the webhook is created (Cloudflare tests it then).
            const generated = one(e, "random:index/randomPassword:RandomPassword", (r) => r.name === "front-door-webhook-secret");
            assert.ok(e.resources.indexOf(generated) < e.resources.indexOf(webhook));
            assert.deepEqual(e.options[webhook.name]?.dependsOn, [generated.name]);
            assert.match(String(webhook.inputs.secret), /^[A-Za-z0-9]{32}$/);
            const policy = one(e, T.policy);
            assert.equal(policy.inputs.alertType, "load_balancing_health_alert");
            assert.deepEqual(policy.inputs.mechanisms, { emails: [{ id: "ops@example.com" }], webhooks: [{ id: webhook.id }] });
            const filters = policy.inputs.filters as { poolIds: string[]; eventSources: string[] };
            assert.deepEqual([...filters.poolIds].sort(), ofType(e, T.pool).map((p) => p.id).sort());
            assert.deepEqual(filters.eventSources, ["pool", "origin"]);
            // The receiver gets the secret from the stack output, which is secret too.
            assert.ok(e.secretOutputs.includes("alertWebhookSecret"));
            assert.equal(e.outputs.alertWebhookSecret, webhook.inputs.secret);
            // Email only: no webhook resource.
            const email = await evaluate(withCloudflare({ alerts: { email: "ops@example.com" } }));
            assert.deepEqual(one(email, T.policy).inputs.mechanisms, { emails: [{ id: "ops@example.com" }] });
            assert.equal(ofType(email, T.webhook).length, 0);
            const off = await evaluate(withCloudflare({ alerts: { enabled: false, email: "ops@example.com" } }));
            assert.equal(ofType(off, T.policy).length, 0);
        });

        it("uses the stack's own webhook secret when set, so the receiver knows it before Cloudflare's test", async () => {
            const own = "0123456789abcdefOWNSECRET";
            const e = await evaluate(secretCloudflare(withCloudflare({ alerts: { webhookUrl: "https://hooks.example.com/cf", webhookSecret: own } })));
            assert.equal(one(e, T.webhook).inputs.secret, own);
            assert.ok(one(e, T.webhook).secretInputs.includes("secret"));
            assert.equal(ofType(e, "random:index/randomPassword:RandomPassword").filter((r) => r.name === "front-door-webhook-secret").length, 0);
            assert.equal(e.outputs.alertWebhookSecret, own);
        });
    });

    describe("budget mode (no load balancer)", () => {
        let budget: Evaluation;
        before(async () => {
            budget = await evaluate(withCloudflare({ ...BUDGET, alerts: { email: "ops@example.com" } }));
        });

        it("has proxied A and AAAA records for both hostnames on every HAProxy node, and no load-balancing resources", () => {
            for (const type of [T.monitor, T.pool, T.lb]) assert.equal(ofType(budget, type).length, 0, type);
            const proxied = ofType(budget, T.record).filter((r) => r.inputs.proxied === true);
            const got = proxied.map((r) => `${r.inputs.name} ${r.inputs.type} ${r.inputs.content}`).sort();
            const want = haproxyNodes(budget).flatMap((n) => ["app.example.com", "candidate.example.com"].flatMap((h) => [`${h} A ${n.publicIpv4}`, `${h} AAAA ${n.publicIpv6}`])).sort();
            assert.deepEqual(got, want);
            for (const r of proxied) assert.equal(r.inputs.ttl, 1);
            // The nodes' own records stay DNS-only.
            assert.ok(ofType(budget, T.record).filter((r) => String(r.inputs.name).endsWith(".nodes.example.com")).every((r) => r.inputs.proxied === false));
        });

        it("health-checks each HAProxy node as the monitor would, and alerts on their status", () => {
            const checks = ofType(budget, T.check);
            assert.deepEqual(checks.map((c) => c.inputs.address).sort(), haproxyNodes(budget).map((n) => n.publicIpv4).sort());
            for (const c of checks) {
                assert.equal(c.inputs.type, "HTTPS");
                assert.deepEqual([c.inputs.interval, c.inputs.retries, c.inputs.timeout], [60, 2, 5]);
                const http = c.inputs.httpConfig as Record<string, unknown>;
                assert.deepEqual([http.method, http.path, http.port, http.expectedCodes], ["GET", "/healthz", 443, ["200"]]);
                assert.match(String(c.inputs.name), /^[A-Za-z0-9_-]+$/);
            }
            const policy = one(budget, T.policy);
            assert.equal(policy.inputs.alertType, "health_check_status_notification");
            assert.deepEqual([...(policy.inputs.filters as { healthCheckIds: string[] }).healthCheckIds].sort(), checks.map((c) => c.id).sort());
        });
    });

    it("touches no zone-wide setting unless asked; sets TLS 1.2 and up on its own two hostnames", () => {
        assert.equal(ofType(prod, T.setting).length, 0);
        const tls = ofType(prod, T.hostnameTls).map((s) => `${s.inputs.zoneId} ${s.inputs.hostname} ${s.inputs.settingId}=${s.inputs.value}`).sort();
        assert.deepEqual(tls, [`${PROD_CLOUDFLARE().zoneId} app.example.com min_tls_version=1.2`, `${PROD_CLOUDFLARE().zoneId} candidate.example.com min_tls_version=1.2`]);
        // HSTS comes from HAProxy, per hostname: no includeSubDomains, which would reach the zone's other names.
        for (const lb of ["lb-1", "lb-2"]) {
            const cfg = filesOf(prod.config[lb])[HAPROXY_CFG];
            assert.match(cfg, /Strict-Transport-Security "max-age=31536000" if \{ var\(txn\.visitor_https\) -m bool \}\n/);
            assert.doesNotMatch(cfg, /includeSubDomains/);
        }
    });

    it("with zoneSettings: true, sets the zone to Full (strict), always HTTPS, TLS 1.2 and up, HSTS with the configured max-age, as HAProxy does", async () => {
        const e = await evaluate(withCloudflare({ hstsMaxAgeSeconds: 86400, zoneSettings: true }));
        const settings = Object.fromEntries(ofType(e, T.setting).map((s) => [s.inputs.settingId, s.inputs.value]));
        assert.deepEqual(settings, {
            ssl: "strict",
            always_use_https: "on",
            min_tls_version: "1.2",
            security_header: { strict_transport_security: { enabled: true, max_age: 86400, include_subdomains: true, nosniff: true, preload: false } },
        });
        for (const s of ofType(e, T.setting)) assert.equal(s.inputs.zoneId, PROD_CLOUDFLARE().zoneId);
        for (const lb of ["lb-1", "lb-2"]) assert.match(filesOf(e.config[lb])[HAPROXY_CFG], /Strict-Transport-Security "max-age=86400; includeSubDomains"/);
    });

    it("gives the HAProxy nodes an Origin CA certificate for the zone, for the program's own key, valid 15 years", () => {
        const cert = one(prod, T.originCert);
        assert.deepEqual(cert.inputs.hostnames, ["example.com", "*.example.com"]);
        assert.equal(cert.inputs.requestType, "origin-ecc");
        assert.equal(cert.inputs.requestedValidity, 5475);
        const pem = filesOf(prod.config["lb-1"])[ORIGIN_PEM];
        assert.equal(filesOf(prod.config["lb-2"])[ORIGIN_PEM], pem);
        const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(pem)?.[0] as string;
        const keyPem = /-----BEGIN (EC )?PRIVATE KEY-----[\s\S]+?-----END (EC )?PRIVATE KEY-----\n/.exec(pem)?.[0] as string;
        assert.ok(certPem && keyPem, "the PEM holds a certificate and its key");
        // The certificate was issued (by the stand-in Origin CA) for the request the program made,
        // and the key beside it is the request's key.
        assert.equal(openssl(["verify", "-CAfile", "ca.pem", "cert.pem"], { "ca.pem": mockOriginCa().certPem, "cert.pem": certPem }).status, 0);
        const pub = (command: string, file: string) => openssl([command, "-in", "f.pem", ...(command === "pkey" ? ["-pubout"] : ["-noout", "-pubkey"])], { "f.pem": file }).out;
        const keyPub = pub("pkey", keyPem);
        assert.match(keyPub, /^-----BEGIN PUBLIC KEY-----\n/);
        assert.equal(pub("x509", certPem), keyPub);
        assert.equal(pub("req", String(cert.inputs.csr)), keyPub);
        assert.match(openssl(["x509", "-in", "f.pem", "-noout", "-ext", "subjectAltName"], { "f.pem": certPem }).out, /DNS:example\.com, DNS:\*\.example\.com/);
    });

    it("keeps the origin key out of every non-secret input and every output", () => {
        const keyPem = /-----BEGIN (EC )?PRIVATE KEY-----[\s\S]+?-----END (EC )?PRIVATE KEY-----/.exec(filesOf(prod.config["lb-1"])[ORIGIN_PEM])?.[0] as string;
        const body = keyPem.split("\n")[1];
        assert.ok(body.length > 20);
        for (const r of prod.resources) {
            const open = JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k))));
            assert.ok(!open.includes(body), `${r.type} ${r.name} carries the origin key in the clear`);
        }
        assert.ok(!JSON.stringify(prod.outputs).includes(body));
    });

    it("keeps the certificate when the hostnames change or the API reorders its names (no new HAProxy servers)", async () => {
        const renamed = await evaluate(withCloudflare({ hostname: "www.example.com", candidateHostname: "next.example.com" }));
        assert.deepEqual(one(renamed, T.originCert).inputs.hostnames, one(prod, T.originCert).inputs.hostnames);
        // A refresh reads the names back in the API's order; the provider would replace the
        // certificate for that alone (cloudflare/terraform-provider-cloudflare#6239).
        assert.deepEqual(prod.options[one(prod, T.originCert).name]?.ignoreChanges, ["hostnames"]);
    });

    it("creates the backups' R2 bucket when no other endpoint is named", async () => {
        const bucket = one(prod, T.bucket);
        assert.deepEqual([bucket.inputs.name, bucket.inputs.location, bucket.inputs.accountId], ["vps-ha-prod-backups", "weur", PROD_CLOUDFLARE().accountId]);
        const backups = JSON.parse(prodStack().values["vps-ha:database"]).backups;
        const elsewhere = await evaluate(withConfig({ database: { backups: { ...backups, location: undefined, bucket: "acme-backups", endpoint: "https://s3.eu-central-1.amazonaws.com" } } }));
        assert.equal(ofType(elsewhere, T.bucket).length, 0);
    });
});

describe("Cloudflare check regions", () => {
    it("picks the region nearest each data centre", () => {
        const cities: [string, number, number, string][] = [
            ["Falkenstein", 50.5, 12.4, "WEU"], ["London", 51.5, -0.1, "WEU"], ["Helsinki", 60.2, 24.9, "EEU"],
            ["Ashburn", 39.0, -77.5, "ENAM"], ["Hillsboro", 45.5, -122.9, "WNAM"], ["Sao Paulo", -23.5, -46.6, "SSAM"],
            ["Singapore", 1.3, 103.8, "SEAS"], ["Tokyo", 35.7, 139.7, "NEAS"], ["Mumbai", 19.1, 72.9, "IN"],
            ["Sydney", -33.9, 151.2, "OC"], ["Johannesburg", -26.2, 28.0, "SAF"], ["Dubai", 25.2, 55.3, "ME"],
        ];
        for (const [city, lat, lon, region] of cities) assert.equal(checkRegionNear(lat, lon), region, city);
    });
});
