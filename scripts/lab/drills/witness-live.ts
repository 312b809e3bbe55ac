// add-witness-live: the lab's stack (no witness) becomes the same stack with the witness of the
// lab's witness stack file (its witness, admin ranges and synchronous strictness), as one
// `pulumi up` would do it: the program says the witness is the one new server and every other
// node changes in place; the new desired state is published, the witness's server boots, and the
// other nodes roll the change out under writes through the poolers and HTTP. Then the witness is
// a started etcd voter, Patroni's k and strictness are the stack file's, the primary's
// synchronous set names every other member, no node was rebuilt or rebooted, at most one
// switchover, no write or request failed; with k > 1 after the change, writes may pause for
// Patroni's quorum hand-over too (the primary hands over last).
// The lab then runs the stack with the witness; remove-witness-live takes it away again.
// remove-witness-live: the stack the lab runs loses its witness in one run (its removal from the
// stack file): every other node changes in place under the same load, each
// voter takes the witness out of etcd (vps-ha-etcd-prune), the member that stopped voting for it
// votes again, Patroni's k follows the stack file; then the witness's server is deleted.
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
import { LAB_STACKS_DIR, LabProgram, labProgram } from "../program";
import { addNode, labNodes } from "../realize";
import { removeNode } from "../rebuild";
import { LabStack, labStack, saveLabStack } from "../stack";
import { labDnsRecords, requireOwnBringUp } from "../up";
import { currentPrimary, patroniConfig, QUORUM_HANDOVER_SECONDS, SWITCHOVER_PAUSE_SECONDS, waitForFullSynchronousSet } from "./db";
import { rolloutUnderLoad } from "./rollout";
import { accepted, applyToProgram, labNodeLists, labSource, NodeLists } from "./stack-change";
import { Drill, DrillResult, drillChecks } from "./types";

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

/**
 * What a change of the witness leaves, checked last: Patroni's k and strictness the stack file's,
 * the primary's synchronous set naming every other member, nothing failed; the drill's result.
 */
async function settled(result: DrillResult, checks: ReturnType<typeof drillChecks>, k: number, strict: boolean): Promise<DrillResult> {
    const { check, notes } = checks;
    const config = await patroniConfig();
    check(config?.synchronous_node_count === k && (config?.synchronous_mode_strict ?? false) === strict,
        `Patroni's k ${config?.synchronous_node_count ?? "?"} and strictness ${config?.synchronous_mode_strict ?? "?"} are the stack file's (${k}, ${strict})`);
    const now = await currentPrimary();
    const set = now ? await waitForFullSynchronousSet(now, SYNCHRONOUS_SET_SECONDS * 1000) : { ok: false, seen: "no primary" };
    check(set.ok, `the primary's synchronous set names every other member within ${SYNCHRONOUS_SET_SECONDS} s: ${set.seen}`);
    check(result.failedRequests === 0, `no pooled write or request failed (${result.failedRequests} failed)`);
    return { ...result, checksPassed: (result.checksPassed ?? result.passed) && checks.ok, passed: result.passed && checks.ok, notes: [...result.notes, ...notes] };
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
        // The lab now runs the stack with the witness (remove-witness-live takes it from there).
        saveLabStack({ ...(labStack() as LabStack), source });
        const group = labNodes().filter((n) => rolloutGroup(n.role as Role) === "db").map((n) => n.name).sort();
        check(group.includes(witness), `${witness} rolls out with the database members (${group.join(", ")})`);

        // etcd's members are the voters the program names: the witness in, and with members plus
        // witness even, the member that stopped voting out (vps-ha-etcd-leave).
        const voters = votersOf(program);
        await etcdIsVoters(voters, voters.find((v) => v !== witness) as string, check, `${witness} is a started voter`, voters.includes(witness));
        const left = labNodes().filter((n) => n.role === "db" && !voters.includes(n.name)).map((n) => n.name);
        if (left.length) notes.push(`no longer voting, out of etcd's member list: ${left.join(", ")}`);
        return settled(result, checks, k, strict);
    },
};

/** The program's etcd voters: the nodes whose configuration has etcd's unit. */
function votersOf(program: LabProgram): string[] {
    return program.specs.filter((s) => String(s.config ?? s.userData).includes(`/etc/systemd/system/${ETCD_UNIT}`)).map((s) => s.name).sort();
}

/**
 * etcd's members (asked of `ask`) are exactly `voters`, every one started, none a learner, and
 * `also` holds; the check's note says what etcd lists.
 */
async function etcdIsVoters(voters: string[], ask: string, check: (ok: boolean, note: string) => void, what: string, also = true): Promise<void> {
    const members = await etcdMembers(ask);
    const names = (members ?? []).map((m) => m.name).sort();
    check(also && JSON.stringify(names) === JSON.stringify([...voters].sort()) && (members ?? []).every((m) => m.started && !m.learner),
        `etcd: ${what}, the members are the stack's voters (${voters.join(", ")}): ${members?.map((m) => `${m.name || "(unnamed)"}${m.learner ? " (learner)" : ""}${m.started ? "" : " (not started)"}`).join(", ") ?? "no answer"}`);
}

export const removeWitnessLive: Drill = {
    name: "remove-witness-live",
    needs: "witness",
    description: `the stack the lab runs loses its witness in one run (removed from the stack file): every other node changes in place, one node of a group at a time, under writes through the poolers and HTTP; each voter takes the witness out of etcd, the member that did not vote beside it votes again, Patroni's k follows the stack file, then the witness's server is deleted; nothing fails, at most one switchover, no other node rebuilt`,
    run: async (ctx) => {
        requireOwnBringUp("remove-witness-live");
        const deployedSource = labSource();
        const lists = labNodeLists(deployedSource);
        const entry = (lists.witness ?? [])[0];
        if (!entry || !labNodes().some((n) => n.name === entry.name)) throw new Error(`remove-witness-live removes the witness of ${deployedSource.file}, which names none the lab runs (add-witness-live adds one)`);
        const witness = entry.name;
        const without: NodeLists = { ...lists, witness: [] };
        const checks = drillChecks([`removing ${witness} from ${deployedSource.file}`]);
        const { notes, check } = checks;

        // The program decides: the removal in one run.
        const deployed = accepted(await applyToProgram(deployedSource, undefined, undefined), "the lab's stack file").evaluation;
        const removal = accepted(await applyToProgram(deployedSource, without, deployed.outputs), `the removal of ${witness}`);
        const changed = removal.changes.filter((c) => c.kind !== "same");
        check(changed.length === 1 && changed[0].name === witness && changed[0].kind === "remove", `the run deletes ${witness}'s server and nothing else (${changed.map((c) => `${c.name} ${c.kind}`).join(", ") || "no change"})`);

        // The same stack without the witness, as its own stack file (what the lab runs afterwards).
        const source = { stack: deployedSource.stack, file: join(STATE_DIR, "remove-witness-live.yaml") };
        const config = configOf(deployedSource.file);
        writeFileSync(source.file, `# ${deployedSource.file} without ${witness} (remove-witness-live)\n${stringify({ config: { ...config, "vps-ha:nodes": without } })}`);
        const program = await labProgram(source);
        // A group whose documents the removal leaves as they were (the app nodes') rolls nothing out.
        const rolloutId = (e: typeof deployed, n: string) => e.desired[n]?.rollout?.id;
        const unchanged = labNodes().map((n) => n.name).filter((n) => n !== witness && rolloutId(deployed, n) !== undefined && rolloutId(deployed, n) === rolloutId(removal.evaluation, n));
        if (unchanged.length) notes.push(`no change to roll out on ${unchanged.join(", ")}`);
        const strict = objectAt(config, "vps-ha:database", deployedSource.file).synchronousStrict !== false;
        const k = synchronousNodeCount({ nodes: without as never });
        const pause = SWITCHOVER_PAUSE_SECONDS + (k > 1 ? QUORUM_HANDOVER_SECONDS : 0);
        const result = await rolloutUnderLoad(ctx, "remove-witness-live", witness, async () => {
            await publishLabDns(labDnsRecords(program), ctx.log);
            ctx.log(`remove-witness-live: published the stack without ${witness}`);
        }, check, pause, {
            leaving: [witness],
            unchanged,
            // The rollout through, pulumi up deletes the server the stack no longer has.
            afterRollout: () => removeNode(witness, ctx.log),
        });
        saveLabStack({ ...(labStack() as LabStack), source });

        const voters = votersOf(program);
        check(labNodes().every((n) => n.role !== "db" || voters.includes(n.name)), `every member votes again (${voters.join(", ")})`);
        await etcdIsVoters(voters, voters[0], check, `${witness} is gone`);
        return settled(result, checks, k, strict);
    },
};
