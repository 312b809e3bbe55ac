// Whether the directory the program publishes may drop members beyond the nodes' bound: nodes
// refuse an index that removes more than a third of a role's members at once unless it says the
// removal is deliberate (node-agent/vpsha/directory.py). Pure: the program asks it before it
// publishes, and the tests check it.
import { ServerFacts } from "./replacement";

export interface DirectoryRemoval {
    /** The index is marked deliberate: nodes apply it whatever it removes. */
    deliberate: boolean;
    /** The deployed nodes the stack file no longer has. */
    removed: string[];
}

/**
 * Deliberate only when the stack file itself removes nodes (compared with the last deployment's
 * facts, as a server replacement is) or the stack's `directory.allowLargeRemoval` says so; a run
 * that drops members any other way publishes a bounded index, which the nodes refuse.
 */
export function directoryRemoval(deployed: ServerFacts[] | undefined, planned: string[], allowLargeRemoval: boolean): DirectoryRemoval {
    const keep = new Set(planned);
    const removed = (deployed ?? []).map((f) => f.name).filter((n) => !keep.has(n)).sort();
    return { deliberate: allowLargeRemoval || removed.length > 0, removed };
}
