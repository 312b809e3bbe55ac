// How many copies a commit has before it is acknowledged, and what a set of surviving members
// therefore holds. Pure: the Patroni renderer and the failure table both read it.
import type { StackConfig } from "./config";

/**
 * k, how many standbys must confirm each commit (Patroni's synchronous_node_count; in quorum
 * mode synchronous_standby_names = `ANY k (the standbys)`).
 *
 * A witness keeps an etcd quorum through the loss of the provider holding the most members, but
 * the members left elsewhere may then take over only if they hold every acknowledged commit. So
 * with a witness, k is the number of members on that provider: a commit is on the primary and k
 * standbys, k + 1 members, more than that provider holds, so at least one copy is elsewhere
 * (3 members 2+1: k = 2; 5 members 3+2: k = 3). Without a witness that loss stops the database
 * anyway (etcd has no quorum), and one standby is enough: k = 1.
 *
 * What Patroni 4 does with k (patroni/quorum.py, QuorumStateResolver, as shipped in Debian 13's
 * 4.0.7): it keeps `numsync = min(k, standbys streaming)`, `voters = the synchronous standbys`
 * and `quorum = voters - numsync` in its /sync key, always raising one before lowering the
 * other so that any set of members that could acknowledge a commit overlaps any set that could
 * elect a new leader. While standbys are down it lowers numsync itself (a commit waits for the
 * standbys that are there) and records that in /sync; a standby left in the voters with
 * `quorum` 0 needs no other member's vote in the leader race (ha.py, _is_healthiest_node), so a
 * lone survivor that was in the synchronous set is promotable. Before promoting, it lists the
 * other former voters in its own synchronous_standby_names, and drops the ones that do not come
 * back a loop or two later (`ANY k` of nobody, or none at all when not strict).
 */
export function synchronousNodeCount(config: Pick<StackConfig, "nodes">): number {
    if (config.nodes.witness.length === 0) return 1;
    const perProvider = new Map<string, number>();
    for (const m of config.nodes.db) perProvider.set(m.provider, (perProvider.get(m.provider) ?? 0) + 1);
    return Math.max(1, ...perProvider.values());
}

/**
 * Whether `alive` of `members` surely hold every acknowledged commit, whichever members were
 * lost. With synchronous replication a commit is on k + 1 members, so any `members - k` of them
 * include one of those; without it, only the primary is sure to have it.
 */
export function survivorsHoldEveryCommit(members: number, alive: number, synchronous: StackConfig["database"]["synchronous"], k: number): boolean {
    return synchronous === "off" ? alive === members : alive >= members - k;
}
