// The drills' measure of a machine that stood still: stretches in which its hypervisor took most
// of the CPU or every task waited on IO, read from the kernel's own counters.
import assert from "node:assert/strict";
import { frozenTime, HostSample, HostStallWatch, parseIoFullMicros, parseStealTicks, sampleHost } from "../scripts/lab/host-stall";

const s = (at: number, stealTicks: number, ioFullMicros = 0): HostSample => ({ at, stealTicks, ioFullMicros });

describe("host stall", () => {
    it("reads steal from /proc/stat's aggregate cpu line, not a per-core one", () => {
        const stat = "cpu  2022320 0 751117 3222212 28627 0 44953 383727 0 0\ncpu0 1 0 1 1 1 0 1 999 0 0\nintr 1 2 3\n";
        assert.equal(parseStealTicks(stat), 383727);
        assert.equal(parseStealTicks("intr 1 2\n"), 0);
    });

    it("reads the IO pressure's full total, not its some total", () => {
        const psi = "some avg10=1.05 avg60=0.81 avg300=0.57 total=365458576\nfull avg10=0.81 avg60=0.52 avg300=0.29 total=178525344\n";
        assert.equal(parseIoFullMicros(psi), 178525344);
        assert.equal(parseIoFullMicros(""), 0);
    });

    it("counts only stretches in which most of every core was taken, per core", () => {
        // 2 cores, half-second stretches: 100 ticks in one = both cores gone for the whole stretch.
        const samples = [s(0, 0), s(500, 5), s(1000, 105), s(1500, 185), s(2000, 190)];
        const f = frozenTime(samples, 2);
        // 5 ticks (5 %): steady steal, not counted; 100 ticks: 0.5 s; 80 ticks: 0.4 s (80 %); 5: no.
        assert.equal(f.stolenSeconds, 0.9);
        assert.equal(f.ioStalledSeconds, 0);
        assert.equal(f.seconds, 0.9);
    });

    it("counts IO stalls the same way, and never more than the time watched", () => {
        const f = frozenTime([s(0, 0, 0), s(1000, 200, 900_000), s(2000, 400, 950_000)], 2);
        assert.equal(f.ioStalledSeconds, 0.9);
        assert.equal(f.stolenSeconds, 2);
        assert.equal(f.seconds, 2);
        // Counters never run backwards; a reset counts as nothing.
        assert.equal(frozenTime([s(0, 10, 10), s(500, 0, 0)], 2).seconds, 0);
    });

    it("samples this machine's counters, which only grow, and stops when asked", async () => {
        const a = sampleHost();
        const watch = new HostStallWatch(5);
        await new Promise((r) => setTimeout(r, 1100));
        const f = watch.stop();
        assert.ok(f.seconds >= 0 && f.seconds <= 1.5, JSON.stringify(f));
        const b = sampleHost();
        assert.ok(b.stealTicks >= a.stealTicks && b.ioFullMicros >= a.ioFullMicros);
    });
});
