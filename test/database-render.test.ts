// The database tier's renderers, pure: etcd, Patroni, pgBackRest and the parts a node boots with.
import { HAND_OVER_STOP_SECONDS, HAND_OVER_UNIT, SWITCHOVER_CONFIG, SWITCHOVER_PAUSE_TIMEOUT_SECONDS, SWITCHOVER_SWITCH_TIMEOUT_SECONDS, SWITCHOVER_TOOL } from "../components/render/switchover";
import { PACKAGE_DIR } from "../components/render/python-lib";
import { PATRONI_DYNAMIC_SETTINGS, PATRONI_DYNAMIC_TOOL, PATRONI_DYNAMIC_UNIT } from "../components/render/patroni-dynamic";
import { AFTER_PROMOTE_TOOL, PG_CTL_WRAPPER } from "../components/render/after-promote";
import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { ConfigError, ConfigIssue, parseStackConfig } from "../components/config";
import { maxRttMs, rttMs, UNKNOWN_RTT_MS } from "../components/latency";
import { buildPlan, PlannedNode, StackPlan } from "../components/plan";
import { CloudConfigPart, FilePart, renderCloudConfig } from "../components/render/cloud-config";
import { databaseParts, DatabaseSecrets } from "../components/render/database";
import { ETCD_LEAVE_TOOL, ETCD_LEAVE_UNIT, ETCD_LEAVE_WAIT_SECONDS } from "../components/render/etcd-leave";
import { ETCD_CLIENT_TLS_FILES, ETCD_TLS_FILES, etcdMemberSpec, etcdTiming, renderEtcdEnv, renderEtcdJoinScript } from "../components/render/etcd";
import { ETCD_READY_TOOL, everyVersionOf, INITDB_OPTIONS, PATRONI_CONFIG, PATRONI_RESTART_KEY, PATRONI_TIMING, PATRONI_UNIT, PG_BIN_DIR, pgHba, renderPatroniConfig, renderPostBootstrap } from "../components/render/patroni";
import { DB_ROLES_CONFIG, DB_ROLES_TOOL } from "../components/render/db-roles";
import { DB_RESTORE_TOOL, initdbArguments } from "../components/render/db-restore";
import { BACKUP_SCHEDULE, renderBackupScript, renderRestoreScript, RETENTION } from "../components/render/pgbackrest";
import { StackFile } from "../scripts/lib/stack-file";
import { prodNodes, raw, withConfig } from "./helpers/stack";
import { requireTools } from "./helpers/tools";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function planOf(edits: Record<string, unknown> = {}): StackPlan {
    return buildPlan(parseStackConfig(raw(withConfig(edits)), "prod"));
}

function issuesOf(file: StackFile): ConfigIssue[] {
    try {
        parseStackConfig(raw(file), "prod");
    } catch (e) {
        if (e instanceof ConfigError) return e.issues;
        throw e;
    }
    return [];
}

const node = (p: StackPlan, name: string) => p.nodes.find((n) => n.name === name) as PlannedNode;
const envOf = (text: string) => Object.fromEntries(text.split("\n").filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));

const SECRETS: DatabaseSecrets = {
    version: 1,
    superuserPassword: "SuperuserPw0000000000000000000001",
    replicationPassword: "ReplicationPw00000000000000000002",
    rewindPassword: "RewindPw000000000000000000000003",
    appPassword: "AppPw00000000000000000000000004",
    restApiPassword: "RestApiPw0000000000000000000005",
    poolerAdminPassword: "PoolerAdminPw00000000000000000007",
    etcdTls: { caCertPem: "ETCD-CA\n", certPem: "ETCD-MEMBER\n", keyPem: "ETCD-PRIVATE-KEY\n" },
    backup: { cipherPassphrase: "CipherPw000000000000000000000006", caCertPem: "CA-PEM\n", certPem: "CERT-PEM\n", keyPem: "KEY-PEM-SECRET\n" },
};

const files = (parts: CloudConfigPart[]) => parts.flatMap((p) => p.files ?? []);
const fileAt = (parts: CloudConfigPart[], path: string) => {
    const f = files(parts).find((x) => x.path === path);
    assert.ok(f, `no ${path}`);
    return f;
};

describe("estimated round-trip times", () => {
    it("grow with distance: same region 1 ms, neighbours a few ms, an ocean tens of ms", () => {
        assert.equal(rttMs({ provider: "hcloud", region: "fsn1" }, { provider: "hcloud", region: "fsn1" }), 1);
        const near = rttMs({ provider: "hcloud", region: "fsn1" }, { provider: "linode", region: "de-fra-2" });
        assert.ok(near > 2 && near < 6, String(near));
        const ocean = rttMs({ provider: "linode", region: "de-fra-2" }, { provider: "hcloud", region: "ash" });
        assert.ok(ocean > 55 && ocean < 80, String(ocean));
        assert.equal(ocean, rttMs({ provider: "hcloud", region: "ash" }, { provider: "linode", region: "de-fra-2" }));
        assert.equal(rttMs({ provider: "ssh", region: "office" }, { provider: "hcloud", region: "fsn1" }), UNKNOWN_RTT_MS);
        const [fsn, sin, nbg] = ["fsn1", "sin", "nbg1"].map((region) => ({ provider: "hcloud", region }));
        assert.equal(maxRttMs([fsn, sin, nbg]), Math.max(rttMs(fsn, sin), rttMs(sin, nbg), rttMs(fsn, nbg)));
        assert.equal(maxRttMs([fsn]), 1);
    });
});

describe("etcd renderer", () => {
    it("times heartbeat and election from the RTT, with etcd's floors and ceiling", () => {
        assert.deepEqual(etcdTiming(3), { heartbeatMs: 100, electionMs: 1000 });
        assert.deepEqual(etcdTiming(180.2), { heartbeatMs: 181, electionMs: 1810 });
        assert.equal(etcdTiming(9000).electionMs, 50000);
    });

    it("prod: every db member votes; static cluster by mesh address; mesh and loopback only; pre-vote", () => {
        const plan = planOf();
        const spec = etcdMemberSpec(plan, node(plan, "db-2"));
        assert.deepEqual(spec.voters.map((v) => v.name), ["db-1", "db-2", "db-3"]);
        const env = envOf(renderEtcdEnv(spec));
        const me = node(plan, "db-2").meshAddress;
        assert.equal(env.ETCD_NAME, "db-2");
        assert.equal(env.ETCD_DATA_DIR, "/var/lib/etcd/vps-ha");
        assert.equal(env.ETCD_LISTEN_PEER_URLS, `https://${me}:2380`);
        assert.equal(env.ETCD_LISTEN_CLIENT_URLS, `https://${me}:2379,https://127.0.0.1:2379`);
        assert.equal(env.ETCD_ADVERTISE_CLIENT_URLS, `https://${me}:2379`);
        assert.equal(env.ETCD_INITIAL_CLUSTER, ["db-1", "db-2", "db-3"].map((n) => `${n}=https://${node(plan, n).meshAddress}:2380`).join(","));
        assert.equal(env.ETCD_PRE_VOTE, "true");
        // Frankfurt, Falkenstein and Nuremberg are a few ms apart: etcd's defaults fit.
        assert.deepEqual([env.ETCD_HEARTBEAT_INTERVAL, env.ETCD_ELECTION_TIMEOUT], ["100", "1000"]);
        assert.ok(!/0\.0\.0\.0|\[::\]/.test(renderEtcdEnv(spec)));
    });

    it("requires a certificate from the etcd CA of every client and every peer; only /metrics and /health stay plain, on their own port", () => {
        const plan = planOf();
        const env = envOf(renderEtcdEnv(etcdMemberSpec(plan, node(plan, "db-1"))));
        const me = node(plan, "db-1").meshAddress;
        // Every client and peer URL is TLS (a plain listener would take clients without a certificate).
        for (const key of ["ETCD_LISTEN_PEER_URLS", "ETCD_INITIAL_ADVERTISE_PEER_URLS", "ETCD_LISTEN_CLIENT_URLS", "ETCD_ADVERTISE_CLIENT_URLS", "ETCD_INITIAL_CLUSTER"]) {
            for (const url of env[key].split(",").map((u) => u.replace(/^[^=]+=(?=https?:)/, ""))) assert.match(url, /^https:\/\//, `${key}: ${url}`);
        }
        assert.equal(env.ETCD_CLIENT_CERT_AUTH, "true");
        assert.equal(env.ETCD_PEER_CLIENT_CERT_AUTH, "true");
        assert.deepEqual([env.ETCD_TRUSTED_CA_FILE, env.ETCD_CERT_FILE, env.ETCD_KEY_FILE], [ETCD_TLS_FILES.ca, ETCD_TLS_FILES.cert, ETCD_TLS_FILES.key]);
        assert.deepEqual([env.ETCD_PEER_TRUSTED_CA_FILE, env.ETCD_PEER_CERT_FILE, env.ETCD_PEER_KEY_FILE], [ETCD_TLS_FILES.ca, ETCD_TLS_FILES.cert, ETCD_TLS_FILES.key]);
        // No setting that would let a client or peer in on a certificate from any other CA, or none.
        for (const key of ["ETCD_AUTO_TLS", "ETCD_PEER_AUTO_TLS", "ETCD_CLIENT_CRL_FILE"]) assert.equal(env[key], undefined, key);
        assert.equal(env.ETCD_LISTEN_METRICS_URLS, `http://${me}:2381`);
    });

    it("stretches the timeouts when a voter is far away", () => {
        const nodes = prodNodes();
        // Newark is ~65 ms from Falkenstein: still under etcd's 100 ms floor.
        nodes.db[2] = { name: "db-3", provider: "linode", region: "us-east", size: "g6-standard-1" };
        const ocean = planOf({ nodes });
        assert.deepEqual(etcdTiming(maxRttMs(ocean.nodes.filter((n) => n.etcdVoter))), { heartbeatMs: 100, electionMs: 1000 });
        // Singapore is ~102 ms from Nuremberg: heartbeat follows the RTT, election 10x.
        nodes.db[2] = { name: "db-3", provider: "linode", region: "ap-south", size: "g6-standard-1" };
        const far = planOf({ nodes });
        const spec = etcdMemberSpec(far, node(far, "db-1"));
        assert.equal(spec.heartbeatMs, Math.ceil(maxRttMs(far.nodes.filter((n) => n.etcdVoter))));
        assert.ok(spec.heartbeatMs > 100, String(spec.heartbeatMs));
        assert.equal(spec.electionMs, 10 * spec.heartbeatMs);
        const env = envOf(renderEtcdEnv(spec));
        assert.deepEqual([env.ETCD_HEARTBEAT_INTERVAL, env.ETCD_ELECTION_TIMEOUT], [String(spec.heartbeatMs), String(spec.electionMs)]);
    });

    it("the join script asks the other voters, never itself, and removes/re-adds a stale member", () => {
        const plan = planOf();
        const script = renderEtcdJoinScript(etcdMemberSpec(plan, node(plan, "db-1")));
        const others = /OTHERS="([^"]*)"/.exec(script)?.[1].split(" ") ?? [];
        assert.deepEqual(others, ["db-2", "db-3"].map((n) => `https://${node(plan, n).meshAddress}:2379`));
        // etcdctl and the peer-port check show the member's own certificate.
        assert.match(script, new RegExp(`^ctl\\(\\) \\{ etcdctl .*--cacert="\\$CA" --cert="\\$CERT" --key="\\$KEY"`, "m"));
        assert.ok(script.includes(`CA=${ETCD_TLS_FILES.ca}\nCERT=${ETCD_TLS_FILES.cert}\nKEY=${ETCD_TLS_FILES.key}\n`));
        assert.match(script, /member remove "\$id"/);
        assert.match(script, /member add "\$NAME" --peer-urls="\$PEER_URL"/);
        assert.match(script, /write_state existing "\$cluster"/);
        assert.match(script, /write_state new\n/);
        // Data on disk wins: the script decides nothing then.
        assert.ok(script.indexOf('[ -d "$DATA_DIR/member" ]') < script.indexOf("member list"));
        // Never "new" while another member holds data: asked on their peer ports, before deciding.
        assert.match(script, /for peer in \$OTHERS; do\n\s+peer=\$\{peer%:\*\}:2380\n/);
        const waits = script.indexOf('if python3 -c "$DECIDED" "$peer/version" "$CA" "$CERT" "$KEY"');
        assert.ok(waits > 0 && waits < script.indexOf("write_state new\n"), "the data check comes before a new cluster");
        assert.match(script.slice(waits), /^[^\n]*\n\s+holder=\$peer\n\s+break\n/);
        // A cluster that holds data and does not answer yet is asked again, a bounded number of times, then waited for.
        assert.ok(script.indexOf('if [ -z "$holder" ]; then') < script.indexOf("write_state new\n"), "new only when no member holds data");
        assert.match(script, /if \[ "\$round" -ge 5 \]; then\n\s+say "\$holder holds data: waiting"\n\s+exit 1\n\s+fi\n\s+sleep 1\n/);
    });

    it("with a witness: etcd-only on the witness, and an odd number of voters", () => {
        const nodes = prodNodes();
        nodes.witness = [{ name: "witness-1", provider: "hcloud", region: "hel1", size: "cx23" }];
        const plan = planOf({ nodes });
        const voters = plan.nodes.filter((n) => n.etcdVoter).map((n) => n.name);
        assert.equal(voters.length, 3);
        assert.ok(voters.includes("witness-1"));
        const parts = databaseParts(plan, node(plan, "witness-1"), SECRETS);
        assert.deepEqual(parts.flatMap((p) => p.packages ?? []), ["etcd-server", "etcd-client"]);
        const text = JSON.stringify(parts);
        for (const pw of Object.values(SECRETS).filter((v) => typeof v === "string")) assert.ok(!text.includes(pw), "the witness holds no database password");
        // The db member left out of the vote runs no etcd, but its Patroni uses the voters.
        const nonVoter = plan.nodes.find((n) => n.role === "db" && !n.etcdVoter) as PlannedNode;
        const nvParts = databaseParts(plan, nonVoter, SECRETS);
        assert.deepEqual([...new Set(files(nvParts).filter((f) => f.path.includes("etcd")).map((f) => f.path))].sort(), [
            ETCD_LEAVE_TOOL, `${PACKAGE_DIR}/etcd_leave.py`, `${PACKAGE_DIR}/etcd_tls.py`, `/etc/systemd/system/${ETCD_LEAVE_UNIT}`, ETCD_CLIENT_TLS_FILES.ca, ETCD_CLIENT_TLS_FILES.cert, ETCD_CLIENT_TLS_FILES.key,
        ].sort(), "its etcd client certificate and the tool that takes it out of etcd's membership, nothing else of etcd");
        // Not the member files a voter's etcd reads: a member that stops voting writes these while its etcd still runs.
        assert.notEqual(ETCD_CLIENT_TLS_FILES.key, ETCD_TLS_FILES.key);
        assert.equal(fileAt(nvParts, ETCD_CLIENT_TLS_FILES.key).owner, "postgres:postgres");
        // If it voted before, it leaves etcd's membership in its turn, before Patroni restarts on the voters: once every voter has started.
        const restarts = nvParts.flatMap((p) => p.restarts ?? []).map((r) => r.unit);
        assert.ok(restarts.indexOf(ETCD_LEAVE_UNIT) >= 0 && restarts.indexOf(ETCD_LEAVE_UNIT) < restarts.indexOf(PATRONI_UNIT), restarts.join(", "));
        const leave = fileAt(nvParts, `/etc/systemd/system/${ETCD_LEAVE_UNIT}`).content;
        const voterUrls = plan.nodes.filter((n) => n.etcdVoter).map((n) => `https://${n.meshAddress}:2379`).join(",");
        assert.ok(leave.includes(`ExecStart=${ETCD_LEAVE_TOOL} --name ${nonVoter.name} --peer-url https://${nonVoter.meshAddress}:2380 --voters ${voterUrls} --unit vps-ha-etcd.service --data-dir /var/lib/etcd/vps-ha --wait ${ETCD_LEAVE_WAIT_SECONDS} `), leave);
        assert.match(leave, /^Type=oneshot$/m);
        assert.doesNotMatch(leave, /\[Install\]/, "never enabled: it runs as the change's restart alone");
        // The voters have no such tool.
        for (const voter of plan.nodes.filter((n) => n.etcdVoter && n.role === "db")) assert.ok(!files(databaseParts(plan, voter, SECRETS)).some((f) => f.path === ETCD_LEAVE_TOOL), voter.name);
        const tls = { protocol: "https", cacert: ETCD_TLS_FILES.ca, cert: ETCD_TLS_FILES.cert, key: ETCD_TLS_FILES.key };
        const etcd3 = parse(fileAt(nvParts, PATRONI_CONFIG).content).etcd3 as { hosts: string[]; use_proxies?: boolean };
        assert.deepEqual(etcd3, { hosts: plan.nodes.filter((n) => n.etcdVoter).map((n) => `${n.meshAddress}:2379`), protocol: "https", cacert: ETCD_CLIENT_TLS_FILES.ca, cert: ETCD_CLIENT_TLS_FILES.cert, key: ETCD_CLIENT_TLS_FILES.key });
        // A voter's Patroni uses its own etcd alone.
        for (const voter of plan.nodes.filter((n) => n.role === "db" && n.etcdVoter)) {
            const own = parse(fileAt(databaseParts(plan, voter, SECRETS), PATRONI_CONFIG).content).etcd3 as { hosts: string[]; use_proxies?: boolean };
            assert.deepEqual(own, { hosts: [`${voter.meshAddress}:2379`], use_proxies: true, ...tls }, voter.name);
            // ...so it starts only once that etcd reports the cluster's version (vpsha/etcd_ready.py).
            const unit = fileAt(databaseParts(plan, voter, SECRETS), "/etc/systemd/system/vps-ha-patroni.service").content;
            assert.match(unit, new RegExp(`^ExecStartPre=${ETCD_READY_TOOL} --etcd https://${voter.meshAddress.replace(/\./g, "\\.")}:2379 --cacert ${ETCD_TLS_FILES.ca} --cert ${ETCD_TLS_FILES.cert} --key ${ETCD_TLS_FILES.key} --wait \\d+$`, "m"), voter.name);
            assert.ok(files(databaseParts(plan, voter, SECRETS)).some((f) => f.path === ETCD_READY_TOOL), voter.name);
            // A stop signals Patroni alone; PostgreSQL is Patroni's to shut down.
            assert.match(unit, /^KillMode=mixed$/m, voter.name);
        }
        // A non-voter's Patroni reads the voters' member list again and again, and finds its API path then.
        assert.doesNotMatch(fileAt(nvParts, "/etc/systemd/system/vps-ha-patroni.service").content, /ExecStartPre/);
    });
});

describe("Patroni renderer", () => {
    const plan = planOf();
    const db1 = node(plan, "db-1");
    const MEMBERS = ["10.77.0.3", "10.77.0.2", db1.meshAddress];
    const render = (mode: "quorum" | "on" | "off", stanza?: string, sync: { nodeCount: number; strict: boolean } = { nodeCount: 1, strict: true }) =>
        parse(renderPatroniConfig({ scope: "prod", name: "db-1", meshAddress: db1.meshAddress, meshCidr: "10.77.0.0/24", memberAddresses: MEMBERS, etcdHosts: ["10.77.0.1:2379"], etcdTls: ETCD_TLS_FILES, synchronous: { mode, ...sync }, ...(stanza ? { pgbackrestStanza: stanza } : {}), logins: { replication: "replicator", rewind: "rewinder" }, passwords: { superuser: "s", replication: "r", rewind: "w", restApi: "a" } }), { version: "1.1" });

    it("uses timing Patroni 4 accepts as is, for the fastest failover it allows", () => {
        const dcs = render("quorum").bootstrap.dcs;
        assert.ok(dcs.ttl >= 20, "Patroni 4 raises a ttl under 20");
        assert.ok(dcs.loop_wait >= 1 && dcs.retry_timeout >= 3);
        assert.ok(dcs.loop_wait + 2 * dcs.retry_timeout <= dcs.ttl, "loop_wait + 2*retry_timeout <= ttl");
        assert.deepEqual({ ttl: dcs.ttl, loop_wait: dcs.loop_wait, retry_timeout: dcs.retry_timeout }, PATRONI_TIMING);
        // The issue's target: unplanned failover within ttl + 3 s.
        assert.ok(dcs.ttl + dcs.loop_wait <= 23);
        assert.equal(dcs.failsafe_mode, true);
        assert.equal(dcs.postgresql.use_pg_rewind, true);
        assert.equal(dcs.maximum_lag_on_failover, 1048576);
        // Standbys try a new primary again within a second, not PostgreSQL's 5 s: a strict
        // synchronous primary's first commit after a failover waits for one of them.
        assert.equal(render("quorum").postgresql.parameters.wal_retrieve_retry_interval, "1s");
    });

    it("promotes through vps-ha's pg_ctl and runs the after-promotion hook on every role change", () => {
        const pg = render("quorum").postgresql;
        assert.deepEqual(pg.bin_name, { pg_ctl: PG_CTL_WRAPPER });
        assert.equal(pg.bin_dir, PG_BIN_DIR, "every other program is PostgreSQL's own");
        assert.deepEqual(pg.callbacks, { on_role_change: `${AFTER_PROMOTE_TOOL} --patroni-config ${PATRONI_CONFIG}` });
    });

    it("maps database.synchronous to Patroni's modes", () => {
        const mode = (m: "quorum" | "on" | "off") => {
            const d = render(m).bootstrap.dcs;
            return [d.synchronous_mode, d.synchronous_node_count, d.synchronous_mode_strict];
        };
        assert.deepEqual(mode("quorum"), ["quorum", 1, true]);
        assert.deepEqual(mode("on"), [true, 1, true]);
        assert.deepEqual(mode("off"), [undefined, undefined, undefined]);
        // k standbys per commit, and strictness, as given; a lost standby is noticed within seconds once k > 1.
        const k2 = render("quorum", undefined, { nodeCount: 2, strict: false }).bootstrap.dcs;
        assert.deepEqual([k2.synchronous_mode, k2.synchronous_node_count, k2.synchronous_mode_strict], ["quorum", 2, false]);
        assert.equal(k2.postgresql.parameters.wal_sender_timeout, "3s");
        assert.equal(render("quorum").bootstrap.dcs.postgresql.parameters.wal_sender_timeout, undefined, "k = 1: PostgreSQL's default");
    });

    it("with a witness, every commit reaches a member outside the provider holding the most members", () => {
        const withWitness = (db: { name: string; provider: string; region: string; size: string }[], strict?: boolean) => {
            const nodes = prodNodes();
            nodes.db = db;
            nodes.witness = [{ name: "witness-1", provider: "ssh", region: "office-zurich", host: "203.0.113.10" }];
            const file = withConfig({ nodes, admin: { sshCidrs: ["198.51.100.7/32"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] }, sshPrivateKey: "k", ...(strict === undefined ? {} : { database: { synchronous: "quorum", synchronousStrict: strict } }) });
            file.secretKeys.push("vps-ha:sshPrivateKey");
            const p = buildPlan(parseStackConfig(raw(file), "prod"));
            const parts = databaseParts(p, node(p, "db-1"), SECRETS);
            return parse(fileAt(parts, PATRONI_CONFIG).content, { version: "1.1" }).bootstrap.dcs;
        };
        const h = (name: string, region: string) => ({ name, provider: "hcloud", region, size: "cx23" });
        const l = (name: string) => ({ name, provider: "linode", region: "de-fra-2", size: "g6-standard-1" });
        const three = withWitness([h("db-1", "fsn1"), h("db-2", "nbg1"), l("db-3")]);
        assert.deepEqual([three.synchronous_node_count, three.synchronous_mode_strict], [2, true]);
        assert.equal(withWitness([h("db-1", "fsn1"), h("db-2", "nbg1"), l("db-3")], false).synchronous_mode_strict, false);
        const five = withWitness([h("db-1", "fsn1"), h("db-2", "nbg1"), h("db-4", "hel1"), l("db-3"), l("db-5")]);
        assert.equal(five.synchronous_node_count, 3);
        // Without a witness, one standby per commit, as before.
        assert.equal(parse(fileAt(databaseParts(plan, db1, SECRETS), PATRONI_CONFIG).content, { version: "1.1" }).bootstrap.dcs.synchronous_node_count, 1);
    });

    it("puts database.maxConnections in bootstrap.dcs and the dynamic settings; Patroni restarts for anything else in its config, not for that, and reloads for new logins and passwords", () => {
        const partsWith = (database: Record<string, unknown>, secrets = SECRETS) => {
            const p = buildPlan(parseStackConfig(raw(withConfig({ database: { synchronous: "quorum", ...database } })), "prod"));
            return databaseParts(p, node(p, "db-1"), secrets);
        };
        const [plain, raised] = [partsWith({}), partsWith({ maxConnections: 300 })];
        const dcs = (parts: CloudConfigPart[]) => parse(fileAt(parts, PATRONI_CONFIG).content, { version: "1.1" }).bootstrap.dcs.postgresql.parameters;
        assert.equal(dcs(plain).max_connections, undefined);
        assert.equal(dcs(raised).max_connections, 300);
        const settings = (parts: CloudConfigPart[]) => JSON.parse(fileAt(parts, PATRONI_DYNAMIC_SETTINGS).content);
        assert.equal(settings(raised).desired.postgresql.parameters.max_connections, 300);
        assert.ok(settings(plain).absent.some((k: string[]) => k.join(".") === "postgresql.parameters.max_connections"));
        assert.ok(!settings(raised).absent.some((k: string[]) => k.join(".") === "postgresql.parameters.max_connections"));
        // Patroni's restart follows its restart key: the same with or without the parameter, and
        // with other logins and passwords (a rotation): those are reloaded, the reload first.
        const patroniRestarts = (parts: CloudConfigPart[]) => parts.flatMap((p) => p.restarts ?? []).filter((r) => r.unit === PATRONI_UNIT);
        assert.deepEqual(patroniRestarts(raised), [{ unit: PATRONI_UNIT, paths: [PATRONI_CONFIG], reload: true }, { unit: PATRONI_UNIT, paths: [PATRONI_RESTART_KEY, `/etc/systemd/system/${PATRONI_UNIT}`] }]);
        assert.equal(fileAt(raised, PATRONI_RESTART_KEY).content, fileAt(plain, PATRONI_RESTART_KEY).content);
        const rotated = partsWith({}, { ...SECRETS, version: 2, superuserPassword: "a", replicationPassword: "b", rewindPassword: "c", restApiPassword: "d" });
        assert.equal(fileAt(rotated, PATRONI_RESTART_KEY).content, fileAt(plain, PATRONI_RESTART_KEY).content);
        assert.notEqual(fileAt(rotated, PATRONI_CONFIG).content, fileAt(plain, PATRONI_CONFIG).content);
        assert.match(fileAt(rotated, "/etc/systemd/system/vps-ha-patroni.service").content, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
        // Anything else in the config still restarts it (the members' addresses, say).
        assert.notEqual(fileAt(partsWith({ synchronousStrict: false }), PATRONI_RESTART_KEY).content, fileAt(plain, PATRONI_RESTART_KEY).content);
        assert.match(fileAt(plain, PATRONI_RESTART_KEY).content, /^\{\n "sha256": "[0-9a-f]{64}"\n\}\n$/);
        assert.ok(!fileAt(plain, PATRONI_RESTART_KEY).content.includes(SECRETS.restApiPassword));
        // The dynamic configuration's tool restarts when its settings change (it PATCHes the cluster then).
        const dynamic = raised.flatMap((p) => p.restarts ?? []).find((r) => r.unit === PATRONI_DYNAMIC_UNIT);
        assert.ok(dynamic?.paths?.includes(PATRONI_DYNAMIC_SETTINGS));
    });

    it("listens on the mesh (PostgreSQL also on loopback), never on every address", () => {
        const c = render("quorum");
        assert.equal(c.restapi.listen, `${db1.meshAddress}:8008`);
        assert.equal(c.postgresql.listen, `${db1.meshAddress},127.0.0.1:5432`);
        assert.equal(c.postgresql.connect_address, `${db1.meshAddress}:5432`);
        const text = JSON.stringify(c);
        assert.ok(!/0\.0\.0\.0|"\*"|::/.test(text), "no wildcard listen address");
        assert.deepEqual(c.restapi.authentication, { username: "patroni", password: "a" });
    });

    it("pg_hba: Patroni's roles from the members' mesh addresses only, the app role to its database, the postgres OS user over the socket", () => {
        const hba = render("quorum").postgresql.pg_hba as string[];
        assert.deepEqual(hba, pgHba("10.77.0.0/24", MEMBERS));
        const members = [...MEMBERS].sort().map((a) => `${a}/32`);
        const host = hba.filter((l) => l.startsWith("host ")).map((l) => l.split(/\s+/));
        for (const f of host) assert.equal(f[4], "scram-sha-256", f.join(" "));
        // database, users, address
        // Every secrets version's replication and rewind logins (secrets-version.ts), so a rotation changes no rule.
        const privileged = host.filter((f) => f[2] !== "+app").map((f) => [f[1], f[2], f[3]]);
        assert.deepEqual(privileged, members.map((m) => ["all,replication", "postgres,/^replicator(_v[0-9]+)?$,/^rewinder(_v[0-9]+)?$", m]));
        assert.deepEqual(host.filter((f) => f[2] === "+app").map((f) => [f[1], f[3]]), [["app", "10.77.0.0/24"]], "the app's owner role and its logins: its database, from the mesh (the firewall admits HAProxy nodes and members)");
        const versions = new RegExp(everyVersionOf("replicator").slice(1));
        for (const name of ["replicator", "replicator_v2", "replicator_v17"]) assert.match(name, versions, name);
        for (const name of ["replicatorx", "xreplicator", "replicator_v", "replicator_2", "rewinder"]) assert.doesNotMatch(name, versions, name);
        assert.throws(() => everyVersionOf("app,all"), /not a plain role name/);
        for (const line of hba.filter((l) => l.startsWith("local "))) {
            const f = line.split(/\s+/);
            // Over the socket: the postgres OS user (peer), postgres_exporter's OS user as its
            // pg_monitor role (peer, mapped), and the replication user with a password (Patroni
            // reads a rejoining member's timeline that way).
            if (line === "local postgres vps_ha_monitor peer map=monitor") continue;
            assert.ok(["postgres peer", `${everyVersionOf("replicator")} scram-sha-256`].includes(`${f[2]} ${f[3]}`) && (f[2] === "postgres" || f[1] === "replication"), line);
        }
        assert.ok(!hba.some((l) => /trust|md5|password|0\.0\.0\.0|\ball\s+all\b/.test(l)));
        assert.throws(() => pgHba("10.77.0.0/24", []), /no database member/);
    });

    it("gives every member the same pg_hba naming every member's mesh address", () => {
        const dbs = plan.nodes.filter((n) => n.role === "db");
        const hbas = dbs.map((n) => parse(fileAt(databaseParts(plan, n, SECRETS), PATRONI_CONFIG).content).postgresql.pg_hba as string[]);
        for (const hba of hbas) assert.deepEqual(hba, hbas[0]);
        for (const n of dbs) assert.ok(hbas[0].includes(`host all,replication postgres,${everyVersionOf("replicator")},${everyVersionOf("rewinder")} ${n.meshAddress}/32 scram-sha-256`), n.name);
        for (const n of plan.nodes.filter((x) => x.role !== "db")) assert.ok(!hbas[0].some((l) => l.includes(`${n.meshAddress}/`)), `${n.name} (${n.role}) is named nowhere`);
        // The map lets the OS user prometheus in as vps_ha_monitor and nothing else.
        assert.deepEqual(render("quorum").postgresql.pg_ident, ["monitor prometheus vps_ha_monitor"]);
    });

    it("sets WAL for replicas and pg_rewind, and archives through pgBackRest only with backups", () => {
        const without = render("quorum");
        const p = without.bootstrap.dcs.postgresql.parameters;
        assert.deepEqual([p.wal_level, p.hot_standby, p.wal_log_hints], ["replica", "on", "on"], "strings, not YAML 1.1 booleans");
        assert.equal(without.postgresql.parameters.archive_mode, undefined);
        const withBackups = render("quorum", "prod");
        assert.equal(withBackups.postgresql.parameters.archive_mode, "on");
        assert.equal(withBackups.postgresql.parameters.archive_command, "pgbackrest --stanza=prod archive-push %p");
        assert.equal(withBackups.postgresql.data_dir, "/var/lib/postgresql/17/vps-ha");
        assert.equal(withBackups.postgresql.bin_dir, "/usr/lib/postgresql/17/bin");
        assert.equal(withBackups.scope, "prod");
        assert.equal(withBackups.namespace, "/vps-ha/");
    });

    it("with backups, bootstraps through the repository tool and clones replicas from the leader, from the repository when that fails; without, initdb and pg_basebackup alone", () => {
        const withBackups = render("quorum", "prod");
        assert.equal(withBackups.bootstrap.method, "restore");
        assert.deepEqual(withBackups.bootstrap.restore, {
            command: DB_RESTORE_TOOL,
            keep_existing_recovery_conf: true,
            stanza: "prod",
            bin_dir: PG_BIN_DIR,
            initdb: "--encoding=UTF8 --locale=C.UTF-8 --data-checksums --username=postgres",
        });
        // The tool's initdb and Patroni's own are made from one list.
        assert.deepEqual(withBackups.bootstrap.initdb, INITDB_OPTIONS);
        assert.equal(withBackups.bootstrap.post_bootstrap, "/usr/local/lib/vps-ha/db-post-bootstrap");
        assert.deepEqual(withBackups.postgresql.create_replica_methods, ["basebackup", "pgbackrest"]);
        assert.deepEqual(withBackups.postgresql.pgbackrest, { command: "pgbackrest --stanza=prod --type=standby restore", no_params: true });
        assert.equal(withBackups.postgresql.pgbackrest.no_leader, undefined, "never a replica restored while there is no leader");
        const without = render("quorum");
        assert.equal(without.bootstrap.method, undefined);
        assert.equal(without.bootstrap.restore, undefined);
        assert.deepEqual(without.postgresql.create_replica_methods, ["basebackup"]);
        assert.equal(without.postgresql.pgbackrest, undefined);
        assert.deepEqual(initdbArguments(["a", { b: "c" }], "su"), ["--a", "--b=c", "--username=su"]);
    });

    it("ships the repository tool to every database member with backups, and not without", () => {
        const plan = planOf();
        const tool = fileAt(databaseParts(plan, node(plan, "db-1"), SECRETS), DB_RESTORE_TOOL);
        assert.equal(tool.permissions, "0755");
        assert.match(tool.content, /^#!\/usr\/bin\/python3\n/);
        const db = JSON.parse(withConfig({}).values["vps-ha:database"]);
        delete db.backups;
        const none = planOf({ database: db });
        assert.ok(!files(databaseParts(none, node(none, "db-1"), { ...SECRETS, backup: undefined })).some((f) => f.path === DB_RESTORE_TOOL));
    });

    it("creates the app role and database after bootstrap, idempotently", () => {
        const script = renderPostBootstrap({ name: "app", password: "AppPw1" }, "prod");
        assert.match(script, /CREATE ROLE app LOGIN' WHERE NOT EXISTS/);
        assert.match(script, /ALTER ROLE app PASSWORD 'AppPw1';/);
        assert.match(script, /CREATE DATABASE app OWNER app' WHERE NOT EXISTS/);
        assert.match(script, /^nohup pgbackrest --stanza=prod stanza-create > \/dev\/null 2>&1 &$/m);
        assert.throws(() => renderPostBootstrap({ name: "app", password: "x'; DROP" }), /alphanumeric/);
        assert.throws(() => renderPostBootstrap({ name: "app'; DROP", password: "x" }), /not a plain role name/);
        // A cluster first made at a later secrets version: the owner cannot log in, the version's login acts as it.
        const later = renderPostBootstrap({ name: "app_v3", password: "AppPw3" });
        assert.match(later, /CREATE ROLE app NOLOGIN' WHERE NOT EXISTS/);
        assert.match(later, /CREATE ROLE app_v3 LOGIN' WHERE NOT EXISTS/);
        assert.match(later, /ALTER ROLE app_v3 PASSWORD 'AppPw3';\nGRANT app TO app_v3;\nALTER ROLE app_v3 SET role = 'app';/);
        assert.match(later, /CREATE DATABASE app OWNER app' WHERE NOT EXISTS/);
    });
});

describe("pgBackRest renderer", () => {
    const plan = planOf();
    const parts = databaseParts(plan, node(plan, "db-2"), SECRETS);
    const conf = fileAt(parts, "/etc/pgbackrest/pgbackrest.conf").content;
    const values = (key: string) => conf.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));

    it("writes an encrypted S3 repository on R2 by default, path style", () => {
        assert.deepEqual(values("repo1-type"), ["s3"]);
        assert.deepEqual(values("repo1-s3-endpoint"), ["0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com"]);
        assert.deepEqual(values("repo1-s3-region"), ["auto"]);
        assert.deepEqual(values("repo1-s3-bucket"), ["vps-ha-prod-backups"]);
        assert.deepEqual(values("repo1-s3-uri-style"), ["path"]);
        assert.deepEqual(values("repo1-cipher-type"), ["aes-256-cbc"]);
        assert.deepEqual(values("repo1-cipher-pass"), [SECRETS.backup?.cipherPassphrase]);
        assert.match(conf, /^\[prod\]$/m);
        assert.deepEqual(values("pg1-path"), ["/var/lib/postgresql/17/vps-ha"]);
    });

    it("keeps at least 24 hourly, 7 daily and 4 weekly restore points", () => {
        const full = Number(values("repo1-retention-full")[0]);
        const diff = Number(values("repo1-retention-diff")[0]);
        assert.deepEqual({ full, diff }, RETENTION);
        // Weekly fulls: the newest may be minutes old, so full - 1 complete weeks lie behind it.
        assert.ok(full - 1 >= 4, "4 weekly");
        // Daily differentials (fulls on Sundays): diff - 1 complete days behind the newest.
        assert.ok(diff - 1 >= 7, "7 daily");
        // Hourly incrementals depend on the newest two differentials, which stay.
        assert.ok(diff >= 2, "24 hourly");
        assert.match(BACKUP_SCHEDULE.full, /^Sun /);
        assert.match(BACKUP_SCHEDULE.diff, /^Mon\.\.Sat /);
        assert.match(BACKUP_SCHEDULE.incr, /:30:00$/);
    });

    it("reaches the other members' TLS servers to find the primary, and serves on the mesh only", () => {
        const others = ["db-1", "db-3"].map((n) => node(plan, n).meshAddress);
        assert.deepEqual([...values("pg2-host"), ...values("pg3-host")], others);
        assert.deepEqual(values("pg2-host-type"), ["tls"]);
        assert.deepEqual(values("tls-server-address"), [node(plan, "db-2").meshAddress]);
        assert.deepEqual(values("tls-server-auth"), ["db-1=prod", "db-2=prod", "db-3=prod"]);
    });

    it("backs up only on the replica chosen by name, from the standby; restores to a time into a given dir", () => {
        const script = renderBackupScript({ stanza: "prod", name: "db-2", meshAddress: "10.77.0.9" });
        assert.match(script, /curl -fsS --max-time 5 http:\/\/10\.77\.0\.9:8008\/cluster/);
        assert.match(script, /curl -s -o \/dev\/null -w '%\{http_code\}' --max-time 5 http:\/\/10\.77\.0\.9:8008\/replica/);
        assert.match(script, /\[ "\$code" = 200 \] \|\| fail/);
        assert.match(script, /\[ "\$chosen" != "db-2" \]/);
        assert.match(script, /--backup-standby=y backup/);
        const restore = renderRestoreScript("prod");
        assert.match(restore, /pgbackrest --stanza=prod --pg1-path="\$dir" --type=time "--target=\$target" --target-action=promote --archive-mode=off restore/);
    });

    it("is left out entirely when backups are not configured", () => {
        const db = JSON.parse(withConfig({}).values["vps-ha:database"]);
        delete db.backups;
        const p = planOf({ database: db });
        const none = databaseParts(p, node(p, "db-1"), { ...SECRETS, backup: undefined });
        assert.ok(!files(none).some((f) => f.path.includes("pgbackrest") || f.path.includes("backup")));
        assert.ok(!JSON.stringify(none).includes(SECRETS.backup?.cipherPassphrase as string));
        assert.ok(!p.ports.db.some((r) => r.service === "pgbackrest"));
        assert.ok(planOf().ports.db.some((r) => r.service === "pgbackrest" && r.from.kind === "mesh"));
    });
});

describe("database parts of a node's boot", () => {
    const plan = planOf();
    const parts = databaseParts(plan, node(plan, "db-1"), SECRETS);
    const ALLOWED: Record<string, string[]> = {
        Unit: ["Description", "After", "Requires", "Wants"],
        Service: ["Type", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "User", "Group", "Environment", "EnvironmentFile", "WorkingDirectory", "Restart", "RestartSec", "RemainAfterExit", "KillMode", "TimeoutStartSec", "TimeoutStopSec"],
        Timer: ["OnCalendar", "Persistent"],
        Install: ["WantedBy"],
    };

    it("installs Debian 13's packages, etcd included on a voter", () => {
        const packages = parts.flatMap((p) => p.packages ?? []).sort();
        assert.deepEqual(packages, ["curl", "etcd-client", "etcd-server", "patroni", "pgbackrest", "postgresql-17", "python3-etcd", "python3-psycopg2"]);
    });

    it("stops Debian's own etcd and PostgreSQL before starting ours", () => {
        const cmds = parts.flatMap((p) => p.commands ?? []).map((c) => c.join(" "));
        const at = (c: string) => {
            const i = cmds.indexOf(c);
            assert.ok(i >= 0, `missing: ${c}\n${cmds.join("\n")}`);
            return i;
        };
        assert.ok(at("env SYSTEMCTL_SKIP_SYSV=1 systemctl disable --now --no-reload etcd.service") < at("systemctl enable --now --no-reload vps-ha-etcd.service"));
        assert.ok(at("env SYSTEMCTL_SKIP_SYSV=1 systemctl disable --now --no-reload postgresql.service patroni.service") < at("systemctl enable --now --no-reload vps-ha-patroni.service"));
        assert.ok(at("systemctl enable --now --no-reload vps-ha-etcd.service") < at("systemctl enable --now --no-reload vps-ha-patroni.service"));
        assert.ok(cmds.some((c) => c.includes("pg_dropcluster --stop 17 main")));
    });

    it("writes files owned by postgres after the packages (defer), and secrets readable by their owner only", () => {
        for (const f of files(parts)) {
            if (f.owner?.startsWith("postgres")) assert.equal(f.defer, true, f.path);
        }
        const secretFiles = (pw: string) => files(parts).filter((f) => f.content.includes(pw));
        const expect = (pw: string, paths: string[]) => {
            const found = secretFiles(pw);
            assert.deepEqual(found.map((f) => f.path).sort(), paths.sort(), `where ${pw} appears`);
            for (const f of found) assert.ok(["0600", "0700"].includes(f.permissions ?? ""), `${f.path} ${f.permissions}`);
        };
        // The roles' tool makes the version's logins and sets the superuser's password (db-roles.ts).
        expect(SECRETS.superuserPassword, [PATRONI_CONFIG, DB_ROLES_CONFIG]);
        expect(SECRETS.replicationPassword, [PATRONI_CONFIG, DB_ROLES_CONFIG]);
        expect(SECRETS.rewindPassword, [PATRONI_CONFIG, DB_ROLES_CONFIG]);
        // The switchover tool calls Patroni's API and pauses the poolers.
        expect(SECRETS.restApiPassword, [PATRONI_CONFIG, SWITCHOVER_CONFIG]);
        expect(SECRETS.appPassword, ["/usr/local/lib/vps-ha/db-post-bootstrap", DB_ROLES_CONFIG]);
        expect(SECRETS.poolerAdminPassword, [SWITCHOVER_CONFIG]);
        expect(SECRETS.backup?.cipherPassphrase as string, ["/etc/pgbackrest/pgbackrest.conf"]);
        expect(SECRETS.backup?.keyPem as string, ["/etc/pgbackrest/tls/node.key"]);
    });

    it("writes the etcd key readable by etcd and the postgres group (Patroni, its tools) only, after the packages that make them", () => {
        const key = files(parts).filter((f) => f.content.includes(SECRETS.etcdTls.keyPem));
        assert.deepEqual(key.map((f) => [f.path, f.owner, f.permissions, f.defer]), [[ETCD_TLS_FILES.key, "etcd:postgres", "0640", true]]);
        assert.equal(fileAt(parts, ETCD_TLS_FILES.ca).content, SECRETS.etcdTls.caCertPem);
        assert.equal(fileAt(parts, ETCD_TLS_FILES.cert).content, SECRETS.etcdTls.certPem);
        // The witness has no postgres user: etcd alone reads its key there.
        const nodes = prodNodes();
        nodes.witness = [{ name: "witness-1", provider: "hcloud", region: "hel1", size: "cx23" }];
        const withWitness = planOf({ nodes });
        const witnessKey = files(databaseParts(withWitness, node(withWitness, "witness-1"), SECRETS)).filter((f) => f.content.includes(SECRETS.etcdTls.keyPem));
        assert.deepEqual(witnessKey.map((f) => [f.path, f.owner, f.permissions]), [[ETCD_TLS_FILES.key, "etcd:etcd", "0600"]]);
        const nonVoter = withWitness.nodes.find((n) => n.role === "db" && !n.etcdVoter) as PlannedNode;
        const nvKey = files(databaseParts(withWitness, nonVoter, SECRETS)).filter((f) => f.content.includes(SECRETS.etcdTls.keyPem));
        // A member that does not vote: its client key, Patroni's alone (at its own path: see etcd.ts).
        assert.deepEqual(nvKey.map((f) => [f.path, f.owner, f.permissions]), [[ETCD_CLIENT_TLS_FILES.key, "postgres:postgres", "0600"]]);
    });

    it("installs the REST client its Python tools import, once, and every tool with it", () => {
        const paths = files(parts).map((f: FilePart) => f.path);
        // Each tool brings the module; the node's cloud-config writes it once.
        assert.equal(paths.filter((p: string) => p === `${PACKAGE_DIR}/rest.py`).length, 4);
        const written = (parse(renderCloudConfig({ hostname: "db-1", fqdn: "db-1.example.com", sshAuthorizedKeys: [], sshEnabled: false, parts })).write_files as FilePart[]).map((f) => f.path);
        assert.equal(written.filter((p) => p === `${PACKAGE_DIR}/rest.py`).length, 1);
        for (const tool of [SWITCHOVER_TOOL, PATRONI_DYNAMIC_TOOL, AFTER_PROMOTE_TOOL, DB_ROLES_TOOL]) assert.ok(paths.includes(tool), tool);
    });

    it("installs the pg_ctl Patroni runs and the after-promotion hook, executable, calling PostgreSQL 17's own pg_ctl", () => {
        for (const path of [PG_CTL_WRAPPER, AFTER_PROMOTE_TOOL]) assert.equal(files(parts).find((f: FilePart) => f.path === path)?.permissions, "0755", path);
        const wrapper = files(parts).find((f: FilePart) => f.path === PG_CTL_WRAPPER)?.content ?? "";
        assert.match(wrapper, new RegExp(`^PG_CTL=${PG_BIN_DIR}/pg_ctl$`, "m"));
    });

    it("uses only unit directives a simple supervisor understands", () => {
        const units = files(parts).filter((f: FilePart) => /\.(service|timer)$/.test(f.path));
        assert.ok(units.length >= 8);
        for (const u of units) {
            let section = "";
            for (const line of u.content.split("\n")) {
                const s = /^\[(\w+)\]$/.exec(line);
                if (s) section = s[1];
                else if (line.includes("=")) assert.ok(ALLOWED[section]?.includes(line.split("=")[0]), `${u.path}: [${section}] ${line}`);
            }
        }
        const patroni = fileAt(parts, "/etc/systemd/system/vps-ha-patroni.service").content;
        assert.match(patroni, /^ExecStart=\/usr\/bin\/patroni \/etc\/patroni\/vps-ha\.yml$/m);
        assert.match(patroni, /^User=postgres$/m);
        assert.match(patroni, /^After=.*vps-ha-etcd\.service/m);
        assert.match(patroni, /^Restart=always$/m);
    });

    describe("the hand-over at a member's shutdown", () => {
        const path = `/etc/systemd/system/${HAND_OVER_UNIT}`;
        const withWitness = (() => {
            const nodes = prodNodes();
            nodes.witness = [{ name: "witness-1", provider: "hcloud", region: "hel1", size: "cx23" }];
            return planOf({ nodes });
        })();

        it("stops before Patroni, etcd, the mesh and the network, running the switchover tool when this member leads, within the tool's bound", () => {
            assert.equal(HAND_OVER_STOP_SECONDS, SWITCHOVER_PAUSE_TIMEOUT_SECONDS + SWITCHOVER_SWITCH_TIMEOUT_SECONDS + 15);
            assert.equal(fileAt(parts, path).content, [
                "[Unit]",
                "Description=vps-ha hand-over: a member's shutdown hands the primary over first",
                "After=network-online.target wg-quick@wg0.service vps-ha-etcd.service vps-ha-patroni.service",
                "",
                "[Service]",
                "Type=oneshot",
                "RemainAfterExit=yes",
                "ExecStart=/bin/true",
                `ExecStop=-${SWITCHOVER_TOOL} --if-leader`,
                "TimeoutStopSec=60",
                "",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ].join("\n"));
            // Never pulls Patroni in: it only orders itself after it.
            assert.doesNotMatch(fileAt(parts, path).content, /^(Wants|Requires|BindsTo|PartOf)=/m);
            // A member that does not vote has no etcd of its own to wait for.
            const nonVoter = withWitness.nodes.find((n) => n.role === "db" && !n.etcdVoter) as PlannedNode;
            const nv = fileAt(databaseParts(withWitness, nonVoter, SECRETS), path).content;
            assert.match(nv, /^After=network-online\.target wg-quick@wg0\.service vps-ha-patroni\.service$/m);
        });

        it("is enabled and started on a new member after Patroni, and started on a live one when it arrives (no other file restarts it)", () => {
            const cmds = parts.flatMap((p) => p.commands ?? []).map((c) => c.join(" "));
            const enable = cmds.indexOf(`systemctl enable --now --no-reload ${HAND_OVER_UNIT}`);
            assert.ok(enable > cmds.indexOf(`systemctl enable --now --no-reload ${PATRONI_UNIT}`), cmds.join("\n"));
            assert.ok(enable > cmds.lastIndexOf("systemctl daemon-reload"));
            const restarts = parts.flatMap((p) => p.restarts ?? []).filter((r) => r.unit === HAND_OVER_UNIT);
            assert.deepEqual(restarts, [{ unit: HAND_OVER_UNIT, paths: [path] }]);
            // WantedBy= is what the desired-state applier enables a unit new in a document by.
            assert.match(fileAt(parts, path).content, /^WantedBy=multi-user\.target$/m);
        });

        it("is on database members only: the witness has no Patroni", () => {
            const witness = databaseParts(withWitness, node(withWitness, "witness-1"), SECRETS);
            assert.ok(!files(witness).some((f) => f.path === path));
            assert.ok(!JSON.stringify(witness.map((p) => [p.commands, p.restarts])).includes(HAND_OVER_UNIT));
            for (const n of withWitness.nodes.filter((x) => x.role === "db")) fileAt(databaseParts(withWitness, n, SECRETS), path);
        });

        it("loads cleanly in systemd (systemd-analyze verify)", function () {
            requireTools(this, ["systemd-analyze"]);
            const dir = mkdtempSync(join(tmpdir(), "vps-ha-hand-over-"));
            try {
                writeFileSync(join(dir, HAND_OVER_UNIT), fileAt(parts, path).content);
                const verify = spawnSync("systemd-analyze", ["verify", "--man=no", join(dir, HAND_OVER_UNIT)], { cwd: dir, encoding: "utf8", timeout: 30000 });
                assert.equal(verify.status, 0, verify.stderr);
                // verify exits 0 on an unknown key too, naming the file on stderr: nothing may be said.
                assert.equal(verify.stderr.trim(), "");
            } finally {
                rmSync(dir, { recursive: true, force: true });
            }
        });
    });
});

describe("config: backups", () => {
    const database = (backups: Record<string, unknown>) => ({ synchronous: "quorum", backups });

    it("needs credentials for the bucket, and they must be secrets", () => {
        const missing = issuesOf(withConfig({ database: database({ bucket: "b-ups" }) }));
        assert.ok(missing.some((i) => i.path === "vps-ha:database.backups.accessKeyId" && /is missing/.test(i.message) && /--path --secret/.test(i.message)), JSON.stringify(missing));
        assert.ok(missing.some((i) => i.path === "vps-ha:database.backups.secretAccessKey" && /R2/.test(i.message)));
        const file = withConfig({ database: database({ bucket: "b-ups", accessKeyId: "id", secretAccessKey: "key" }) });
        file.secretKeys = file.secretKeys.filter((k) => k !== "vps-ha:database");
        assert.ok(issuesOf(file).some((i) => i.path === "vps-ha:database.backups.secretAccessKey" && /plain text/.test(i.message)));
        file.secretKeys.push("vps-ha:database");
        assert.deepEqual(issuesOf(file), []);
    });

    it("takes any https S3 endpoint, and refuses anything else", () => {
        const file = withConfig({ database: database({ bucket: "b-ups", endpoint: "http://minio.local:9000", accessKeyId: "i", secretAccessKey: "k" }) });
        assert.ok(issuesOf(file).some((i) => i.path === "vps-ha:database.backups.endpoint" && /https/.test(i.message)));
    });
});

