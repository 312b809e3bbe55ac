// The member drills' own reasoning, outside the lab: which writes the archive holds (from the
// WAL position sampled against the last segment archived), and the program's answers to the
// stack changes the drills make (evaluated as the drills evaluate them).
import { strict as assert } from "node:assert";
import { archivedUntil, comeback, segmentEnd } from "../scripts/lab/drills/cluster-loss";
import { standDownStep } from "../scripts/lab/drills/members";
import { applyToProgram, labNodeLists } from "../scripts/lab/drills/stack-change";
import { stackSource } from "../scripts/lab/program";

const MiB16 = 16n * 1024n * 1024n;

describe("member drills", function () {
    this.timeout(120_000);

    it("a WAL segment's end from its file name; anything else is not a segment", () => {
        assert.equal(segmentEnd("000000010000000000000003", MiB16), 4n * MiB16);
        assert.equal(segmentEnd("0000000200000001000000FF", MiB16), 0x1_0000_0000n + 256n * MiB16);
        assert.equal(segmentEnd("000000010000000000000003", 64n * 1024n * 1024n), 4n * 64n * 1024n * 1024n);
        assert.equal(segmentEnd("00000002.history", MiB16), undefined);
        assert.equal(segmentEnd("000000010000000000000003.partial", MiB16), undefined);
        assert.equal(segmentEnd("", MiB16), undefined);
    });

    it("the archive holds the writes acknowledged before the write position last stood within the newest archived segment", () => {
        const s = (at: number, lsn: bigint, lastArchived: string) => ({ at, lsn, lastArchived, lastArchivedAt: null });
        const samples = [
            s(1000, 2n * MiB16 + 10n, "000000010000000000000001"), // segment 2 (0-based), archived up to 1
            s(2000, 2n * MiB16 + 500n, "000000010000000000000001"),
            s(3000, 3n * MiB16 + 10n, "000000010000000000000002"), // 2 switched and archived; now in 3
            s(4000, 3n * MiB16 + 900n, "000000010000000000000002"),
            s(5000, 3n * MiB16 + 990n, ""), // the archiver's view not read: the newest known stands
        ];
        assert.deepEqual(archivedUntil(samples, MiB16), { at: 2000, segment: "000000010000000000000002" });
        assert.equal(archivedUntil(samples.slice(0, 1).map((x) => ({ ...x, lastArchived: "" })), MiB16), undefined);
        // Nothing sampled at or below the archived end: no write is known to be archived.
        assert.equal(archivedUntil([s(1000, 5n * MiB16, "000000010000000000000001")], MiB16), undefined);
    });

    it("writes come back at the first acknowledged after the first failure since the loss, not at a late acknowledgement of the old primary", () => {
        const w = (id: number, start: number, ok: boolean) => ({ id, start, end: start + 10, ok });
        const records = [w(1, 900, true), w(2, 1000, true), w(3, 1010, true), w(4, 1020, false), w(5, 3000, false), w(6, 5000, true)];
        assert.deepEqual(comeback(records, 1000), { firstFailure: records[3], back: records[5] });
        assert.deepEqual(comeback(records.slice(0, 5), 1000), { firstFailure: records[3] });
        assert.deepEqual(comeback(records.slice(0, 3), 1000), {});
    });

    it("the program refuses the double change the lab drill makes, naming both members and the order, before it creates anything", async () => {
        const source = stackSource({ stack: "prod" });
        const deployed = await applyToProgram(source, undefined, undefined);
        assert.ok(deployed.accepted);
        const lists = labNodeLists(source);
        lists.db[0].size = "cx33";
        lists.db[1].size = "cx33";
        const change = await applyToProgram(source, lists, deployed.evaluation.outputs);
        assert.ok(!change.accepted);
        assert.match(change.message, /db-1 \(size cx23 -> cx33: powered off while resized\), db-2 \(size cx23 -> cx33/);
        assert.match(change.message, /in this order: db-1, db-2, each after/);
        assert.deepEqual(change.registered, ["pulumi:pulumi:StackReference"]);
    });

    it("a move to the other provider is one run the program accepts: one replacement, the old server's stand-down step before the new one", async () => {
        const source = stackSource({ stack: "prod" });
        const deployed = await applyToProgram(source, undefined, undefined);
        assert.ok(deployed.accepted);
        const lists = labNodeLists(source);
        const moved = lists.db.map((e) => (e.name === "db-2" ? { name: "db-2", provider: "linode", region: "de-fra-2", size: "g6-standard-1" } : e));
        const move = await applyToProgram(source, { ...lists, db: moved }, deployed.evaluation.outputs);
        assert.ok(move.accepted, move.accepted ? "" : move.message);
        assert.deepEqual(move.changes.filter((c) => c.kind !== "same").map((c) => [c.name, c.kind, c.providerMove]), [["db-2", "replace", true]]);
        assert.equal(standDownStep(move.evaluation, "db-2")?.provider, "hcloud");
        assert.equal(standDownStep(move.evaluation, "db-2")?.server, (deployed.evaluation.outputs.serverFacts as { name: string; serverId: string }[]).find((f) => f.name === "db-2")?.serverId);
        assert.equal(standDownStep(deployed.evaluation, "db-2"), undefined);
    });
});
