import { strict as assert } from "node:assert";
import { backupBucketName, CONFIG_KEYS, ConfigError, ConfigIssue, frontDoorHostnames, MAX_MAX_CONNECTIONS, MIN_MAX_CONNECTIONS, OFFLINE_SECRET, parseStackConfig, REQUIRED_CONFIG_KEYS } from "../components/config";
import { prodNodes, prodStack, raw, ROOT, shippedProdStack, withConfig } from "./helpers/stack";
import { StackFile } from "../scripts/lib/stack-file";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

function issuesOf(file: StackFile, env: Record<string, string> = {}): ConfigIssue[] {
    try {
        parseStackConfig(raw(file, env), "prod");
    } catch (e) {
        if (e instanceof ConfigError) return e.issues;
        throw e;
    }
    return [];
}

/** Asserts one issue sits at `path` and its message matches every pattern. */
function expectIssue(issues: ConfigIssue[], path: string, ...patterns: RegExp[]): void {
    const found = issues.filter((i) => i.path === path);
    assert.ok(found.length > 0, `expected an issue at ${path}; got:\n${issues.map((i) => `${i.path}: ${i.message}`).join("\n")}`);
    for (const p of patterns) assert.match(found.map((i) => i.message).join(" | "), p);
}

describe("stack config validation", () => {
    it("accepts the shipped prod stack", () => {
        const config = parseStackConfig(raw(prodStack()), "prod");
        assert.equal(config.nodes.db.length, 3);
        assert.equal(config.mesh.port, 51820);
        assert.deepEqual(config.admin.sshCidrs, []);
    });

    it("rejects an unknown provider, naming the key and the allowed ones", () => {
        const nodes = prodNodes();
        nodes.app[0].provider = "vultr";
        expectIssue(issuesOf(withConfig({ nodes })), "vps-ha:nodes.app[0].provider", /"vultr"/, /linode, hcloud, ssh/);
    });

    it("rejects a region or size the provider does not have", () => {
        const nodes = prodNodes();
        nodes.db[0].region = "mars-1";
        nodes.db[2].size = "g6-huge-99";
        const issues = issuesOf(withConfig({ nodes }));
        expectIssue(issues, "vps-ha:nodes.db[0].region", /"mars-1"/, /fsn1/);
        expectIssue(issues, "vps-ha:nodes.db[2].size", /"g6-huge-99"/, /g6-nanode-1/);
    });

    it("rejects retire, which older stack files used, saying how a member leaves now", () => {
        const nodes = prodNodes();
        (nodes.db[1] as Record<string, unknown>).retire = true;
        expectIssue(issuesOf(withConfig({ nodes })), "vps-ha:nodes.db[1].retire", /no longer used: remove it/, /removing it from the stack file/, /one pulumi up/);
    });

    it("rejects a size the region does not offer", () => {
        const nodes = prodNodes();
        nodes.app[1].region = "ash";
        expectIssue(issuesOf(withConfig({ nodes })), "vps-ha:nodes.app[1].size", /not offered in ash/);
    });

    it("rejects fewer than 3 or an even number of database members", () => {
        for (const count of [2, 4]) {
            const nodes = prodNodes();
            nodes.db = count === 2 ? nodes.db.slice(0, 2).map((n, i) => ({ ...n, provider: i ? "linode" : "hcloud", region: i ? "de-fra-2" : "fsn1", size: i ? "g6-standard-1" : "cx23" }))
                : [...nodes.db, { name: "db-4", provider: "linode", region: "eu-central", size: "g6-standard-1" }];
            expectIssue(issuesOf(withConfig({ nodes })), "vps-ha:nodes.db", new RegExp(`has ${count} member`), /odd number, 3 or 5/);
        }
    });

    it("rejects all database members on one provider", () => {
        const nodes = prodNodes();
        nodes.db[2] = { name: "db-3", provider: "hcloud", region: "hel1", size: "cx23" };
        expectIssue(issuesOf(withConfig({ nodes })), "vps-ha:nodes.db", /all database members are on hcloud/);
    });

    it("rejects fewer than 2 app or HAProxy nodes, and both HAProxy nodes on one provider", () => {
        const one = prodNodes();
        one.app = one.app.slice(0, 1);
        one.haproxy = one.haproxy.slice(0, 1);
        const issues = issuesOf(withConfig({ nodes: one }));
        expectIssue(issues, "vps-ha:nodes.app", /has 1 node/);
        expectIssue(issues, "vps-ha:nodes.haproxy", /has 1 node/);
        const same = prodNodes();
        same.haproxy[0] = { name: "lb-1", provider: "hcloud", region: "nbg1", size: "cx23" };
        expectIssue(issuesOf(withConfig({ nodes: same })), "vps-ha:nodes.haproxy", /both HAProxy nodes are on hcloud/);
    });

    it("rejects duplicate node names", () => {
        const nodes = prodNodes();
        nodes.app[1].name = "db-1";
        expectIssue(issuesOf(withConfig({ nodes })), "vps-ha:nodes.db[0].name", /"db-1" is already the name of vps-ha:nodes.app\[1\]/);
    });

    it("rejects a bad CIDR in the admin SSH ranges", () => {
        const issues = issuesOf(withConfig({ admin: { sshCidrs: ["203.0.113.0/24", "10.0.0.300/8", "2001:db8::/200"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] } }));
        expectIssue(issues, "vps-ha:admin.sshCidrs[1]", /"10.0.0.300\/8" is not a CIDR/);
        expectIssue(issues, "vps-ha:admin.sshCidrs[2]", /"2001:db8::\/200" is not a CIDR/);
        assert.ok(!issues.some((i) => i.path === "vps-ha:admin.sshCidrs[0]"));
    });

    it("rejects a mesh CIDR too small for the nodes, or not private", () => {
        expectIssue(issuesOf(withConfig({ mesh: { cidr: "10.77.0.0/28" } })), "vps-ha:mesh.cidr", /14 host addresses for 7 nodes/);
        expectIssue(issuesOf(withConfig({ mesh: { cidr: "8.8.0.0/16" } })), "vps-ha:mesh.cidr", /private IPv4 network/);
    });

    it("rejects a missing provider token or Cloudflare token, zone or account", () => {
        const file = withConfig({ "linode:token": undefined, "cloudflare:apiToken": undefined, cloudflare: { accountId: "0123456789abcdef0123456789abcdef" } });
        file.secretKeys = file.secretKeys.filter((k) => k !== "linode:token" && k !== "cloudflare:apiToken");
        const issues = issuesOf(file);
        expectIssue(issues, "vps-ha:cloudflare.zoneId", /is required/);
        const secrets = issuesOf(withConfig({}, { ...file, values: { ...file.values, "vps-ha:cloudflare": prodStack().values["vps-ha:cloudflare"] } }));
        expectIssue(secrets, "linode:token", /is missing/, /pulumi config set --secret linode:token/, /LINODE_TOKEN/);
        expectIssue(secrets, "cloudflare:apiToken", /is missing/);
        // A token in the environment is as good as one in config.
        const fromEnv = issuesOf({ ...file, values: { ...file.values, "vps-ha:cloudflare": prodStack().values["vps-ha:cloudflare"] } }, { LINODE_TOKEN: "x", CLOUDFLARE_API_TOKEN: "y" });
        assert.deepEqual(fromEnv, []);
        expectIssue(issuesOf(withConfig({ cloudflare: { zoneId: "fedcba9876543210fedcba9876543210" } })), "vps-ha:cloudflare.accountId", /is required/);
        expectIssue(issuesOf(withConfig({ domain: undefined })), "vps-ha:domain", /is required/);
    });

    it("rejects a secret given as plain text", () => {
        const file = prodStack();
        file.secretKeys = file.secretKeys.filter((k) => k !== "hcloud:token");
        expectIssue(issuesOf(file), "hcloud:token", /stored as plain text/, /pulumi config set --secret hcloud:token/);
    });

    it("reports every problem at once", () => {
        const nodes = prodNodes();
        nodes.app[0].provider = "vultr";
        nodes.db[0].region = "mars-1";
        const issues = issuesOf(withConfig({ nodes, admin: { sshCidrs: ["nope"], sshPublicKeys: ["ssh-ed25519 AAAA x"] }, mesh: { cidr: "10.0.0.0/29" } }));
        for (const path of ["vps-ha:nodes.app[0].provider", "vps-ha:nodes.db[0].region", "vps-ha:admin.sshCidrs[0]", "vps-ha:mesh.cidr"]) expectIssue(issues, path);
    });

    it("rejects unknown keys, wrong types and bad app settings with the allowed values", () => {
        const issues = issuesOf(withConfig({ nodes: { ...prodNodes(), extra: [] }, colour: "blue", app: { image: "ghcr.io/example/app", port: 70000, healthPath: "healthz" } }));
        expectIssue(issues, "vps-ha:nodes", /unknown key\(s\) extra/, /app, haproxy, db, witness/);
        expectIssue(issues, "vps-ha:colour", /not a vps-ha setting/);
        expectIssue(issues, "vps-ha:app.image", /tag or digest/, /"ghcr.io\/example\/app"/);
        expectIssue(issues, "vps-ha:app.port", /70000/);
        expectIssue(issues, "vps-ha:app.healthPath", /must be a path such as \/healthz/, /"healthz"/);
    });

    it("rejects app variables vps-ha sets itself, bad variable names, multi-line values and empty commands", () => {
        const app = { image: "ghcr.io/example/app:1.4.2", env: { DATABASE_URL: "x", "1BAD": "y", OK: "two\nlines" }, command: [], worker: { command: [""] } };
        const issues = issuesOf(withConfig({ app }));
        expectIssue(issues, "vps-ha:app.env.DATABASE_URL", /set by vps-ha itself/, /DATABASE_URL, DATABASE_POOLED_URL, HOST, PORT/);
        expectIssue(issues, "vps-ha:app.env.1BAD", /environment variable name/);
        expectIssue(issues, "vps-ha:app.env.OK", /one line/);
        expectIssue(issues, "vps-ha:app.command", /.+/);
        expectIssue(issues, "vps-ha:app.worker.command[0]", /.+/);
    });

    it("accepts app variables, a command and a worker", () => {
        const config = parseStackConfig(raw(withConfig({ app: { image: "ghcr.io/example/app@sha256:" + "a".repeat(64), env: { LOG_LEVEL: "info" }, worker: { command: ["bin/worker"] } } })), "prod");
        assert.deepEqual(config.app.env, { LOG_LEVEL: "info" });
        assert.deepEqual(config.app.worker, { command: ["bin/worker"] });
        assert.equal(config.app.port, 8080);
    });

    it("rejects a witness in a failure domain that holds a database member", () => {
        const nodes = prodNodes();
        nodes.witness = [{ name: "witness-1", provider: "hcloud", region: "fsn1", size: "cx23" }];
        expectIssue(issuesOf(withConfig({ nodes })), "vps-ha:nodes.witness[0].region", /third one/);
    });

    it("asks for a host, SSH access and a key for hosts you bring", () => {
        const nodes = prodNodes();
        nodes.witness = [{ name: "witness-1", provider: "ssh", region: "home-office" }];
        const issues = issuesOf(withConfig({ nodes }));
        expectIssue(issues, "vps-ha:nodes.witness[0].host", /is required/);
        expectIssue(issues, "vps-ha:admin.sshCidrs", /set up over SSH/);
        expectIssue(issues, "vps-ha:sshPrivateKey", /is missing/);
    });
});

describe("stack config validation: the Cloudflare front door", () => {
    const cloudflare = (edits: Record<string, unknown>) => withConfig({ cloudflare: { ...JSON.parse(prodStack().values["vps-ha:cloudflare"]), ...edits } });

    it("fills in the defaults: app.<domain>, candidate.<domain>, ordered failover, a 60 s check of /healthz", () => {
        const config = parseStackConfig(raw(withConfig({ cloudflare: { accountId: "0123456789abcdef0123456789abcdef", zoneId: "fedcba9876543210fedcba9876543210" } })), "prod");
        assert.deepEqual(frontDoorHostnames(config), { app: "app.example.com", candidate: "candidate.example.com" });
        assert.equal(config.cloudflare.steering, "off");
        assert.deepEqual(config.cloudflare.monitor, { interval: 60, retries: 2, timeout: 5, path: "/healthz" });
        assert.equal(config.cloudflare.loadBalancer, true);
        assert.equal(config.cloudflare.alerts, undefined);
        // A YAML 1.1 reader turns an unquoted `off` into false; it still means "off".
        assert.equal(parseStackConfig(raw(cloudflare({ steering: false })), "prod").cloudflare.steering, "off");
    });

    it("rejects a hostname outside the zone, inside the node records, or the same for app and candidate", () => {
        expectIssue(issuesOf(cloudflare({ hostname: "app.example.org" })), "vps-ha:cloudflare.hostname", /"app.example.org" is outside the zone example.com/);
        expectIssue(issuesOf(cloudflare({ candidateHostname: "rc.notexample.com" })), "vps-ha:cloudflare.candidateHostname", /outside the zone/);
        expectIssue(issuesOf(cloudflare({ hostname: "web.prod.nodes.example.com" })), "vps-ha:cloudflare.hostname", /node/);
        expectIssue(issuesOf(cloudflare({ candidateHostname: "app.example.com" })), "vps-ha:cloudflare.candidateHostname", /same as the app's hostname/);
        expectIssue(issuesOf(cloudflare({ hostname: "App Example" })), "vps-ha:cloudflare.hostname", /host name/);
        assert.deepEqual(issuesOf(cloudflare({ hostname: "example.com", candidateHostname: "rc.example.com" })), []);
    });

    it("rejects a check interval below 10 s, or below the zone plan's minimum, and a timeout not below it", () => {
        expectIssue(issuesOf(cloudflare({ zonePlan: "enterprise", monitor: { interval: 5 } })), "vps-ha:cloudflare.monitor.interval", /5 s is below the minimum of the enterprise plan, 10 s/, /no Cloudflare plan/);
        expectIssue(issuesOf(cloudflare({ monitor: { interval: 15 } })), "vps-ha:cloudflare.monitor.interval", /below the minimum of the free plan, 60 s/, /business \(15 s\)/);
        assert.deepEqual(issuesOf(cloudflare({ zonePlan: "business", monitor: { interval: 15 } })), []);
        expectIssue(issuesOf(cloudflare({ monitor: { interval: 60, timeout: 10, retries: 9 } })), "vps-ha:cloudflare.monitor.retries", /5/);
        expectIssue(issuesOf(cloudflare({ zonePlan: "enterprise", monitor: { interval: 10, timeout: 10 } })), "vps-ha:cloudflare.monitor.timeout", /shorter than the interval/);
        expectIssue(issuesOf(cloudflare({ monitor: { path: "healthz" } })), "vps-ha:cloudflare.monitor.path", /path/);
        expectIssue(issuesOf(cloudflare({ zonePlan: "gold" })), "vps-ha:cloudflare.zonePlan", /free|pro|business/);
    });

    it("asks for a notification target when alerts are on, and an https webhook", () => {
        expectIssue(issuesOf(cloudflare({ alerts: { enabled: true } })), "vps-ha:cloudflare.alerts", /no target/, /email, webhookUrl/);
        expectIssue(issuesOf(cloudflare({ alerts: {} })), "vps-ha:cloudflare.alerts", /no target/);
        expectIssue(issuesOf(cloudflare({ alerts: { webhookUrl: "http://hooks.example.com/x" } })), "vps-ha:cloudflare.alerts.webhookUrl", /https:\/\//);
        expectIssue(issuesOf(cloudflare({ alerts: { email: "ops at example" } })), "vps-ha:cloudflare.alerts.email", /email address/);
        assert.deepEqual(issuesOf(cloudflare({ alerts: { enabled: false } })), []);
        const hook = cloudflare({ alerts: { webhookUrl: "https://hooks.example.com/x" } });
        assert.deepEqual(issuesOf({ ...hook, secretKeys: [...hook.secretKeys, "vps-ha:cloudflare"] }), []);
    });

    it("refuses budget mode on the free plan (no health checks there), and an HSTS max-age Cloudflare does not take", () => {
        expectIssue(issuesOf(cloudflare({ loadBalancer: false })), "vps-ha:cloudflare.zonePlan", /Pro plan or above/, /loadBalancer: true/);
        assert.deepEqual(issuesOf(cloudflare({ loadBalancer: false, zonePlan: "pro" })), []);
        expectIssue(issuesOf(cloudflare({ hstsMaxAgeSeconds: 63072000 })), "vps-ha:cloudflare.hstsMaxAgeSeconds", /31536000/);
    });

    it("refuses an R2 location hint for backups that go to another S3 endpoint", () => {
        const backups = JSON.parse(prodStack().values["vps-ha:database"]).backups;
        const file = withConfig({ database: { backups: { ...backups, endpoint: "https://s3.eu-central-1.amazonaws.com", location: "weur" } } });
        expectIssue(issuesOf(file), "vps-ha:database.backups.location", /R2 location hint/);
        expectIssue(issuesOf(withConfig({ database: { backups: { ...backups, location: "mars" } } })), "vps-ha:database.backups.location", /weur/);
    });

    it("takes database.synchronousStrict as a boolean, true unless set", () => {
        const parsed = (database?: Record<string, unknown>) => parseStackConfig(raw(withConfig(database ? { database } : { database: undefined })), "prod").database;
        assert.equal(parsed().synchronousStrict, true);
        assert.equal(parsed({ synchronous: "quorum" }).synchronousStrict, true);
        assert.equal(parsed({ synchronous: "quorum", synchronousStrict: false }).synchronousStrict, false);
        expectIssue(issuesOf(withConfig({ database: { synchronous: "quorum", synchronousStrict: "no" } })), "vps-ha:database.synchronousStrict", /expected boolean/, /"no"/);
    });

    it("takes database.secretsVersion as a whole number from 1, 1 unless set", () => {
        const parsed = (database?: Record<string, unknown>) => parseStackConfig(raw(withConfig(database ? { database } : { database: undefined })), "prod").database;
        assert.equal(parsed().secretsVersion, 1);
        assert.equal(parsed({ synchronous: "quorum", secretsVersion: 3 }).secretsVersion, 3);
        expectIssue(issuesOf(withConfig({ database: { secretsVersion: 0 } })), "vps-ha:database.secretsVersion", /must be 1 or more/, /0/);
        expectIssue(issuesOf(withConfig({ database: { secretsVersion: 1.5 } })), "vps-ha:database.secretsVersion", /whole number/, /1.5/);
    });

    it("takes database.maxConnections as a whole number within its bounds, absent unless set", () => {
        const parsed = (database?: Record<string, unknown>) => parseStackConfig(raw(withConfig(database ? { database } : { database: undefined })), "prod").database;
        assert.equal(parsed().maxConnections, undefined);
        assert.equal(parsed({ synchronous: "quorum", maxConnections: 200 }).maxConnections, 200);
        assert.equal(parsed({ maxConnections: MIN_MAX_CONNECTIONS }).maxConnections, MIN_MAX_CONNECTIONS);
        assert.equal(parsed({ maxConnections: MAX_MAX_CONNECTIONS }).maxConnections, MAX_MAX_CONNECTIONS);
        const path = "vps-ha:database.maxConnections";
        expectIssue(issuesOf(withConfig({ database: { maxConnections: 10 } })), path, /must be at least 50: each of the two poolers may open 20 server connections/, /10/);
        expectIssue(issuesOf(withConfig({ database: { maxConnections: 5000 } })), path, /must be at most 1000/, /5000/);
        expectIssue(issuesOf(withConfig({ database: { maxConnections: 150.5 } })), path, /whole number of connections/, /150.5/);
        expectIssue(issuesOf(withConfig({ database: { maxConnections: "200" } })), path, /whole number of connections/, /"200"/);
        // Reported with the other issues of the file, all at once.
        const issues = issuesOf(withConfig({ database: { maxConnections: 10, secretsVersion: 0 } }));
        expectIssue(issues, path, /at least 50/);
        expectIssue(issues, "vps-ha:database.secretsVersion", /must be 1 or more/);
    });

    it("takes directory.allowLargeRemoval as a boolean, false unless set, and nothing else under directory", () => {
        const parsed = (directory?: unknown) => parseStackConfig(raw(withConfig({ directory })), "prod").directory;
        assert.equal(parsed().allowLargeRemoval, false);
        assert.equal(parsed({}).allowLargeRemoval, false);
        assert.equal(parsed({ allowLargeRemoval: true }).allowLargeRemoval, true);
        expectIssue(issuesOf(withConfig({ directory: { allowLargeRemoval: "yes" } })), "vps-ha:directory.allowLargeRemoval", /expected boolean/, /"yes"/);
        expectIssue(issuesOf(withConfig({ directory: { allowLargeRemovals: true } })), "vps-ha:directory", /allowLargeRemovals/, /allowLargeRemoval/);
    });
});

/** The one issue at `path`, whole: these messages are what a user reads. */
function onlyIssue(file: StackFile, path: string, stack = "prod"): string {
    let issues: ConfigIssue[] = [];
    try {
        parseStackConfig(raw(file), stack);
    } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        issues = e.issues;
    }
    const at = issues.filter((i) => i.path === path);
    assert.equal(at.length, 1, `one issue at ${path}; got:\n${issues.map((i) => `${i.path}: ${i.message}`).join("\n")}`);
    return at[0].message;
}

describe("stack config validation: what a first deployment meets", () => {
    const cloudflare = (edits: Record<string, unknown>, base: StackFile = prodStack()) => withConfig({ cloudflare: { ...JSON.parse(base.values["vps-ha:cloudflare"]), ...edits } }, base);
    const backups = () => JSON.parse(prodStack().values["vps-ha:database"]).backups;
    const app = (edits: Record<string, unknown>) => withConfig({ app: { image: "ghcr.io/example/app:1.4.2", ...edits } });

    it("refuses a stack name that cannot be a DNS label, and says what to rename it to", () => {
        assert.equal(onlyIssue(prodStack(), "stack", "Prod"),
            `"Prod" cannot be used as a stack name: it becomes a DNS label (<node>.<stack>.nodes.<domain>) and part of resource names; allowed: 1-20 of a-z, 0-9 and '-', starting with a letter and not ending with '-' (pulumi stack rename prod)`);
        assert.match(onlyIssue(prodStack(), "stack", "prod_eu"), /^"prod_eu" cannot be used as a stack name: .*\(pulumi stack rename prod-eu\)$/);
        assert.match(onlyIssue(prodStack(), "stack", "a-very-long-stack-name-indeed"), /1-20 of a-z/);
        for (const ok of ["prod", "staging", "eu-2"]) assert.doesNotThrow(() => parseStackConfig(raw(prodStack()), ok), ok);
    });

    it("gives stacks other than prod hostnames of their own", () => {
        const config = parseStackConfig(raw(prodStack()), "staging");
        assert.deepEqual(frontDoorHostnames(config), { app: "app-staging.example.com", candidate: "candidate-staging.example.com" });
        assert.deepEqual(frontDoorHostnames(parseStackConfig(raw(prodStack()), "prod")), { app: "app.example.com", candidate: "candidate.example.com" });
    });

    it("refuses a backup endpoint whose port does not exist", () => {
        const file = withConfig({ database: { backups: { ...backups(), location: undefined, bucket: "b-1", endpoint: "https://s3.example.net:99999" } } });
        assert.equal(onlyIssue(file, "vps-ha:database.backups.endpoint"), `has a port outside 1-65535 (got "https://s3.example.net:99999")`);
    });

    it("refuses an app hostname longer than a certificate's common name takes, naming the domain when it is the default", () => {
        const domain = `${"a".repeat(56)}.com`; // app.<domain> is 64 characters: the most a CN takes
        assert.doesNotThrow(() => parseStackConfig(raw(withConfig({ domain })), "prod"));
        const longer = `${"a".repeat(57)}.com`;
        assert.equal(onlyIssue(withConfig({ domain: longer }), "vps-ha:domain"),
            `"app.${longer}" (the default cloudflare.hostname) is 65 characters; it is the origin certificate's common name, which takes at most 64 (X.509); use a shorter hostname or domain`);
        assert.match(onlyIssue(cloudflare({ hostname: `${"w".repeat(53)}.example.com` }), "vps-ha:cloudflare.hostname"), /is 65 characters; it is the origin certificate's common name/);
    });

    it("refuses a mesh network with host bits set, naming the network meant", () => {
        assert.equal(onlyIssue(withConfig({ mesh: { cidr: "10.77.0.5/24" } }), "vps-ha:mesh.cidr"), `"10.77.0.5/24" has host bits set; a network starts at its first address: 10.77.0.0/24`);
    });

    it("keeps shell and HAProxy syntax out of health-check paths", () => {
        for (const bad of ["/health$(reboot)", "/h'ealth", '/h"x', "/a b", "/x`id`", "/x#y"]) {
            assert.equal(onlyIssue(app({ healthPath: bad }), "vps-ha:app.healthPath"),
                `must be a path such as /healthz: '/' then letters, digits and . _ ~ / - (optionally ?key=value&...); no spaces, quotes, '$', '\`', '\\' or '#' (got ${JSON.stringify(bad)})`);
        }
        assert.doesNotThrow(() => parseStackConfig(raw(app({ healthPath: "/api/health?full=1&x=y" })), "prod"));
        assert.match(onlyIssue(cloudflare({ monitor: { path: "/$(id)" } }), "vps-ha:cloudflare.monitor.path"), /must be a path such as \/healthz/);
    });

    it("keeps newlines, '%' and '$' out of the app's and the worker's command (systemd would act on them)", () => {
        const message = (got: string) => `must not contain a newline or other control character, '%' or '$' (systemd expands % and $ in a unit's command line); pass values through app.env instead (got ${JSON.stringify(got)})`;
        assert.equal(onlyIssue(app({ command: ["bin/web", "--x\nExecStartPre=/bin/sh"] }), "vps-ha:app.command[1]"), message("--x\nExecStartPre=/bin/sh"));
        assert.equal(onlyIssue(app({ command: ["bin/web", "100%"] }), "vps-ha:app.command[1]"), message("100%"));
        assert.equal(onlyIssue(app({ worker: { command: ["sh", "-c", "echo $HOME"] } }), "vps-ha:app.worker.command[2]"), message("echo $HOME"));
        assert.doesNotThrow(() => parseStackConfig(raw(app({ command: ["bin/web", "--name", "a \"quoted\" word"] })), "prod"));
    });

    it("refuses a hostname two levels under the zone: Universal SSL covers one", () => {
        assert.equal(onlyIssue(cloudflare({ candidateHostname: "rc.eu.example.com" }), "vps-ha:cloudflare.candidateHostname"),
            `"rc.eu.example.com" is two or more levels under the zone example.com; Cloudflare's Universal SSL certificate covers example.com and *.example.com only, so visitors would get a certificate error; allowed: example.com or one level under it, e.g. rc.example.com`);
    });

    it("wants a webhook URL (it may carry a token) and a webhook secret kept as secrets", () => {
        const file = cloudflare({ alerts: { webhookUrl: "https://hooks.slack.com/services/T0/B0/x" } });
        assert.equal(onlyIssue(file, "vps-ha:cloudflare.alerts.webhookUrl"), "is stored as plain text; it must be a secret: pulumi config set --path --secret 'vps-ha:cloudflare.alerts.webhookUrl' <value>");
        assert.deepEqual(issuesOf({ ...file, secretKeys: [...file.secretKeys, "vps-ha:cloudflare"] }), []);
        const lone = cloudflare({ alerts: { email: "ops@example.com", webhookSecret: "s".repeat(32) } });
        assert.equal(onlyIssue({ ...lone, secretKeys: [...lone.secretKeys, "vps-ha:cloudflare"] }, "vps-ha:cloudflare.alerts.webhookSecret"), "is set without alerts.webhookUrl; it is sent to a webhook only");
    });

    it("names the R2 bucket after the stack unless set, and asks for a bucket with another endpoint", () => {
        assert.equal(backupBucketName(parseStackConfig(raw(prodStack()), "staging")), "vps-ha-staging-backups");
        const file = withConfig({ database: { backups: { ...backups(), location: undefined, endpoint: "https://s3.eu-central-1.amazonaws.com" } } });
        assert.match(onlyIssue(file, "vps-ha:database.backups.bucket"), /^is required with backups.endpoint/);
    });

    it("keeps what reaches nftables, SSH and pgBackRest's config to one clean word", () => {
        assert.equal(onlyIssue(withConfig({ admin: { sshCidrs: ["203.0.113.7/32\nflush ruleset"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] } }), "vps-ha:admin.sshCidrs[0]"),
            `"203.0.113.7/32\nflush ruleset" is not a CIDR; allowed: an IPv4 or IPv6 network such as 203.0.113.7/32 or 2001:db8::/48`);
        assert.match(onlyIssue(withConfig({ admin: { sshCidrs: [" 203.0.113.7/32"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] } }), "vps-ha:admin.sshCidrs[0]"), /is not a CIDR/);
        assert.match(onlyIssue(withConfig({ mesh: { cidr: "10.77.0.0/24\n" } }), "vps-ha:mesh.cidr"), /must be a private IPv4 network/);
        assert.equal(onlyIssue(withConfig({ database: { backups: { ...backups(), secretAccessKey: "abc\nrepo1-path=/" } } }), "vps-ha:database.backups.secretAccessKey"),
            "must be 1-256 printable ASCII characters, no spaces or newlines (the value is not shown: it is a secret)");
        const nodes = prodNodes();
        nodes.witness = [{ name: "witness-1", provider: "ssh", region: "Home Office", host: "203.0.113.9; rm -rf /", user: "root\nx" }];
        const own = { nodes, admin: { sshCidrs: ["198.51.100.7/32"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] }, sshPrivateKey: "k" };
        const file = withConfig(own);
        file.secretKeys.push("vps-ha:sshPrivateKey");
        assert.equal(onlyIssue(file, "vps-ha:nodes.witness[0].host"), `"203.0.113.9; rm -rf /" is neither an IP address nor a DNS name; allowed: e.g. 203.0.113.7 or witness.example.net`);
        assert.match(onlyIssue(file, "vps-ha:nodes.witness[0].user"), /^"root\nx" is not a login name; allowed: 1-32 of a-z/);
        assert.match(onlyIssue(file, "vps-ha:nodes.witness[0].region"), /^"Home Office" is not a usable place name; allowed: 1-32 of a-z, 0-9 and '-'/);
    });

    it("says which secret to set, and how, when the shipped stack file has none yet", () => {
        const issues = issuesOf(shippedProdStack());
        assert.deepEqual(issues.map((i) => i.path).sort(), ["cloudflare:apiToken", "hcloud:token", "linode:token", "vps-ha:database.backups.accessKeyId", "vps-ha:database.backups.secretAccessKey"]);
        expectIssue(issues, "vps-ha:database.backups.accessKeyId",
            /Object Read & Write for all buckets of the account \(a token for one bucket cannot exist before the program creates "vps-ha-prod-backups"\)/,
            /pulumi config set --path --secret 'vps-ha:database.backups.accessKeyId' <value>/);
        // Offline (the plan, the lab) they are listed, not refused, and stood in for.
        const config = parseStackConfig({ ...raw(shippedProdStack()), offline: true }, "prod");
        assert.deepEqual(config.missingSecrets.map((i) => i.path).sort(), issues.map((i) => i.path).sort());
        assert.equal(config.database.backups?.accessKeyId, OFFLINE_SECRET);
        // With the tokens in the environment, only the bucket's keys are left to set.
        const env = { LINODE_TOKEN: "x", HCLOUD_TOKEN: "y", CLOUDFLARE_API_TOKEN: "z" };
        assert.deepEqual(issuesOf(shippedProdStack(), env).map((i) => i.path).sort(), ["vps-ha:database.backups.accessKeyId", "vps-ha:database.backups.secretAccessKey"]);
    });
});

describe("stack config validation: where the stack's own monitoring sends alerts (vps-ha:alerts)", () => {
    const HOOK = "https://hooks.example.com/services/T0/B0/token";
    const PING = "https://hc-ping.example.com/0f4c8a6e-1d2b";
    const EMAIL = { to: "ops@example.com", from: "vps-ha@example.com", smarthost: "smtp.example.com:587", username: "vps-ha", password: "pw" };
    const alerts = (value: unknown, secret = true): StackFile => {
        const file = withConfig({ alerts: value });
        return secret ? { ...file, secretKeys: [...file.secretKeys, "vps-ha:alerts"] } : file;
    };

    it("is optional: absent, no alerts are sent", () => {
        assert.equal(parseStackConfig(raw(prodStack()), "prod").alerts, undefined);
    });

    it("takes a heartbeat, a webhook and an email, kept as a secret", () => {
        const config = parseStackConfig(raw(alerts({ heartbeatUrl: PING, webhookUrl: HOOK, email: EMAIL })), "prod");
        assert.deepEqual(config.alerts, { heartbeatUrl: PING, webhookUrl: HOOK, email: EMAIL });
        assert.ok(config.secretKeys.includes("vps-ha:alerts"));
        // An email with no password and no URL holds no secret: plain text is fine.
        assert.deepEqual(issuesOf(alerts({ email: { to: "ops@example.com", from: "vps-ha@example.com", smarthost: "smtp.example.com:25" } }, false)), []);
    });

    it("wants the URLs (they carry tokens) and the SMTP password as secrets, naming the command", () => {
        const issues = issuesOf(alerts({ heartbeatUrl: PING, webhookUrl: HOOK, email: EMAIL }, false));
        assert.deepEqual(issues.map((i) => i.path).sort(), ["vps-ha:alerts.email.password", "vps-ha:alerts.heartbeatUrl", "vps-ha:alerts.webhookUrl"]);
        expectIssue(issues, "vps-ha:alerts.webhookUrl", /^is stored as plain text; it must be a secret: pulumi config set --path --secret 'vps-ha:alerts.webhookUrl' <value>$/);
    });

    it("takes https URLs only, and never echoes one back", () => {
        for (const url of ["http://hooks.example.com/x", "https://user:pw@hooks.example.com/x", "https://hooks.example.com/a b", "https://hooks.example.com/x\"\nurl: y", "ftp://x.example.com", "hooks.example.com"]) {
            const issues = issuesOf(alerts({ webhookUrl: url, heartbeatUrl: url }));
            for (const f of ["webhookUrl", "heartbeatUrl"]) {
                expectIssue(issues, `vps-ha:alerts.${f}`, /must be an https:\/\/ URL/, /the value is not shown: it is a secret/);
                assert.ok(!issues.some((i) => i.message.includes(url)), `${url} echoed`);
            }
        }
        // The offline stand-in for a secret is not a URL outside an offline evaluation.
        expectIssue(issuesOf(alerts({ webhookUrl: OFFLINE_SECRET })), "vps-ha:alerts.webhookUrl", /must be an https:\/\/ URL/);
        const offline = parseStackConfig({ ...raw(alerts({ webhookUrl: OFFLINE_SECRET })), offline: true }, "prod");
        assert.equal(offline.alerts?.webhookUrl, OFFLINE_SECRET);
    });

    it("asks for somewhere to send alerts: a heartbeat alone tells nobody", () => {
        assert.equal(onlyIssue(alerts({ heartbeatUrl: PING }), "vps-ha:alerts"),
            "has no target: set webhookUrl, email or both (heartbeatUrl alone tells nobody of an alert), or drop the key to send no alerts");
        expectIssue(issuesOf(alerts({})), "vps-ha:alerts", /has no target/);
    });

    it("checks the email's addresses, SMTP host:port, and wants a user name with a password", () => {
        const issues = issuesOf(alerts({ email: { to: "ops at example", from: "x@", smarthost: "smtp.example.com", username: "a b" } }));
        expectIssue(issues, "vps-ha:alerts.email.to", /must be an email address/, /"ops at example"/);
        expectIssue(issues, "vps-ha:alerts.email.from", /must be an email address/);
        expectIssue(issues, "vps-ha:alerts.email.smarthost", /must be host:port of an SMTP server such as smtp.example.com:587/);
        expectIssue(issues, "vps-ha:alerts.email.username", /without spaces/);
        expectIssue(issuesOf(alerts({ email: { ...EMAIL, smarthost: "smtp.example.com:70000" } })), "vps-ha:alerts.email.smarthost", /port outside 1-65535/);
        assert.equal(onlyIssue(alerts({ email: { ...EMAIL, username: undefined } }), "vps-ha:alerts.email.username"), "is required with email.password: the SMTP server's user name");
        expectIssue(issuesOf(alerts({ email: { ...EMAIL, password: "a\nb" } })), "vps-ha:alerts.email.password", /one line/, /not shown/);
        expectIssue(issuesOf(alerts({ webhookUrl: HOOK, pagerduty: "x" })), "vps-ha:alerts", /unknown key\(s\) pagerduty; allowed: heartbeatUrl, webhookUrl, email/);
    });
});

describe("Pulumi.yaml", () => {
    it("declares exactly the keys a stack must set (the CLI demands every declared key without a default) and documents every other", () => {
        const text = readFileSync(join(ROOT, "Pulumi.yaml"), "utf8");
        const declared = Object.keys((parse(text) as { config: Record<string, unknown> }).config);
        assert.deepEqual(declared.sort(), REQUIRED_CONFIG_KEYS.map((k) => `vps-ha:${k}`).sort());
        assert.deepEqual([...REQUIRED_CONFIG_KEYS].sort(), ["app", "cloudflare", "domain", "nodes"]);
        for (const key of [...CONFIG_KEYS, "sshPrivateKey"]) assert.match(text, new RegExp(`vps-ha:${key}\\b`), key);
    });
});
