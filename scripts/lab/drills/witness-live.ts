// add-witness-live: the lab's stack (no witness) becomes the same stack with the witness of the
// lab's witness stack file (its witness, admin ranges and synchronous strictness), as one
// `pulumi up` would do it: the program says the witness is the one new server and every other
// node changes in place; the new desired state is published, the witness's server boots, and the
// other nodes roll the change out under writes through the poolers and HTTP. Then the witness is
// a started etcd voter, Patroni's k and strictness are the stack file's, the primary's
// synchronous set names every other member, no node was rebuilt or rebooted, at most one
// switchover, no write or request failed; with k > 1 after the change, writes may pause for
// Patroni's quorum hand-over too (the primary hands over last).
// The lab keeps the witness afterwards: run it last in a lab (etcd then has a member the stack
// file lacks).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { Role } from "../../../components/config";
import { ETCD_UNIT } from "../../../components/render/etcd";
import { synchronousNodeCount } from "../../../components/replication";
import { rolloutGroup } from "../../../components/rollout";
import { publishLabDns } from "../dns";
import { etcdMembers } from "../etcd";
import { STATE_DIR } from "../paths";
import { LAB_STACKS_DIR, labProgram } from "../program";
import { addNode, labNodes } from "../realize";
import { labDnsRecords, requireOwnBringUp } from "../up";
import { currentPrimary, patroniConfig, QUORUM_HANDOVER_SECONDS, SWITCHOVER_PAUSE_SECONDS, waitForFullSynchronousSet } from "./db";
import { rolloutUnderLoad } from "./rollout";
import { accepted, applyToProgram, labSource, NodeLists } from "./stack-change";
import { Drill, drillChecks } from "./types";

/** The lab's stack file whose witness the drill adds. */
export const WITNESS_STACK_FILE = join(LAB_STACKS_DIR, "witness.yaml");

/** How long the primary's synchronous set may take to name every other member once the rollout is done. */
const SYNCHRONOUS_SET_SECONDS = 60;

type Config = Record<string, unknown>;

function configOf(file: string): Config {
    const doc = parse(readFileSync(file, "utf8")) as { config?: Config } | null;
    if (!doc?.config) throw new Error(`add-witness-live: ${file} has no config`);
    return doc.config;
}

const objectAt = (config: Config, key: string, file: string): Config => {
    const v = config[key];
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error(`add-witness-live: ${file} has no ${key} object`);
    return v as Config;
};

/**
 * The stack file `file` with the witness stack file's witness: its node lists gain that witness,
 * its admin ranges and its database's synchronousStrict become the witness file's, and it gets
 * the keys only the witness file has (the SSH key Pulumi sets the witness up with); every other
 * key, the backups too, stays as `file` has it. Written to `out`, as a stack file of the same stack.
 */
export function witnessStackFile(file: string, out: string, witnessFile = WITNESS_STACK_FILE): { witness: { name: string; provider: string }; nodes: NodeLists; synchronousStrict: boolean } {
    const base = configOf(file);
    const theirs = configOf(witnessFile);
    const nodes = objectAt(base, "vps-ha:nodes", file) as unknown as NodeLists;
    const witness = (objectAt(theirs, "vps-ha:nodes", witnessFile) as unknown as NodeLists).witness ?? [];
    if (witness.length === 0) throw new Error(`add-witness-live: ${witnessFile} names no witness`);
    if ((nodes.witness ?? []).length > 0) throw new Error(`add-witness-live adds a witness to a stack without one; ${file} has ${(nodes.witness ?? []).map((w) => w.name).join(", ")}`);
    const database = { ...objectAt(base, "vps-ha:database", file) };
    const strict = objectAt(theirs, "vps-ha:database", witnessFile).synchronousStrict;
    if (strict !== undefined) database.synchronousStrict = strict;
    const config: Config = {
        ...Object.fromEntries(Object.entries(theirs).filter(([k]) => !(k in base))),
        ...base,
        "vps-ha:nodes": { ...nodes, witness },
        "vps-ha:admin": { ...objectAt(base, "vps-ha:admin", file), sshCidrs: objectAt(theirs, "vps-ha:admin", witnessFile).sshCidrs },
        "vps-ha:database": database,
    };
    writeFileSync(out, `# ${file} with the witness of ${witnessFile} (add-witness-live)\n${stringify({ config })}`);
    return { witness: witness[0], nodes: config["vps-ha:nodes"] as NodeLists, synchronousStrict: database.synchronousStrict !== false };
}

export const addWitnessLive: Drill = {
    name: "add-witness-live",
    lacks: "witness",
    description: `the stack gains the witness of the lab's witness stack file in one change: the witness is the one new server, every other node changes in place, one node of a group at a time, under writes through the poolers and HTTP; the witness becomes an etcd voter, Patroni's k and strictness follow the stack file, nothing fails, writes pause <= ${SWITCHOVER_PAUSE_SECONDS} s (and Patroni's quorum hand-over, ${QUORUM_HANDOVER_SECONDS} s, once k > 1), at most one switchover, no node rebuilt`,
    run: async (ctx) => {
        requireOwnBringUp("add-witness-live");
        const deployedSource = labSource();
        // The same stack with a witness, as its own stack file (its secrets as the files hold them).
        const source = { stack: deployedSource.stack, file: join(STATE_DIR, "add-witness-live.yaml") };
        const { witness: entry, nodes, synchronousStrict: strict } = witnessStackFile(deployedSource.file, source.file);
        const witness = entry.name;
        const checks = drillChecks([`adding ${witness} (${entry.provider}) from ${WITNESS_STACK_FILE} to ${deployedSource.file}`]);
        const { notes, check } = checks;

        // The program decides: the witness is the one new server, every other node in place.
        const deployed = accepted(await applyToProgram(deployedSource, undefined, undefined), "the lab's stack file").evaluation;
        const change = accepted(await applyToProgram(source, undefined, deployed.outputs), "the stack with a witness");
        const changed = change.changes.filter((c) => c.kind !== "same");
        check(changed.length === 1 && changed[0].name === witness && changed[0].kind === "new", `the program creates ${witness} and replaces nothing (${changed.map((c) => `${c.name} ${c.kind}`).join(", ") || "no change"})`);

        const program = await labProgram(source);
        const spec = program.specs.find((s) => s.name === witness);
        if (!spec) throw new Error(`add-witness-live: the program gave no node ${witness}`);
        const k = synchronousNodeCount({ nodes: nodes as never });
        // The primary hands over last, when k is already the witness stack's: with k > 1 the new
        // primary first waits for the old one too, until Patroni's quorum hand-over drops it.
        const pause = SWITCHOVER_PAUSE_SECONDS + (k > 1 ? QUORUM_HANDOVER_SECONDS : 0);
        const result = await rolloutUnderLoad(ctx, "add-witness-live", witness, async () => {
            // As `pulumi up` does: the desired state and DNS records first, then the new server.
            await publishLabDns(labDnsRecords(program), ctx.log);
            ctx.log(`add-witness-live: published the stack with ${witness}`);
            await addNode(spec, ctx.log);
        }, check, pause);
        const group = labNodes().filter((n) => rolloutGroup(n.role as Role) === "db").map((n) => n.name).sort();
        check(group.includes(witness), `${witness} rolls out with the database members (${group.join(", ")})`);

        // etcd's members are the voters the program names: the witness in, and with members plus
        // witness even, the member that stopped voting out (vps-ha-etcd-leave).
        const voters = program.specs.filter((s) => String(s.config ?? s.userData).includes(`/etc/systemd/system/${ETCD_UNIT}`)).map((s) => s.name).sort();
        const members = await etcdMembers(voters.find((v) => v !== witness) as string);
        const names = (members ?? []).map((m) => m.name).sort();
        check(voters.includes(witness) && JSON.stringify(names) === JSON.stringify(voters) && (members ?? []).every((m) => m.started && !m.learner),
            `etcd: ${witness} is a started voter, the members are the stack's voters (${voters.join(", ")}): ${members?.map((m) => `${m.name}${m.learner ? " (learner)" : ""}${m.started ? "" : " (not started)"}`).join(", ") ?? "no answer"}`);
        const left = labNodes().filter((n) => n.role === "db" && !voters.includes(n.name)).map((n) => n.name);
        if (left.length) notes.push(`no longer voting, out of etcd's member list: ${left.join(", ")}`);
        const config = await patroniConfig();
        check(config?.synchronous_node_count === k && (config?.synchronous_mode_strict ?? false) === strict,
            `Patroni's k ${config?.synchronous_node_count ?? "?"} and strictness ${config?.synchronous_mode_strict ?? "?"} are the stack file's (${k}, ${strict})`);
        const now = await currentPrimary();
        const set = now ? await waitForFullSynchronousSet(now, SYNCHRONOUS_SET_SECONDS * 1000) : { ok: false, seen: "no primary" };
        check(set.ok, `the primary's synchronous set names every other member within ${SYNCHRONOUS_SET_SECONDS} s: ${set.seen}`);
        check(result.failedRequests === 0, `no pooled write or request failed (${result.failedRequests} failed)`);
        return { ...result, checksPassed: (result.checksPassed ?? result.passed) && checks.ok, passed: result.passed && checks.ok, notes: [...result.notes, ...notes] };
    },
};
