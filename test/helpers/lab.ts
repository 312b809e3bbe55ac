// What every @lab suite shares: the hook that skips it where the lab cannot run (and fails it in
// CI, which must be able to), the state it keeps between tests, and its last test, a teardown
// that must leave nothing behind.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { leftovers } from "../../scripts/lab/cleanup";
import { DrillResult } from "../../scripts/lab/drills/types";
import { seen, SeenProcess } from "../../scripts/lab/procs";
import { StackSource } from "../../scripts/lab/program";
import { labNodes, LabNodeSpec, nodePids, teardown } from "../../scripts/lab/realize";
import { bringUp } from "../../scripts/lab/up";

export const labLog = (m: string): void => console.log(`      ${m}`);

export function missingLabPrerequisite(): string | undefined {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) return "the lab must run as root";
    if (!existsSync("/dev/net/tun")) return "no /dev/net/tun (wireguard-go needs it)";
    return undefined;
}

/** A suite's lab: what it brought up, the processes seen, the drills' results. */
export class LabRun {
    specs: LabNodeSpec[] = [];
    realized = false;
    private pids: SeenProcess[] = [];
    readonly results: DrillResult[] = [];

    async up(source: StackSource): Promise<{ specs: LabNodeSpec[]; seconds: number }> {
        this.realized = true;
        const up = await bringUp(source, labLog);
        this.specs = up.specs;
        labLog(`bring-up took ${up.seconds.toFixed(1)} s`);
        for (const s of up.specs) assert.ok(existsSync(`/run/netns/vh-${s.name}`), `namespace vh-${s.name}`);
        return up;
    }

    /** Remembers every lab process now, so the teardown can show none of them is left. */
    notePids(): void {
        this.pids = [...this.pids, ...seen(labNodes().flatMap((n) => nodePids(n.name)))];
    }

    async down(): Promise<void> {
        this.realized = false;
        await teardown(labLog);
    }

    /** What the lab left behind of what this suite brought up (nothing, after a clean teardown). */
    leftovers(): Promise<string[]> {
        return leftovers(this.specs.map((s) => s.name), this.pids);
    }
}

/**
 * Registers a lab suite's hooks: skipped with the reason where the lab cannot run (failed in CI);
 * the lab taken down after the suite whatever happened, and the drills' results printed.
 */
export function labSuite(): LabRun {
    const run = new LabRun();
    before(function () {
        const missing = missingLabPrerequisite();
        if (!missing) return;
        if (process.env.CI) throw new Error(`the lab cannot run in CI: ${missing}`);
        console.log(`      skipping the lab: ${missing}`);
        this.skip();
    });
    after(async function () {
        if (run.realized) await run.down();
        if (run.results.length) console.log(`\n${run.results.map((r) => `      ${JSON.stringify(r)}`).join("\n")}`);
    });
    return run;
}

/** The suite's last test: the teardown removes every namespace, mount and process the lab made. */
export function itTearsDownCleanly(run: LabRun): void {
    it("tears down and leaves nothing behind", async function () {
        run.notePids();
        await run.down();
        assert.deepEqual(await run.leftovers(), []);
    });
}
