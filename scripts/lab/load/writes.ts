// Drives the bounded writer (db-writer.ts) from an app node's network namespace, and reads back
// which ids the database holds, through the same HAProxy pair the application uses.
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { execInNode, labNodes } from "../realize";
import { STATE_DIR } from "../paths";
import { labStack } from "../stack";
import { APP_ENV_FILE } from "../../../components/render/app";
import type { WriteRecord } from "./db-writer";
import { TABLE } from "./db-writer";
import { parseJsonLines } from "./json-lines";

function connectionString(): string {
    const url = labStack()?.connectionString;
    if (!url) throw new Error("the lab stack has no database connection string (is the lab up?)");
    return url;
}

/** The writer's login file, replaced whole: the writer never reads half of a change. */
function writeLogin(file: string, login: { user: string; password: string }): void {
    writeFileSync(`${file}.tmp`, JSON.stringify({ user: login.user, password: login.password }), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
}

/** The app's URL in `variable` of the app's env file on `node` (components/render/app.ts). */
async function appUrl(node: string, variable: string): Promise<{ user: string; password: string } | undefined> {
    const r = await execInNode(node, ["cat", APP_ENV_FILE], { timeoutMs: 5_000, allowFail: true });
    const line = r.stdout.split("\n").find((l) => l.startsWith(`${variable}=`));
    if (!line) return undefined;
    try {
        return parsePostgresUrl(line.slice(variable.length + 1).replace(/^"|"$/g, ""));
    } catch {
        return undefined;
    }
}

/** The lab runs database writes only when the stack has a database and a client node. */
export function canWrite(): boolean {
    const nodes = labNodes();
    return labStack()?.connectionString !== undefined && nodes.some((n) => n.role === "db") && nodes.some((n) => n.role === "app");
}

function clientNode(avoid: string[] = []): string {
    const app = labNodes().find((n) => n.role === "app" && !n.isolated && !avoid.includes(n.name));
    if (!app) throw new Error("no app node to write from");
    return app.name;
}

/** psql in a node, through both HAProxy nodes to the primary, as the application. */
export async function sql(query: string, node = clientNode()): Promise<string> {
    const url = connectionString();
    const r = await execInNode(node, ["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", query], { timeoutMs: 15_000, env: { PGCONNECT_TIMEOUT: "3" } });
    return r.stdout.trim();
}

/** libpq's multi-host URL (postgresql://user:pass@h1:p1,h2:p2/db?...), which WHATWG URL rejects. */
export function parsePostgresUrl(url: string): { user: string; password: string; hosts: string[]; database: string } {
    const m = /^postgres(?:ql)?:\/\/([^:@/]+):([^@/]*)@([^/?]+)\/([^?]*)/.exec(url);
    if (!m) throw new Error("not a postgresql:// URL with user, password, hosts and database");
    return { user: decodeURIComponent(m[1]), password: decodeURIComponent(m[2]), hosts: m[3].split(","), database: decodeURIComponent(m[4]) };
}

export interface WriteOptions {
    pooled?: boolean;
    timeoutMs?: number;
    /** Take the app's new URL when the writer's app node gets one (a secrets rotation), as its web instances do. */
    followApp?: boolean;
}

/** How often a writer that follows the app reads its node's URL. */
const FOLLOW_EVERY_MS = 1_000;

export class WriteLoad {
    private child: ChildProcess | undefined;
    private follower: NodeJS.Timeout | undefined;
    private exited: Promise<void> = Promise.resolve();
    private readonly log: string;

    private constructor(private readonly node: string, readonly startId: number) {
        const dir = mkdtempSync(join(STATE_DIR, "writes-"));
        this.log = join(dir, "writes.jsonl");
    }

    /**
     * Creates the table if needed and starts writing ids from a fresh range, from an app node
     * that is not in `avoid` (the nodes the drill is about to break: clients must survive it).
     */
    /**
     * `pooled`: write through the poolers (the pooled URL) instead of HAProxy's primary port;
     * `timeoutMs`: how long one write may take before the writer counts it failed.
     */
    static async start(maxSeconds: number, avoid: string[], maxWrites = 100_000, opts: WriteOptions = {}): Promise<WriteLoad> {
        const node = clientNode(avoid);
        await sql(`CREATE TABLE IF NOT EXISTS ${TABLE} (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`, node);
        const startId = Number(await sql(`SELECT coalesce(max(id), 0) + 1 FROM ${TABLE}`, node));
        const load = new WriteLoad(node, startId);
        load.launch(maxSeconds, maxWrites, opts);
        return load;
    }

    private launch(maxSeconds: number, maxWrites: number, opts: WriteOptions): void {
        const pooled = labStack()?.pooledConnectionString;
        if (opts.pooled && !pooled) throw new Error("the lab stack has no pooled connection string");
        const url = parsePostgresUrl(opts.pooled ? (pooled as string) : connectionString());
        const netns = labNodes().find((n) => n.name === this.node)?.netns as string;
        const loginFile = join(this.log, "..", "login.json");
        writeLogin(loginFile, url);
        writeFileSync(this.log, "");
        const tsx = join(__dirname, "../../../node_modules/tsx/dist/cli.mjs");
        const args = [
            `--net=/run/netns/${netns}`, "--", process.execPath, tsx, join(__dirname, "db-writer.ts"),
            "--hosts", url.hosts.join(","), "--login-file", loginFile,
            "--database", url.database, "--log", this.log, "--max-writes", String(maxWrites),
            "--max-seconds", String(maxSeconds), "--start-id", String(this.startId), "--timeout-ms", String(opts.timeoutMs ?? 2000),
        ];
        this.child = spawn("nsenter", args, { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        this.child.stderr?.on("data", (d) => (stderr += String(d)));
        this.exited = new Promise((resolve) => this.child?.on("exit", (code) => {
            if (code) console.error(`db-writer exited ${code}: ${stderr.slice(-2000)}`);
            resolve();
        }));
        if (opts.followApp) this.follow(opts.pooled ? "DATABASE_POOLED_URL" : "DATABASE_URL", url, loginFile);
    }

    /** Reads the node's app URL every FOLLOW_EVERY_MS until stop(); the writer takes a new login from its files. */
    private follow(variable: string, start: { user: string; password: string }, loginFile: string): void {
        let current = `${start.user}:${start.password}`;
        let busy = false;
        this.follower = setInterval(() => {
            if (busy) return;
            busy = true;
            appUrl(this.node, variable).then((u) => {
                if (!u || `${u.user}:${u.password}` === current || !this.child) return;
                current = `${u.user}:${u.password}`;
                writeLogin(loginFile, u);
                this.followed.push({ at: Date.now(), user: u.user });
            }, () => undefined).finally(() => (busy = false));
        }, FOLLOW_EVERY_MS);
    }

    /** The logins the writer was moved to (followApp), when. */
    readonly followed: { at: number; user: string }[] = [];

    /** The writer's JSON-lines log (one line per write, acknowledged or not). */
    get logFile(): string {
        return this.log;
    }

    records(): WriteRecord[] {
        if (!existsSync(this.log)) return [];
        return parseJsonLines<WriteRecord>(readFileSync(this.log, "utf8"));
    }

    /** Stops the writer (bounded: it also stops by itself at its time limit). */
    async stop(): Promise<WriteRecord[]> {
        clearInterval(this.follower);
        this.child?.kill("SIGTERM");
        await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5_000))]);
        this.child?.kill("SIGKILL");
        return this.records();
    }

    /** Ids this load wrote that the database (the current primary) holds now. */
    async presentIds(): Promise<Set<number>> {
        const out = await sql(`SELECT id FROM ${TABLE} WHERE id >= ${this.startId} ORDER BY id`, this.node);
        return new Set(out.split("\n").filter(Boolean).map(Number));
    }
}
