// The poolers are never left paused: the switchover tool is SIGKILLed right after it paused
// every pgbouncer, and each HAProxy node's own pooler guard must resume its pooler within the
// bound, with no acknowledged write lost.
import { POOLER_GUARD_CONFIG } from "../../../components/render/pgbouncer";
import { POOLER_ORPHAN_GRACE_SECONDS, SWITCHOVER_TOOL } from "../../../components/render/switchover";
import { execInNode, labNodes } from "../realize";
import { aReplica, SWITCHOVER_PAUSE_SECONDS } from "./db";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill } from "./types";

/**
 * How long after the kill every pooler must be resumed: the guard's grace for a pause nobody
 * holds; the switchover Patroni had already been asked for, until HAProxy routes to the new
 * primary (the guard waits for that); a look (every 0.5 s) and a second for the RESUME on a busy
 * machine.
 */
export const INTERRUPTED_RESUME_SECONDS = POOLER_ORPHAN_GRACE_SECONDS + SWITCHOVER_PAUSE_SECONDS + 1.5;

/** Runs inside an HAProxy node: when its pgbouncer's `app` was seen paused, and resumed (epoch s). */
const WATCH_PAUSE = `
import json, sys, time
import psycopg2
cfg = json.load(open(${JSON.stringify(POOLER_GUARD_CONFIG)}))
conn = psycopg2.connect(host=cfg["host"], port=cfg["port"], user=cfg["adminUser"], password=cfg["adminPassword"],
                        dbname="pgbouncer", connect_timeout=3, application_name="lab-drill")
conn.autocommit = True
paused = resumed = None
deadline = time.time() + float(sys.argv[1])
while time.time() < deadline and resumed is None:
    cur = conn.cursor()
    cur.execute("SHOW DATABASES")
    names = [d[0] for d in cur.description]
    row = next(dict(zip(names, r)) for r in cur.fetchall() if r[0] == "app")
    now = time.time()
    if row["paused"] and paused is None:
        paused = now
    elif not row["paused"] and paused is not None:
        resumed = now
    time.sleep(0.05)
print(json.dumps({"paused": paused, "resumed": resumed}))
`;

/**
 * Runs inside a database member: starts the tool, waits for its "poolers paused" line, SIGKILLs
 * it (its own PID, from $!) and prints the kill's epoch time, then the tool's output.
 */
const KILL_AFTER_PAUSE = `
out=$(mktemp)
${SWITCHOVER_TOOL} >"$out" 2>&1 &
pid=$!
for i in $(seq 1 600); do
    grep -q "poolers paused in" "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
done
if grep -q "poolers paused in" "$out"; then kill -KILL "$pid"; echo "killed-at $(date +%s.%N)"; else echo "never-paused"; fi
wait "$pid" 2>/dev/null
cat "$out"
rm -f "$out"
`;

export const switchoverInterrupted: Drill = {
    name: "switchover-interrupted",
    description: `the switchover tool SIGKILLed right after it paused the poolers, under pooled writes: every pooler resumes within ${INTERRUPTED_RESUME_SECONDS} s of the kill (its node's guard), no acknowledged write lost`,
    run: async (ctx) => {
        // Run on a replica, the tool pauses the poolers itself before asking Patroni.
        const from = await pickNode(ctx, aReplica, "replica");
        const proxies = labNodes().filter((n) => n.role === "haproxy").map((n) => n.name);
        let watches: Promise<{ name: string; paused: number | null; resumed: number | null; error?: string }>[] = [];
        let killedAt: number | undefined;
        let toolOutput = "";
        return faultUnderLoad(ctx, {
            drill: "switchover-interrupted",
            target: from,
            lost: [],
            fault: async () => {
                watches = proxies.map(async (name) => {
                    const r = await execInNode(name, ["python3", "-c", WATCH_PAUSE, "90"], { timeoutMs: 100_000, allowFail: true });
                    try {
                        return { name, ...JSON.parse(r.stdout.trim().split("\n").pop() ?? "") };
                    } catch {
                        return { name, paused: null, resumed: null, error: `${r.stdout}${r.stderr}`.trim().slice(-300) };
                    }
                });
                // The watchers hold a session before the tool pauses anything.
                await new Promise((res) => setTimeout(res, 1_000));
                const r = await execInNode(from, ["bash", "-c", KILL_AFTER_PAUSE], { timeoutMs: 60_000, allowFail: true });
                toolOutput = r.stdout.trim();
                const m = /^killed-at (\d+\.\d+)$/m.exec(toolOutput);
                killedAt = m ? Number(m[1]) : undefined;
                for (const line of toolOutput.split("\n")) ctx.log(line);
            },
            whileBroken: async () => {
                const seen = await Promise.all(watches);
                const notes = [killedAt ? `the tool on ${from} was SIGKILLed right after it paused the poolers` : `the tool on ${from} never paused the poolers: the drill measured nothing (${toolOutput.slice(-300)})`];
                let ok = killedAt !== undefined;
                for (const s of seen) {
                    const after = s.resumed !== null && killedAt !== undefined ? s.resumed - killedAt : null;
                    const good = s.paused !== null && after !== null && after <= INTERRUPTED_RESUME_SECONDS;
                    ok &&= good;
                    notes.push(`${s.name}: ${s.error ? `no answer (${s.error})` : s.paused === null ? "never seen paused" : after === null ? "still paused" : `paused ${(s.resumed! - s.paused).toFixed(2)} s, resumed ${after.toFixed(2)} s after the kill (bound ${INTERRUPTED_RESUME_SECONDS} s)`}`);
                }
                return { ok, notes };
            },
            repair: async () => undefined,
            // Writes wait while the poolers are paused (from just before the kill), and none fails.
            rtoTargetSeconds: INTERRUPTED_RESUME_SECONDS + 1,
            writes: { pooled: true, timeoutMs: 30_000 },
            planned: { maxWritePauseSeconds: INTERRUPTED_RESUME_SECONDS + 1 },
        });
    },
};
