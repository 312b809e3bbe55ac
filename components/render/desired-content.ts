// A node's parts as its desired-state document: the files (each written once, as long as the
// parts agree on it), the packages, the parts' one-time commands as setup, and for each unit the
// files whose change restarts (or reloads) it. The parts stay the only place a file's content is
// decided; this only changes their form.
import { DesiredContent, DesiredFile, DesiredRestart } from "../desired-state-records";
import { CloudConfigPart, FilePart } from "./cloud-config";

function asDesired(f: FilePart): DesiredFile {
    return { path: f.path, mode: f.permissions ?? "0644", owner: f.owner ?? "root:root", content: f.content };
}

/**
 * The parts' one-time commands in order, without their daemon-reloads: the agent writes every
 * file of a first document and reloads systemd once when a unit file was among them, before the
 * setup runs (vpsha/desired.py apply_first), so a part's own reload would find nothing new (each
 * a second or so of a booting node's systemd, on its way to its first healthy state).
 */
export function setupOf(parts: CloudConfigPart[]): string[][] {
    return parts.flatMap((p) => p.commands ?? []).filter((c) => !(c.length === 2 && c[0] === "systemctl" && c[1] === "daemon-reload"));
}

/** `node` names the node in errors. */
export function desiredContentOf(node: string, parts: CloudConfigPart[]): DesiredContent {
    const files = new Map<string, DesiredFile>();
    for (const f of parts.flatMap((p) => (p.files ?? []).map(asDesired))) {
        const before = files.get(f.path);
        if (before && JSON.stringify(before) !== JSON.stringify(f)) throw new Error(`two parts of ${node}'s desired state write ${f.path}, differently`);
        files.set(f.path, f);
    }
    // One entry per unit and verb, in the order the parts first name them.
    const restarts = new Map<string, DesiredRestart>();
    for (const part of parts) {
        const own = (part.files ?? []).map((f) => f.path);
        for (const r of part.restarts ?? []) {
            const paths = r.paths ?? own;
            for (const p of paths) if (!own.includes(p)) throw new Error(`${node}: the restart of ${r.unit} names ${p}, not a file of its part`);
            const key = `${r.unit}/${r.reload ? "reload" : "restart"}`;
            const entry = restarts.get(key) ?? { unit: r.unit, paths: [], ...(r.reload ? { reload: true } : {}) };
            entry.paths = [...new Set([...entry.paths, ...paths])];
            restarts.set(key, entry);
        }
    }
    return {
        files: [...files.values()],
        restarts: [...restarts.values()].filter((r) => r.paths.length > 0),
        packages: [...new Set(parts.flatMap((p) => p.packages ?? []))].sort(),
        setup: setupOf(parts),
    };
}
