// What the lab asks etcd: its members (voters or learners, started or not) and which one leads,
// through etcdctl inside a node that runs a member, on that member's loopback client URL, with
// that node's own etcd certificate (etcd admits no client without one).
import { ETCD_UNIT, ETCDCTL_TLS_FLAGS, etcdClientUrl } from "../../components/render/etcd";
import { execInNode, labNodes, nodeUnits, NodeState } from "./realize";

export interface EtcdMember {
    /** In hex, as etcdctl prints it (JSON would give uint64s that a JS number cannot hold). */
    id: string;
    name: string;
    /** Listed by the cluster but never started (no name or client URL yet). */
    started: boolean;
    learner: boolean;
    clientUrls: string[];
}

/** etcdctl in `node` against its own member, as root with the node's certificate. */
export const etcdctlArgs = (args: string[]) => ["etcdctl", `--endpoints=${etcdClientUrl("127.0.0.1")}`, ...ETCDCTL_TLS_FLAGS, ...args];

const ctl = (node: string, args: string[]) =>
    execInNode(node, [...etcdctlArgs([]), "--dial-timeout=2s", "--command-timeout=3s", ...args], { timeoutMs: 10_000, allowFail: true });

/** Nodes whose etcd unit is running. */
export async function etcdNodes(): Promise<NodeState[]> {
    const nodes = labNodes().filter((n) => !n.isolated);
    const units = await Promise.all(nodes.map((n) => nodeUnits(n.name)));
    return nodes.filter((_, i) => units[i].some((u) => u.unit === ETCD_UNIT && u.state === "active"));
}

/**
 * The cluster's members as `node`'s etcd sees them (a linearizable read: it needs a quorum);
 * undefined when it does not answer. etcdctl's simple format: ID, status, name, peer URLs,
 * client URLs, is learner.
 */
export async function etcdMembers(node: string): Promise<EtcdMember[] | undefined> {
    const r = await ctl(node, ["member", "list", "-w", "simple"]);
    if (r.code !== 0) return undefined;
    return r.stdout.split("\n").filter((l) => l.trim()).map((l) => {
        const [id, status, name, , clients, learner] = l.split(", ").map((f) => f.trim());
        return { id, name, started: status === "started" && name !== "", learner: learner === "true", clientUrls: clients ? clients.split(",") : [] };
    });
}

/**
 * The node whose etcd member leads, asked of the first running member that answers (undefined:
 * none answers, or an election is under way). endpoint status's simple format: endpoint, ID,
 * version, DB size, is leader, ...
 */
export async function etcdLeader(): Promise<string | undefined> {
    for (const n of await etcdNodes()) {
        // Members that do not answer are reported on stderr (and make the exit code 1); the
        // others' lines still say who leads.
        const r = await ctl(n.name, ["endpoint", "status", "--cluster", "-w", "simple"]);
        const rows = r.stdout.split("\n").map((l) => l.split(", ").map((f) => f.trim())).filter((f) => f.length >= 5 && /^https?:\/\//.test(f[0]));
        if (rows.length === 0) continue;
        const leading = rows.find((f) => f[4] === "true");
        if (!leading) return undefined;
        const address = new URL(leading[0]).hostname;
        return labNodes().find((x) => x.meshAddress === address)?.name;
    }
    return undefined;
}
