// When the program marks the directory's index deliberate (nodes then apply whatever it removes):
// only when the stack file itself removes nodes, compared with the last deployment's outputs, or
// when the stack's directory.allowLargeRemoval says so; with the generation rising on each change.
import { strict as assert } from "node:assert";
import { directoryIndexName, memberSetDigest, parseRecord, txtStrings } from "../components/directory-records";
import { directoryRemoval, publishedIndexFromOutput } from "../components/directory-removal";
import { ServerFacts } from "../components/replacement";
import { evaluateProgram, Evaluation } from "../scripts/lib/mock-program";
import { StackFile } from "../scripts/lib/stack-file";
import { ofType, TYPES } from "./helpers/program";
import { prodNodes, prodStack, withConfig } from "./helpers/stack";

const fact = (name: string, role: string): ServerFacts => ({ name, role, provider: "hcloud", region: "fsn1", protected: false });

describe("the directory's removal mark", () => {
    it("is deliberate only when the stack file removes deployed nodes, or the stack allows it", () => {
        const deployed = [fact("app-1", "app"), fact("app-2", "app"), fact("db-1", "db")];
        assert.deepEqual(directoryRemoval(undefined, ["app-1"], false), { deliberate: false, removed: [] });
        assert.deepEqual(directoryRemoval(deployed, ["app-1", "app-2", "db-1"], false), { deliberate: false, removed: [] });
        assert.deepEqual(directoryRemoval(deployed, ["app-1", "app-2", "db-1", "app-3"], false), { deliberate: false, removed: [] });
        assert.deepEqual(directoryRemoval(deployed, ["db-1"], false), { deliberate: true, removed: ["app-1", "app-2"] });
        assert.deepEqual(directoryRemoval(deployed, ["app-1", "app-2", "db-1"], true), { deliberate: true, removed: [] });
        assert.deepEqual(directoryRemoval(undefined, [], true), { deliberate: true, removed: [] });
    });

    it("stays deliberate while the member set is the one it was put on, and only then", () => {
        const deployed = [fact("app-1", "app"), fact("db-1", "db")];
        const names = ["app-1", "db-1"];
        assert.equal(directoryRemoval(deployed, names, false, { set: memberSetDigest(names), deliberate: true }).deliberate, true);
        assert.equal(directoryRemoval(deployed, names, false, { set: memberSetDigest(names), deliberate: false }).deliberate, false);
        // Another member set (a node added, or one dropped by anything but the stack file): bounded again.
        assert.equal(directoryRemoval(deployed, [...names, "app-2"], false, { set: memberSetDigest(names), deliberate: true }).deliberate, false);
        assert.deepEqual(publishedIndexFromOutput({ set: memberSetDigest(names), deliberate: true }), { set: memberSetDigest(names), deliberate: true });
        assert.equal(publishedIndexFromOutput(undefined), undefined);
        for (const bad of [{ set: "x", deliberate: true }, { set: memberSetDigest(names) }, "deliberate", 1]) {
            assert.throws(() => publishedIndexFromOutput(bad), /directoryIndex output is not \{ set, deliberate \}/);
        }
    });

    describe("in the program (mock runtime)", function () {
        this.timeout(300000);
        const INDEX = directoryIndexName("prod.nodes.example.com");
        const run = (file: StackFile, deployed?: Evaluation) =>
            evaluateProgram({ stack: "prod", values: file.values, secretKeys: file.secretKeys, env: {}, ...(deployed ? { deployed: deployed.outputs } : {}) });
        const indexOf = (e: Evaluation) => {
            const key = /"publicKey": "([^"]+)"/.exec(e.userData["db-1"])?.[1] as string;
            const records = ofType(e, TYPES.dnsRecord).filter((r) => r.inputs.type === "TXT" && r.inputs.name === INDEX);
            assert.equal(records.length, 1);
            const parsed = parseRecord(INDEX, txtStrings(String(records[0].inputs.content)).join(""), key);
            assert.ok(parsed.kind === "index");
            return parsed;
        };

        it("publishes a bounded index with a generation that rises when the node set changes, deliberate when the stack file removes a node", async () => {
            const first = await run(prodStack());
            const one = indexOf(first);
            assert.equal(one.deliberate, false);
            assert.ok(one.generation > 0);
            // The same stack again, after that deployment: the same index, the same generation.
            const again = await run(prodStack(), first);
            assert.deepEqual(indexOf(again), one);
            // One more app node: a newer generation, still bounded (nothing removed).
            const nodes = prodNodes();
            nodes.app = [...nodes.app, { name: "app-3", provider: "linode", region: "de-fra-2", size: "g6-nanode-1" }];
            const grown = await run(withConfig({ nodes }), again);
            const two = indexOf(grown);
            assert.ok(two.generation > one.generation && !two.deliberate && two.members.includes("app-3"));
            // The stack file removes app-3 (compared with the deployment before): the index says the removal is deliberate.
            const shrunk = await run(prodStack(), grown);
            const three = indexOf(shrunk);
            assert.ok(three.generation > two.generation && three.deliberate);
            assert.deepEqual([...three.members].sort(), [...one.members].sort());
            // The run after: nothing removed any more, but the same member set keeps its mark: the same index,
            // so a node that was away during the removal still applies it.
            const settled = await run(prodStack(), shrunk);
            assert.deepEqual(indexOf(settled), three);
            // A node added later: bounded again, at a newer generation.
            const added = indexOf(await run(withConfig({ nodes }), settled));
            assert.ok(added.generation > three.generation && !added.deliberate);
        });

        it("marks it deliberate when directory.allowLargeRemoval is true, with nothing removed", async () => {
            const first = await run(prodStack());
            const allowedRun = await run(withConfig({ directory: { allowLargeRemoval: true } }), first);
            const allowed = indexOf(allowedRun);
            assert.equal(allowed.deliberate, true);
            assert.ok(allowed.generation > indexOf(first).generation);
            assert.deepEqual(allowedRun.outputs.directoryIndex, { set: allowed.set, deliberate: true });
            // The key removed again, the member set the same: the mark (and the index) stay.
            assert.deepEqual(indexOf(await run(prodStack(), allowedRun)), allowed);
        });
    });
});
