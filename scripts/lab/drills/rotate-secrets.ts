// rotate-secrets: the lab's stack file with database.secretsVersion raised by one and new R2 keys
// (a token made beside the old one: the lab's stand-in for R2 admits both), as one `pulumi up`
// after the running deployment: the program replaces no server; every database, replication,
// rewind, REST and pooler password is a new one. The desired state rolls out under
// writes through the poolers and HTTP, the groups in turn (members, HAProxy pair, app nodes); the
// writer takes the app's new URL when its app node does, as the app's web instances do. Then the
// old logins are refused (the app's, the superuser's, the poolers' admin console, Patroni's REST
// API), the new ones work, the replicas stream as the new replication login; nothing failed, at
// most one switchover, no node rebuilt; WAL goes to the bucket with the new R2 key alone. The lab
// runs the rotated stack file afterwards (with the stand-in R2 key, which the stand-in still admits:
// deleting the old token is R2's, not the stack's).
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { passwordResourceName } from "../../../components/database";
import { DB_PORTS, HAPROXY_PORTS } from "../../../components/plan";
import { PG_SOCKET_DIR } from "../../../components/render/patroni";
import { POOLER_ADMIN_USER } from "../../../components/render/pgbouncer";
import { loginRole } from "../../../components/secrets-version";
import { publishLabDns } from "../dns";
import { sleep } from "../exec";
import { parsePostgresUrl } from "../load/writes";
import { STATE_DIR } from "../paths";
import { labProgram } from "../program";
import { s3Keys, s3KeyUse, setS3Keys } from "../s3";
import { readStackFile } from "../../lib/stack-file";
import { execInNode, labNodes, NodeState } from "../realize";
import { LabStack, labStack, saveLabStack } from "../stack";
import { Evaluation } from "../../lib/mock-program";
import { labDnsRecords, requireOwnBringUp } from "../up";
import { currentPrimary, SWITCHOVER_PAUSE_SECONDS } from "./db";
import { rolloutUnderLoad } from "./rollout";
import { accepted, applyToProgram, labSource } from "./stack-change";
import { Drill, drillChecks } from "./types";

/** How long after the last app node applied the change the old logins may still work (the members' retire polls every second). */
const RETIRE_BOUND_SECONDS = 120;
/** How long a WAL segment switched after the rollout may take to reach the bucket. */
const ARCHIVE_BOUND_SECONDS = 60;

type Config = Record<string, unknown>;

/** `file` with vps-ha:database.secretsVersion one above its own, written to `out`; the versions. */
export function rotatedStackFile(file: string, out: string): { from: number; to: number } {
    const doc = parse(readFileSync(file, "utf8")) as { config?: Config } | null;
    const database = doc?.config?.["vps-ha:database"];
    if (!database || typeof database !== "object" || Array.isArray(database)) throw new Error(`rotate-secrets: ${file} has no vps-ha:database object`);
    const from = (database as Config).secretsVersion === undefined ? 1 : Number((database as Config).secretsVersion);
    if (!Number.isSafeInteger(from) || from < 1) throw new Error(`rotate-secrets: ${file}'s secretsVersion is ${JSON.stringify((database as Config).secretsVersion)}`);
    const config = { ...doc?.config, "vps-ha:database": { ...(database as Config), secretsVersion: from + 1 } };
    writeFileSync(out, `# ${file} with its database secrets rotated (rotate-secrets)\n${stringify({ config })}`);
    return { from, to: from + 1 };
}

/** A password the program generated, by its resource's name. */
function password(e: Evaluation, name: string): string {
    const r = e.resources.find((x) => x.type === "random:index/randomPassword:RandomPassword" && x.name === name);
    if (!r || typeof r.outputs.result !== "string") throw new Error(`rotate-secrets: the program made no password ${name}`);
    return r.outputs.result;
}

/** psql from `node` with a libpq connection string and password; its exit code and output. */
async function psql(node: string, conninfo: string, pw: string, query: string): Promise<{ ok: boolean; out: string }> {
    const r = await execInNode(node, ["psql", conninfo, "-XAtq", "-c", query], { timeoutMs: 15_000, allowFail: true, env: { PGPASSWORD: pw, PGCONNECT_TIMEOUT: "3" } });
    return { ok: r.code === 0, out: (r.code === 0 ? r.stdout : r.stderr).trim().split("\n").slice(-1)[0] ?? "" };
}

/** Patroni's REST API on `member` asked for a reload with `pw`: the HTTP status. */
async function restStatus(member: NodeState, pw: string): Promise<string> {
    const r = await execInNode(member.name, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", "-u", `patroni:${pw}`, "-X", "POST", `http://${member.meshAddress}:${DB_PORTS.patroni}/reload`], { timeoutMs: 10_000, allowFail: true });
    return r.stdout.trim();
}

export const rotateSecrets: Drill = {
    name: "rotate-secrets",
    description: `database.secretsVersion raised and new R2 keys in one change: every database, replication, rewind, REST and pooler password is new, no server replaced; the groups roll out in turn under writes through the poolers and HTTP; the old logins are refused afterwards, the new ones work; nothing fails, the members take the new passwords by a reload of Patroni, so no primary is handed over: writes pause <= ${SWITCHOVER_PAUSE_SECONDS} s, no switchover, no node rebuilt`,
    run: async (ctx) => {
        requireOwnBringUp("rotate-secrets");
        const deployedSource = labSource();
        const source = { stack: deployedSource.stack, file: join(STATE_DIR, "rotate-secrets.yaml") };
        const { from, to } = rotatedStackFile(deployedSource.file, source.file);
        const checks = drillChecks([`database.secretsVersion ${from} -> ${to} in ${deployedSource.file}`]);
        const { check, notes } = checks;

        // The program decides against the running deployment: a rotation, no server replaced.
        const deployed = accepted(await applyToProgram(deployedSource, undefined, undefined), "the lab's stack file").evaluation;
        const change = accepted(await applyToProgram(source, undefined, deployed.outputs), "the rotated stack file");
        const changed = change.changes.filter((c) => c.kind !== "same");
        check(changed.length === 0, `the program replaces no server (${changed.map((c) => `${c.name} ${c.kind}`).join(", ") || "every one the same"})`);
        const rotated = change.evaluation;
        const old = { superuser: password(deployed, passwordResourceName("database", "superuser", from)), poolerAdmin: password(deployed, passwordResourceName("database", "poolerAdmin", from)), restApi: password(deployed, passwordResourceName("database", "restApi", from)) };
        const now = { superuser: password(rotated, passwordResourceName("database", "superuser", to)), poolerAdmin: password(rotated, passwordResourceName("database", "poolerAdmin", to)), restApi: password(rotated, passwordResourceName("database", "restApi", to)) };
        // New R2 keys beside the rotation, as a secret: the stand-in admits them with the old ones.
        const database = JSON.parse(readStackFile(source.file).values["vps-ha:database"]) as Config & { backups?: Config };
        if (!database.backups) throw new Error("rotate-secrets: the lab's stack has no backups");
        const r2 = { accessKeyId: `lab-r2-v${to}`, secretAccessKey: randomBytes(20).toString("hex") };
        setS3Keys([...s3Keys().filter((k) => k.accessKeyId !== r2.accessKeyId), r2]);
        const program = await labProgram(source, { database: { ...database, backups: { ...database.backups, ...r2 } } }, deployed.outputs, ["database"]);
        const before = labStack() as LabStack;
        if (!before.connectionString || !program.connectionString || !program.pooledConnectionString) throw new Error("rotate-secrets: the lab stack has no connection string");
        const oldUrl = before.connectionString;
        const client = labNodes().find((n) => n.role === "app") as NodeState;
        const leader = await currentPrimary();

        const result = await rolloutUnderLoad(ctx, "rotate-secrets", "every node", async () => {
            await publishLabDns(labDnsRecords(program), ctx.log);
            ctx.log(`rotate-secrets: published secrets version ${to}`);
        }, check, SWITCHOVER_PAUSE_SECONDS, {
            followApp: true,
            afterRollout: async () => {
                // The members disable the old logins once every app node reports the new version.
                const started = Date.now();
                let refused = await psql(client.name, oldUrl, parsePostgresUrl(oldUrl).password, "select 1");
                while (refused.ok && Date.now() - started < RETIRE_BOUND_SECONDS * 1000) {
                    await sleep(2_000);
                    refused = await psql(client.name, oldUrl, parsePostgresUrl(oldUrl).password, "select 1");
                }
                check(!refused.ok, `the app's old login ${parsePostgresUrl(oldUrl).user} is refused ${((Date.now() - started) / 1000).toFixed(0)} s after the rollout (bound ${RETIRE_BOUND_SECONDS} s): ${refused.out}`);
                // Every member has the new R2 key: a WAL segment switched now reaches the bucket with it, and nothing uses the old one.
                const primary = (await currentPrimary()) ?? client.name;
                const switched = Date.now();
                await execInNode(primary, ["psql", "-h", PG_SOCKET_DIR, "-U", "postgres", "-XAtq", "-c", "SELECT pg_switch_wal()"], { user: "postgres", timeoutMs: 10_000, allowFail: true });
                let used = s3KeyUse().filter((u) => u.at >= switched);
                while (!used.some((u) => u.key === r2.accessKeyId) && Date.now() - switched < ARCHIVE_BOUND_SECONDS * 1000) {
                    await sleep(2_000);
                    used = s3KeyUse().filter((u) => u.at >= switched);
                }
                const keys = [...new Set(used.map((u) => u.key ?? "unsigned"))];
                check(keys.length === 1 && keys[0] === r2.accessKeyId, `WAL reaches the bucket with the new R2 key alone after the rollout: ${used.length} requests with ${keys.join(", ") || "no key"} within ${ARCHIVE_BOUND_SECONDS} s`);
                // From here the lab, its writer's reads included, uses the new URLs.
                saveLabStack({ ...before, source, connectionString: program.connectionString, pooledConnectionString: program.pooledConnectionString });
            },
        });

        // Patroni takes new logins and passwords by a reload: PostgreSQL keeps running, the primary stays.
        const leaderAfter = await currentPrimary();
        check(leader !== undefined && leaderAfter === leader, `no primary handed over: ${leader ?? "?"} leads before and ${leaderAfter ?? "?"} after`);
        const url = program.connectionString;
        const login = await psql(client.name, url, parsePostgresUrl(url).password, "select session_user || ' as ' || current_user");
        check(login.ok && login.out === `${loginRole("app", to)} as app`, `the app's new login works, acting as the owner role: ${login.out}`);
        const members = labNodes().filter((n) => n.role === "db");
        const [a, b] = members;
        const superuser = (pw: string) => psql(a.name, `host=${b.meshAddress} port=${DB_PORTS.postgres} user=postgres dbname=postgres`, pw, "select 1");
        const [suOld, suNew] = [await superuser(old.superuser), await superuser(now.superuser)];
        check(!suOld.ok && suNew.ok, `the superuser's old password is refused (${suOld.out}), the new one works`);
        const primary = await currentPrimary();
        const streaming = await execInNode(primary ?? a.name, ["psql", "-h", PG_SOCKET_DIR, "-U", "postgres", "-XAtq", "-c", "select string_agg(distinct usename, ',') from pg_stat_replication"], { user: "postgres", timeoutMs: 10_000, allowFail: true });
        check(streaming.stdout.trim() === loginRole("replication", to), `the replicas stream as ${loginRole("replication", to)} (${streaming.stdout.trim() || streaming.stderr.trim()})`);
        for (const lb of labNodes().filter((n) => n.role === "haproxy")) {
            const admin = (pw: string) => psql(a.name, `host=${lb.meshAddress} port=${HAPROXY_PORTS.pooler} user=${POOLER_ADMIN_USER} dbname=pgbouncer`, pw, "SHOW VERSION");
            const [o, n] = [await admin(old.poolerAdmin), await admin(now.poolerAdmin)];
            check(!o.ok && n.ok, `${lb.name}'s pooler admin console refuses the old password (${o.out}), takes the new one`);
        }
        for (const m of members) {
            const [o, n] = [await restStatus(m, old.restApi), await restStatus(m, now.restApi)];
            check(o === "401" && /^2\d\d$/.test(n), `${m.name}'s Patroni REST API: the old password ${o}, the new one ${n}`);
        }
        check(result.failedRequests === 0, `no pooled write or request failed (${result.failedRequests} failed)`);
        return { ...result, checksPassed: (result.checksPassed ?? result.passed) && checks.ok, passed: result.passed && checks.ok, notes: [...result.notes, ...notes] };
    },
};
