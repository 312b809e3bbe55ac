// What a `pulumi up` would do to each server, from the facts of the deployed stack (its
// `serverFacts` output) and of the stack file now; and the rule that one `pulumi up` never takes
// more than one database member or etcd voter down. Pure: the program runs it before it creates
// anything, and `npm run plan -- --against/--deployed` runs the very same functions.
import { catalogs } from "./providers/catalogs";
import { ServerLifecycle } from "./providers/types";

/** One node's server as a deployment left it (or as the stack file would make it). */
export interface ServerFacts {
    name: string;
    role: string;
    provider: string;
    region: string;
    size?: string;
    /** An own host's address (provider ssh). */
    host?: string;
    /** The provider's image the server was created from (absent: unknown, or a host you bring). */
    image?: string;
    /**
     * sha256 of the node's bootstrap identity (components/bootstrap-identity.ts): its user-data
     * apart from code and keys. Absent: unknown (a deployment older than this fact; its
     * `userDataDigest` covered the code too, so it is not compared).
     */
    bootstrapDigest?: string;
    /**
     * Whether that deployment left the server resource itself protected (Pulumi `protect`): older
     * versions of vps-ha did; this one protects the members through the stack's member guard.
     */
    protected: boolean;
    /** The provider's id of the server (absent: a deployment older than this fact, or planned). */
    serverId?: string;
}

/**
 * new: no server yet. same: untouched. restart: the same server and disk, powered off for a
 * while (a resize, a migration). replace: a new server with an empty disk. remove: deleted.
 */
export type ChangeKind = "new" | "same" | "restart" | "replace" | "remove";

export interface NodeChange {
    name: string;
    role: string;
    /** A database member or the witness: each runs etcd and counts toward its quorum. */
    member: boolean;
    kind: ChangeKind;
    reasons: string[];
    /** Only for a replacement: the server moves to another provider (the old one is another resource). */
    providerMove?: boolean;
    /** Only for a replacement: where the old server is, which stands down first (standDownOf). */
    from?: { provider: string; serverId?: string };
    /** For a server kept: what its desired state's change does on it (components/in-place.ts), when known. */
    inPlace?: string;
}

export function isMember(role: string): boolean {
    return role === "db" || role === "witness";
}

const where = (f: ServerFacts) => `${f.provider}/${f.region}${f.size ? `/${f.size}` : ""}${f.host ? ` (${f.host})` : ""}`;

function changeOf(before: ServerFacts, after: ServerFacts): NodeChange {
    const replace: string[] = [];
    const restart: string[] = [];
    if (before.provider !== after.provider) replace.push(`moves from ${where(before)} to ${where(after)}: a new server`);
    else {
        if ((before.host ?? "") !== (after.host ?? "")) replace.push(`another host: ${before.host ?? "-"} -> ${after.host ?? "-"}`);
        if (before.region !== after.region) {
            const how = catalogs[after.provider]?.regionChange;
            if (how === "replace") replace.push(`region ${before.region} -> ${after.region}: a new server`);
            if (how === "migrate") restart.push(`region ${before.region} -> ${after.region}: migrated, powered off meanwhile`);
        }
        if ((before.size ?? "") !== (after.size ?? "")) restart.push(`size ${before.size ?? "-"} -> ${after.size ?? "-"}: powered off while resized`);
    }
    if (before.provider === after.provider && before.image !== undefined && after.image !== undefined && before.image !== after.image) {
        replace.push(`image ${before.image} -> ${after.image}: a new server`);
    }
    if (before.bootstrapDigest !== undefined && after.bootstrapDigest !== undefined && before.bootstrapDigest !== after.bootstrapDigest) {
        replace.push(after.provider === "ssh" ? "its bootstrap identity changes: the host is set up again" : "its bootstrap identity changes: a new server");
    }
    const kind: ChangeKind = replace.length > 0 ? "replace" : restart.length > 0 ? "restart" : "same";
    return {
        name: after.name, role: after.role, member: isMember(after.role), kind, reasons: [...replace, ...restart],
        ...(kind === "replace" ? { from: { provider: before.provider, ...(before.serverId ? { serverId: before.serverId } : {}) } } : {}),
        ...(kind === "replace" && before.provider !== after.provider ? { providerMove: true } : {}),
    };
}

/** Every node of either side, in the new stack file's order, then the removed ones. */
export function compareServers(before: readonly ServerFacts[] | undefined, after: readonly ServerFacts[]): NodeChange[] {
    const old = new Map((before ?? []).map((f) => [f.name, f]));
    const out: NodeChange[] = after.map((a) => {
        const b = old.get(a.name);
        return b ? changeOf(b, a) : { name: a.name, role: a.role, member: isMember(a.role), kind: "new" as const, reasons: [] };
    });
    const kept = new Set(after.map((a) => a.name));
    for (const b of before ?? []) {
        if (!kept.has(b.name)) out.push({ name: b.name, role: b.role, member: isMember(b.role), kind: "remove", reasons: ["no longer in the stack file"] });
    }
    return out;
}

/** A change that leaves the member neither voting nor holding a copy while it happens. */
export function takesDown(c: NodeChange): boolean {
    return c.member && (c.kind === "restart" || c.kind === "replace" || c.kind === "remove");
}

const ORDER: Record<ChangeKind, number> = { restart: 0, replace: 1, remove: 2, new: 3, same: 4 };

/**
 * Why this change may not be applied in one `pulumi up` (empty: it may). Two rules: one member
 * down at a time; and a member whose server an older vps-ha protected itself (Pulumi `protect` on
 * the server) is deleted or moved to another provider only after a run at this version has lifted
 * that, since a run cannot unprotect a resource it no longer declares. The same run records the
 * server's id, which a move to another provider needs to shut the old server down first.
 */
export function replacementProblems(changes: readonly NodeChange[], before: readonly ServerFacts[] | undefined): string[] {
    const problems: string[] = [];
    const down = changes.filter(takesDown);
    if (down.length > 1) {
        const order = [...down].sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
        problems.push(
            `this change takes ${down.length} database members or etcd voters down in one pulumi up: ${down.map((c) => `${c.name} (${c.reasons.join("; ")})`).join(", ")}. ` +
                `A majority down together loses the quorum and may lose acknowledged writes, so one pulumi up takes one down at most: ` +
                `apply the change one member per pulumi up, in this order: ${order.map((c) => c.name).join(", ")}, each after the last has rejoined (patronictl list shows it streaming). ` +
                "Nothing was changed.",
        );
    }
    const old = new Map((before ?? []).map((f) => [f.name, f]));
    for (const c of changes) {
        const was = old.get(c.name);
        if (!c.member || !was) continue;
        const firstRun = "pulumi up once with the stack file as deployed (this version of vps-ha protects members through the stack's member guard, lifts the protection of each server and records its id)";
        if (c.kind === "remove" && was.protected) {
            problems.push(`${c.name} is no longer in the stack file, but an older vps-ha protected its server itself. To retire it: put it back, ${firstRun}, then remove it and pulumi up again. Nothing was changed.`);
        } else if (c.providerMove && (was.protected || (was.provider !== "ssh" && !was.serverId))) {
            problems.push(`${c.name} ${c.reasons[0]}, but its old server was deployed by an older vps-ha (${was.protected ? "protected on the server itself" : "its id unrecorded"}, so it cannot be shut down first). To move it: ${firstRun}, then change its provider and pulumi up again. Nothing was changed.`);
        }
    }
    return problems;
}

/**
 * A node's server options. Members are replaced delete-before-create: their identity must never
 * run twice. Every server keeps the user-data it was created with unless this run replaces it.
 */
export function serverLifecycle(role: string, change: NodeChange | undefined): ServerLifecycle {
    return { deleteBeforeReplace: isMember(role), keepUserData: change?.kind !== "replace" };
}

/**
 * The old server that stands down (an ACPI shutdown through its provider's API, which hands a
 * primary over) before a member's new server: on another provider the new one is a new resource,
 * which Pulumi creates before it deletes the old one at the end of the run; within the provider the
 * old one is deleted first, but Linode deletes a running instance without shutting it down. Hosts
 * you bring have no such API (README).
 */
export function standDownOf(change: NodeChange | undefined): { provider: string; serverId: string } | undefined {
    if (!change?.member || change.kind !== "replace" || !change.from?.serverId || change.from.provider === "ssh") return undefined;
    return { provider: change.from.provider, serverId: change.from.serverId };
}

/**
 * The deployed facts from a stack's outputs (`pulumi stack output --json`, or a StackReference):
 * `serverFacts`, or for a deployment older than it, `nodes` with no bootstrap digest and nothing
 * protected. undefined: nothing deployed yet. A malformed value is an error, never a guess.
 */
export function factsFromOutputs(outputs: Record<string, unknown> | undefined): ServerFacts[] | undefined {
    if (!outputs) return undefined;
    const str = (v: unknown) => typeof v === "string";
    const opt = (v: unknown) => v === undefined || v === null || typeof v === "string";
    if (outputs.serverFacts !== undefined) {
        const list = outputs.serverFacts;
        if (!Array.isArray(list) || !list.every((f) => f && str(f.name) && str(f.role) && str(f.provider) && str(f.region) && opt(f.size) && opt(f.host) && opt(f.image) && opt(f.bootstrapDigest) && opt(f.userDataDigest) && opt(f.serverId) && typeof f.protected === "boolean")) {
            throw new Error("the deployed stack's serverFacts output is not a list of server facts");
        }
        return list.map((f) => ({
            name: f.name, role: f.role, provider: f.provider, region: f.region, protected: f.protected,
            ...(f.size ? { size: f.size } : {}), ...(f.host ? { host: f.host } : {}),
            ...(f.image ? { image: f.image } : {}), ...(f.bootstrapDigest ? { bootstrapDigest: f.bootstrapDigest } : {}),
            ...(f.serverId ? { serverId: f.serverId } : {}),
        }));
    }
    if (outputs.nodes !== undefined) {
        const list = outputs.nodes;
        if (!Array.isArray(list) || !list.every((n) => n && str(n.name) && str(n.role) && str(n.provider) && str(n.region) && opt(n.size))) {
            throw new Error("the deployed stack's nodes output is not a list of nodes");
        }
        return list.map((n) => ({
            name: n.name, role: n.role, provider: n.provider, region: n.region, protected: false,
            ...(n.size ? { size: n.size } : {}), ...(n.provider === "ssh" && str(n.publicIpv4) ? { host: n.publicIpv4 } : {}),
        }));
    }
    return undefined;
}

/** One line per node for the plan: what the change does to its server. */
export function describeChange(c: NodeChange): string {
    const what: Record<ChangeKind, string> = {
        new: "new server",
        same: "unchanged",
        restart: "same server, powered off meanwhile",
        replace: "REPLACES the server",
        remove: "DELETES the server",
    };
    const kept = c.kind === "same" || c.kind === "restart";
    const inPlace = kept && c.inPlace !== undefined && c.inPlace !== "unchanged" ? `; ${c.inPlace}` : "";
    const head = c.kind === "same" && inPlace ? "same server" : what[c.kind];
    return `${c.name} (${c.role}): ${head}${c.reasons.length > 0 && c.kind !== "remove" ? `: ${c.reasons.join("; ")}` : ""}${inPlace}`;
}
