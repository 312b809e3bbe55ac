// Rotating the database secrets of a deployed stack, with the program under the mock runtime: one
// `pulumi up` after a deployment at version 1, the stack file at version 2, then the run after it.
import { strict as assert } from "node:assert";
import { passwordResourceName } from "../components/database";
import { DesiredDocument } from "../components/desired-state-records";
import { DB_ROLES_CONFIG, DB_ROLES_RETIRE_UNIT, REWIND_GRANTS } from "../components/render/db-roles";
import { PATRONI_CONFIG } from "../components/render/patroni";
import { PGBOUNCER_USERLIST } from "../components/render/pgbouncer";
import { SWITCHOVER_CONFIG } from "../components/render/switchover";
import { ROLLOUT_STATUS_PORT } from "../components/plan";
import { evaluateProgram, Evaluation } from "../scripts/lib/mock-program";
import { StackFile } from "../scripts/lib/stack-file";
import { parse } from "yaml";
import { evaluate } from "./helpers/program";
import { prodStack, withConfig } from "./helpers/stack";

const database = () => JSON.parse(prodStack().values["vps-ha:database"]);
const at = (doc: DesiredDocument, path: string) => doc.files.find((f) => f.path === path)?.content;
const json = (doc: DesiredDocument, path: string) => JSON.parse(at(doc, path) ?? "null");
const userlist = (doc: DesiredDocument) => Object.fromEntries((at(doc, PGBOUNCER_USERLIST) ?? "").trim().split("\n").map((l) => l.split(" ").map((q) => q.slice(1, -1))));

function next(deployed: Evaluation, file: StackFile): Promise<Evaluation> {
    return evaluateProgram({ stack: "prod", values: file.values, secretKeys: file.secretKeys, env: {}, deployed: deployed.outputs });
}

describe("passwordResourceName", () => {
    it("keeps version 1's names, ends a later version's in -v<version>, and never versions the backup cipher", () => {
        assert.equal(passwordResourceName("database", "app", 1), "database-app");
        assert.equal(passwordResourceName("database", "superuser", 2), "database-superuser-v2");
        assert.equal(passwordResourceName("database", "restApi", 12), "database-restApi-v12");
        assert.equal(passwordResourceName("database", "backupCipher", 1), "database-backupCipher");
        assert.equal(passwordResourceName("database", "backupCipher", 3), "database-backupCipher");
    });
});

describe("secrets rotation (mock runtime)", function () {
    this.timeout(120000);
    let v1: Evaluation;
    let rotated: Evaluation;
    let settled: Evaluation;
    const rotatedFile = () => withConfig({ database: { ...database(), secretsVersion: 2 } });
    before(async () => {
        v1 = await evaluate();
        rotated = await next(v1, rotatedFile());
        settled = await next(rotated, rotatedFile());
    });
    const role = (e: Evaluation, r: string) => e.outputs.nodes instanceof Array ? (e.outputs.nodes as { name: string; role: string }[]).filter((n) => n.role === r).map((n) => n.name) : [];

    it("replaces no server: every node's user-data is byte for byte the same", () => {
        assert.deepEqual(Object.keys(rotated.userData).sort(), Object.keys(v1.userData).sort());
        for (const [node, userData] of Object.entries(v1.userData)) assert.equal(rotated.userData[node], userData, node);
        assert.equal(rotated.outputs.databaseSecretsVersion, 2);
    });

    it("keeps the version before's passwords for the run and makes the new version's beside them", () => {
        const passwords = (e: Evaluation) => Object.fromEntries(e.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword" && r.name.startsWith("database-")).map((r) => [r.name, String(r.outputs.result)]));
        const before = passwords(v1);
        const during = passwords(rotated);
        for (const p of ["superuser", "app", "poolerAdmin"]) {
            assert.equal(during[`database-${p}`], before[`database-${p}`], `${p}: the version before's, the same`);
            assert.ok(during[`database-${p}-v2`] && during[`database-${p}-v2`] !== before[`database-${p}`], `${p}: a new one`);
        }
        for (const p of ["replication", "rewind", "restApi"]) assert.equal(during[`database-${p}`], undefined, `${p}: the version before's is not needed`);
        assert.equal(during["database-backupCipher"], before["database-backupCipher"], "the backup cipher has no version");
        const after = passwords(settled);
        for (const p of ["superuser", "replication", "rewind", "app", "restApi", "poolerAdmin"]) {
            assert.equal(after[`database-${p}-v2`], during[`database-${p}-v2`], `${p}: the next run keeps version 2's`);
            assert.equal(after[`database-${p}`], undefined, `${p}: and drops version 1's`);
        }
        // The URLs the app and `pulumi stack output` give log in as version 2's login.
        assert.match(String(rotated.outputs.pooledConnectionString), new RegExp(`^postgresql://app_v2:${during["database-app-v2"]}@`));
    });

    it("the members make the new logins before Patroni uses them, and retire the old ones once the app nodes report version 2", () => {
        const members = role(v1, "db");
        const apps = role(v1, "app");
        assert.ok(members.length === 3 && apps.length > 0);
        for (const m of members) {
            const doc = rotated.desired[m];
            const config = json(doc, DB_ROLES_CONFIG);
            assert.deepEqual(config.roles.map((r: { name: string }) => r.name), ["app_v2", "replicator_v2", "rewinder_v2"], m);
            assert.deepEqual(config.roles[0].memberOf, ["app"]);
            assert.equal(config.roles[0].setRole, "app");
            assert.deepEqual(config.roles[1].options, ["LOGIN", "REPLICATION"]);
            assert.deepEqual(config.roles[2].grants, REWIND_GRANTS);
            assert.equal(config.superuserPasswords.length, 2, "the new superuser password, then the one before's");
            assert.deepEqual(config.retire, ["app", "replicator", "rewinder"]);
            assert.deepEqual(config.after, { nodes: apps.map((a) => ({ name: a, meshAddress: rotated.outputs.nodes instanceof Array ? (rotated.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === a)!.meshAddress : "" })), statusPort: ROLLOUT_STATUS_PORT, credentials: 2 });
            assert.ok(doc.files.some((f) => f.path === `/etc/systemd/system/${DB_ROLES_RETIRE_UNIT}`), m);
            // The roles' tool runs in the member's turn before Patroni reloads with them.
            const restarts = (doc.restarts ?? []).map((r) => r.unit);
            assert.ok(restarts.indexOf("vps-ha-db-roles.service") >= 0 && restarts.indexOf("vps-ha-db-roles.service") < restarts.indexOf("vps-ha-patroni.service"), `${m}: ${restarts.join(", ")}`);
            const patroni = parse(at(doc, PATRONI_CONFIG)!, { version: "1.1" });
            assert.equal(patroni.postgresql.authentication.replication.username, "replicator_v2");
            assert.equal(patroni.postgresql.authentication.rewind.username, "rewinder_v2");
            // pg_hba's rules are the same through the rotation: a primary not yet changed admits the new logins.
            assert.deepEqual(patroni.postgresql.pg_hba, parse(at(v1.desired[m], PATRONI_CONFIG)!, { version: "1.1" }).postgresql.pg_hba, m);
            assert.ok(json(doc, SWITCHOVER_CONFIG).previousPoolerAdminPassword, `${m}: the switchover tool tries the poolers' admin password before the new one's`);
            assert.equal(doc.rollout?.credentials, 2);
            assert.equal(doc.rollout?.after, undefined, "the members go first");
            // The run after: nothing left to retire, no second password.
            const later = json(settled.desired[m], DB_ROLES_CONFIG);
            assert.deepEqual(later.retire, []);
            assert.equal(later.after, undefined);
            assert.equal(later.superuserPasswords.length, 1);
            assert.ok(!settled.desired[m].files.some((f) => f.path.endsWith(DB_ROLES_RETIRE_UNIT)), m);
            assert.equal(json(settled.desired[m], SWITCHOVER_CONFIG).previousPoolerAdminPassword, undefined);
        }
        assert.deepEqual(json(v1.desired[members[0]], DB_ROLES_CONFIG).retire, [], "no rotation, nothing to retire");
    });

    it("the poolers admit both app logins after the members moved; the app nodes log in with the new one after the poolers moved", () => {
        const members = role(v1, "db");
        const lbs = role(v1, "haproxy");
        const apps = role(v1, "app");
        const mesh = (names: string[]) => names.map((name) => ({ name, meshAddress: (rotated.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === name)!.meshAddress }));
        for (const lb of lbs) {
            assert.deepEqual(Object.keys(userlist(rotated.desired[lb])).sort(), ["app", "app_v2", "vps_ha_pooler"], lb);
            assert.deepEqual(rotated.desired[lb].rollout?.after, { nodes: mesh(members), credentials: 2 }, lb);
            assert.deepEqual(Object.keys(userlist(settled.desired[lb])).sort(), ["app_v2", "vps_ha_pooler"], `${lb}: the run after admits the new login alone`);
            assert.equal(settled.desired[lb].rollout?.after, undefined);
        }
        for (const app of apps) {
            assert.deepEqual(rotated.desired[app].rollout?.after, { nodes: mesh(lbs), credentials: 2 }, app);
            const text = JSON.stringify(rotated.desired[app].files);
            assert.match(text, /postgresql:\/\/app_v2:/, app);
            assert.doesNotMatch(text, /postgresql:\/\/app:/, app);
        }
        // Without a rotation, the groups do not wait for each other.
        for (const n of Object.keys(v1.desired)) assert.equal(v1.desired[n].rollout?.after, undefined, n);
    });
});
