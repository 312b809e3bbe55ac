// What a drill's clients saw stays after the lab is gone: every write (id, times, outcome, the
// primary that took it) and every HTTP request (times, status, the release that answered), as
// JSON lines in a directory per drill run, kept outside the lab's runtime state.
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CACHE_DIR } from "../paths";

export const DRILL_LOGS_DIR = join(CACHE_DIR, "drill-logs");
/** Runs kept; older ones are removed when a new one starts. */
const KEEP_RUNS = 50;

/** A fresh directory for one run of `drill`, named so that runs sort by time. */
export function drillLogDir(drill: string, now = new Date()): string {
    mkdirSync(DRILL_LOGS_DIR, { recursive: true });
    const runs = readdirSync(DRILL_LOGS_DIR).sort();
    for (const old of runs.slice(0, Math.max(0, runs.length - (KEEP_RUNS - 1)))) rmSync(join(DRILL_LOGS_DIR, old), { recursive: true, force: true });
    const dir = join(DRILL_LOGS_DIR, `${now.toISOString().replace(/[:.]/g, "-")}-${drill}`);
    mkdirSync(dir, { recursive: true });
    return dir;
}
