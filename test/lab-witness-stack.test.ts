// The lab's witness stack without the lab: the program accepts the stack file, the witness (a
// host you bring) keeps the address the file names, and only a drill's own stack runs it.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drills, whyNotApplicable } from "../scripts/lab/drills";
import { providerLossMajority } from "../scripts/lab/drills/db";
import { etcdUnauthenticated } from "../scripts/lab/drills/etcd-auth";
import { addWitnessLive, removeWitnessLive, witnessStackFile } from "../scripts/lab/drills/witness-live";
import { readStackFile } from "../scripts/lib/stack-file";
import { labProgram, stackSource } from "../scripts/lab/program";
import { ROOT } from "./helpers/stack";

const WITNESS_STACK = join(ROOT, "scripts/lab/stacks/witness.yaml");

describe("the lab's witness stack", function () {
    this.timeout(60_000);

    it("is stack \"witness\", its witness an etcd-only host at the address its file names", async () => {
        const source = stackSource({ config: WITNESS_STACK });
        assert.equal(source.stack, "witness");
        const { specs } = await labProgram(source);
        const witness = specs.find((s) => s.role === "witness");
        assert.ok(witness);
        assert.deepEqual([witness.provider, witness.publicIpv4], ["ssh", "198.19.200.10"]);
        assert.match(String(witness.config), /vps-ha-etcd\.service/);
        assert.doesNotMatch(String(witness.config), /vps-ha-patroni|postgresql-17/);
        // Every commit reaches db-3 (linode): k = 2, and the lone survivor goes on writing.
        const db3 = specs.find((s) => s.name === "db-3");
        assert.match(String(db3?.config), /synchronous_node_count: 2/);
        assert.match(String(db3?.config), /synchronous_mode_strict: false/);
    });

    it("refuses a host you bring whose address is outside the lab's network", async () => {
        const { parse } = await import("yaml");
        const { readFileSync } = await import("node:fs");
        const nodes = parse(readFileSync(WITNESS_STACK, "utf8")).config["vps-ha:nodes"];
        nodes.witness[0].host = "203.0.113.10";
        await assert.rejects(labProgram(stackSource({ config: WITNESS_STACK }), { nodes }), /witness-1 is a host you bring \(provider ssh\) at 203\.0\.113\.10; in a lab stack its host must be a lab address/);
    });

    it("runs provider-loss-majority only where there is a witness, and says why not elsewhere", () => {
        assert.equal(whyNotApplicable(providerLossMajority, "prod", ["app", "haproxy", "db"]), "the prod stack has no witness");
        assert.equal(whyNotApplicable(providerLossMajority, "witness", ["app", "haproxy", "db", "witness"]), undefined);
        assert.equal(whyNotApplicable(etcdUnauthenticated, "prod", ["app", "haproxy", "db"]), "the prod stack has no witness");
        // Every other drill runs on the prod stack; the one that adds a witness only there, the one
        // that removes it only once the lab runs one.
        const needWitness = [providerLossMajority, etcdUnauthenticated, removeWitnessLive];
        for (const d of drills.filter((x) => !needWitness.includes(x))) assert.equal(whyNotApplicable(d, "prod", ["app", "haproxy", "db"]), undefined, d.name);
        assert.equal(whyNotApplicable(addWitnessLive, "witness", ["app", "haproxy", "db", "witness"]), "the witness stack has a witness already");
        assert.equal(whyNotApplicable(removeWitnessLive, "prod", ["app", "haproxy", "db"]), "the prod stack has no witness");
        assert.equal(whyNotApplicable(removeWitnessLive, "prod", ["app", "haproxy", "db", "witness"]), undefined);
    });

    it("add-witness-live: the prod stack with this file's witness, admin ranges and strictness; the rest as prod has it", async () => {
        const prod = join(ROOT, "Pulumi.prod.yaml");
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-add-witness-"));
        try {
            const out = join(dir, "Pulumi.prod.yaml");
            const made = witnessStackFile(prod, out, WITNESS_STACK);
            assert.deepEqual([made.witness.name, made.witness.provider, made.synchronousStrict], ["witness-1", "ssh", false]);
            const file = readStackFile(out);
            const json = (key: string) => JSON.parse(file.values[key] as string);
            assert.deepEqual(json("vps-ha:nodes").db.map((d: { name: string }) => d.name), ["db-1", "db-2", "db-3"]);
            assert.deepEqual(json("vps-ha:admin").sshCidrs, ["198.18.0.1/32"]);
            // The backups stay the prod stack's (a new bucket would be another change); the SSH key comes as a secret.
            assert.equal(json("vps-ha:database").backups.bucket, undefined);
            assert.ok(file.secretKeys.includes("vps-ha:sshPrivateKey"));
            // The program takes it: the witness at its own address, k = 2 and not strict on the members.
            const { specs } = await labProgram({ stack: "prod", file: out });
            assert.equal(specs.find((s) => s.role === "witness")?.publicIpv4, "198.19.200.10");
            assert.match(String(specs.find((s) => s.name === "db-3")?.config), /synchronous_node_count: 2/);
            assert.match(String(specs.find((s) => s.name === "db-3")?.config), /synchronous_mode_strict: false/);
            // A stack that has its witness already is refused.
            assert.throws(() => witnessStackFile(WITNESS_STACK, join(dir, "again.yaml"), WITNESS_STACK), /adds a witness to a stack without one; .* has witness-1/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
