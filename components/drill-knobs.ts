// The lab drills' changes to what the program publishes (the stack key vps-ha:drill): applied to
// every node's desired content before it is signed and sealed, so a node receives them through
// the real desired-state path and its agent rolls them out like any change. Pure.
//   revision: stamped into every file in a way its format ignores (a comment, or a JSON object's
//     "_revision" key), so every file and tool differs and every daemon restarts;
//   failStart: a systemd drop-in that keeps one node's daemon from starting.
import { StackConfig } from "./config";
import { DesiredContent, DesiredFile } from "./desired-state-records";

/** Files whose format reads `#` as a comment to the end of the line. */
const HASH_COMMENTS = /(\.(conf|cfg|ya?ml|ini|service|socket|timer|path|target|sh|py|env|rules|toml|list)|\/pg_hba\.conf|\/sshd_config)$/;

/** The drop-in that fails `unit`'s start: ExecStartPre=/bin/false. */
export function failStartDropIn(unit: string): DesiredFile {
    return { path: `/etc/systemd/system/${unit}.d/zz-vps-ha-drill-fail.conf`, mode: "0644", owner: "root:root", content: "[Service]\n# vps-ha drill: this daemon must not start (bad-change-halts)\nExecStartPre=/bin/false\n" };
}

/** `f` stamped with `revision`, or unchanged when its format has no comment that is safe (reported by the caller). */
export function stampFile(f: DesiredFile, revision: string): DesiredFile {
    if (f.path.endsWith(".json")) {
        try {
            const v = JSON.parse(f.content) as unknown;
            if (v && typeof v === "object" && !Array.isArray(v)) {
                const indented = /^\{\n( +)/.exec(f.content)?.[1].length;
                return { ...f, content: JSON.stringify({ ...v, _revision: revision }, null, indented) + (f.content.endsWith("\n") ? "\n" : "") };
            }
        } catch {
            return f;
        }
        return f;
    }
    // A tool (a script with #!) or a file whose format takes # comments.
    if (f.content.startsWith("#!") || HASH_COMMENTS.test(f.path)) {
        return { ...f, content: `${f.content}${f.content.endsWith("\n") || f.content === "" ? "" : "\n"}# vps-ha revision ${revision}\n` };
    }
    return f;
}

export interface DrillKnobResult {
    contents: Record<string, DesiredContent>;
    /** Per node, the files the revision could not stamp (their format has no safe comment). */
    unstamped: Record<string, string[]>;
}

/** Every node's content with the stack's drill knobs applied; unchanged when the stack sets none. */
export function applyDrillKnobs(config: Pick<StackConfig, "drill">, contents: Record<string, DesiredContent>): DrillKnobResult {
    const drill = config.drill;
    const unstamped: Record<string, string[]> = {};
    if (!drill) return { contents, unstamped };
    const out: Record<string, DesiredContent> = {};
    for (const [node, c] of Object.entries(contents)) {
        let files = c.files;
        let restarts = c.restarts;
        if (drill.revision) {
            const revision = drill.revision;
            files = files.map((f) => stampFile(f, revision));
            const missed = files.filter((f, i) => f.content === c.files[i].content).map((f) => f.path);
            if (missed.length) unstamped[node] = missed;
        }
        if (drill.failStart?.node === node) {
            const unit = drill.failStart.unit;
            const dropIn = failStartDropIn(unit);
            files = [...files, dropIn];
            const own = (restarts ?? []).find((r) => r.unit === unit);
            restarts = own
                // A restart, not a reload: only a start runs the drop-in's ExecStartPre.
                ? (restarts ?? []).map((r) => (r === own ? { unit, paths: [...r.paths, dropIn.path] } : r))
                : [...(restarts ?? []), { unit, paths: [dropIn.path] }];
        }
        out[node] = { ...c, files, ...(restarts ? { restarts } : {}) };
    }
    return { contents: out, unstamped };
}
