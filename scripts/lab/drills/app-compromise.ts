// app-compromise: an attacker who runs code in the app's container, tried from inside the running
// container of an app node (podman exec, as the app itself): the metadata service, the node's
// files, every mesh port of every other node, Patroni's REST writes and etcd, PostgreSQL's
// privileged roles through HAProxy, the backup bucket and what the node holds of the backups. Every attempt must
// be refused; what the app needs (its database URLs, HAProxy's database and pooler ports) is
// shown to work in the same run, so a refusal is not a broken network.
//
// The attacker brings its tools, as one with the internet open would: the stand-in image has
// BusyBox alone, so the node's psql and curl and their libraries are copied into the container's
// /tmp. The bucket is tried at the lab's R2 stand-in, which checks signatures as R2 does.
import { parse } from "yaml";
import { parseStackConfig } from "../../../components/config";
import { DB_PORTS, HAPROXY_PORTS, portRules } from "../../../components/plan";
import { CONTAINER_MESH_PORTS, METADATA_ADDRESSES } from "../../../components/render/nftables";
import { DB_USERS, PATRONI_CONFIG, PG_BIN_DIR } from "../../../components/render/patroni";
import { PGBACKREST_CONF } from "../../../components/render/pgbackrest";
import { POOLER_ADMIN_USER, POOLER_GUARD_CONFIG } from "../../../components/render/pgbouncer";
import { APP_ENV_FILE } from "../../../components/render/app";
import { DESIRED_STATE_DIR } from "../../../components/render/desired-agent";
import { WIREGUARD_DIR } from "../../../components/render/wireguard";
import { readStackFile } from "../../lib/stack-file";
import { killGroup, sleep } from "../exec";
import { waitHealthy } from "../health";
import { parsePostgresUrl } from "../load/writes";
import { execInNode, labNodes, NodeState, spawnInNode } from "../realize";
import { labStack } from "../stack";
import { Attempt, attemptTable, batchScript, BB, connectSnippet, httpSnippet, Listener, MeshNode, networkOutcome, parseBatch, parseListeners, pgOutcome, portTargets } from "./app-compromise-plan";
import { shellQuote as shq } from "../../../components/render/shell";
import { pickNode } from "./harness";
import { Drill, DrillResult } from "./types";

/** Where the attacker's tools go inside the container (its own tmpfs). */
const TOOLS = "/tmp/vps-ha-attacker";
const tool = (name: string) => `${TOOLS}/ld-linux-x86-64.so.2 --library-path ${TOOLS} ${TOOLS}/${name}`;
const PSQL = tool("psql");
const WRONG_PASSWORD = "not-the-password";
/** The metadata stand-in's answer: what root on the node must read, and the container must not. */
const METADATA_BODY = "vps-ha lab metadata stand-in";
const METADATA_DIR = "/run/vps-ha-lab-metadata";
/** Where the node keeps what an attacker wants (the agents' state, cloud-init's copies of the user-data). */
const NODE_SECRET_PATHS = [WIREGUARD_DIR, "/etc/vps-ha", DESIRED_STATE_DIR, "/var/lib/cloud/instance", "/var/lib/cloud/seed", "/etc/shadow"];
/** Searched for other roles' secrets (the image store is left out: the stand-in image only). */
const SEARCHED_DIRS = ["/etc", "/var/lib", "/root", "/home", "/usr/local", "/run", "/opt", "/srv"];

const podmanEnv = { PODMAN_IGNORE_CGROUPSV1_WARNING: "1" };

export const appCompromise: Drill = {
    name: "app-compromise",
    description: "from inside the app container (--node NAME, an app node): the metadata service, the node's files, every mesh port of the other nodes, Patroni's REST writes, etcd, PostgreSQL's privileged roles through HAProxy, the backup bucket and credentials; each must be refused, the app's own URLs work",
    async run(ctx): Promise<DrillResult> {
        const notes: string[] = [];
        const started = Date.now();
        await waitHealthy(ctx.log, 90_000);
        const target = await pickNode(ctx, () => labNodes().find((n) => n.role === "app" && !n.isolated)?.name, "app node");
        const app = labNodes().find((n) => n.name === target) as NodeState;
        if (app.role !== "app") throw new Error(`app-compromise: ${target} is not an app node`);
        const stack = labStack();
        if (!stack?.source || !stack.connectionString) throw new Error("app-compromise: the lab saved no stack source or connection string (is the lab up with a database?)");
        const file = readStackFile(stack.source.file);
        const config = parseStackConfig({ values: file.values, secretKeys: new Set(file.secretKeys), env: {}, offline: true }, stack.source.stack);
        const rules = portRules(config);
        const nodes = labNodes().filter((n) => !n.isolated);
        const container = await appContainer(target);
        const attempts: Attempt[] = [];
        const push = (a: Attempt) => {
            attempts.push(a);
            ctx.log(`app-compromise: ${a.ok ? "" : "UNEXPECTED: "}${a.what} -> ${a.target}: ${a.result}`);
        };
        const inside = async (snippets: string[], timeoutMs: number, what: string) => {
            const r = await execInNode(target, ["podman", "exec", container, "/bin/sh", "-c", batchScript(snippets)], { timeoutMs, allowFail: true, env: podmanEnv });
            if (r.code !== 0) notes.push(`${what}: podman exec ended with ${r.code}: ${r.stderr.trim().slice(-200)}`);
            return parseBatch(r.stdout, snippets.length);
        };

        await bringTools(target, container);
        notes.push(`from ${container} on ${target} (mesh ${app.meshAddress}); the attacker's psql and curl copied into its ${TOOLS}`);

        // What the app needs, first: its two URLs log in and query, from inside.
        const url = parsePostgresUrl(stack.connectionString);
        const own = await inside([
            `PGCONNECT_TIMEOUT=5 ${BB} timeout 15 ${PSQL} "$DATABASE_URL" -XAtqw -c "select current_user || '@' || inet_server_addr()"`,
            `[ -n "$DATABASE_POOLED_URL" ] || { echo "no DATABASE_POOLED_URL"; exit 3; }; PGCONNECT_TIMEOUT=5 ${BB} timeout 15 ${PSQL} "$DATABASE_POOLED_URL" -XAtqw -c "select current_user || '@' || inet_server_addr()"`,
        ], 60_000, "the app's URLs");
        own.forEach((r, i) => push({ what: i === 0 ? "the app's DATABASE_URL (HAProxy's primary port)" : "the app's DATABASE_POOLED_URL (the poolers)", target: url.hosts.join(","), expect: "allowed", ok: r.rc === 0 && r.output.startsWith(`${url.user}@`), result: r.rc === 0 ? `logged in as ${r.output}` : r.output }));

        // The metadata service: a stand-in on its address inside the node, which root reaches.
        await metadataAttempts(target, container, inside, push, notes);

        // The node's files: each exists on the node (root lists it), none is there for the container.
        const listed = await execInNode(target, ["sh", "-c", `for p in ${NODE_SECRET_PATHS.map(shq).join(" ")}; do [ -e "$p" ] && find "$p" -maxdepth 3 -type f 2>/dev/null; done | sort | head -n 80`], { timeoutMs: 20_000, allowFail: true });
        const files = listed.stdout.split("\n").filter(Boolean);
        const required = [`${WIREGUARD_DIR}/wg0.conf`, "/var/lib/cloud/instance/user-data.txt", APP_ENV_FILE];
        for (const f of required) if (!files.includes(f)) notes.push(`the node has no ${f}: the file list is the node's own (${files.length} files)`);
        const reads = await inside(files.map((f) => `${BB} timeout 3 ${BB} cat ${shq(f)} >/dev/null`), 30_000 + files.length * 3_000, "files");
        files.forEach((f, i) => push({ what: "read the node's file", target: f, expect: "refused", ok: reads[i].rc !== 0, result: reads[i].rc === 0 ? "READ" : reads[i].output.replace(/^cat: /, "") || `exit ${reads[i].rc}` }));

        // Every port the mesh carries to another node, and the node's own services.
        const listeners: Record<string, Listener[]> = {};
        for (const n of nodes) listeners[n.name] = parseListeners((await execInNode(n.name, ["ss", "-Htln"], { timeoutMs: 10_000, allowFail: true })).stdout);
        const mesh: MeshNode[] = nodes.map((n) => ({ name: n.name, role: n.role as MeshNode["role"], meshAddress: n.meshAddress }));
        const targets = portTargets(mesh.find((n) => n.name === target) as MeshNode, mesh, rules, listeners, CONTAINER_MESH_PORTS);
        const probes = await inside(targets.map((t) => connectSnippet(t.address, t.port)), 30_000 + targets.length * 5_000, "ports");
        targets.forEach((t, i) => {
            const o = networkOutcome(probes[i]);
            push({ what: `connect to ${t.services.join("/")}`, target: `${t.node} ${t.address}:${t.port}`, expect: t.open ? "allowed" : "refused", ok: o.outcome === (t.open ? "reached" : "refused"), result: o.outcome === "reached" ? `CONNECTED (${o.detail})` : o.detail });
        });

        // Patroni's REST writes and an etcd write on every member, raw HTTP from inside.
        const members = nodes.filter((n) => n.role === "db");
        const writes = members.flatMap((m) => [
            { what: "Patroni REST: POST /switchover", port: DB_PORTS.patroni, snippet: httpSnippet(m.meshAddress, DB_PORTS.patroni, "POST", "/switchover", JSON.stringify({ leader: m.name })), node: m },
            { what: "Patroni REST: PATCH /config (archive_command)", port: DB_PORTS.patroni, snippet: httpSnippet(m.meshAddress, DB_PORTS.patroni, "PATCH", "/config", JSON.stringify({ postgresql: { parameters: { archive_command: "id > /tmp/owned" } } })), node: m },
            { what: "etcd: PUT a key (v3 kv/put)", port: DB_PORTS.etcdClient, snippet: httpSnippet(m.meshAddress, DB_PORTS.etcdClient, "POST", "/v3/kv/put", JSON.stringify({ key: Buffer.from("/vps-ha/owned").toString("base64"), value: "eA==" })), node: m },
        ]);
        const said = await inside(writes.map((w) => w.snippet), 30_000 + writes.length * 5_000, "REST writes");
        writes.forEach((w, i) => {
            const o = networkOutcome(said[i]);
            push({ what: w.what, target: `${w.node.name} ${w.node.meshAddress}:${w.port}`, expect: "refused", ok: o.outcome === "refused", result: o.outcome === "reached" ? `REACHED (${o.detail})` : o.detail });
        });

        // PostgreSQL's privileged roles through HAProxy (and the poolers): pg_hba must refuse the role from there.
        const proxies = nodes.filter((n) => n.role === "haproxy");
        const logins = proxies.flatMap((p) => [
            ...[HAPROXY_PORTS.dbPrimary, HAPROXY_PORTS.dbReplicas].flatMap((port) => [
                { role: `superuser ${DB_USERS.superuser}`, conn: `host=${p.meshAddress} port=${port} user=${DB_USERS.superuser} dbname=postgres`, sql: "select 1", node: p, port, pooler: false },
                { role: `replication ${DB_USERS.replication}`, conn: `host=${p.meshAddress} port=${port} user=${DB_USERS.replication} dbname=replication replication=true`, sql: "IDENTIFY_SYSTEM", node: p, port, pooler: false },
                { role: `rewind ${DB_USERS.rewind}`, conn: `host=${p.meshAddress} port=${port} user=${DB_USERS.rewind} dbname=postgres`, sql: "select 1", node: p, port, pooler: false },
            ]),
            { role: `superuser ${DB_USERS.superuser}`, conn: `host=${p.meshAddress} port=${HAPROXY_PORTS.pooler} user=${DB_USERS.superuser} dbname=postgres`, sql: "select 1", node: p, port: HAPROXY_PORTS.pooler, pooler: true },
            { role: `pooler admin ${POOLER_ADMIN_USER}`, conn: `host=${p.meshAddress} port=${HAPROXY_PORTS.pooler} user=${POOLER_ADMIN_USER} dbname=pgbouncer`, sql: "SHOW POOLS", node: p, port: HAPROXY_PORTS.pooler, pooler: true },
        ]);
        const answers = await inside(logins.map((l) => `PGCONNECT_TIMEOUT=4 PGPASSWORD=${WRONG_PASSWORD} ${BB} timeout 10 ${PSQL} ${shq(l.conn)} -XAtqw -c ${shq(l.sql)}`), 30_000 + logins.length * 10_000, "logins");
        logins.forEach((l, i) => {
            const o = pgOutcome(answers[i]);
            // Through HAProxy to PostgreSQL, the refusal must be pg_hba's: the password never matters.
            // pgbouncer has no pg_hba of its own: there it must at least refuse the login.
            const ok = l.pooler ? answers[i].rc !== 0 : o.kind === "pg_hba" || o.kind === "network";
            push({ what: `PostgreSQL as ${l.role}${l.pooler ? " (pgbouncer)" : ""}`, target: `${l.node.name} ${l.node.meshAddress}:${l.port}`, expect: "refused", ok, result: `${o.kind === "pg_hba" ? "refused by pg_hba: " : ""}${o.detail}` });
        });

        // The backups: the bucket refuses the app, which holds no credential for it (nor any other role's secret).
        await bucketAttempts(inside, nodes, push, notes);
        await secretAttempts(target, nodes, url.password, push, notes);

        const unexpected = attempts.filter((a) => !a.ok);
        const refused = attempts.filter((a) => a.expect === "refused");
        const table = attemptTable(attempts);
        ctx.log(`app-compromise: ${attempts.length} attempts from ${container} on ${target}\n${table}`);
        notes.push(`${refused.length} attempts that must be refused, ${refused.filter((a) => a.ok).length} refused; ${attempts.length - refused.length} that must work, ${attempts.filter((a) => a.expect === "allowed" && a.ok).length} worked`);
        notes.push(`attempts:\n${table}`);
        if (unexpected.length) notes.push(`FAILED: ${unexpected.length} attempt(s) not as they must be: ${unexpected.map((a) => `${a.what} -> ${a.target} (expected ${a.expect}): ${a.result}`).join("; ")}`);
        const seconds = (Date.now() - started) / 1000;
        return {
            drill: "app-compromise",
            target,
            rtoSeconds: 0,
            rtoTargetSeconds: 0,
            recoverySeconds: 0,
            lostWrites: 0,
            // What the app needs that did not work (its URLs, HAProxy's ports, root's metadata).
            failedRequests: attempts.filter((a) => a.expect === "allowed" && !a.ok).length,
            failedHttpRequests: null, // no fault and no web load: attempts from one container
            splitBrain: false,
            passed: unexpected.length === 0,
            figures: { "attempts refused": refused.filter((a) => a.ok).length, "attempts not refused": refused.filter((a) => !a.ok).length, "drill seconds": Math.round(seconds) },
            notes,
        };
    },
};

/** The running web container on `node` (the active image's instance). */
async function appContainer(node: string): Promise<string> {
    const names = (await execInNode(node, ["podman", "ps", "--format", "{{.Names}}"], { timeoutMs: 30_000, env: podmanEnv })).stdout.trim().split("\n");
    const name = names.find((n) => n.startsWith("vps-ha-app-"));
    if (!name) throw new Error(`app-compromise: no app container runs on ${node} (${names.join(", ") || "none"})`);
    return name;
}

/** The node's psql and curl and every library they load, flat in the container's tmpfs, and BusyBox's `true` for nc -e. */
async function bringTools(node: string, container: string): Promise<void> {
    const script = [
        "set -eu",
        'st=$(mktemp -d)',
        `for t in ${PG_BIN_DIR}/psql /usr/bin/curl; do cp -L "$t" "$st/"; for l in $(ldd "$t" | grep -o "/[^ ]*"); do cp -L "$l" "$st/"; done; done`,
        `podman exec ${container} ${BB} mkdir -p ${TOOLS}`,
        `tar -C "$st" -c . | podman exec -i ${container} ${BB} tar -x -C ${TOOLS}`,
        `podman exec ${container} ${BB} ln -sf ${BB} ${TOOLS}/true`,
        'rm -rf "$st"',
    ].join("\n");
    const r = await execInNode(node, ["sh", "-c", script], { timeoutMs: 90_000, allowFail: true, env: podmanEnv });
    if (r.code !== 0) throw new Error(`app-compromise: could not copy psql and curl into ${container}: ${r.stderr.trim().slice(-300)}`);
}

/**
 * The backup bucket at the store the members use (the lab's R2 stand-in, which checks signatures
 * as R2 does), from inside: listed and written unsigned, and listed with a guessed key. Refused
 * means the store's 403, or no answer at all.
 */
async function bucketAttempts(inside: Inside, nodes: NodeState[], push: (a: Attempt) => void, notes: string[]): Promise<void> {
    const member = nodes.find((n) => n.role === "db");
    const conf = member ? (await execInNode(member.name, ["cat", PGBACKREST_CONF], { timeoutMs: 10_000, allowFail: true })).stdout : "";
    const get = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(conf)?.[1];
    const host = get("repo1-s3-endpoint");
    const bucket = get("repo1-s3-bucket");
    if (!member || !host || !bucket) {
        notes.push("no backup bucket: the stack has no backups");
        return;
    }
    const port = Number(get("repo1-storage-port") ?? 443);
    const address = (await execInNode(member.name, ["getent", "ahostsv4", host], { timeoutMs: 10_000 })).stdout.trim().split(/\s+/)[0];
    const url = (path: string) => shq(`https://${host}:${port}/${bucket}/${path}`);
    // -k: the attacker does not care whose certificate it is; --resolve: the member's answer for the name.
    const curl = (args: string) => `${tool("curl")} -ks -o /dev/null -w '%{http_code}' --max-time 5 --resolve ${shq(`${host}:${port}:${address}`)} ${args}`;
    const tries = [
        { what: "list the backup bucket, unsigned", snippet: curl(url("?list-type=2")) },
        { what: "write to the backup bucket, unsigned", snippet: curl(`-X PUT --data-binary attacker ${url("attacker")}`) },
        { what: "list the backup bucket with a guessed key", snippet: curl(`-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 aws:amz:auto:s3 --user AKIAGUESSED:guessed ${url("?list-type=2")}`) },
    ];
    const results = await inside(
        tries.map((t) => t.snippet),
        30_000,
        "the backup bucket",
    );
    tries.forEach((t, i) => {
        const { rc, output } = results[i];
        const code = output.trim();
        const ok = code === "403" || (rc !== 0 && code === "000");
        push({ what: t.what, target: `${host} (${address}:${port})`, expect: "refused", ok, result: code === "403" ? "403 from the store" : rc !== 0 && code === "000" ? `no answer (curl exit ${rc})` : `HTTP ${code || "?"} (exit ${rc})` });
    });
}

type Inside = (snippets: string[], timeoutMs: number, what: string) => Promise<ReturnType<typeof parseBatch>>;

/**
 * A listener on the metadata address inside the node, as root (the lab has no metadata service):
 * root on the node reads it, an ordinary user of the node and the container do not.
 */
async function metadataAttempts(node: string, container: string, inside: Inside, push: (a: Attempt) => void, notes: string[]): Promise<void> {
    const address = METADATA_ADDRESSES.ipv4;
    const target = `${address}:80`;
    const url = `http://${address}/`;
    await execInNode(node, ["sh", "-c", `mkdir -p ${METADATA_DIR} && echo ${shq(METADATA_BODY)} > ${METADATA_DIR}/index.html && (ip -4 addr show dev lo | grep -q ' ${address}/' || ip addr add ${address}/32 dev lo)`], { timeoutMs: 10_000 });
    // Bounded: gone after 5 minutes even if this process dies first.
    const pid = spawnInNode(node, ["timeout", "300", "python3", "-m", "http.server", "--bind", address, "--directory", METADATA_DIR, "80"], { logName: "metadata-stand-in" });
    try {
        const asRoot = () => execInNode(node, ["curl", "-sS", "-m", "3", url], { timeoutMs: 10_000, allowFail: true });
        let root = await asRoot();
        for (let i = 0; i < 20 && root.stdout.trim() !== METADATA_BODY; i++) {
            await sleep(500);
            root = await asRoot();
        }
        push({ what: "metadata service, as root on the node", target, expect: "allowed", ok: root.stdout.trim() === METADATA_BODY, result: root.stdout.trim() === METADATA_BODY ? `read "${METADATA_BODY}"` : (root.stderr || root.stdout).trim() });
        const nobody = await execInNode(node, ["curl", "-sS", "-m", "3", url], { user: "nobody", timeoutMs: 10_000, allowFail: true });
        push({ what: "metadata service, as an ordinary user (nobody) on the node", target, expect: "refused", ok: nobody.code !== 0 && /Failed to connect|Couldn't connect|Connection refused/i.test(nobody.stderr), result: nobody.code === 0 ? `READ: ${nobody.stdout.trim().slice(0, 80)}` : nobody.stderr.trim().replace(/^curl: \(\d+\) /, "") });
        const [c] = await inside([httpSnippet(address, 80, "GET", "/", "")], 30_000, "metadata");
        const o = networkOutcome(c);
        push({ what: "metadata service, from the container", target, expect: "refused", ok: o.outcome === "refused", result: o.outcome === "reached" ? `REACHED (${o.detail})` : o.detail });
        notes.push(`metadata stand-in on ${target} in ${node}, as root (python3's http.server), for the drill only; ${container} tried it with BusyBox nc`);
    } finally {
        killGroup(pid, "SIGTERM");
        await execInNode(node, ["sh", "-c", `ip addr del ${address}/32 dev lo; rm -rf ${METADATA_DIR}`], { timeoutMs: 10_000, allowFail: true });
    }
}

/**
 * Every secret of the other roles (the database's passwords, the backup credentials, the pooler's
 * admin password, the other nodes' WireGuard keys) searched for in the app node's files, as root:
 * none may be there. The app's own database password must be found (the search finds what is there).
 */
async function secretAttempts(app: string, nodes: NodeState[], appPassword: string, push: (a: Attempt) => void, notes: string[]): Promise<void> {
    const secrets: { name: string; value: string }[] = [];
    const read = async (node: string, path: string) => (await execInNode(node, ["cat", path], { timeoutMs: 10_000, allowFail: true })).stdout;
    const member = nodes.find((n) => n.role === "db");
    if (member) {
        const conf = await read(member.name, PGBACKREST_CONF);
        for (const key of ["repo1-s3-key", "repo1-s3-key-secret"]) {
            const value = new RegExp(`^${key}=(.*)$`, "m").exec(conf)?.[1];
            if (value) secrets.push({ name: `backup ${key === "repo1-s3-key" ? "access key id" : "secret access key"}`, value });
        }
        const patroni = parse(await read(member.name, PATRONI_CONFIG)) as { restapi?: { authentication?: { password?: string } }; postgresql?: { authentication?: Record<string, { password?: string }> } };
        for (const [role, a] of Object.entries(patroni?.postgresql?.authentication ?? {})) if (a.password) secrets.push({ name: `PostgreSQL ${role} password`, value: a.password });
        if (patroni?.restapi?.authentication?.password) secrets.push({ name: "Patroni REST password", value: patroni.restapi.authentication.password });
    }
    const proxy = nodes.find((n) => n.role === "haproxy");
    if (proxy) {
        const guard = (await read(proxy.name, POOLER_GUARD_CONFIG)).trim();
        const admin = guard ? (JSON.parse(guard) as { adminPassword?: string }).adminPassword : undefined;
        if (admin) secrets.push({ name: "pooler admin password", value: admin });
    }
    for (const n of nodes.filter((x) => x.name !== app)) {
        const key = (await execInNode(n.name, ["wg", "show", "wg0", "private-key"], { timeoutMs: 10_000, allowFail: true })).stdout.trim();
        if (key) secrets.push({ name: `${n.name}'s WireGuard private key`, value: key });
    }
    if (!secrets.some((s) => s.name.startsWith("backup"))) notes.push("no backup credentials found on the database members: the stack has no backups, nothing to search for");
    // One grep over the node's files for every value (given on stdin, never in argv), file names out.
    const search = async (values: string[]) => {
        const r = await execInNode(app, ["sh", "-c", `timeout 90 grep -rlsF -D skip --exclude-dir=containers -f - ${SEARCHED_DIRS.join(" ")}`], { timeoutMs: 120_000, allowFail: true, input: values.join("\n") + "\n" });
        return { code: r.code, files: r.stdout.split("\n").filter(Boolean) };
    };
    const control = await search([appPassword]);
    push({ what: "control: the app's own database password on its node (the search finds what is there)", target: `${app} ${SEARCHED_DIRS.join(" ")}`, expect: "allowed", ok: control.files.length > 0, result: control.files.length ? `in ${control.files.join(", ")}` : `not found (grep exit ${control.code})` });
    for (const s of secrets) {
        const found = await search([s.value]);
        push({ what: `${s.name} on the app node`, target: `${app} ${SEARCHED_DIRS.join(" ")}`, expect: "refused", ok: found.files.length === 0 && found.code !== 124, result: found.files.length ? `FOUND in ${found.files.join(", ")}` : found.code === 124 ? "search timed out" : "not found" });
    }
}
