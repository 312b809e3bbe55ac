// A node's parts as its desired-state document (components/render/desired-content.ts), the
// document's new fields as the builder checks them, the shared document's records, and what a
// change does in place (components/in-place.ts). Pure.
import { strict as assert } from "node:assert";
import { createHash, generateKeyPairSync, verify } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { describeInPlace, inPlaceChange } from "../components/in-place";
import { buildSharedRecords, canonicalContent, DesiredContent, DesiredRollout, sharedChunksFor, withSharedRefs } from "../components/desired-state-records";
import { desiredContentOf } from "../components/render/desired-content";
import { PATRONI_DYNAMIC_SETTINGS, PATRONI_DYNAMIC_UNIT, patroniDynamicSettings } from "../components/render/patroni-dynamic";

const ROLLOUT: DesiredRollout = { group: "db", id: "abc", order: [{ name: "db-1", meshAddress: "10.77.0.2" }], statusPort: 9180, health: [["true"]], healthTimeoutSeconds: 60, handoverUnits: ["vps-ha-patroni.service"] };

describe("desired-state content", () => {
    it("turns parts into files, packages, setup in order, and per-unit restarts and reloads", () => {
        const c = desiredContentOf("db-1", [
            { packages: ["b", "a"], files: [{ path: "/etc/x.conf", content: "x" }, { path: "/etc/systemd/system/x.service", content: "u", permissions: "0600", owner: "postgres:postgres" }], commands: [["one"]], restarts: [{ unit: "x.service" }] },
            { packages: ["a"], files: [{ path: "/etc/y.conf", content: "y" }, { path: "/etc/x.conf", content: "x" }], commands: [["two"]], restarts: [{ unit: "y.service", paths: ["/etc/y.conf"], reload: true }, { unit: "x.service", paths: ["/etc/y.conf"] }] },
        ]);
        assert.deepEqual(c.packages, ["a", "b"]);
        assert.deepEqual(c.setup, [["one"], ["two"]]);
        assert.deepEqual(c.files.map((f) => [f.path, f.mode, f.owner]), [["/etc/x.conf", "0644", "root:root"], ["/etc/systemd/system/x.service", "0600", "postgres:postgres"], ["/etc/y.conf", "0644", "root:root"]]);
        assert.deepEqual(c.restarts, [{ unit: "x.service", paths: ["/etc/x.conf", "/etc/systemd/system/x.service", "/etc/y.conf"] }, { unit: "y.service", paths: ["/etc/y.conf"], reload: true }]);
        assert.throws(() => desiredContentOf("db-1", [{ files: [{ path: "/a", content: "1" }] }, { files: [{ path: "/a", content: "2" }] }]), /two parts of db-1's desired state write \/a, differently/);
        assert.throws(() => desiredContentOf("db-1", [{ files: [{ path: "/a", content: "1" }], restarts: [{ unit: "a.service", paths: ["/b"] }] }]), /the restart of a.service names \/b, not a file of its part/);
    });

    it("leaves the parts' daemon-reloads to the agent (it reloads before the setup) and keeps every other command in order", () => {
        const reload = ["systemctl", "daemon-reload"];
        const c = desiredContentOf("db-1", [
            { commands: [["install", "-d", "/x"]] },
            { files: [{ path: "/etc/systemd/system/a.service", content: "a" }], commands: [reload, ["systemctl", "enable", "--now", "--no-reload", "a.service"]] },
            { files: [{ path: "/etc/systemd/system/b.service", content: "b" }], commands: [reload, ["systemctl", "enable", "--now", "--no-reload", "b.service"], ["systemctl", "daemon-reload", "--no-block"]] },
        ]);
        assert.deepEqual(c.setup, [["install", "-d", "/x"], ["systemctl", "enable", "--now", "--no-reload", "a.service"], ["systemctl", "enable", "--now", "--no-reload", "b.service"], ["systemctl", "daemon-reload", "--no-block"]]);
    });

    it("checks packages, setup, rollout and shared references, naming the key path", () => {
        const base: DesiredContent = { files: [{ path: "/etc/a", mode: "0644", owner: "root:root", content: "a" }] };
        const ok = canonicalContent("db-1", { ...base, packages: ["haproxy", "curl", "curl"], setup: [["true"]], rollout: ROLLOUT, shared: [{ path: "/usr/lib/x.py", sha256: "a".repeat(64) }], restarts: [{ unit: "x.service", paths: ["/usr/lib/x.py"] }] });
        assert.deepEqual(ok.packages, ["curl", "haproxy"]);
        assert.deepEqual(ok.rollout, ROLLOUT);
        assert.throws(() => canonicalContent("db-1", { ...base, packages: ["Bad Name"] }), /db-1: packages\[0\] is "Bad Name"; expected a Debian package name/);
        assert.throws(() => canonicalContent("db-1", { ...base, setup: [[]] }), /setup\[0\] is \[\]; expected a non-empty argv/);
        assert.throws(() => canonicalContent("db-1", { ...base, rollout: { ...ROLLOUT, statusPort: 0 } }), /rollout.statusPort is 0; expected a TCP port/);
        const pending = { ...ROLLOUT, pendingRestart: { units: ["vps-ha-patroni-config.service"], settleSeconds: 5 } };
        assert.deepEqual(canonicalContent("db-1", { ...base, rollout: pending }).rollout, pending);
        assert.throws(() => canonicalContent("db-1", { ...base, rollout: { ...ROLLOUT, pendingRestart: { units: "x", settleSeconds: 0 } as never } }), /rollout.pendingRestart is .*; expected \{units: a list of unit names, settleSeconds: a positive number\}/);
        // A secrets rotation's: the version this change carries, and the group before it.
        const rotating = { ...ROLLOUT, credentials: 2, after: { nodes: [{ name: "db-1", meshAddress: "10.77.0.2" }], credentials: 2 } };
        assert.deepEqual(canonicalContent("lb-1", { ...base, rollout: rotating }).rollout, rotating);
        assert.throws(() => canonicalContent("lb-1", { ...base, rollout: { ...ROLLOUT, credentials: 0 } }), /rollout.credentials is 0; expected a secrets version/);
        assert.throws(() => canonicalContent("lb-1", { ...base, rollout: { ...rotating, after: { nodes: [], credentials: 2 } } }), /rollout.after is .*; expected \{nodes: a list of \{name, meshAddress\}, credentials: a secrets version\}/);
        assert.throws(() => canonicalContent("lb-1", { ...base, rollout: { ...rotating, after: { ...rotating.after, credentials: 1.5 } } }), /rollout.after is/);
        assert.throws(() => canonicalContent("db-1", { ...base, shared: [{ path: "/etc/a", sha256: "a".repeat(64) }] }), /shared\[0\].path is "\/etc\/a"; a path is either the node's own or shared, once/);
    });

    it("moves the shared files to references by sha256, and publishes them once, signed", () => {
        const lib = { path: "/usr/local/lib/vps-ha/python/vpsha/records.py", mode: "0644", owner: "root:root", content: "print(1)\n" };
        const c = withSharedRefs({ files: [lib, { path: "/etc/a", mode: "0644", owner: "root:root", content: "a" }] }, (p) => p.startsWith("/usr/local/lib/vps-ha/python/"));
        assert.deepEqual(c.files.map((f) => f.path), ["/etc/a"]);
        assert.deepEqual(c.shared, [{ path: lib.path, sha256: createHash("sha256").update(lib.content).digest("hex") }]);
        const { privateKey, publicKey } = generateKeyPairSync("ed25519");
        const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
        const chunks = sharedChunksFor("prod", [lib]);
        const r = buildSharedRecords({ stack: "prod", generation: 5, files: [lib], signingKeyPem: pem, chunks });
        const m = /^v=vhs1 gen=5 chunks=(\d+) digest=([0-9a-f]{64}) sig=(\S+)$/.exec(r.head);
        assert.ok(m && Number(m[1]) === chunks);
        assert.ok(verify(null, Buffer.from(`vhs1\nprod\n5\n${chunks}\n${m[2]}`), publicKey, Buffer.from(m[3], "base64")));
        const data = Buffer.from(r.chunks.map((t) => t.replace(/^v=vhs1 gen=5 part=\d+\/\d+ data=/, "")).join(""), "base64");
        assert.deepEqual(JSON.parse(gunzipSync(data).toString()).files, [lib]);
    });

    it("says what a change does in place: files, restarts, reloads, a handover when Patroni restarts", () => {
        const f = (path: string, content: string) => ({ path, mode: "0644", owner: "root:root", content });
        const before: DesiredContent = {
            files: [f("/etc/patroni/vps-ha.yml", "a"), f("/etc/pgbouncer/userlist.txt", "u"), f("/etc/keys", "k")],
            restarts: [{ unit: "vps-ha-patroni.service", paths: ["/etc/patroni/vps-ha.yml"] }, { unit: "pgbouncer.service", paths: ["/etc/pgbouncer/userlist.txt"], reload: true }],
        };
        assert.equal(describeInPlace(inPlaceChange(before, before)), "unchanged");
        const keys = { ...before, files: [before.files[0], before.files[1], f("/etc/keys", "k2")] };
        assert.equal(describeInPlace(inPlaceChange(before, keys)), "applied in place (1 file); no daemon restarts");
        const all = { ...before, files: [f("/etc/patroni/vps-ha.yml", "b"), f("/etc/pgbouncer/userlist.txt", "v"), before.files[2]] };
        assert.equal(describeInPlace(inPlaceChange(before, all)), "applied in place (2 files); restarts vps-ha-patroni.service; reloads pgbouncer.service; hands over the primary first if it leads");
    });

    it("says when a parameter of the dynamic configuration restarts PostgreSQL, and that the primary hands over", () => {
        const settings = (maxConnections?: number) => ({ path: PATRONI_DYNAMIC_SETTINGS, mode: "0644", owner: "root:root", content: JSON.stringify(patroniDynamicSettings("10.77.0.5", { mode: "quorum", nodeCount: 1, strict: true }, { maxConnections })) });
        const restarts = [{ unit: PATRONI_DYNAMIC_UNIT, paths: [PATRONI_DYNAMIC_SETTINGS] }];
        const before: DesiredContent = { files: [settings()], restarts };
        const raised = inPlaceChange(before, { files: [settings(200)], restarts });
        assert.deepEqual(raised.postgresRestart, ["max_connections"]);
        assert.equal(describeInPlace(raised), `applied in place (1 file); restarts ${PATRONI_DYNAMIC_UNIT}; restarts PostgreSQL (max_connections), one member at a time; hands over the primary first if it leads`);
        assert.deepEqual(inPlaceChange({ files: [settings(200)], restarts }, { files: [settings(300)], restarts }).postgresRestart, ["max_connections"]);
        // Back to Patroni's default: removed from the dynamic configuration, a restart too.
        assert.deepEqual(inPlaceChange({ files: [settings(200)], restarts }, before).postgresRestart, ["max_connections"]);
        const same = inPlaceChange({ files: [settings(200)], restarts }, { files: [settings(200)], restarts });
        assert.deepEqual([same.postgresRestart, same.handover, describeInPlace(same)], [[], false, "unchanged"]);
    });
});
