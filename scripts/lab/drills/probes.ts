// Probes run in a bounded loop during a drill, each attempt recorded with its time, so the
// drill can say when service was lost and when it came back.
import { labNodes, NodeState } from "../realize";
import { unreachablePeers } from "../health";

export interface Attempt {
    at: number;
    ok: boolean;
    detail?: string;
}

export interface Probe {
    name: string;
    attempt(): Promise<{ ok: boolean; detail?: string }>;
}

export class ProbeRun {
    readonly attempts: Attempt[] = [];
    private stopped = false;
    private loop: Promise<void> | undefined;

    constructor(readonly probe: Probe, private readonly everyMs: number, private readonly maxAttempts: number) {}

    start(): this {
        this.loop = (async () => {
            for (let i = 0; i < this.maxAttempts && !this.stopped; i++) {
                const t = Date.now();
                const r = await this.probe.attempt().catch((e: Error) => ({ ok: false, detail: e.message }));
                this.attempts.push({ at: t, ok: r.ok, detail: r.detail });
                const wait = this.everyMs - (Date.now() - t);
                if (wait > 0) await new Promise((res) => setTimeout(res, wait));
            }
        })();
        return this;
    }

    async stop(): Promise<void> {
        this.stopped = true;
        await this.loop;
    }

    failures(since = 0): number {
        return this.attempts.filter((a) => a.at >= since && !a.ok).length;
    }

    /** Seconds from `since` until the first success after the last failure (0 if none failed). */
    recoveredAfter(since: number): number | null {
        const after = this.attempts.filter((a) => a.at >= since);
        const lastFailure = [...after].reverse().find((a) => !a.ok);
        if (!lastFailure) return 0;
        const back = after.find((a) => a.at > lastFailure.at && a.ok);
        return back ? (back.at - since) / 1000 : null;
    }
}

/**
 * Every node but the excluded ones reaches every other one over the mesh: the nodes of the lab
 * when the probe is made (a server a drill adds meanwhile is not in the mesh until it has booted).
 */
export function meshProbe(excluded: string[]): Probe {
    const present = new Set(labNodes().map((n) => n.name));
    return {
        name: `mesh among ${excluded.length ? `all but ${excluded.join(", ")}` : "all nodes"}`,
        async attempt() {
            const nodes: NodeState[] = labNodes().filter((n) => present.has(n.name) && !excluded.includes(n.name));
            const results = await Promise.all(nodes.map(async (n) => ({ n: n.name, down: await unreachablePeers(n, nodes.filter((p) => p.name !== n.name)) })));
            const bad = results.filter((r) => r.down.length > 0);
            return { ok: bad.length === 0, detail: bad.map((b) => `${b.n} cannot reach ${b.down.join(", ")}`).join("; ") };
        },
    };
}
