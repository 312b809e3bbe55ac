// What a change of a node's desired state does on the live node, as `npm run plan -- --against`
// reports it: the files that differ, the units restarted or reloaded, and whether a database
// member's primary hands over first (its Patroni, and so PostgreSQL, restarts). Pure: compares two
// documents as the node's agent does (desired.py: only files whose entry changed).
import { DesiredContent } from "./desired-state-records";
import { PATRONI_UNIT, RESTART_PARAMETER_NAMES } from "./render/patroni";
import { PATRONI_DYNAMIC_SETTINGS } from "./render/patroni-dynamic";

export interface InPlaceChange {
    /** Paths whose content, mode or owner differ, or that are new. */
    files: string[];
    restarts: string[];
    reloads: string[];
    /**
     * Parameters of the cluster's dynamic configuration that take effect only at a restart and
     * change (max_connections): PostgreSQL restarts on every member in turn, where Patroni says it must.
     */
    postgresRestart: string[];
    /** Patroni or PostgreSQL restarts on a member: if it leads, it hands the primary over first. */
    handover: boolean;
}

/** A member's dynamic-configuration settings' restart parameters ({} when it has none). */
function restartParameters(c: DesiredContent): Record<string, unknown> {
    const file = c.files.find((f) => f.path === PATRONI_DYNAMIC_SETTINGS);
    if (!file) return {};
    let parameters: Record<string, unknown> = {};
    try {
        parameters = (JSON.parse(file.content) as { desired?: { postgresql?: { parameters?: Record<string, unknown> } } }).desired?.postgresql?.parameters ?? {};
    } catch {
        // Not the tool's JSON (a placeholder in an offline evaluation): nothing to compare.
    }
    return Object.fromEntries(Object.values(RESTART_PARAMETER_NAMES).map((name) => [name, parameters[name]]));
}

export function inPlaceChange(before: DesiredContent, after: DesiredContent): InPlaceChange {
    const old = new Map(before.files.map((f) => [f.path, JSON.stringify(f)]));
    const files = after.files.filter((f) => old.get(f.path) !== JSON.stringify(f)).map((f) => f.path);
    const hit = (after.restarts ?? []).filter((r) => r.paths.some((p) => files.includes(p)));
    const restarts = [...new Set(hit.filter((r) => !r.reload).map((r) => r.unit))];
    const reloads = [...new Set(hit.filter((r) => r.reload).map((r) => r.unit))];
    const [was, now] = [restartParameters(before), restartParameters(after)];
    const postgresRestart = Object.keys(now).filter((name) => files.includes(PATRONI_DYNAMIC_SETTINGS) && was[name] !== now[name]);
    return { files, restarts, reloads, postgresRestart, handover: restarts.includes(PATRONI_UNIT) || postgresRestart.length > 0 };
}

/** One phrase for the plan: what applying the change in place does. */
export function describeInPlace(c: InPlaceChange): string {
    if (c.files.length === 0) return "unchanged";
    const parts = [`applied in place (${c.files.length} file${c.files.length === 1 ? "" : "s"})`];
    if (c.restarts.length) parts.push(`restarts ${c.restarts.join(", ")}`);
    if (c.reloads.length) parts.push(`reloads ${c.reloads.join(", ")}`);
    if (c.postgresRestart.length) parts.push(`restarts PostgreSQL (${c.postgresRestart.join(", ")}), one member at a time`);
    if (!c.restarts.length && !c.reloads.length && !c.postgresRestart.length) parts.push("no daemon restarts");
    if (c.handover) parts.push("hands over the primary first if it leads");
    return parts.join("; ");
}
