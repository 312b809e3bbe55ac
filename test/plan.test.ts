import { strict as assert } from "node:assert";
import { ConfigError, parseStackConfig } from "../components/config";
import { loadBalancerMonthlyUsd } from "../components/cost";
import { inNetwork } from "../components/net";
import { buildPlan, meshAddresses, StackPlan } from "../components/plan";
import { survivorsHoldEveryCommit, synchronousNodeCount } from "../components/replication";
import { prodNodes, prodStack, raw, withConfig } from "./helpers/stack";

function planOf(edits: Record<string, unknown> = {}): StackPlan {
    const file = withConfig(edits);
    if ("sshPrivateKey" in edits) file.secretKeys.push("vps-ha:sshPrivateKey");
    return buildPlan(parseStackConfig(raw(file), "prod"));
}

const addresses = (p: StackPlan) => new Map(p.nodes.map((n) => [n.name, n.meshAddress]));

describe("plan", () => {
    it("gives every node a unique mesh address inside the mesh network", () => {
        const plan = planOf();
        const all = plan.nodes.map((n) => n.meshAddress);
        assert.equal(new Set(all).size, all.length);
        for (const a of all) assert.ok(inNetwork(a, "10.77.0.0/24") && !a.endsWith(".0") && !a.endsWith(".255"), a);
    });

    it("keeps each node's mesh address when other nodes are added, removed or reordered", () => {
        const before = addresses(planOf());
        const nodes = prodNodes();
        // Reordered and with nodes added; a collision would be reported, never resolved by moving somebody.
        nodes.app = [...nodes.app.reverse(), { name: "app-3", provider: "hcloud", region: "nbg1", size: "cx23" }, { name: "app-4", provider: "linode", region: "de-fra-2", size: "g6-nanode-1" }];
        nodes.db = nodes.db.reverse();
        const after = addresses(planOf({ nodes, mesh: { cidr: "10.77.0.0/24" } }));
        for (const [name, address] of before) assert.equal(after.get(name), address, name);
        const removed = prodNodes();
        removed.app = [...removed.app, { name: "app-3", provider: "hcloud", region: "nbg1", size: "cx23" }];
        const third = addresses(planOf({ nodes: removed }));
        removed.app = removed.app.filter((n) => n.name !== "app-2");
        const fewer = addresses(planOf({ nodes: removed }));
        for (const [name, address] of fewer) assert.equal(third.get(name), address, name);
    });

    it("reports a mesh address collision instead of moving a node, and honours a pinned address", () => {
        // Find a name that hashes onto db-1's address: searched with the address assignment alone
        // (a whole plan per try is most of this test's time), then the whole plan must report it.
        const taken = addresses(planOf()).get("db-1") as string;
        const config = parseStackConfig(raw(prodStack()), "prod");
        let clash = "";
        for (let i = 0; i < 5000 && !clash; i++) {
            const app = { ...config.nodes.app[0], name: `app-x${i}` };
            try {
                meshAddresses({ ...config, nodes: { ...config.nodes, app: [...config.nodes.app, app] } });
            } catch (e) {
                if (e instanceof ConfigError && e.issues[0].message.includes(taken)) clash = app.name;
            }
        }
        assert.ok(clash, "no colliding name found in 5000 tries");
        const clashing = prodNodes();
        clashing.app.push({ name: clash, provider: "hcloud", region: "nbg1", size: "cx23" });
        assert.throws(() => planOf({ nodes: clashing }), (e) => e instanceof ConfigError && e.issues[0].message.includes(taken));
        const nodes = prodNodes();
        nodes.app.push({ name: clash, provider: "hcloud", region: "nbg1", size: "cx23", meshAddress: "10.77.0.250" });
        const pinned = addresses(planOf({ nodes }));
        assert.equal(pinned.get(clash), "10.77.0.250");
        assert.equal(pinned.get("db-1"), taken);
    });

    it("names each node's failure domain and DNS name", () => {
        const db1 = planOf().nodes.find((n) => n.name === "db-1");
        assert.equal(db1?.failureDomain, "hcloud/fsn1");
        assert.equal(db1?.dnsName, "db-1.prod.nodes.example.com");
    });

    it("opens only WireGuard publicly, 80/443 from Cloudflare on HAProxy nodes, SSH only from admin ranges", () => {
        const closed = planOf();
        for (const role of ["app", "haproxy", "db", "witness"] as const) {
            const publicRules = closed.ports[role].filter((r) => r.from.kind !== "mesh");
            const expected = role === "haproxy" ? ["wireguard", "http", "https"] : ["wireguard"];
            assert.deepEqual(publicRules.map((r) => r.service), expected, role);
            assert.ok(publicRules.every((r) => r.from.kind === (r.service === "wireguard" ? "internet" : "cloudflare")));
        }
        const open = planOf({ admin: { sshCidrs: ["203.0.113.0/24"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] } });
        const ssh = open.ports.db.find((r) => r.service === "ssh");
        assert.deepEqual(ssh?.from, { kind: "admin", cidrs: ["203.0.113.0/24"] });
        // Database, etcd and Patroni ports are reachable over the mesh only.
        for (const r of open.ports.db.filter((r) => ["postgres", "patroni", "etcd-client", "etcd-peer"].includes(r.service))) assert.equal(r.from.kind, "mesh");
    });

    it("adds up the monthly cost from the catalogs, the Cloudflare add-on and the zone's plan", () => {
        const plan = planOf();
        const servers = plan.nodes.reduce((s, n) => s + n.monthlyUsd, 0);
        assert.ok(servers > 20 && servers < 100, String(servers));
        assert.equal(plan.monthlyCostUsd, Math.round((servers + 5) * 100) / 100);
        assert.deepEqual(plan.extraCosts.map((c) => [c.item.split(" (")[0], c.monthlyUsd]), [["Cloudflare Load Balancing", 5], ["Cloudflare R2 backups", 0]]);
        // Budget mode: no add-on, but its health checks come with the Pro plan.
        const budget = planOf({ cloudflare: { ...JSON.parse(prodStack().values["vps-ha:cloudflare"]), loadBalancer: false, zonePlan: "pro" } });
        assert.ok(!budget.extraCosts.some((c) => /Load Balancing/.test(c.item)));
        assert.equal(budget.monthlyCostUsd, Math.round((servers + 25) * 100) / 100);
        // The add-on includes two origins; each further one is $5.
        assert.deepEqual([loadBalancerMonthlyUsd(2), loadBalancerMonthlyUsd(3)], [5, 10]);
    });

    it("notes in budget mode that losing an HAProxy node sends visitors to errors until its records go", () => {
        const budget = planOf({ cloudflare: { ...JSON.parse(prodStack().values["vps-ha:cloudflare"]), loadBalancer: false, zonePlan: "pro" } });
        const lb1 = budget.failures.find((f) => f.scenario === "node lb-1");
        assert.match(String(lb1?.note), /budget mode: .*521\/522/);
        assert.equal(planOf().failures.find((f) => f.scenario === "node lb-1")?.note, "survives");
    });

    describe("failure table", () => {
        const row = (p: StackPlan, scenario: string) => {
            const r = p.failures.find((f) => f.scenario === scenario);
            assert.ok(r, `no row ${scenario}`);
            return r;
        };

        it("prod: any single node, any data centre and the minority provider are survived; the majority provider is not", () => {
            const plan = planOf();
            for (const n of plan.nodes) assert.ok(row(plan, `node ${n.name}`).dbWrites && row(plan, `node ${n.name}`).webUp, n.name);
            for (const d of ["hcloud/fsn1", "hcloud/nbg1", "linode/de-fra-2"]) {
                const r = row(plan, `domain ${d}`);
                assert.ok(r.webUp && r.dbPrimary && r.dbWrites, d);
            }
            assert.ok(row(plan, "provider linode").dbWrites);
            const hcloud = row(plan, "provider hcloud");
            assert.equal(hcloud.webUp, true);
            assert.equal(hcloud.dbPrimary, false);
            assert.match(hcloud.note, /1 of 3 voters/);
        });

        const ADMIN = { admin: { sshCidrs: ["198.51.100.7/32"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] }, sshPrivateKey: "k" };
        const WITNESS = { name: "witness-1", provider: "ssh", region: "office-zurich", host: "203.0.113.10" };
        const h = (name: string, region: string) => ({ name, provider: "hcloud", region, size: "cx23" });
        const l = (name: string) => ({ name, provider: "linode", region: "de-fra-2", size: "g6-standard-1" });
        const witnessPlan = (db: ReturnType<typeof h>[], database?: Record<string, unknown>) => {
            const nodes = prodNodes();
            nodes.db = db;
            nodes.witness = [WITNESS];
            return planOf({ nodes, ...ADMIN, ...(database ? { database } : {}) });
        };
        const three = [h("db-1", "fsn1"), h("db-2", "nbg1"), l("db-3")];

        it("prod: no witness, one standby per commit (k = 1), the survivors of a minority loss hold every write", () => {
            const plan = planOf();
            assert.equal(synchronousNodeCount(plan.config), 1);
            const linode = row(plan, "provider linode");
            assert.deepEqual([linode.dbPrimary, linode.dbWrites, linode.note], [true, true, "survives"]);
            // Two members lost of three: the one left may lack a commit that reached the other standby.
            assert.equal(survivorsHoldEveryCommit(3, 1, "quorum", 1), false);
            // Five members, one standby per commit: three survivors may all lack the last commits.
            const nodes = prodNodes();
            nodes.db = [h("db-1", "fsn1"), h("db-2", "nbg1"), h("db-4", "hel1"), l("db-3"), l("db-5")];
            const five = planOf({ nodes });
            assert.equal(synchronousNodeCount(five.config), 1);
            assert.ok(row(five, "node db-1").dbWrites);
            assert.equal(survivorsHoldEveryCommit(5, 3, "quorum", 1), false);
            assert.equal(survivorsHoldEveryCommit(5, 4, "quorum", 1), true);
        });

        it("3 members + witness, strict: etcd keeps a quorum without the majority provider, the survivor holds every write, and writes wait for a standby", () => {
            const plan = witnessPlan(three);
            const voters = plan.nodes.filter((n) => n.etcdVoter).map((n) => n.name);
            assert.equal(voters.length % 2, 1, "an odd number of etcd voters");
            const byProvider = new Map<string, number>();
            for (const v of plan.nodes.filter((n) => n.etcdVoter)) byProvider.set(v.provider, (byProvider.get(v.provider) ?? 0) + 1);
            for (const [p, n] of byProvider) assert.ok(n <= voters.length / 2, `${p} holds ${n} of ${voters.length} voters`);
            assert.equal(synchronousNodeCount(plan.config), 2, "a commit waits for both standbys: one copy is always off hcloud");
            const hcloud = row(plan, "provider hcloud");
            assert.equal(hcloud.dbPrimary, true);
            assert.equal(hcloud.dbWrites, false);
            assert.match(hcloud.note, /holding every acknowledged write; writes wait: no standby left/);
            const linode = row(plan, "provider linode");
            assert.deepEqual([linode.dbPrimary, linode.dbWrites], [true, true]);
            assert.ok(row(plan, "domain ssh/office-zurich").dbWrites);
            for (const n of plan.nodes) assert.ok(row(plan, `node ${n.name}`).dbWrites, n.name);
        });

        it("3 members + witness, not strict: writes go on through the loss of the majority provider, with one copy", () => {
            const plan = witnessPlan(three, { synchronous: "quorum", synchronousStrict: false });
            const hcloud = row(plan, "provider hcloud");
            assert.deepEqual([hcloud.dbPrimary, hcloud.dbWrites, hcloud.webUp], [true, true, true]);
            assert.match(hcloud.note, /writes go on, each with one copy until a member returns/);
            assert.ok(row(plan, "provider linode").dbWrites);
            // Asynchronous replication: a survivor may lack acknowledged writes whatever the witness does.
            const off = row(witnessPlan(three, { synchronous: "off", synchronousStrict: false }), "provider hcloud");
            assert.equal(off.dbWrites, false);
            assert.match(off.note, /replication is asynchronous/);
        });

        it("5 members (3+2) + witness: k = 3, and either provider's loss is survived with writes", () => {
            const plan = witnessPlan([h("db-1", "fsn1"), h("db-2", "nbg1"), h("db-4", "hel1"), l("db-3"), l("db-5")]);
            assert.equal(synchronousNodeCount(plan.config), 3);
            assert.equal(plan.nodes.filter((n) => n.etcdVoter).length, 5);
            for (const p of ["hcloud", "linode"]) {
                const r = row(plan, `provider ${p}`);
                assert.deepEqual([r.dbPrimary, r.dbWrites, r.note], [true, true, "survives"], p);
            }
            // With k = 2 the two linode members could both lack a commit that reached three hcloud members.
            assert.equal(survivorsHoldEveryCommit(5, 2, "quorum", 2), false);
        });
    });
});
