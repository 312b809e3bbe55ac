// A stack with a witness in the lab (scripts/lab/stacks/witness.yaml): the witness is an etcd
// voter running no PostgreSQL, and the stack survives the loss of either whole provider, the one
// holding most database members included, with no acknowledged write lost.
import assert from "node:assert/strict";
import { join } from "node:path";
import { etcdUnauthenticated } from "../../scripts/lab/drills/etcd-auth";
import { primaryOntoMajority, providerLoss, providerLossMajority, singleRunSlack } from "../../scripts/lab/drills/db";
import { etcdMembers } from "../../scripts/lab/etcd";
import { labHealth, processNames } from "../../scripts/lab/health";
import { stackSource } from "../../scripts/lab/program";
import { labNodes, LabNodeSpec, nodeUnits } from "../../scripts/lab/realize";
import { ETCD_UNIT } from "../../components/render/etcd";
import { PATRONI_UNIT } from "../../components/render/patroni";
import { itTearsDownCleanly, labLog as log, labSuite } from "../helpers/lab";
import { ROOT } from "../helpers/stack";

describe("a stack with a witness in the lab @lab", function () {
    this.timeout(40 * 60_000); // a first run builds the root filesystem; every wait inside is bounded
    const run = labSuite();

    it("brings up the witness stack from the program's cloud-configs, the witness's from its SSH bootstrap", async function () {
        const { specs } = await run.up(stackSource({ config: join(ROOT, "scripts/lab/stacks/witness.yaml") }));
        assert.deepEqual(specs.map((s) => s.role).sort(), ["app", "app", "db", "db", "db", "haproxy", "haproxy", "witness"]);
        const witness = specs.find((s) => s.role === "witness") as LabNodeSpec;
        assert.equal(witness.provider, "ssh");
        assert.equal(witness.publicIpv4, "198.19.200.10", "the host the stack file names");
        assert.match(witness.userData, /^#cloud-config\n/);
    });

    it("every node is healthy; the witness is an etcd voter and runs no PostgreSQL", async function () {
        const health = await labHealth();
        for (const h of health) assert.ok(h.healthy, `${h.name}: ${JSON.stringify(h.checks.filter((c) => !c.ok))}`);
        const witness = labNodes().find((n) => n.role === "witness");
        assert.ok(witness);
        // Asked of a database member's etcd: the witness is a started voter, not a learner.
        const dbs = labNodes().filter((n) => n.role === "db");
        const voting = await Promise.all(dbs.map(async (n) => (await nodeUnits(n.name)).some((u) => u.unit === ETCD_UNIT)));
        const db = dbs.find((_, i) => voting[i]);
        assert.ok(db, "no database member runs etcd");
        const members = await etcdMembers(db.name);
        assert.ok(members, `no etcd member list from ${db.name}`);
        const w = members.find((m) => m.name === witness.name);
        assert.deepEqual(w && { started: w.started, learner: w.learner }, { started: true, learner: false }, JSON.stringify(members));
        assert.equal(members.filter((m) => m.started && !m.learner).length % 2, 1, "an odd number of voters");
        const units = (await nodeUnits(witness.name)).map((u) => u.unit);
        assert.ok(units.includes(ETCD_UNIT), units.join(", "));
        assert.ok(!units.includes(PATRONI_UNIT), units.join(", "));
        const processes = processNames(witness);
        assert.ok(processes.includes("etcd"), processes.join(", "));
        assert.deepEqual(processes.filter((p) => /^(postgres|patroni)/.test(p)), [], "no PostgreSQL or Patroni process on the witness");
        assert.ok(health.find((h) => h.name === witness.name)?.checks.some((c) => c.name === "role" && c.ok && /etcd only/.test(c.detail)));
        run.notePids();
    });

    // Before the failovers: etcd refuses every client without a certificate from its CA (as nobody
    // on a member, from the witness, over the mesh); the failovers after it show Patroni, which
    // has one, still works.
    it("drill etcd-unauthenticated", async function () {
        const result = await etcdUnauthenticated.run({ log });
        run.results.push(result);
        for (const note of result.notes) log(`  ${note}`);
        assert.ok(result.notes.some((n) => / as nobody: etcdctl put on loopback/.test(n)), `no attempt as nobody on a member: ${JSON.stringify(result.notes)}`);
        assert.ok(result.notes.some((n) => /^witness-1 as root: etcdctl put to .* over the mesh/.test(n)), `no attempt from the witness: ${JSON.stringify(result.notes)}`);
        assert.ok(result.checksPassed, `drill failed: ${JSON.stringify(result)}`);
    });

    // First the minority provider's loss with the primary on the majority provider: a synchronous
    // standby is lost, not the primary (commits wait for both standbys until Patroni drops it).
    // Then the majority provider's loss, the primary with it.
    for (const drill of [providerLoss, providerLossMajority]) {
        it(`drill ${drill.name}`, async function () {
            if (drill === providerLoss) log((await primaryOntoMajority({ log })).note);
            const result = await drill.run({ log });
            run.results.push(result);
            const why = `${drill.name}: ${JSON.stringify(result)}`;
            assert.equal(result.lostWrites, 0, `acknowledged writes lost: ${why}`);
            assert.equal(result.splitBrain, false, `two primaries accepted writes: ${why}`);
            assert.notEqual(result.rtoSeconds, null, `writes never came back: ${why}`);
            // As on the prod stack: the target holds for the median of runs (npm run bench -- --lab),
            // and a single run may go over it by singleRunSlack. Time the machine itself stood
            // still during the outage (measured, in the notes) is added.
            assert.ok((result.rtoSeconds as number) <= result.rtoTargetSeconds + singleRunSlack(result) + (result.hostStallSeconds ?? 0), `RTO over target: ${why}`);
            assert.notEqual(result.recoverySeconds, null, `the killed nodes never recovered: ${why}`);
            // An HAProxy node is lost with its provider: visitors may see errors only as long as
            // the edge's monitor takes to notice at worst (in practice, none: the next request
            // goes to the other pool).
            assert.equal(result.edges?.length, 2, `the lab's two edges measured nothing: ${why}`);
            for (const e of result.edges ?? []) assert.ok(e.errorWindowSeconds <= e.worstDetectionSeconds, `${e.name}: errors for ${e.errorWindowSeconds} s: ${why}`);
            assert.ok(result.checksPassed ?? result.passed, `drill failed: ${why}`);
        });
    }

    itTearsDownCleanly(run);
});
