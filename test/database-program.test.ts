// The database tier in the whole program, under Pulumi's mock runtime: what each node boots
// with, and that every generated secret stays secret.
import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { parseStackConfig } from "../components/config";
import { buildPlan } from "../components/plan";
import { databaseParts } from "../components/render/database";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ETCD_CLIENT_TLS_FILES, ETCD_ENV_FILE, ETCD_TLS_FILES, ETCD_UNIT, etcdTlsPaths } from "../components/render/etcd";
import { PATRONI_CONFIG } from "../components/render/patroni";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate, ofType, TYPES } from "./helpers/program";
import { prodNodes, raw, withConfig } from "./helpers/stack";

const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";
const S3 = { accessKeyId: "AKIDEXAMPLE0000VPSHA", secretAccessKey: "S3SecretExampleKeyThatMustNotLeak0000" };

function fileIn(userData: string, path: string): { content: string; owner: string; permissions: string; defer?: boolean } {
    const f = (parse(userData).write_files as { path: string; content: string; owner: string; permissions: string }[]).find((w) => w.path === path);
    assert.ok(f, `no ${path} in the cloud-config`);
    return f;
}

/** Resource inputs Pulumi does not hold as secret, as text. */
function openInputs(e: Evaluation): { name: string; text: string }[] {
    return e.resources.map((r) => ({ name: `${r.type} ${r.name}`, text: JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k)))) }));
}

/** Stack outputs with every secret path left out, as text. */
function openOutputs(e: Evaluation): string {
    const copy = JSON.parse(JSON.stringify(e.outputs)) as Record<string, unknown>;
    for (const path of e.secretOutputs) delete copy[path];
    return JSON.stringify(copy);
}

describe("program: the database tier (mock runtime)", function () {
    this.timeout(60000);
    let prod: Evaluation;
    const file = withConfig({ database: { synchronous: "quorum", backups: { bucket: "vps-ha-prod-backups", ...S3 } } });
    before(async () => {
        prod = await evaluate(file);
    });

    it("boots every db node with its rendered Patroni config and etcd member, from the plan and the generated secrets", () => {
        const plan = buildPlan(parseStackConfig(raw(file), "prod"));
        const passwords = Object.fromEntries(ofType(prod, RANDOM_PASSWORD).map((r) => [r.name.replace(/^database-/, ""), String(r.outputs.result)]));
        for (const name of ["superuser", "replication", "rewind", "app", "restApi", "backupCipher", "poolerAdmin"]) assert.match(passwords[name] ?? "", /^[A-Za-z0-9]{32}$/, name);
        for (const db of plan.nodes.filter((n) => n.role === "db")) {
            const userData = prod.config[db.name];
            const expected = databaseParts(plan, db, {
                version: 1,
                superuserPassword: passwords.superuser,
                replicationPassword: passwords.replication,
                rewindPassword: passwords.rewind,
                appPassword: passwords.app,
                restApiPassword: passwords.restApi,
                poolerAdminPassword: passwords.poolerAdmin,
                etcdTls: { caCertPem: "", certPem: "", keyPem: "" },
                backup: { cipherPassphrase: passwords.backupCipher, caCertPem: "", certPem: "", keyPem: "" },
            }).flatMap((p) => p.files ?? []);
            for (const path of [PATRONI_CONFIG, ETCD_ENV_FILE, "/etc/systemd/system/vps-ha-etcd.service", "/etc/systemd/system/vps-ha-patroni.service"]) {
                assert.equal(fileIn(userData, path).content, expected.find((f) => f.path === path)?.content, `${db.name}: ${path}`);
            }
            const patroni = fileIn(userData, PATRONI_CONFIG);
            // Written once its owner exists: the desired-state agent writes such files after the packages.
            assert.deepEqual([patroni.owner, patroni.permissions], ["postgres:postgres", "0600"]);
            assert.equal(parse(patroni.content).name, db.name);
            assert.ok(parse(userData).packages.includes("patroni"));
        }
        for (const other of plan.nodes.filter((n) => n.role !== "db" && n.role !== "witness")) {
            assert.ok(!prod.config[other.name].includes(PATRONI_CONFIG), `${other.name} runs no database`);
        }
    });

    it("gives each member a certificate for pgBackRest's TLS, signed by one CA, naming its mesh address", () => {
        const ca = fileIn(prod.config["db-1"], "/etc/pgbackrest/tls/ca.crt").content;
        for (const db of ["db-1", "db-2", "db-3"]) {
            assert.equal(fileIn(prod.config[db], "/etc/pgbackrest/tls/ca.crt").content, ca);
            assert.match(fileIn(prod.config[db], "/etc/pgbackrest/tls/node.crt").content, /^-----BEGIN CERTIFICATE-----\n/);
            const key = fileIn(prod.config[db], "/etc/pgbackrest/tls/node.key");
            assert.deepEqual([key.owner, key.permissions], ["postgres:postgres", "0600"]);
            assert.match(key.content, /^-----BEGIN (EC )?PRIVATE KEY-----\n/);
        }
    });

    it("keeps every generated password, the backup credentials and keys secret, in inputs and outputs", () => {
        const passwords = ofType(prod, RANDOM_PASSWORD);
        // The seven the stack had, and the rollout token (HAProxy asks pulumi up's rollout wait for it).
        assert.equal(passwords.length, 7 + 1);
        assert.ok(passwords.some((p) => p.name === "rollout-token"));
        const keys = ["db-1", "db-2", "db-3"].map((n) => fileIn(prod.config[n], "/etc/pgbackrest/tls/node.key").content.split("\n")[1]);
        const secrets = [...passwords.map((p) => String(p.outputs.result)), S3.accessKeyId, S3.secretAccessKey, ...keys];
        for (const s of secrets) assert.ok(Object.values(prod.config).some((u) => u.includes(s)), "each secret does reach a node");
        for (const { name, text } of openInputs(prod)) {
            for (const s of secrets) assert.ok(!text.includes(s), `${name} carries a secret in a non-secret input`);
        }
        const servers = [...ofType(prod, TYPES.linodeInstance), ...ofType(prod, TYPES.hcloudServer)];
        for (const s of servers) assert.ok(s.secretInputs.includes(s.type === TYPES.linodeInstance ? "metadatas" : "userData"), s.name);
        const outputs = openOutputs(prod);
        for (const s of secrets) assert.ok(!outputs.includes(s), "a non-secret stack output carries a secret");
    });

    it("exports the connection strings as secrets, naming both HAProxy nodes' mesh addresses", () => {
        assert.ok(prod.secretOutputs.includes("connectionString"));
        assert.ok(prod.secretOutputs.includes("readOnlyConnectionString"));
        const app = String(ofType(prod, RANDOM_PASSWORD).find((r) => r.name === "database-app")?.outputs.result);
        const lbs = (prod.outputs.nodes as { name: string; role: string; meshAddress: string }[]).filter((n) => n.role === "haproxy").map((n) => n.meshAddress);
        assert.equal(lbs.length, 2);
        assert.equal(prod.outputs.connectionString, `postgresql://app:${app}@${lbs[0]}:5000,${lbs[1]}:5000/app?target_session_attrs=read-write`);
        assert.equal(prod.outputs.readOnlyConnectionString, `postgresql://app:${app}@${lbs[0]}:5001,${lbs[1]}:5001/app?target_session_attrs=prefer-standby`);
    });

    it("renders the same secrets and files on every evaluation", async () => {
        const again = await evaluate(file, "prod", { fresh: true });
        for (const db of ["db-1", "db-2", "db-3"]) assert.equal(again.config[db], prod.config[db], db);
    });
});

/** `openssl` on PEMs written to a scratch directory (@name in args names a file); stdout and status. */
function openssl(args: string[], files: Record<string, string>): { status: number | null; out: string } {
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-etcd-tls-"));
    try {
        for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
        const r = spawnSync("openssl", args.map((a) => a.replace(/^@/, `${dir}/`)), { encoding: "utf8", timeout: 10_000 });
        return { status: r.status, out: r.stdout + r.stderr };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

describe("program: etcd's certificates (mock runtime)", function () {
    this.timeout(60000);
    let e: Evaluation;
    const nodes = prodNodes();
    nodes.witness = [{ name: "witness-1", provider: "hcloud", region: "hel1", size: "cx23" }];
    before(async () => {
        e = await evaluate(withConfig({ nodes }));
    });
    const planned = () => e.outputs.nodes as { name: string; role: string; meshAddress: string }[];
    const has = (node: string, path: string) => (parse(e.config[node]).write_files as { path: string }[]).some((f) => f.path === path);

    it("gives every database member and the witness (each an etcd voter or client) its own key, signed by one etcd CA, naming its mesh address, loopback and name", () => {
        const members = planned().filter((n) => n.role === "db" || n.role === "witness");
        assert.equal(members.length, 4, "three members and the witness (one member then votes not, but its Patroni is a client)");
        const ca = fileIn(e.config["db-1"], ETCD_TLS_FILES.ca).content;
        const keys = new Map<string, string>();
        for (const n of members) {
            // A member that does not vote holds a client certificate of its own name, at its own paths.
            const paths = etcdTlsPaths({ etcdVoter: has(n.name, `/etc/systemd/system/${ETCD_UNIT}`) });
            assert.equal(fileIn(e.config[n.name], paths.ca).content, ca, n.name);
            const cert = fileIn(e.config[n.name], paths.cert).content;
            const key = fileIn(e.config[n.name], paths.key);
            assert.match(key.content, /^-----BEGIN (EC )?PRIVATE KEY-----\n/, n.name);
            assert.ok(!["0644", "0604", "0444"].includes(key.permissions) && /^0[0-7][0-7]0$/.test(key.permissions), `${n.name}: ${key.permissions}: never world-readable`);
            keys.set(n.name, key.content);
            const verified = openssl(["verify", "-CAfile", "@ca.pem", "-purpose", "sslserver", "@cert.pem"], { "ca.pem": ca, "cert.pem": cert });
            assert.equal(verified.status, 0, `${n.name}: ${verified.out}`);
            assert.equal(openssl(["verify", "-CAfile", "@ca.pem", "-purpose", "sslclient", "@cert.pem"], { "ca.pem": ca, "cert.pem": cert }).status, 0, `${n.name}: a client certificate too`);
            const text = openssl(["x509", "-noout", "-ext", "subjectAltName", "-in", "@cert.pem"], { "cert.pem": cert }).out;
            for (const san of [`DNS:${n.name}`, `IP Address:${n.meshAddress}`, "IP Address:127.0.0.1"]) assert.ok(text.includes(san), `${n.name}: ${san} in ${text}`);
            // The key matches its certificate.
            const pub = (pem: string, kind: "x509" | "pkey") => openssl(kind === "x509" ? ["x509", "-noout", "-pubkey", "-in", "@f"] : ["pkey", "-pubout", "-in", "@f"], { f: pem }).out;
            assert.equal(pub(key.content, "pkey"), pub(cert, "x509"), n.name);
        }
        // The pgBackRest CA is another one: a pgBackRest certificate opens no etcd.
        assert.notEqual(fileIn(e.config["db-1"], "/etc/pgbackrest/tls/ca.crt").content, ca);
        // Each key reaches its own node and no other; nodes outside the database tier hold none.
        for (const [owner, key] of keys) {
            const body = key.split("\n")[1];
            for (const n of planned()) assert.equal(e.config[n.name].includes(body), n.name === owner, `${owner}'s etcd key on ${n.name}`);
        }
        for (const n of planned().filter((x) => x.role !== "db" && x.role !== "witness")) {
            for (const path of [...Object.values(ETCD_TLS_FILES), ...Object.values(ETCD_CLIENT_TLS_FILES)]) assert.ok(!has(n.name, path), `${n.name} holds ${path}`);
        }
    });

    it("keeps the etcd keys secret in resource inputs and stack outputs", () => {
        const keys = planned().filter((n) => n.role === "db" || n.role === "witness").map((n) => fileIn(e.config[n.name], etcdTlsPaths({ etcdVoter: has(n.name, `/etc/systemd/system/${ETCD_UNIT}`) }).key).content.split("\n")[1]);
        for (const { name, text } of openInputs(e)) for (const k of keys) assert.ok(!text.includes(k), `${name} carries an etcd key in a non-secret input`);
        const outputs = openOutputs(e);
        for (const k of keys) assert.ok(!outputs.includes(k), "a non-secret stack output carries an etcd key");
    });
});
