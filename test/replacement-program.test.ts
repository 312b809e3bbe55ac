// Replacing servers, with the program under the mock runtime: it reads its own last deployment
// (a StackReference the mock answers), refuses a change that takes two members down before it
// creates anything, guards members, moves one to another provider in one run with its old server
// shut down first, and names servers so a replacement never collides.
import { strict as assert } from "node:assert";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { bootstrapDigest } from "../components/bootstrap-identity";
import { buildPlan } from "../components/plan";
import { secretsVersionFromOutputs, secretsVersionProblems } from "../components/secrets-version";
import { parseStackConfig } from "../components/config";
import { sshKeyFingerprint } from "../components/providers/hcloud";
import { BOOTSTRAP_SUFFIX } from "../components/providers/ssh";
import { STAND_DOWN_COMMAND, STAND_DOWN_ENV, standDownEnvProblems } from "../components/stand-down";
import { LAB_STACKS_DIR } from "../scripts/lab/program";
import { evaluateProgram, Evaluation, RecordedResource } from "../scripts/lib/mock-program";
import { readStackFile, StackFile } from "../scripts/lib/stack-file";
import { evaluate, ofType, TYPES } from "./helpers/program";
import { prodNodes, prodStack, raw, withConfig } from "./helpers/stack";

const servers = (e: Evaluation) => [...ofType(e, TYPES.linodeInstance), ...ofType(e, TYPES.hcloudServer)];
const server = (e: Evaluation, node: string) => servers(e).find((r) => r.name === node) as RecordedResource;
const serverName = (r: RecordedResource) => String(r.type === TYPES.linodeInstance ? r.inputs.label : r.inputs.name);

/** Evaluates `file` as the next pulumi up after a deployment whose outputs were `deployed`. */
function after(deployed: Evaluation | undefined, file: StackFile, onResource?: (r: RecordedResource) => void): Promise<Evaluation> {
    return evaluateProgram({ stack: "prod", values: file.values, secretKeys: file.secretKeys, env: {}, ...(deployed ? { deployed: deployed.outputs } : {}), onResource });
}

async function refusal(deployed: Evaluation, file: StackFile): Promise<{ message: string; created: string[] }> {
    const created: string[] = [];
    try {
        await after(deployed, file, (r) => created.push(r.type));
    } catch (e) {
        assert.ok(pulumi.RunError.isInstance(e), `not a RunError (which ends a program with its message alone): ${(e as Error).stack}`);
        return { message: (e as Error).message, created };
    }
    assert.fail("the change was not refused");
}

describe("replacement (mock runtime)", function () {
    this.timeout(120000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("guards database members with one protected resource that waits for each; replaces them delete-first, other servers create-before-delete under a new name", () => {
        for (const r of servers(prod)) {
            const member = r.name.startsWith("db-");
            assert.equal(r.options.protect, undefined, `${r.name}: no protect of its own (a run could not lift it from a server it no longer declares)`);
            assert.equal(r.options.deleteBeforeReplace, member, `${r.name}: deleteBeforeReplace`);
        }
        const guard = prod.resources.find((r) => r.type === "vps-ha:index:MemberGuard") as RecordedResource;
        assert.ok(guard, "the member guard is registered");
        assert.equal(guard.options.protect, true);
        // pulumi destroy deletes dependents first: the guard's refusal comes before any member's server.
        for (const node of ["db-1", "db-2", "db-3"]) assert.ok(guard.options.dependsOn?.includes(node), `the guard waits for ${node} (${guard.options.dependsOn?.join(", ")})`);
        for (const node of ["app-1", "lb-1"]) assert.ok(!guard.options.dependsOn?.includes(node), `not for ${node}`);
        // Hetzner shuts a member down (ACPI) before deleting it: a primary hands over first.
        for (const r of ofType(prod, TYPES.hcloudServer)) assert.equal(r.inputs.shutdownBeforeDeletion, r.name.startsWith("db-") ? true : undefined, r.name);
        // The provider's SSH keys count at creation only (admin keys are desired state), and so does
        // the user-data of a server this run does not replace (a vps-ha upgrade changes its code).
        for (const r of ofType(prod, TYPES.hcloudServer)) assert.deepEqual(r.options.ignoreChanges, ["sshKeys", "userData"]);
        for (const r of ofType(prod, TYPES.linodeInstance)) assert.deepEqual(r.options.ignoreChanges, ["authorizedKeys", "metadatas"]);
        // Firewalls and the rest are not protected: only the servers hold data.
        for (const r of prod.resources.filter((x) => x.type.endsWith("irewall:Firewall"))) assert.equal(r.options.protect, undefined);
    });

    it("attaches each Linode firewall at the instance's creation, not afterwards", () => {
        for (const instance of ofType(prod, TYPES.linodeInstance)) {
            const firewall = ofType(prod, TYPES.linodeFirewall).find((r) => r.name === `${instance.name}-firewall`) as RecordedResource;
            assert.equal(instance.inputs.firewallId, Number(firewall.id));
            assert.equal(firewall.inputs.linodes, undefined);
        }
    });

    it("exports the facts the next pulumi up compares against, each server's bootstrap digest known before its secrets", () => {
        const facts = prod.outputs.serverFacts as { name: string; image?: string; bootstrapDigest: string; protected: boolean; serverId: string }[];
        assert.deepEqual(facts.map((f) => f.name), ["app-1", "app-2", "lb-1", "lb-2", "db-1", "db-2", "db-3"]);
        assert.ok(!prod.secretOutputs.some((p) => p.startsWith("serverFacts")));
        const plan = buildPlan(parseStackConfig(raw(prodStack()), "prod"));
        for (const f of facts) {
            assert.match(f.bootstrapDigest, /^[0-9a-f]{64}$/);
            assert.equal(f.protected, false, "no server is protected itself");
            assert.equal(f.serverId, server(prod, f.name).id, "the provider's id of the server");
            assert.equal(f.bootstrapDigest, bootstrapDigest(plan, plan.nodes.find((n) => n.name === f.name) as never));
            assert.equal(f.image, String(server(prod, f.name).inputs.image));
        }
    });

    it("a server's bootstrap digest changes exactly when its real user-data does", async () => {
        const nodes = prodNodes();
        nodes.db[0].size = "cx33"; // no user-data change
        const edits: Record<string, unknown>[] = [
            { database: { ...JSON.parse(prodStack().values["vps-ha:database"]), synchronous: "on" } },
            { nodes },
            { mesh: { cidr: "10.78.0.0/24" } },
            { mesh: { cidr: "10.77.0.0/24", port: 51821 } },
            { admin: { sshCidrs: ["203.0.113.0/24"], sshPublicKeys: JSON.parse(prodStack().values["vps-ha:admin"]).sshPublicKeys } },
        ];
        const digests = (e: Evaluation) => Object.fromEntries((e.outputs.serverFacts as { name: string; bootstrapDigest: string }[]).map((f) => [f.name, f.bootstrapDigest]));
        for (const edit of edits) {
            const e = await evaluate(withConfig(edit));
            for (const node of Object.keys(prod.userData)) {
                assert.equal(digests(e)[node] !== digests(prod)[node], e.userData[node] !== prod.userData[node], `${JSON.stringify(edit).slice(0, 60)}: ${node}`);
            }
        }
    });

    it("a vps-ha upgrade replaces no server: each keeps its user-data and name, also after a deployment by an older version", async () => {
        // An older version's facts: a digest of the whole user-data (its code included), no image, no bootstrap digest.
        const olderFacts = (prod.outputs.serverFacts as Record<string, unknown>[]).map(({ bootstrapDigest: _, image: __, ...f }) => ({ ...f, userDataDigest: "0".repeat(64) }));
        for (const deployed of [prod, { ...prod, outputs: { ...prod.outputs, serverFacts: olderFacts } }]) {
            const next = await after(deployed, prodStack());
            for (const r of servers(next)) {
                assert.ok((r.options.ignoreChanges ?? []).includes(r.type === TYPES.linodeInstance ? "metadatas" : "userData"), `${r.name} would take a new user-data`);
                const suffix = next.resources.find((x) => x.name === `${r.name}-server-id`) as RecordedResource;
                assert.deepEqual(suffix.options.ignoreChanges, ["keepers"], `${r.name}: its name would follow the keepers`);
            }
        }
    });

    it("a host you bring keeps the setup it had (its bootstrap command's inputs ignored) unless the program sets it up again", async () => {
        const file = readStackFile(join(LAB_STACKS_DIR, "witness.yaml"));
        const run = (deployed?: Evaluation) => evaluateProgram({ stack: "witness", values: file.values, secretKeys: file.secretKeys, env: {}, ...(deployed ? { deployed: deployed.outputs } : {}) });
        const first = await run();
        const bootstrap = (e: Evaluation) => e.resources.find((r) => r.type === "command:remote:Command" && r.name === `witness-1${BOOTSTRAP_SUFFIX}`) as RecordedResource;
        assert.deepEqual(bootstrap(await run(first)).options.ignoreChanges, ["create", "stdin", "triggers"]);
        const moved = (first.outputs.serverFacts as Record<string, unknown>[]).map((f) => (f.name === "witness-1" ? { ...f, host: "198.18.0.250" } : f));
        assert.equal(bootstrap(await run({ ...first, outputs: { ...first.outputs, serverFacts: moved } })).options.ignoreChanges, undefined, "another host: set up again");
    });

    it("a server whose bootstrap identity changes is replaced with today's user-data under a new name", async () => {
        const changed = (prod.outputs.serverFacts as Record<string, unknown>[]).map((f) => (f.name === "db-2" || f.name === "app-1" ? { ...f, bootstrapDigest: "1".repeat(64) } : f));
        const next = await after({ ...prod, outputs: { ...prod.outputs, serverFacts: changed } }, prodStack());
        for (const r of servers(next)) {
            const replaced = r.name === "db-2" || r.name === "app-1";
            const key = r.type === TYPES.linodeInstance ? "metadatas" : "userData";
            assert.equal((r.options.ignoreChanges ?? []).includes(key), !replaced, r.name);
            const suffix = next.resources.find((x) => x.name === `${r.name}-server-id`) as RecordedResource;
            assert.equal(suffix.options.ignoreChanges === undefined, replaced, `${r.name}: suffix`);
        }
        // The member's old server stands down first (a primary hands over); the app node's is simply replaced.
        assert.deepEqual(next.resources.filter((r) => r.name.endsWith("-stand-down")).map((r) => r.name), ["db-2-stand-down"]);
        assert.ok(server(next, "db-2").options.dependsOn?.includes("db-2-stand-down"));
    });

    it("gives a replaced server a new name and keeps every other name, on both providers", async () => {
        // Another mesh port: every server's bootstrap changes (all would be replaced), first deploy for the check.
        const rekeyed = await evaluate(withConfig({ mesh: { cidr: "10.77.0.0/24", port: 51821 } }));
        const grown = prodNodes();
        grown.app.push({ name: "app-3", provider: "hcloud", region: "nbg1", size: "cx23" });
        const withApp3 = await evaluate(withConfig({ nodes: grown }));
        for (const r of servers(prod)) {
            assert.notEqual(serverName(server(rekeyed, r.name)), serverName(r), `${r.name}: a replacement must not reuse the name`);
            assert.equal(serverName(server(withApp3, r.name)), serverName(r), `${r.name}: unchanged, same name`);
            assert.match(serverName(r), new RegExp(`^vps-ha-prod-${r.name}-[0-9a-f]{8}$`));
        }
        for (const fw of prod.resources.filter((x) => x.type.endsWith("irewall:Firewall"))) {
            const again = rekeyed.resources.find((x) => x.type === fw.type && x.name === fw.name) as RecordedResource;
            assert.equal(again.inputs.label ?? again.inputs.name, fw.inputs.label ?? fw.inputs.name, "a firewall keeps its name");
        }
    });

    it("first deploy passes; a change taking two members down is refused before anything is created", async () => {
        const nodes = prodNodes();
        nodes.db[0].size = "cx33";
        nodes.db[1].size = "cx33";
        const { message, created } = await refusal(prod, withConfig({ nodes }));
        assert.match(message, /cannot be applied in one pulumi up:\n  - this change takes 2 database members or etcd voters down in one pulumi up: db-1 \(size cx23 -> cx33: powered off while resized\), db-2 \(size cx23 -> cx33/);
        assert.match(message, /in this order: db-1, db-2/);
        assert.deepEqual(created, ["pulumi:pulumi:StackReference"], "nothing but the read of the deployed stack");
        // Also when the deployed stack predates serverFacts (only its nodes output to go by).
        const old = await refusal({ ...prod, outputs: { nodes: prod.outputs.nodes } }, withConfig({ nodes }));
        assert.match(old.message, /takes 2 database members/);
    });

    it("a lower database.secretsVersion than the deployed stack's, or a rotation of a stack an older vps-ha deployed, is refused before anything is created", async () => {
        assert.equal(prod.outputs.databaseSecretsVersion, 1, "the deployment records its secrets' version");
        assert.equal(prod.outputs.databaseSecretsRotatable, true, "and that its members admit every version's logins");
        const database = JSON.parse(prodStack().values["vps-ha:database"]);
        const older = { ...prod, outputs: { ...prod.outputs, databaseSecretsRotatable: undefined } };
        const { message, created } = await refusal(older, withConfig({ database: { ...database, secretsVersion: 2 } }));
        assert.match(message, /^The stack file cannot be applied in one pulumi up:\n  - vps-ha:database\.secretsVersion is 2 in the stack file and 1 in the deployed stack, which an older vps-ha deployed: .* Run pulumi up once with the version at 1 .*then raise it\. Nothing was changed\.$/);
        assert.deepEqual(created, ["pulumi:pulumi:StackReference"], "nothing but the read of the deployed stack");
        const down = await refusal({ ...prod, outputs: { ...prod.outputs, databaseSecretsVersion: 3 } }, withConfig({ database: { ...database, secretsVersion: 2 } }));
        assert.match(down.message, /secretsVersion is 2 in the stack file and 3 in the deployed stack: a version only goes up .* Set it to 3 to keep the passwords, or to 4 to rotate them\. Nothing was changed\.$/);
        assert.deepEqual(down.created, ["pulumi:pulumi:StackReference"]);
        assert.deepEqual(secretsVersionProblems(undefined, 2, false), [], "nothing recorded (a first deployment, or one older than the output): nothing to compare");
        assert.deepEqual(secretsVersionProblems(1, 2, true), [], "a rotation of a stack that can");
        assert.equal(secretsVersionFromOutputs({ serverFacts: [] }), undefined);
        assert.equal(secretsVersionFromOutputs({ databaseSecretsVersion: 3 }), 3);
        for (const bad of [0, 1.5, "2", true]) assert.throws(() => secretsVersionFromOutputs({ databaseSecretsVersion: bad }), /databaseSecretsVersion output is .*, not a whole number from 1/);
    });

    it("a change of every member's bootstrap identity (another mesh port) is refused", async () => {
        const { message } = await refusal(prod, withConfig({ mesh: { cidr: "10.77.0.0/24", port: 51821 } }));
        assert.match(message, /takes 3 database members or etcd voters down in one pulumi up: db-1 \(its bootstrap identity changes: a new server\)/);
    });

    it("a member moved to another provider in one run: its old server stands down through its provider's API before the new one is created", async () => {
        // db-2 to Linode: the old Hetzner server is another resource, deleted at the end of the run.
        const moved = prodNodes();
        moved.db[1] = { name: "db-2", provider: "linode", region: "de-fra-2", size: "g6-standard-1" };
        const done = await after(prod, withConfig({ nodes: moved }));
        const instance = ofType(done, TYPES.linodeInstance).find((r) => r.name === "db-2") as RecordedResource;
        const step = done.resources.find((r) => r.type === "command:local:Command" && r.name === "db-2-stand-down") as RecordedResource;
        assert.ok(step, "a stand-down step for db-2");
        assert.equal(step.inputs.create, STAND_DOWN_COMMAND);
        const env = step.inputs.environment as Record<string, string>;
        assert.deepEqual({ node: env[STAND_DOWN_ENV.node], provider: env[STAND_DOWN_ENV.provider], server: env[STAND_DOWN_ENV.server] }, { node: "db-2", provider: "hcloud", server: server(prod, "db-2").id });
        assert.deepEqual(standDownEnvProblems(env), [], "the step's environment is what the tool accepts");
        assert.ok(instance.options.dependsOn?.includes("db-2-stand-down"), `the new server waits for it (${instance.options.dependsOn?.join(", ")})`);
        assert.deepEqual(done.resources.filter((r) => r.name.endsWith("-stand-down")).map((r) => r.name), ["db-2-stand-down"], "no other server stands down");
        const guard = done.resources.find((r) => r.type === "vps-ha:index:MemberGuard") as RecordedResource;
        assert.ok(guard.options.dependsOn?.includes("db-2"), "the guard waits for the new server");
        assert.equal(done.userData["db-1"], prod.userData["db-1"], "the other members keep their user-data");
        // The run after: the move is done, nothing stands down.
        const next = await after(done, withConfig({ nodes: moved }));
        assert.equal(next.resources.filter((r) => r.name.endsWith("-stand-down")).length, 0);
        // A token set in the stack's config reaches the step as a secret; otherwise its environment variable is inherited.
        const file = withConfig({ nodes: moved });
        const withToken = await evaluateProgram({ stack: "prod", values: { ...file.values, "hcloud:token": "t0ken" }, secretKeys: [...file.secretKeys, "hcloud:token"], env: {}, deployed: prod.outputs });
        const secretStep = withToken.resources.find((r) => r.name === "db-2-stand-down") as RecordedResource;
        assert.equal((secretStep.inputs.environment as Record<string, string>).HCLOUD_TOKEN, "t0ken");
        assert.ok(secretStep.secretInputs.includes("environment"), "the token stays a secret");
        const { "hcloud:token": _, ...noToken } = file.values;
        const inherited = await evaluateProgram({ stack: "prod", values: noToken, secretKeys: file.secretKeys.filter((k) => k !== "hcloud:token"), env: { HCLOUD_TOKEN: "from-env" }, deployed: prod.outputs });
        assert.equal(((inherited.resources.find((r) => r.name === "db-2-stand-down") as RecordedResource).inputs.environment as Record<string, string>).HCLOUD_TOKEN, undefined, "not copied from the environment into the state");
    });

    it("retiring a member is one run: its server goes, the guard no longer waits for it", async () => {
        // db-2 leaves and db-4 takes its place: one member down, so one run.
        const swapped = prodNodes();
        swapped.db[1] = { name: "db-4", provider: "hcloud", region: "nbg1", size: "cx23" };
        const next = await after(prod, withConfig({ nodes: swapped }));
        assert.deepEqual(servers(next).map((r) => r.name).filter((n) => n.startsWith("db-")).sort(), ["db-1", "db-3", "db-4"]);
        const guard = next.resources.find((r) => r.type === "vps-ha:index:MemberGuard") as RecordedResource;
        assert.ok(!guard.options.dependsOn?.includes("db-2") && guard.options.dependsOn?.includes("db-4"), `${guard.options.dependsOn?.join(", ")}`);
        assert.equal(next.resources.filter((r) => r.name.endsWith("-stand-down")).length, 0, "a server removed stands down by its deletion");
    });

    it("a deployment whose member servers an older vps-ha protected: a move or retirement is refused until one run at this version", async () => {
        const moved = prodNodes();
        moved.db[1] = { name: "db-2", provider: "linode", region: "de-fra-2", size: "g6-standard-1" };
        const olderFacts = (prod.outputs.serverFacts as Record<string, unknown>[]).map(({ serverId: _, ...f }) => ({ ...f, protected: String(f.name).startsWith("db-") }));
        const older = { ...prod, outputs: { ...prod.outputs, serverFacts: olderFacts } };
        const { message, created } = await refusal(older, withConfig({ nodes: moved }));
        assert.match(message, /db-2 moves from hcloud\/nbg1\/cx23 to linode\/de-fra-2\/g6-standard-1: a new server, but its old server was deployed by an older vps-ha \(protected on the server itself/);
        assert.deepEqual(created, ["pulumi:pulumi:StackReference"]);
        const once = await after(older, prodStack());
        assert.deepEqual(servers(once).map((r) => [r.name, r.options.protect]).filter(([, p]) => p !== undefined), [], "the run at this version lifts every server's own protection");
        const done = await after(once, withConfig({ nodes: moved }));
        assert.ok(done.resources.some((r) => r.name === "db-2-stand-down"));
    });

    it("Hetzner: reuses an admin key the project has, and uploads one it lacks", async () => {
        const key = JSON.parse(prodStack().values["vps-ha:admin"]).sshPublicKeys[0] as string;
        const sshKeyType = "hcloud:index/sshKey:SshKey";
        assert.equal(ofType(prod, sshKeyType).length, 1);
        assert.equal((ofType(prod, sshKeyType)[0].inputs.labels as Record<string, string>)["vps-ha-owner"], "vps-ha-prod");
        const existing = await evaluateProgram({
            stack: "prod", values: prodStack().values, secretKeys: prodStack().secretKeys, env: {},
            hcloudSshKeys: [{ id: 4242, name: "laptop", fingerprint: sshKeyFingerprint(key), publicKey: key, labels: {} }],
        });
        assert.equal(ofType(existing, sshKeyType).length, 0);
        for (const r of ofType(existing, TYPES.hcloudServer)) assert.deepEqual(r.inputs.sshKeys, ["4242"]);
    });
});
