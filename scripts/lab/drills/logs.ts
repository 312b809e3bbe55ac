// What a drill's clients saw stays after the lab is gone: every write (id, times, outcome, the
// primary that took it) and every HTTP request (times, status, the release that answered), as
// JSON lines in a directory per drill run, kept outside the lab's runtime state, with what the
// nodes' daemons logged meanwhile.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CACHE_DIR, nodePaths } from "../paths";

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

/** Where each node's daemon logs stood when a drill began: file path -> its inode and bytes. */
export type LogMarks = Map<string, { ino: number; size: number }>;

/** Where a node's daemons log in the lab (one file per unit). */
type LogsOf = (node: string) => string;
const labLogs: LogsOf = (node) => nodePaths(node).logs;

function nodeLogFiles(nodes: string[], logsOf: LogsOf): { node: string; file: string; path: string }[] {
    return nodes.flatMap((node) => {
        const dir = logsOf(node);
        return existsSync(dir) ? readdirSync(dir).map((file) => ({ node, file, path: join(dir, file) })) : [];
    });
}

export function markNodeLogs(nodes: string[], logsOf = labLogs): LogMarks {
    return new Map(nodeLogFiles(nodes, logsOf).map((f) => {
        const st = statSync(f.path);
        return [f.path, { ino: st.ino, size: st.size }];
    }));
}

/**
 * What every node's daemons logged since `marks`, into `<dir>/nodes/<node>/<unit>.log`: the
 * members' own account of a failover is what explains a slow one. A log started over (its node
 * was rebuilt) is copied whole.
 */
export function copyNodeLogs(nodes: string[], marks: LogMarks, dir: string, logsOf = labLogs): void {
    for (const f of nodeLogFiles(nodes, logsOf)) {
        const { ino, size } = statSync(f.path);
        const mark = marks.get(f.path);
        // A new file (the node was rebuilt: its logs started over) or a shorter one is copied whole.
        const from = mark && mark.ino === ino && mark.size <= size ? mark.size : 0;
        if (size === from) continue;
        const out = join(dir, "nodes", f.node);
        mkdirSync(out, { recursive: true });
        const fd = openSync(f.path, "r");
        try {
            const buf = Buffer.alloc(size - from);
            readSync(fd, buf, 0, buf.length, from);
            writeFileSync(join(out, f.file), buf);
        } finally {
            closeSync(fd);
        }
    }
}
