import { strict as assert } from "node:assert";
import { analyzeWrites, longestWritePause } from "../scripts/lab/load/analyze";
import type { WriteRecord } from "../scripts/lab/load/db-writer";

const w = (id: number, start: number, ok: boolean, server = "10.0.0.1"): WriteRecord => ({ id, start, end: start + 10, ok, ...(ok ? { server } : { error: "down" }) });

describe("drill write analysis", () => {
    it("a clean run: no failure, RTO 0, nothing lost", () => {
        const a = analyzeWrites([w(1, 0, true), w(2, 100, true)], 50, new Set([1, 2]));
        assert.deepEqual([a.rtoSeconds, a.lostIds, a.splitBrain, a.acknowledged], [0, [], false, 2]);
    });

    it("measures RTO from the fault to the first acknowledged write after the failures", () => {
        const recs = [w(1, 0, true), w(2, 1000, false), w(3, 2000, false), w(4, 5000, true, "10.0.0.2")];
        const a = analyzeWrites(recs, 900, new Set([1, 4]));
        assert.equal(a.rtoSeconds, (5010 - 900) / 1000);
        assert.deepEqual(a.servers, ["10.0.0.1", "10.0.0.2"]);
        assert.equal(a.splitBrain, false);
        assert.equal(a.failed, 2);
    });

    it("counts acknowledged ids missing afterwards as lost", () => {
        const a = analyzeWrites([w(1, 0, true), w(2, 100, true), w(3, 200, false)], 50, new Set([1, 3]));
        assert.deepEqual(a.lostIds, [2]);
    });

    it("flags a split brain when the old primary takes writes after the new one did", () => {
        const recs = [w(1, 0, true, "A"), w(2, 100, true, "B"), w(3, 200, true, "A")];
        assert.equal(analyzeWrites(recs, 50, new Set([1, 2, 3])).splitBrain, true);
    });

    it("reports no RTO when writes never came back", () => {
        assert.equal(analyzeWrites([w(1, 0, true), w(2, 100, false)], 50, new Set([1])).rtoSeconds, null);
    });

    it("measures how long a planned change held acknowledged writes, from the fault on", () => {
        const records = [w(1, 0, true), w(2, 100, true), w(3, 2000, true), w(4, 2100, true), w(5, 5000, true)];
        assert.equal(longestWritePause(records, 150), 2.9);
        assert.equal(longestWritePause(records, 5100), 0, "gaps that end before `since` do not count");
        assert.equal(longestWritePause([w(1, 0, true), w(2, 50, false), w(3, 900, true)], 0), 0.9, "failed writes are no acknowledgement");
    });
});
