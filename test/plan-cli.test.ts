// `npm run plan` as a user runs it: its output and its exit code. The CLI's main runs in this
// process (each program evaluation would otherwise load Pulumi and tsx again); the tests tagged
// @cli run it as a real process, as a user does.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { format } from "node:util";
import { main } from "../scripts/plan";
import { evaluate } from "./helpers/program";
import { ROOT } from "./helpers/stack";

/** `npm run plan` as a real process. */
function planProcess(...args: string[]) {
    const r = spawnSync(process.execPath, [join(ROOT, "node_modules/tsx/dist/cli.mjs"), join(ROOT, "scripts/plan.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60000, env: { PATH: process.env.PATH ?? "" } });
    return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The CLI's main in this process (from the repository's root, as npm runs it): what it printed and its exit code. */
async function plan(...args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const { log, error } = console;
    const cwd = process.cwd();
    console.log = (...a: unknown[]) => void out.push(`${format(...a)}\n`);
    console.error = (...a: unknown[]) => void err.push(`${format(...a)}\n`);
    process.chdir(ROOT);
    try {
        const code = await main(args);
        return { code, out: out.join(""), err: err.join("") };
    } catch (e) {
        // What the real process prints before it exits 1.
        return { code: 1, out: out.join(""), err: `${err.join("")}${e instanceof Error ? e.stack : String(e)}\n` };
    } finally {
        console.log = log;
        console.error = error;
        process.chdir(cwd);
    }
}

describe("npm run plan, as a process @cli", function () {
    this.timeout(120000);

    it("prints nodes, cost, resources and failures for the prod stack", () => {
        const r = planProcess();
        assert.equal(r.code, 0, r.err);
        for (const text of ["Hetzner Cloud fsn1 (Falkenstein, DE)", "db-3", "Total", "linode:index/instance:Instance", "provider hcloud"]) assert.ok(r.out.includes(text), text);
    });

    it("exits 2 with the validation messages and no stack trace for a bad stack file", () => {
        const plan = planProcess;
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-plan-"));
        const bad = join(dir, "Pulumi.bad.yaml");
        writeFileSync(bad, readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8").replace("region: nbg1", "region: atlantis"));
        const r = plan("--config", bad);
        assert.equal(r.code, 2);
        assert.match(r.err, /vps-ha:nodes\.db\[1\]\.region: "atlantis" is not a Hetzner Cloud region/);
        assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
        const missing = plan("--config", join(dir, "nope.yaml"));
        assert.equal(missing.code, 2);
        assert.match(missing.err, /cannot read .*nope\.yaml: ENOENT/);
        const notYaml = join(dir, "Pulumi.x.yaml");
        writeFileSync(notYaml, "config: [unclosed");
        assert.equal(plan("--config", notYaml).code, 2);
        assert.equal(plan("--bogus").code, 2);
    });
});

describe("npm run plan", function () {
    this.timeout(120000);
    // The prod stack's plan, as text and as JSON, made once: several tests read each.
    let prodText: ReturnType<typeof plan> | undefined;
    let prodJson: ReturnType<typeof plan> | undefined;
    const prodPlan = () => (prodText ??= plan());
    const prodPlanJson = () => (prodJson ??= plan("--json", "--stack", "prod"));

    it("--json has nodes, monthlyCostUsd and failures", async () => {
        const r = await prodPlanJson();
        assert.equal(r.code, 0, r.err);
        const report = JSON.parse(r.out);
        assert.equal(report.nodes.length, 7);
        assert.equal(report.replacement, undefined, "only against a deployed stack");
        assert.ok(report.monthlyCostUsd > 0);
        assert.ok(report.failures.some((f: { scenario: string }) => f.scenario === "provider linode"));
    });

    it("prices each node, an ssh host at its own monthlyUsd, and the lines add up to the total", async () => {
        const report = JSON.parse((await plan("--json", "--config", join(ROOT, "scripts/lab/stacks/witness.yaml"))).out) as { nodes: { name: string; monthlyUsd: number }[]; extraCosts: { monthlyUsd: number }[]; monthlyCostUsd: number };
        assert.equal(report.nodes.find((n) => n.name === "witness-1")?.monthlyUsd, 4);
        assert.equal(report.nodes.find((n) => n.name === "db-3")?.monthlyUsd, 12);
        const sum = [...report.nodes, ...report.extraCosts].reduce((s, n) => s + n.monthlyUsd, 0);
        assert.equal(Math.round(sum * 100) / 100, report.monthlyCostUsd);
    });

    it("exits 2 with the key, the bad value and what is allowed, never a stack trace, for each input a first deployment meets", async () => {
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-plan-"));
        const prod = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
        const cases: [file: string, text: string, want: RegExp][] = [
            ["Pulumi.Prod.yaml", prod, /^  - stack: "Prod" cannot be used as a stack name: .*\(pulumi stack rename prod\)$/m],
            ["Pulumi.prod_eu.yaml", prod, /^  - stack: "prod_eu" cannot be used as a stack name: it becomes a DNS label/m],
            ["Pulumi.prod.yaml", prod.replace("location: weur", "location: weur\n      endpoint: https://s3.example.net:99999\n      bucket: acme").replace(/location: weur/, "region: auto"),
                /^  - vps-ha:database\.backups\.endpoint: has a port outside 1-65535 \(got "https:\/\/s3\.example\.net:99999"\)$/m],
            ["Pulumi.prod.yaml", prod.replace("vps-ha:domain: example.com", `vps-ha:domain: ${"a".repeat(57)}.com`),
                /^  - vps-ha:domain: "app\.a{57}\.com" \(the default cloudflare\.hostname\) is 65 characters; it is the origin certificate's common name, which takes at most 64/m],
            ["Pulumi.prod.yaml", prod.replace("cidr: 10.77.0.0/24", "cidr: 10.77.0.5/24"), /^  - vps-ha:mesh\.cidr: "10\.77\.0\.5\/24" has host bits set; a network starts at its first address: 10\.77\.0\.0\/24$/m],
            ["Pulumi.prod.yaml", prod.replace("healthPath: /healthz", "healthPath: '/healthz$(reboot)'"), /^  - vps-ha:app\.healthPath: must be a path such as \/healthz: .*\(got "\/healthz\$\(reboot\)"\)$/m],
            ["Pulumi.prod.yaml", prod.replace("healthPath: /healthz", "healthPath: /healthz\n    command: [\"bin/web\", \"--rate=100%\"]"), /^  - vps-ha:app\.command\[1\]: must not contain a newline or other control character, '%' or '\$'/m],
            ["Pulumi.prod.yaml", prod.replace("healthPath: /healthz", "healthPath: /healthz\n    command: [\"bin/web\", \"a\\nb\"]"), /^  - vps-ha:app\.command\[1\]: must not contain a newline .*\(got "a\\nb"\)$/m],
            ["Pulumi.prod.yaml", prod.replace("    hstsMaxAgeSeconds", "    candidateHostname: rc.eu.example.com\n    hstsMaxAgeSeconds"),
                /^  - vps-ha:cloudflare\.candidateHostname: "rc\.eu\.example\.com" is two or more levels under the zone example\.com; Cloudflare's Universal SSL certificate covers/m],
        ];
        for (const [i, [name, text, want]] of cases.entries()) {
            mkdirSync(join(dir, String(i)));
            const file = join(dir, String(i), name);
            writeFileSync(file, text);
            if (name === "Pulumi.prod.yaml") assert.notEqual(text, prod, `case ${i} changes something`);
            const r = await plan("--config", file);
            assert.equal(r.code, 2, `case ${i}: ${r.out}${r.err}`);
            assert.match(r.err, want, `case ${i}`);
            assert.doesNotMatch(r.err, /\n\s+at /, `case ${i}: no stack trace`);
        }
    });

    it("lists the secrets still to set in the shipped stack file, and plans without them", async () => {
        const r = await prodPlan();
        assert.equal(r.code, 0, r.err);
        const section = r.out.slice(r.out.indexOf("Secrets to set before pulumi up"));
        for (const key of ["linode:token", "hcloud:token", "cloudflare:apiToken", "vps-ha:database.backups.accessKeyId", "vps-ha:database.backups.secretAccessKey"]) {
            assert.match(section, new RegExp(`^  - ${key.replace(/\./g, "\\.")}: is missing: `, "m"), key);
        }
        assert.doesNotMatch(readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8"), /secure:/, "no value the Pulumi CLI would try to decrypt");
    });

    it("lists the Cloudflare front door's resources and their monthly cost", async () => {
        const r = await prodPlan();
        assert.equal(r.code, 0, r.err);
        const section = r.out.slice(r.out.indexOf("Cloudflare (Load Balancing add-on)"), r.out.indexOf("Resources ("));
        for (const text of [/LoadBalancerMonitor +HTTPS GET \/healthz expects 200, every 60 s/, /LoadBalancer +app\.example\.com, proxied, steering off: vps-ha-prod-lb-1 > vps-ha-prod-lb-2/,
            /LoadBalancer +candidate\.example\.com/, /OriginCaCertificate +example\.com, \*\.example\.com for 5475 days/, /HostnameTlsSetting +app\.example\.com min_tls_version = "1\.2"/,
            /R2Bucket +vps-ha-prod-backups \(weur\)/, /Cloudflare Load Balancing \(2 origins\) +5\.00/]) assert.match(section, text);
        const json = JSON.parse((await prodPlanJson()).out);
        assert.equal(json.cloudflare.mode, "load balancer");
        assert.deepEqual(json.cloudflare.resources.filter((c: { type: string }) => c.type === "LoadBalancerPool").length, 2);
        assert.ok(json.extraCosts.some((c: { item: string; monthlyUsd: number }) => /Load Balancing/.test(c.item) && c.monthlyUsd === 5));
    });

    it("--against the deployed stack file says what each server goes through, and exits 3 when two members would go down", async function () {
        this.timeout(300000);
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-plan-"));
        const deployed = join(dir, "deployed.yaml");
        const prod = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
        writeFileSync(deployed, prod);
        // db-1 and db-2 (of three) are both resized in one go.
        const moved = join(dir, "Pulumi.prod.yaml");
        writeFileSync(moved, prod.replace("{ name: db-1, provider: hcloud, region: fsn1, size: cx23 }", "{ name: db-1, provider: hcloud, region: fsn1, size: cx33 }")
            .replace("{ name: db-2, provider: hcloud, region: nbg1, size: cx23 }", "{ name: db-2, provider: hcloud, region: nbg1, size: cx33 }"));
        assert.notEqual(readFileSync(moved, "utf8"), prod);
        const r = await plan("--config", moved, "--against", deployed);
        assert.equal(r.code, 3, r.err);
        assert.match(r.out, /Servers, against the deployed stack \(.*deployed\.yaml\)\n  app-1 \(app\): unchanged\n/);
        assert.match(r.out, /  db-1 \(db\): same server, powered off meanwhile: size cx23 -> cx33: powered off while resized\n/);
        assert.match(r.out, /One pulumi up cannot apply this change/);
        assert.match(r.err, /^The stack file cannot be applied in one pulumi up:\n  - this change takes 2 database members or etcd voters down in one pulumi up: db-1 \(size cx23 -> cx33: powered off while resized\), db-2/);
        // The same file: nothing changes (without --against there is no such section: see --json above).
        const same = await plan("--config", deployed, "--against", deployed, "--json");
        assert.equal(same.code, 0, same.err);
        assert.ok(JSON.parse(same.out).replacement.changes.every((c: { kind: string }) => c.kind === "same"));
        // One member to another Hetzner location: a new server, and allowed.
        const one = join(dir, "one.yaml");
        writeFileSync(one, prod.replace("{ name: db-2, provider: hcloud, region: nbg1, size: cx23 }", "{ name: db-2, provider: hcloud, region: hel1, size: cx23 }"));
        const o = await plan("--config", one, "--against", deployed);
        assert.equal(o.code, 0, o.err);
        assert.match(o.out, /db-2 \(db\): REPLACES the server: region nbg1 -> hel1: a new server\n/);
        // A witness added: the members' etcd and Patroni files name the new voter, applied in place
        // (their bootstraps do not change), and the witness is the one new server.
        const witnessed = join(dir, "witnessed.yaml");
        writeFileSync(witnessed, prod.replace("witness: []", "witness: [{ name: witness-1, provider: hcloud, region: hel1, size: cx23 }]"));
        const w = await plan("--config", witnessed, "--against", deployed, "--json");
        assert.equal(w.code, 0, w.err);
        const changes = JSON.parse(w.out).replacement.changes as { name: string; kind: string }[];
        assert.deepEqual(changes.filter((c) => c.kind !== "same").map((c) => `${c.name} ${c.kind}`), ["witness-1 new"]);
        const text = await plan("--config", witnessed, "--against", deployed);
        assert.match(text.out, /  db-1 \(db\): same server; applied in place \(\d+ files?\); restarts [^\n]*vps-ha-patroni\.service[^\n]*; hands over the primary first if it leads\n/);
        const missing = await plan("--against", join(dir, "nope.yaml"));
        assert.equal(missing.code, 2);
        assert.match(missing.err, /cannot read .*nope\.yaml/);
        writeFileSync(join(dir, "bad.yaml"), prod.replace("region: nbg1", "region: atlantis"));
        const bad = await plan("--against", join(dir, "bad.yaml"));
        assert.equal(bad.code, 2);
        assert.match(bad.err, /bad\.yaml: The stack config has 1 problem/);
        assert.equal((await plan("--against", deployed, "--deployed", deployed)).code, 2);
    });

    it("--deployed compares with the deployed stack's outputs (pulumi stack output --json), as deploy.yml does", async () => {
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-plan-"));
        const prod = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
        const empty = JSON.parse((await plan("--json", "--deployed", join(ROOT, "test/fixtures/empty-outputs.json"))).out);
        assert.ok(empty.replacement.changes.every((c: { kind: string }) => c.kind === "new"), "an empty stack: a first deployment");
        // The outputs a deployment of the shipped file leaves, as the program exports them.
        const outputs = join(dir, "outputs.json");
        writeFileSync(outputs, JSON.stringify({ serverFacts: (await evaluate()).outputs.serverFacts }));
        const same = await plan("--deployed", outputs);
        assert.equal(same.code, 0, same.err);
        assert.match(same.out, /One pulumi up may apply this change\./);
        const moved = join(dir, "Pulumi.prod.yaml");
        writeFileSync(moved, prod.replace("{ name: db-3, provider: linode, region: de-fra-2, size: g6-standard-1 }", "{ name: db-3, provider: linode, region: de-fra-2, size: g6-standard-2 }")
            .replace("{ name: db-1, provider: hcloud, region: fsn1, size: cx23 }", "{ name: db-1, provider: hcloud, region: hel1, size: cx23 }"));
        const two = await plan("--config", moved, "--deployed", outputs);
        assert.equal(two.code, 3);
        assert.match(two.err, /in this order: db-3, db-1,/);
        // A rotation of a stack an older vps-ha deployed: refused, like the program refuses it; of one this version deployed: one run.
        writeFileSync(outputs, JSON.stringify({ serverFacts: (await evaluate()).outputs.serverFacts, databaseSecretsVersion: 1 }));
        // Named as the stack's file: the stack's name, and so every node's DNS name, comes from it.
        const rotated = join(dir, "Pulumi.prod.yaml");
        writeFileSync(rotated, prod.replace("  vps-ha:database:\n", "  vps-ha:database:\n    secretsVersion: 2\n"));
        const r = await plan("--config", rotated, "--deployed", outputs);
        assert.equal(r.code, 3, r.err);
        assert.match(r.err, /vps-ha:database\.secretsVersion is 2 in the stack file and 1 in the deployed stack, which an older vps-ha deployed: .* Run pulumi up once with the version at 1 .* Nothing was changed\./);
        writeFileSync(outputs, JSON.stringify({ serverFacts: (await evaluate()).outputs.serverFacts, databaseSecretsVersion: 1, databaseSecretsRotatable: true }));
        const rotating = await plan("--config", rotated, "--deployed", outputs);
        assert.equal(rotating.code, 0, rotating.err);
        assert.match(rotating.out, /One pulumi up may apply this change\./);
        writeFileSync(outputs, JSON.stringify({ serverFacts: (await evaluate()).outputs.serverFacts, databaseSecretsVersion: "1" }));
        const malformed = await plan("--config", rotated, "--deployed", outputs);
        assert.equal(malformed.code, 2);
        assert.match(malformed.err, /databaseSecretsVersion output is "1", not a whole number from 1/);
        writeFileSync(join(dir, "junk.json"), "[1, 2]");
        const junk = await plan("--deployed", join(dir, "junk.json"));
        assert.equal(junk.code, 2);
        assert.match(junk.err, /junk\.json: not a JSON object of stack outputs \(expected the output of pulumi stack output --json\)/);
    });

});
