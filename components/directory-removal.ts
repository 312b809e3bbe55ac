// Whether the directory the program publishes may drop members beyond the nodes' bound: nodes
// refuse an index that removes more than a third of a role's members at once unless it says the
// removal is deliberate (node-agent/vpsha/directory.py). Pure: the program asks it before it
// publishes, and the tests check it.
import { memberSetDigest } from "./directory-records";
import { ServerFacts } from "./replacement";

/** What the last deployment published as the index (the stack's `directoryIndex` output). */
export interface PublishedIndex {
    /** The member set's digest (directory-records.ts' memberSetDigest). */
    set: string;
    deliberate: boolean;
}

export interface DirectoryRemoval {
    /** The index is marked deliberate: nodes apply it whatever it removes. */
    deliberate: boolean;
    /** The deployed nodes the stack file no longer has. */
    removed: string[];
}

/**
 * Deliberate only when the stack file itself removes nodes (compared with the last deployment's
 * facts, as a server replacement is) or the stack's `directory.allowLargeRemoval` says so; a run
 * that drops members any other way publishes a bounded index, which the nodes refuse. The mark
 * stays on while the member set stays the one it was put on (`published`): a node that was away
 * when it was published still applies the removal later, and the next run publishes nothing new.
 */
export function directoryRemoval(deployed: ServerFacts[] | undefined, planned: string[], allowLargeRemoval: boolean, published?: PublishedIndex): DirectoryRemoval {
    const keep = new Set(planned);
    const removed = (deployed ?? []).map((f) => f.name).filter((n) => !keep.has(n)).sort();
    const kept = published?.deliberate === true && published.set === memberSetDigest(planned);
    return { deliberate: allowLargeRemoval || removed.length > 0 || kept, removed };
}

/** The `directoryIndex` output of a deployment; undefined when it has none (a deployment older than it). A malformed one is an error. */
export function publishedIndexFromOutput(value: unknown): PublishedIndex | undefined {
    if (value === undefined || value === null) return undefined;
    const v = value as Record<string, unknown>;
    if (typeof v !== "object" || typeof v.set !== "string" || !/^[0-9a-f]{16}$/.test(v.set) || typeof v.deliberate !== "boolean") {
        throw new Error("the deployed stack's directoryIndex output is not { set, deliberate }");
    }
    return { set: v.set, deliberate: v.deliberate };
}
