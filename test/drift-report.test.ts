// The drift report over recorded engine event streams (test/fixtures/drift/*.json, in the shape
// the Pulumi CLI writes to its event log: a refresh in preview, then a preview with refresh).
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { buildReport, DriftReport, driftFromEvents, formatReport, reportJson, shortUrn } from "../scripts/lib/drift-report";
import { parsePath, SECRET_SIG_KEY, SECRET_SIG_VALUE } from "../scripts/lib/drift-values";

interface Fixture {
    stack: string;
    refresh: EngineEvent[];
    preview: EngineEvent[];
}

function fixture(name: string): Fixture {
    return JSON.parse(readFileSync(join(__dirname, "fixtures", "drift", `${name}.json`), "utf8")) as Fixture;
}

function reportOf(name: string): { report: DriftReport; text: string; json: string } {
    const f = fixture(name);
    const report = buildReport(f.stack, f);
    return { report, text: formatReport(report), json: reportJson(report) };
}

const FIREWALL = "hcloud:index/firewall:Firewall lb-2-firewall";
const secret = (extra: Record<string, unknown>) => ({ [SECRET_SIG_KEY]: SECRET_SIG_VALUE, ...extra });

/** One resource's step as a one-event stream. */
function step(op: string, oldOutputs: Record<string, unknown>, newInputs: Record<string, unknown>, detailedDiff: Record<string, { diffKind: string; inputDiff: boolean }>): EngineEvent[] {
    const urn = "urn:pulumi:prod::vps-ha::vps-ha:index:Node$hcloud:index/server:Server::db-2";
    const state = (inputs: Record<string, unknown>, outputs: Record<string, unknown>) => ({ type: "hcloud:index/server:Server", urn, id: "1", parent: "", provider: "", inputs, outputs });
    return [{ sequence: 1, timestamp: 0, resourcePreEvent: { metadata: { op, urn, type: "hcloud:index/server:Server", provider: "", old: state({}, oldOutputs), new: state(newInputs, {}), detailedDiff } } } as unknown as EngineEvent];
}

describe("drift report", () => {
    it("finds no drift when nothing changed (blinded secrets on both sides are no change)", () => {
        const { report, text, json } = reportOf("clean");
        assert.equal(report.drift, false);
        assert.deepEqual(report.resources, []);
        assert.match(text, /^No drift in stack "prod"/);
        assert.equal(JSON.parse(json).drift, false);
    });

    it("reports a changed firewall source list, from the refresh and from the preview", () => {
        const { report, text } = reportOf("changed-rule");
        assert.equal(report.drift, true);
        assert.deepEqual(report.resources.map((r) => [r.phase, r.resource, r.op]), [["refresh", FIREWALL, "update"], ["preview", FIREWALL, "update"]]);
        const [refresh, preview] = report.resources;
        assert.deepEqual(refresh.changes, [{
            path: "rules[0].sourceIps",
            kind: "update",
            old: ["173.245.48.0/20", "103.21.244.0/22"],
            new: ["173.245.48.0/20", "103.21.244.0/22", "0.0.0.0/0"],
        }]);
        // up would take the extra source out: present before, absent after.
        assert.deepEqual(preview.changes, [{ path: "rules[0].sourceIps[2]", kind: "delete", old: "0.0.0.0/0" }]);
        assert.ok(text.includes(`~  update  ${FIREWALL}`), text);
        assert.ok(text.includes('rules[0].sourceIps: ["173.245.48.0/20","103.21.244.0/22"] → ["173.245.48.0/20","103.21.244.0/22","0.0.0.0/0"]'), text);
        assert.ok(text.includes('rules[0].sourceIps[2]: "0.0.0.0/0" → (absent)'), text);
    });

    it("judges a bare refresh step (no detailed diff, as older CLIs send) by its outputs", () => {
        const f = fixture("changed-rule");
        const events = f.refresh.map((e) => {
            const m = e.resOutputsEvent?.metadata;
            if (!m || m.op !== "update") return e;
            const { diffs: _d, detailedDiff: _dd, ...rest } = m;
            return { ...e, resOutputsEvent: { ...e.resOutputsEvent, metadata: { ...rest, op: "refresh" } } } as EngineEvent;
        });
        const found = driftFromEvents(events, "refresh");
        assert.equal(found.length, 1);
        assert.equal(found[0].op, "update");
        assert.deepEqual(found[0].changes.map((c) => [c.path, (c.new as string[]).length]), [["rules[0].sourceIps", 3]]);
        // The same bare refresh step inside a preview run is the preview's business, not drift of its own.
        assert.deepEqual(driftFromEvents(events, "preview"), []);
    });

    it("reports a resource deleted out of band: gone in the refresh, a create in the preview", () => {
        const { report, text } = reportOf("deleted-out-of-band");
        assert.deepEqual(report.resources.map((r) => `${r.phase} ${r.op} ${r.resource}`), [
            "refresh delete linode:index/instance:Instance app-1",
            "refresh update linode:index/firewall:Firewall app-1-firewall",
            "preview create linode:index/instance:Instance app-1",
            "preview update linode:index/firewall:Firewall app-1-firewall",
            "preview update cloudflare:index/dnsRecord:DnsRecord node-records-app-1-v4",
        ]);
        assert.deepEqual(report.resources[0].changes, []);
        assert.deepEqual(report.resources[1].changes, [{ path: "linodes", kind: "update", old: [48112233], new: [] }]);
        assert.deepEqual(report.resources[4].changes, [{ path: "content", kind: "update", old: "198.51.100.11", new: "[known after update]" }]);
        assert.match(text, /- {2}delete {2}linode:index\/instance:Instance app-1 {2}\(gone from the cloud\)/);
        assert.match(text, /\+ {2}create {2}linode:index\/instance:Instance app-1 {2}\(missing: up would create it\)/);
        assert.ok(text.indexOf("(gone from the cloud)") < text.indexOf("What `pulumi up` would do"), "refresh findings come first");
    });

    it("masks secret properties: marked secrets, and plain values under a secret key", () => {
        const { report, text, json } = reportOf("secret-changed");
        assert.deepEqual(report.resources.map((r) => `${r.phase} ${r.op} ${r.resource}`), [
            "refresh update linode:index/instance:Instance db-3",
            "preview replace linode:index/instance:Instance db-3",
            "preview replace hcloud:index/server:Server db-1",
        ]);
        const [rebuilt, replaced, db1] = report.resources;
        assert.deepEqual(rebuilt.changes, [
            { path: "image", kind: "update", old: "linode/debian13", new: "linode/ubuntu24.04" },
            { path: "metadatas[0].userData", kind: "update", old: "[secret]", new: "[secret]", secret: true },
        ]);
        assert.deepEqual(replaced.changes.map((c) => [c.path, c.kind, c.old, c.new]), [
            ["image", "update-replace", "linode/ubuntu24.04", "linode/debian13"],
            ["metadatas[0].userData", "update", "[secret]", "[secret]"],
        ]);
        assert.deepEqual(db1.changes, [{ path: "userData", kind: "update-replace", old: "[secret]", new: "[secret]", secret: true }]);
        for (const out of [text, json]) {
            assert.ok(!out.includes("I2Nsb3VkLWNvbmZpZw"), "the user data never appears");
            assert.ok(!out.includes(SECRET_SIG_KEY) && !out.includes("ciphertext"), "no raw secret envelope");
        }
        assert.ok(text.includes("userData: [secret] → [secret]  (forces replacement)"), text);
    });

    it("never prints a secret's plaintext, a secret nested in a plain value, or a value of an unknown diff kind", () => {
        const events = step(
            "update",
            { password: "hunter2", labels: { role: "db" }, volumes: [{ size: 10, key: secret({ plaintext: '"s3cr3t-nested"' }) }], note: "old-note" },
            { password: secret({ plaintext: '"hunter3"' }), labels: { role: "db-new" }, volumes: [{ size: 20, key: secret({ plaintext: '"s3cr3t-nested"' }) }], note: "new-note" },
            {
                password: { diffKind: "update", inputDiff: false },
                "labels.role": { diffKind: "update", inputDiff: false },
                volumes: { diffKind: "update", inputDiff: false },
                note: { diffKind: "update-sensitive", inputDiff: false },
            },
        );
        const [r] = driftFromEvents(events, "preview");
        const byPath = Object.fromEntries(r.changes.map((c) => [c.path, c]));
        assert.deepEqual(byPath["labels.role"], { path: "labels.role", kind: "update", old: "db", new: "db-new" });
        assert.deepEqual(byPath.password, { path: "password", kind: "update", old: "[secret]", new: "[secret]", secret: true });
        assert.deepEqual(byPath.volumes.new, [{ size: 20, key: "[secret]" }]);
        assert.equal(byPath.note.secret, true);
        const text = formatReport({ stack: "prod", drift: true, resources: [r] });
        for (const leaked of ["hunter", "s3cr3t", "old-note", "new-note"]) assert.ok(!text.includes(leaked), `${leaked} leaked:\n${text}`);
    });

    it("the secret key list decides what is masked by name", () => {
        const events = step("update", { image: "debian-12" }, { image: "debian-13" }, { image: { diffKind: "update", inputDiff: false } });
        assert.equal(driftFromEvents(events, "preview")[0].changes[0].new, "debian-13");
        assert.equal(driftFromEvents(events, "preview", ["image"])[0].changes[0].new, "[secret]");
    });

    it("shortens URNs to type and name", () => {
        assert.equal(shortUrn("urn:pulumi:prod::vps-ha::vps-ha:index:DatabaseCluster$vps-ha:index:Node$hcloud:index/server:Server::db-1"), "hcloud:index/server:Server db-1");
        assert.equal(shortUrn("urn:pulumi:prod::vps-ha::cloudflare:index/dnsRecord:DnsRecord::a::b"), "cloudflare:index/dnsRecord:DnsRecord a::b");
        assert.equal(shortUrn("not-a-urn"), "not-a-urn");
    });

    it("parses the engine's property paths", () => {
        assert.deepEqual(parsePath("rules[0].sourceIps[12]"), ["rules", 0, "sourceIps", 12]);
        assert.deepEqual(parsePath('labels["vps-ha.io/role"].x'), ["labels", "vps-ha.io/role", "x"]);
        assert.deepEqual(parsePath("userData"), ["userData"]);
    });

    it("the JSON form round-trips the report", () => {
        const { report, json } = reportOf("deleted-out-of-band");
        assert.deepEqual(JSON.parse(json), report);
        assert.equal(JSON.parse(json).resources.length, 5);
    });
});
