// What each failure leaves standing: for the loss of every node, every failure domain
// (provider + region) and every whole provider, does the web stay up, can the database elect a
// primary, and does it accept writes without risking an acknowledged one.
import type { PlannedNode, StackPlan } from "./plan";

export interface FailureRow {
    /** "node db-1", "domain hcloud/fsn1", "provider linode". */
    scenario: string;
    lost: string[];
    webUp: boolean;
    dbPrimary: boolean;
    dbWrites: boolean;
    note: string;
}

type PlanLike = Pick<StackPlan, "nodes" | "config">;

export function failureTable(plan: PlanLike): FailureRow[] {
    const scenarios: { scenario: string; lost: (n: PlannedNode) => boolean }[] = [
        ...plan.nodes.map((n) => ({ scenario: `node ${n.name}`, lost: (m: PlannedNode) => m.name === n.name })),
        ...unique(plan.nodes.map((n) => n.failureDomain)).map((d) => ({ scenario: `domain ${d}`, lost: (m: PlannedNode) => m.failureDomain === d })),
        ...unique(plan.nodes.map((n) => n.provider)).map((p) => ({ scenario: `provider ${p}`, lost: (m: PlannedNode) => m.provider === p })),
    ];
    return scenarios.map(({ scenario, lost }) => assess(plan, scenario, lost));
}

function unique<T>(xs: T[]): T[] {
    return [...new Set(xs)];
}

function assess(plan: PlanLike, scenario: string, isLost: (n: PlannedNode) => boolean): FailureRow {
    const alive = plan.nodes.filter((n) => !isLost(n));
    const count = (nodes: PlannedNode[], role: string) => nodes.filter((n) => n.role === role).length;
    const webUp = count(alive, "app") > 0 && count(alive, "haproxy") > 0;
    const voters = plan.nodes.filter((n) => n.etcdVoter);
    const votersAlive = alive.filter((n) => n.etcdVoter).length;
    const quorum = votersAlive > voters.length / 2;
    const dbAlive = count(alive, "db");
    const dbPrimary = quorum && dbAlive > 0;
    // A survivor may only be promoted when it holds every acknowledged commit. With synchronous
    // replication Patroni promotes only a member that was in the synchronous set, so a lone
    // survivor is safe only when the synchronous set reached it: in quorum mode every commit waits
    // for a majority of members, so a majority of members must survive; with replication off,
    // any survivor may be missing acknowledged writes.
    const members = count(plan.nodes, "db");
    const sync = plan.config.database.synchronous;
    const safe = sync === "off" ? dbAlive === members : sync === "on" ? dbAlive >= members - 1 : dbAlive > members / 2;
    const dbWrites = dbPrimary && safe;
    const notes: string[] = [];
    if (!quorum) notes.push(`etcd keeps ${votersAlive} of ${voters.length} voters: no quorum, no primary`);
    else if (dbAlive === 0) notes.push("no database member left");
    else if (!safe) notes.push(`${dbAlive} of ${members} members left: promoting one could drop acknowledged writes, so writes wait`);
    if (!webUp) notes.push(count(alive, "app") === 0 ? "no app node left" : "no HAProxy node left");
    else if (!plan.config.cloudflare.loadBalancer && count(alive, "haproxy") < count(plan.nodes, "haproxy")) {
        notes.push("budget mode: visitors sent to the lost HAProxy node get errors (521/522) until its records are taken out");
    }
    const lost = plan.nodes.filter(isLost).map((n) => n.name);
    return { scenario, lost, webUp, dbPrimary, dbWrites, note: notes.join("; ") || "survives" };
}
