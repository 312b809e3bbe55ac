// The comparison of a stack file with the deployed stack: what each server goes through, and
// the rule that one pulumi up takes one database member or etcd voter down at most.
import { strict as assert } from "node:assert";
import { compareServers, describeChange, factsFromOutputs, replacementProblems, ServerFacts, serverLifecycle, standDownOf } from "../components/replacement";

const f = (name: string, role: string, provider: string, region: string, size: string | undefined, extra: Partial<ServerFacts> = {}): ServerFacts => ({
    name, role, provider, region, ...(size ? { size } : {}), protected: false, serverId: `${name.length}0${region.length}`, image: provider === "ssh" ? undefined : `${provider}-image`, bootstrapDigest: `u-${name}`, ...extra,
});
const deployed: ServerFacts[] = [
    f("app-1", "app", "linode", "de-fra-2", "g6-nanode-1"),
    f("lb-1", "haproxy", "linode", "de-fra-2", "g6-nanode-1"),
    f("db-1", "db", "hcloud", "fsn1", "cx23"),
    f("db-2", "db", "hcloud", "nbg1", "cx23"),
    f("db-3", "db", "linode", "de-fra-2", "g6-standard-1"),
];
const edit = (changes: Record<string, Partial<ServerFacts> | null>): ServerFacts[] =>
    deployed.filter((d) => changes[d.name] !== null).map((d) => ({ ...d, ...(changes[d.name] ?? {}) }));
const kinds = (after: ServerFacts[], before: ServerFacts[] | undefined = deployed) => Object.fromEntries(compareServers(before, after).map((c) => [c.name, c.kind]));

describe("replacement: the stack file against the deployed stack", () => {
    it("first deploy: every server is new, nothing to refuse", () => {
        const changes = compareServers(undefined, deployed);
        assert.ok(changes.every((c) => c.kind === "new"));
        assert.deepEqual(replacementProblems(changes, undefined), []);
    });

    it("says per node what the change does to its server, by provider", () => {
        assert.deepEqual(kinds(edit({
            "app-1": { region: "gb-lon" }, // Linode migrates
            "lb-1": { size: "g6-standard-1" }, // resized in place
            "db-1": { region: "hel1" }, // Hetzner: a new server
        })), { "app-1": "restart", "lb-1": "restart", "db-1": "replace", "db-2": "same", "db-3": "same" });
        assert.deepEqual(kinds(edit({ "db-3": { provider: "hcloud", region: "fsn1", size: "cx23" }, "app-1": { bootstrapDigest: "u-new" } })), { "app-1": "replace", "lb-1": "same", "db-1": "same", "db-2": "same", "db-3": "replace" });
        const own = [f("w", "witness", "ssh", "home", undefined, { host: "198.51.100.7" })];
        assert.equal(kinds([{ ...own[0], host: "198.51.100.8" }], own).w, "replace");
        assert.equal(kinds([{ ...own[0], region: "office" }], own).w, "same", "an own host's region is a label");
        // A digest or image unknown on either side (an older deployment) is no change.
        assert.equal(kinds(edit({ "db-1": { bootstrapDigest: undefined } }))["db-1"], "same");
        assert.equal(kinds(edit({ "db-1": { image: undefined } }))["db-1"], "same");
        assert.equal(describeChange(compareServers(deployed, edit({ "db-1": { image: "debian-14" } }))[2]), "db-1 (db): REPLACES the server: image hcloud-image -> debian-14: a new server");
        assert.deepEqual(compareServers(deployed, edit({ "db-2": null })).find((c) => c.name === "db-2")?.kind, "remove");
        assert.equal(describeChange(compareServers(deployed, edit({ "db-1": { region: "hel1" } }))[2]), "db-1 (db): REPLACES the server: region fsn1 -> hel1: a new server");
    });

    it("allows one member down, refuses two, and names them with the order to apply them in", () => {
        const one = compareServers(deployed, edit({ "db-1": { size: "cx33" }, "app-1": { bootstrapDigest: "x" }, "lb-1": { bootstrapDigest: "y" } }));
        assert.deepEqual(replacementProblems(one, deployed), [], "app and HAProxy nodes do not count");
        const two = compareServers(deployed, edit({ "db-1": { bootstrapDigest: "new" }, "db-2": { size: "cx33" } }));
        const [problem, ...rest] = replacementProblems(two, deployed);
        assert.equal(rest.length, 0);
        assert.match(problem, /takes 2 database members or etcd voters down in one pulumi up: db-1 \(its bootstrap identity changes: a new server\), db-2 \(size cx23 -> cx33: powered off while resized\)/);
        // A resize (disk kept) goes before a replacement (empty disk).
        assert.match(problem, /one member per pulumi up, in this order: db-2, db-1,/);
        assert.match(problem, /Nothing was changed\.$/);
        // The witness votes too.
        const withWitness = [...deployed, f("w", "witness", "hcloud", "hel1", "cx23")];
        assert.equal(replacementProblems(compareServers(withWitness, [...edit({ "db-3": { size: "g6-standard-2" } }), { ...withWitness[5], region: "fsn1" }]), withWitness).length, 1);
    });

    it("retires or moves a member in one run; refuses while an older vps-ha's protection or unrecorded id stands", () => {
        const removed = edit({ "db-3": null });
        const moved = edit({ "db-3": { provider: "hcloud", region: "fsn1", size: "cx23" } });
        assert.deepEqual(replacementProblems(compareServers(deployed, removed), deployed), []);
        assert.deepEqual(replacementProblems(compareServers(deployed, moved), deployed), []);
        // A deployment by an older vps-ha: the server itself protected, or its id not recorded.
        const older = deployed.map((d) => (d.name === "db-3" ? { ...d, protected: true } : d));
        assert.match(replacementProblems(compareServers(older, removed), older).join("\n"), /db-3 is no longer in the stack file, but an older vps-ha protected its server itself\. To retire it: put it back, pulumi up once with the stack file as deployed .*, then remove it and pulumi up again\. Nothing was changed\./);
        assert.match(replacementProblems(compareServers(older, moved), older).join("\n"), /db-3 moves from linode\/de-fra-2\/g6-standard-1 to hcloud\/fsn1\/cx23: a new server, but its old server was deployed by an older vps-ha \(protected on the server itself, so it cannot be shut down first\)\. To move it: pulumi up once/);
        const { serverId: _, ...noId } = deployed[4];
        const unrecorded = [...deployed.slice(0, 4), noId];
        assert.match(replacementProblems(compareServers(unrecorded, moved), unrecorded).join("\n"), /\(its id unrecorded, so it cannot be shut down first\)/);
        // A move within the provider is the same resource, replaced delete-first: no id needed.
        assert.deepEqual(replacementProblems(compareServers(unrecorded, edit({ "db-3": { region: "se-sto", size: "g6-standard-1", image: "other" } })), unrecorded), []);
        // Removing an app node never needed anything.
        assert.deepEqual(replacementProblems(compareServers(older, edit({ "app-1": null })), older), []);
    });

    it("a member replaced (moved to another provider, or within its own) stands its old server down first; nothing else does", () => {
        const change = (after: ServerFacts[], name: string) => compareServers(deployed, after).find((c) => c.name === name);
        const moved = change(edit({ "db-3": { provider: "hcloud", region: "fsn1", size: "cx23" } }), "db-3");
        assert.deepEqual(standDownOf(moved), { provider: "linode", serverId: deployed[4].serverId });
        assert.deepEqual(standDownOf(change(edit({ "db-1": { region: "hel1" } }), "db-1")), { provider: "hcloud", serverId: deployed[2].serverId }, "within Hetzner too: a primary hands over before the deletion");
        assert.equal(standDownOf(change(edit({ "db-3": { size: "g6-standard-2" } }), "db-3")), undefined, "a resize keeps the server (the provider shuts it down itself)");
        assert.equal(standDownOf(change(edit({ "app-1": { provider: "hcloud", region: "fsn1", size: "cx23" } }), "app-1")), undefined, "not a member");
        assert.equal(standDownOf(change(edit({}), "db-3")), undefined);
        const own = [...deployed, f("w", "witness", "ssh", "home", undefined, { host: "198.51.100.7" })];
        const off = compareServers(own, [...deployed, f("w", "witness", "hcloud", "hel1", "cx23")]).find((c) => c.name === "w");
        assert.equal(standDownOf(off), undefined, "a host you bring has no API to shut it down");
    });

    it("replaces members delete-first; keeps a user-data unless it replaces the server", () => {
        const [same, replaced] = [{ name: "db-1", role: "db", member: true, kind: "same" as const, reasons: [] }, { name: "db-1", role: "db", member: true, kind: "replace" as const, reasons: ["x"] }];
        const restarted = { ...same, kind: "restart" as const };
        assert.deepEqual(serverLifecycle("db", same), { deleteBeforeReplace: true, keepUserData: true });
        assert.deepEqual(serverLifecycle("witness", undefined), { deleteBeforeReplace: true, keepUserData: true });
        assert.deepEqual(serverLifecycle("db", replaced), { deleteBeforeReplace: true, keepUserData: false });
        assert.deepEqual(serverLifecycle("db", restarted), { deleteBeforeReplace: true, keepUserData: true });
        assert.deepEqual(serverLifecycle("app", same), { deleteBeforeReplace: false, keepUserData: true });
        assert.deepEqual(serverLifecycle("haproxy", replaced), { deleteBeforeReplace: false, keepUserData: false });
    });

    it("reads the deployed facts from stack outputs, and the nodes of a deployment older than them", () => {
        assert.equal(factsFromOutputs(undefined), undefined);
        assert.equal(factsFromOutputs({}), undefined);
        assert.deepEqual(factsFromOutputs({ serverFacts: deployed }), deployed);
        const old = factsFromOutputs({ nodes: [{ name: "db-1", role: "db", provider: "hcloud", region: "fsn1", size: "cx23", publicIpv4: "203.0.113.1" }, { name: "w", role: "witness", provider: "ssh", region: "home", publicIpv4: "198.51.100.7" }] });
        assert.deepEqual(old, [{ name: "db-1", role: "db", provider: "hcloud", region: "fsn1", size: "cx23", protected: false }, { name: "w", role: "witness", provider: "ssh", region: "home", protected: false, host: "198.51.100.7" }]);
        // A deployment's user-data digest from an older vps-ha covered the bootstrap's code too: not compared, dropped.
        const older = factsFromOutputs({ serverFacts: [{ name: "db-1", role: "db", provider: "hcloud", region: "fsn1", size: "cx23", protected: true, userDataDigest: "ab" }] });
        assert.deepEqual(older, [{ name: "db-1", role: "db", provider: "hcloud", region: "fsn1", size: "cx23", protected: true }]);
        assert.throws(() => factsFromOutputs({ serverFacts: [{ name: "db-1" }] }), /serverFacts output is not a list of server facts/);
        assert.throws(() => factsFromOutputs({ serverFacts: [{ ...deployed[0], serverId: 7 }] }), /serverFacts output is not a list of server facts/);
        assert.throws(() => factsFromOutputs({ nodes: "x" }), /nodes output is not a list of nodes/);
    });
});
