// What each failure leaves standing: for the loss of every node, every failure domain
// (provider + region) and every whole provider, does the web stay up, can the database elect a
// primary, and does it accept writes without risking an acknowledged one.
import type { PlannedNode, StackPlan } from "./plan";
import { survivorsHoldEveryCommit, synchronousNodeCount } from "./replication";

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
    // A survivor may only be promoted when it holds every acknowledged commit: Patroni promotes
    // only a member of the synchronous set, and in quorum mode only with enough of the others'
    // votes. A commit waits for k standbys (components/replication.ts), so any members - k
    // survivors hold it; with replication off, only the primary surely does.
    const members = count(plan.nodes, "db");
    const { synchronous, synchronousStrict } = plan.config.database;
    const k = synchronousNodeCount(plan.config);
    const safe = survivorsHoldEveryCommit(members, dbAlive, synchronous, k);
    // A member left alone has no standby to confirm its commits: strict mode waits for one to
    // return, otherwise it goes on acknowledging commits that exist on it alone.
    const alone = dbAlive === 1 && members > 1 && synchronous !== "off";
    const dbWrites = dbPrimary && safe && !(alone && synchronousStrict);
    const notes: string[] = [];
    if (!quorum) notes.push(`etcd keeps ${votersAlive} of ${voters.length} voters: no quorum, no primary`);
    else if (dbAlive === 0) notes.push("no database member left");
    else if (!safe) {
        const why = synchronous === "off" ? "replication is asynchronous" : `a commit waits for ${k} standby(s), ${k + 1} copies`;
        notes.push(`${dbAlive} of ${members} members left (${why}): promoting one could drop acknowledged writes, so writes wait`);
    } else if (alone && synchronousStrict) notes.push(`1 of ${members} members left, holding every acknowledged write; writes wait: no standby left (database.synchronousStrict)`);
    else if (alone) notes.push(`1 of ${members} members left, holding every acknowledged write; writes go on, each with one copy until a member returns (synchronousStrict: false)`);
    if (!webUp) notes.push(count(alive, "app") === 0 ? "no app node left" : "no HAProxy node left");
    else if (!plan.config.cloudflare.loadBalancer && count(alive, "haproxy") < count(plan.nodes, "haproxy")) {
        notes.push("budget mode: visitors sent to the lost HAProxy node get errors (521/522) until its records are taken out");
    }
    const lost = plan.nodes.filter(isLost).map((n) => n.name);
    return { scenario, lost, webUp, dbPrimary, dbWrites, note: notes.join("; ") || "survives" };
}
