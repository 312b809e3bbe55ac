// What a change of a node's desired state does on the live node, as `npm run plan -- --against`
// reports it: the files that differ, the units restarted or reloaded, and whether a database
// member's primary hands over first (its Patroni, and so PostgreSQL, restarts). Pure: compares two
// documents as the node's agent does (desired.py: only files whose entry changed).
import { DesiredContent } from "./desired-state-records";
import { PATRONI_UNIT } from "./render/patroni";

export interface InPlaceChange {
    /** Paths whose content, mode or owner differ, or that are new. */
    files: string[];
    restarts: string[];
    reloads: string[];
    /** Patroni restarts on a member: if it leads, it hands the primary over first. */
    handover: boolean;
}

export function inPlaceChange(before: DesiredContent, after: DesiredContent): InPlaceChange {
    const old = new Map(before.files.map((f) => [f.path, JSON.stringify(f)]));
    const files = after.files.filter((f) => old.get(f.path) !== JSON.stringify(f)).map((f) => f.path);
    const hit = (after.restarts ?? []).filter((r) => r.paths.some((p) => files.includes(p)));
    const restarts = [...new Set(hit.filter((r) => !r.reload).map((r) => r.unit))];
    const reloads = [...new Set(hit.filter((r) => r.reload).map((r) => r.unit))];
    return { files, restarts, reloads, handover: restarts.includes(PATRONI_UNIT) };
}

/** One phrase for the plan: what applying the change in place does. */
export function describeInPlace(c: InPlaceChange): string {
    if (c.files.length === 0) return "unchanged";
    const parts = [`applied in place (${c.files.length} file${c.files.length === 1 ? "" : "s"})`];
    if (c.restarts.length) parts.push(`restarts ${c.restarts.join(", ")}`);
    if (c.reloads.length) parts.push(`reloads ${c.reloads.join(", ")}`);
    if (!c.restarts.length && !c.reloads.length) parts.push("no daemon restarts");
    if (c.handover) parts.push("hands over the primary first if it leads");
    return parts.join("; ");
}
