// A live stack changed without replacing its servers, with the program under the mock runtime:
// every database node's user-data is a small bootstrap (within 12 KiB as the providers pack it)
// that stays byte for byte the same through each routine change, the change reaches the node as
// its desired state instead, and the replacement check the program and `npm run plan` share
// finds no member replaced.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { describeInPlace, inPlaceChange } from "../components/in-place";
import { compareServers, replacementProblems, ServerFacts } from "../components/replacement";
import { ETCD_PRUNE_UNIT } from "../components/render/etcd-prune";
import { packUserData } from "../components/providers/user-data";
import { ADMIN_KEYS_DIR } from "../components/render/admin-ssh";
import { PATRONI_CONFIG } from "../components/render/patroni";
import { ETCD_TLS_FILES } from "../components/render/etcd";
import { PATRONI_DYNAMIC_SETTINGS, PATRONI_DYNAMIC_UNIT } from "../components/render/patroni-dynamic";
import { ROLLOUT_BEARER_FILE, ROLLOUT_TOKEN_FILE } from "../components/render/haproxy";
import { ROLLOUT_TOKEN_ENV } from "../components/render/rollout-wait";
import { rolloutWaitScript } from "../components/rollout-wait";
import { buildPlan } from "../components/plan";
import { parseStackConfig } from "../components/config";
import { Evaluation } from "../scripts/lib/mock-program";
import { formatReport, planReport } from "../scripts/plan";
import { StackFile } from "../scripts/lib/stack-file";
import { renewMockCertificates } from "../scripts/lib/mock-tls";
import { evaluate } from "./helpers/program";
import { prodNodes, prodStack, raw, withConfig } from "./helpers/stack";

const BOOTSTRAP_LIMIT = 12 * 1024;
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBVlHl4Bm6x2n0dJ2eQ0k1Yk0mQk6Q3YwqgMZ8L3c9x0 dev@example.com";
const database = () => JSON.parse(prodStack().values["vps-ha:database"]);
const admin = () => JSON.parse(prodStack().values["vps-ha:admin"]);

/** Each routine change of a live stack, as a stack file edit. */
function changes(): [string, Record<string, unknown>][] {
    const withWitness = prodNodes();
    withWitness.witness = [{ name: "witness-1", provider: "hcloud", region: "hel1", size: "cx23" }];
    const five = prodNodes();
    five.db.push({ name: "db-4", provider: "hcloud", region: "fsn1", size: "cx23" }, { name: "db-5", provider: "linode", region: "de-fra-2", size: "g6-standard-1" });
    return [
        ["an admin SSH key added", { admin: { ...admin(), sshPublicKeys: [...admin().sshPublicKeys, KEY] } }],
        ["SSH opened to an admin range", { admin: { ...admin(), sshCidrs: ["203.0.113.0/24"] } }],
        ["every generated database secret rotated", { database: { ...database(), secretsVersion: 2 } }],
        ["the R2 keys and bucket changed", { database: { ...database(), backups: { ...database().backups, bucket: "other-bucket", accessKeyId: "AKIDNEW", secretAccessKey: "SECRETNEW" } } }],
        ["a witness added", { nodes: withWitness }],
        ["grown from 3 to 5 members", { nodes: five }],
        ["a new app release", { app: { ...JSON.parse(prodStack().values["vps-ha:app"]), image: "ghcr.io/example/app:1.5.0" } }],
        ["max_connections raised (a Patroni parameter that needs a restart)", { database: { ...database(), maxConnections: 300 } }],
    ];
}

/** A stack file value as YAML holds it: objects and numbers parsed, plain strings as they are. */
function parseValue(v: string): unknown {
    try {
        return JSON.parse(v);
    } catch {
        return v;
    }
}

const facts = (e: Evaluation) => e.outputs.serverFacts as ServerFacts[];
const members = ["db-1", "db-2", "db-3"];

describe("desired state: routine changes keep every server (mock runtime)", function () {
    this.timeout(600000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it(`packs every node's bootstrap within ${BOOTSTRAP_LIMIT} bytes, with no role's files or secrets in it`, () => {
        for (const [node, userData] of Object.entries(prod.userData)) {
            assert.ok(packUserData(userData).length <= BOOTSTRAP_LIMIT, `${node}: ${packUserData(userData).length} bytes packed`);
            assert.ok(!userData.includes(PATRONI_CONFIG) && !userData.includes("ssh_authorized_keys"), `${node}: role files or admin keys in its bootstrap`);
        }
        for (const m of members) assert.ok(prod.desired[m].files.some((f) => f.path === PATRONI_CONFIG), `${m}: Patroni's config comes as desired state`);
    });

    // The agent writes every file of a first document and reloads systemd when a unit file was
    // among them, before the setup runs (vpsha/desired.py apply_first; node-agent/tests/test_desired_apply.py):
    // an enable or disable in the setup needs no reload of its own, nor does the setup.
    it("enables and disables units without a reload of their own, after the agent's one reload for the document's unit files", () => {
        for (const [node, doc] of Object.entries(prod.desired)) {
            const setup = (doc.setup ?? []).map((c) => c.join(" "));
            assert.ok(!setup.includes("systemctl daemon-reload"), `${node}: the setup reloads systemd itself`);
            const toggles = setup.filter((c) => / (enable|disable) /.test(c));
            assert.ok(toggles.length > 0 && toggles.every((c) => c.includes("--no-reload")), `${node}: ${toggles.filter((c) => !c.includes("--no-reload")).join("; ") || "no enable"}`);
            assert.ok(doc.files.some((f) => f.path.startsWith("/etc/systemd/system/")), `${node}: no unit file, so the agent would not reload`);
        }
    });

    it("publishes the database group's rollout spec with the etcd certificate files its lock is taken with, and no other group's", () => {
        for (const [node, doc] of Object.entries(prod.desired)) {
            const want = members.includes(node) ? { cacert: ETCD_TLS_FILES.ca, cert: ETCD_TLS_FILES.cert, key: ETCD_TLS_FILES.key } : undefined;
            assert.deepEqual(doc.rollout?.etcdTls, want, node);
        }
    });

    for (const [what, edit] of changes()) {
        it(`${what}: every member's user-data the same, no member replaced, the change in its desired state`, async () => {
            const e = await evaluate(withConfig(edit));
            for (const m of members) {
                assert.equal(e.userData[m], prod.userData[m], `${m}'s user-data changed`);
                assert.ok(packUserData(e.userData[m]).length <= BOOTSTRAP_LIMIT);
            }
            const replaced = compareServers(facts(prod), facts(e)).filter((c) => c.member && c.kind !== "same" && c.kind !== "new");
            assert.deepEqual(replaced, [], "members replaced or restarted");
            // The change itself is published: in some node's desired state (the release, in its own signed record).
            const records = (x: Evaluation) => new Map(x.resources.filter((r) => r.type === "cloudflare:index/dnsRecord:DnsRecord").map((r) => [String(r.inputs.name), String(r.inputs.content)]));
            const [r0, r1] = [records(prod), records(e)];
            assert.ok([...r1].some(([name, content]) => r0.get(name) !== content), "no DNS record changed");
        });
    }

    it("npm run plan -- --against: an admin key added is applied in place on every node, a password rotation reloads Patroni, no handover", async () => {
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-plan-"));
        const write = (name: string, f: StackFile) => {
            const path = join(dir, name);
            const secrets = new Set(f.secretKeys);
            const config = Object.fromEntries(Object.entries(f.values).filter(([k]) => !secrets.has(k)).map(([k, v]) => [k, parseValue(v)]));
            writeFileSync(path, stringify({ config }));
            return path;
        };
        try {
            const deployed = write("Pulumi.prod.yaml", prodStack());
            const keyed = write("keyed.yaml", withConfig({ admin: { ...admin(), sshPublicKeys: [...admin().sshPublicKeys, KEY] } }));
            const text = formatReport(await planReport(keyed, "prod", { stackFile: deployed }));
            for (const m of members) assert.match(text, new RegExp(`${m} \\(db\\): same server; applied in place \\(1 file\\); no daemon restarts`));
            assert.doesNotMatch(text, /REPLACES/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
        // The secrets are secret config (not in a stack file's plain text): the plan's own comparison, on the evaluations.
        const rotated = await evaluate(withConfig({ database: { ...database(), secretsVersion: 2 } }));
        for (const m of members) {
            // New logins made first, then Patroni takes them by a reload: PostgreSQL keeps running, no primary is handed over.
            assert.equal(describeInPlace(inPlaceChange(prod.desired[m], rotated.desired[m])), "applied in place (4 files); restarts vps-ha-db-roles.service; reloads vps-ha-patroni.service", m);
        }
        assert.match(describeInPlace(inPlaceChange(prod.desired["lb-1"], rotated.desired["lb-1"])), /reloads pgbouncer.service/);
        assert.equal(describeInPlace(inPlaceChange(prod.desired["app-1"], rotated.desired["app-1"])), "applied in place (1 file); restarts vps-ha-app@*.service");
    });

    it("database.maxConnections: every node's user-data byte for byte the same; the members restart PostgreSQL in place, the primary handed over", async () => {
        const raised = await evaluate(withConfig({ database: { ...database(), maxConnections: 300 } }));
        assert.deepEqual(Object.keys(raised.userData).sort(), Object.keys(prod.userData).sort());
        for (const [node, userData] of Object.entries(prod.userData)) assert.equal(raised.userData[node], userData, `${node}'s user-data changed`);
        for (const m of members) {
            const settings = (e: Evaluation) => JSON.parse(e.desired[m].files.find((f) => f.path === PATRONI_DYNAMIC_SETTINGS)!.content);
            assert.equal(settings(raised).desired.postgresql.parameters.max_connections, 300, m);
            assert.equal(settings(prod).desired.postgresql.parameters.max_connections, undefined, m);
            assert.deepEqual(settings(prod).absent.filter((k: string[]) => k.includes("max_connections")), [["postgresql", "parameters", "max_connections"]], `${m}: absent from the stack, removed from the cluster`);
            // Patroni itself keeps running: PostgreSQL alone restarts, where Patroni says it must.
            // Patroni reloads its config (the value in bootstrap.dcs changed there): a reload restarts nothing.
            assert.equal(describeInPlace(inPlaceChange(prod.desired[m], raised.desired[m])), `applied in place (2 files); restarts ${PATRONI_DYNAMIC_UNIT}; reloads vps-ha-patroni.service; restarts PostgreSQL (max_connections), one member at a time; hands over the primary first if it leads`, m);
            assert.equal(raised.desired[m].rollout?.pendingRestart?.units[0], PATRONI_DYNAMIC_UNIT, m);
        }
        // Only the database group's documents change.
        for (const n of Object.keys(prod.desired).filter((x) => !members.includes(x))) {
            assert.equal(describeInPlace(inPlaceChange(prod.desired[n], raised.desired[n])), "unchanged", n);
        }
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-plan-"));
        try {
            // Backups hold keys (the helper's files keep vps-ha:database secret then): a stack without them, in plain text.
            const write = (name: string, f: StackFile) => {
                const secrets = new Set(f.secretKeys.filter((k) => k !== "vps-ha:database"));
                const config = Object.fromEntries(Object.entries(f.values).filter(([k]) => !secrets.has(k)).map(([k, v]) => [k, parseValue(v)]));
                writeFileSync(join(dir, name), stringify({ config }));
                return join(dir, name);
            };
            const { backups: _keys, ...plain } = database();
            const deployed = write("Pulumi.prod.yaml", withConfig({ database: plain }));
            const changed = write("raised.yaml", withConfig({ database: { ...plain, maxConnections: 300 } }));
            const text = formatReport(await planReport(changed, "prod", { stackFile: deployed }));
            for (const m of members) assert.ok(text.includes(`${m} (db): same server; applied in place (2 files); restarts ${PATRONI_DYNAMIC_UNIT}; reloads vps-ha-patroni.service; restarts PostgreSQL (max_connections), one member at a time; hands over the primary first if it leads\n`), text);
            assert.doesNotMatch(text, /REPLACES/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("a witness removed in one run: every member's user-data the same, only the witness's server deleted, each voter prunes it from etcd", async () => {
        const nodes = prodNodes();
        nodes.witness = [{ name: "witness-1", provider: "hcloud", region: "hel1", size: "cx23" }];
        const withWitness = await evaluate(withConfig({ nodes }));
        for (const m of members) assert.equal(prod.userData[m], withWitness.userData[m], `${m}'s user-data changed`);
        const changes = compareServers(facts(withWitness), facts(prod)).filter((c) => c.kind !== "same");
        assert.deepEqual(changes.map((c) => [c.name, c.kind]), [["witness-1", "remove"]]);
        assert.deepEqual(replacementProblems(changes, facts(withWitness)), [], "its removal is allowed");
        // Every voter's prune names the voters and keeps the members the stack has: the witness no more.
        const unit = `/etc/systemd/system/${ETCD_PRUNE_UNIT}`;
        const prune = (e: Evaluation, n: string) => e.desired[n].files.find((f) => f.path === unit)?.content;
        // With the witness, one member of the provider holding two does not vote (it has no etcd, nor a prune).
        const voters = [...members, "witness-1"].filter((n) => prune(withWitness, n) !== undefined);
        assert.equal(voters.length, 3);
        for (const n of voters) assert.match(prune(withWitness, n) ?? "", /--keep db-1,db-2,db-3,witness-1 /, n);
        for (const m of members) {
            assert.match(prune(prod, m) ?? "", /--keep db-1,db-2,db-3 /, m);
            // Its turn prunes first, then restarts etcd (the member that votes again joins it then).
            assert.match(describeInPlace(inPlaceChange(withWitness.desired[m], prod.desired[m])), new RegExp(`restarts ${ETCD_PRUNE_UNIT.replace(/\./g, "\\.")}, vps-ha-etcd\\.service`), m);
        }
    });

    it("the database and etcd CAs and every member's certificates renewed: every member's user-data the same, no member replaced, the new certificates in their desired state", async () => {
        const restore = renewMockCertificates(["database-ca", "database-etcd-ca", ...members.flatMap((m) => [`database-${m}-tls-cert`, `database-${m}-etcd-cert`])]);
        try {
            const renewed = await evaluate(prodStack());
            const certs = (e: Evaluation, m: string) => e.desired[m].files.filter((f) => f.content.startsWith("-----BEGIN CERTIFICATE")).map((f): [string, string] => [f.path, f.content]);
            for (const m of members) {
                assert.equal(renewed.userData[m], prod.userData[m], `${m}'s user-data changed`);
                assert.ok(certs(prod, m).length > 0, `${m} holds certificates`);
                for (const [path, content] of certs(renewed, m)) assert.notEqual(content, new Map(certs(prod, m)).get(path), `${m}: ${path} renewed`);
                assert.equal(describeInPlace(inPlaceChange(prod.desired[m], renewed.desired[m])), "applied in place (4 files); restarts vps-ha-etcd.service, vps-ha-pgbackrest.service", m);
            }
            const replaced = compareServers(facts(prod), facts(renewed)).filter((c) => c.member && c.kind !== "same" && c.kind !== "new");
            assert.deepEqual(replaced, [], "members replaced or restarted");
        } finally {
            restore();
        }
    });

    describe("pulumi up waits for the rollout (the rollout-wait command)", () => {
        const wait = (e: Evaluation) => {
            const found = e.resources.filter((r) => r.type === "command:local:Command" && r.name === "rollout-wait");
            assert.equal(found.length, 1, "one rollout-wait command");
            return found[0];
        };
        const generations = (e: Evaluation) => Object.fromEntries(Object.entries(e.desired).map(([n, d]) => [n, d.generation]));
        const triggers = (e: Evaluation) => JSON.parse(String((wait(e).inputs.triggers as unknown[])[0])) as Record<string, number>;

        it("waits for every node's generation, with the script the pure renderer makes, after every desired state and the release gate", () => {
            const cmd = wait(prod);
            assert.deepEqual(triggers(prod), generations(prod));
            assert.deepEqual(Object.keys(triggers(prod)).sort(), (prod.outputs.nodes as { name: string }[]).map((n) => n.name).sort());
            const plan = buildPlan(parseStackConfig(raw(prodStack()), "prod"));
            assert.equal(cmd.inputs.create, rolloutWaitScript(plan, generations(prod)));
            const deps = cmd.options.dependsOn ?? [];
            assert.ok(deps.includes("release-gate"), `depends on the release gate: ${deps.join(", ")}`);
            for (const n of Object.keys(prod.desired)) assert.ok(deps.includes(`${n}-desired-head`), `waits for ${n}'s published head`);
        });

        it("runs again exactly when a node's generation changes", async () => {
            // The mock keeps each generation command's last digest, as a stack's state does: each
            // evaluation below is the next `pulumi up` of the one before.
            let previous = await evaluate(prodStack());
            const steps: [string, StackFile][] = [["the same stack file again", prodStack()], ["an admin SSH key added", withConfig(changes()[0][1])],
                ["the same again", withConfig(changes()[0][1])], ["a new app release on top", withConfig({ ...changes()[0][1], ...changes()[6][1] })]];
            const movedBy: Record<string, number> = {};
            for (const [what, file] of steps) {
                const e = await evaluate(file);
                const moved = Object.keys(generations(e)).filter((n) => generations(e)[n] !== generations(previous)[n]);
                movedBy[what] = moved.length;
                assert.deepEqual(triggers(e), generations(e), what);
                assert.equal(JSON.stringify(wait(e).inputs.triggers) !== JSON.stringify(wait(previous).inputs.triggers), moved.length > 0, `${what}: ${moved.join(", ")}`);
                previous = e;
            }
            assert.equal(movedBy["the same stack file again"], 0);
            assert.equal(movedBy["the same again"], 0);
            assert.equal(movedBy["an admin SSH key added"], Object.keys(prod.desired).length, "every node holds the admin keys");
        });

        it("only the HAProxy nodes' documents hold the rollout token; the command has it as a secret", () => {
            const token = String(prod.resources.find((r) => r.type === "random:index/randomPassword:RandomPassword" && r.name === "rollout-token")?.outputs.result);
            assert.match(token, /^[A-Za-z0-9]{40}$/);
            for (const [n, doc] of Object.entries(prod.desired)) {
                const holds = JSON.stringify(doc).includes(token);
                const role = (prod.outputs.nodes as { name: string; role: string }[]).find((x) => x.name === n)?.role;
                assert.equal(holds, role === "haproxy", `${n} (${role})`);
                assert.ok(!prod.userData[n].includes(token), `${n}'s user-data`);
                if (role === "haproxy") {
                    assert.equal(doc.files.find((f) => f.path === ROLLOUT_TOKEN_FILE)?.content, `${token}\n`);
                    assert.equal(doc.files.find((f) => f.path === ROLLOUT_BEARER_FILE)?.mode, "0600");
                }
            }
            const cmd = wait(prod);
            assert.equal((cmd.inputs.environment as Record<string, string>)[ROLLOUT_TOKEN_ENV], token);
            assert.ok(cmd.secretInputs.includes("environment"), "the token is a secret input");
            assert.ok(!String(cmd.inputs.create).includes(token), "the token is not in the script");
        });
    });

    it("an admin key reaches the nodes' admin key file, not their user-data", async () => {
        const e = await evaluate(withConfig({ admin: { ...admin(), sshPublicKeys: [KEY] } }));
        const keys = e.desired["db-1"].files.find((f) => f.path === `${ADMIN_KEYS_DIR}/root`);
        assert.equal(keys?.content, `${KEY}\n`);
    });
});
