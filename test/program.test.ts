// The program's resource graph, evaluated under Pulumi's mock runtime.
import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { directoryIndexName, directoryRecordName, parseRecord, txtStrings } from "../components/directory-records";
import { evaluateProgram, Evaluation, MOCK_CLOUDFLARE_RANGES, RecordedResource } from "../scripts/lib/mock-program";
import { evaluate, ofType, TYPES } from "./helpers/program";
import { prodNodes, prodStack, withConfig } from "./helpers/stack";
import { wireguardPublicKey } from "../components/keys";
import { SSH_POLICY_UNIT } from "../components/render/admin-ssh";

const ANYWHERE = ["0.0.0.0/0", "::/0"];
const CLOUDFLARE = [...MOCK_CLOUDFLARE_RANGES.ipv4Cidrs, ...MOCK_CLOUDFLARE_RANGES.ipv6Cidrs];

interface Rule { service: string; port: string; protocol: string; sources: string[] }

/** Every inbound rule of a node's firewall, provider-agnostic, for comparison. */
function firewallRules(e: Evaluation, node: string): Rule[] {
    const fw = e.resources.find((r) => (r.type === TYPES.linodeFirewall || r.type === TYPES.hcloudFirewall) && r.name === `${node}-firewall`);
    assert.ok(fw, `no firewall for ${node}`);
    if (fw.type === TYPES.linodeFirewall) {
        assert.equal(fw.inputs.inboundPolicy, "DROP");
        return (fw.inputs.inbounds as { label: string; ports: string; protocol: string; ipv4s?: string[]; ipv6s?: string[]; action: string }[]).map((r) => {
            assert.equal(r.action, "ACCEPT");
            return { service: r.label.split("-")[0], port: r.ports, protocol: r.protocol.toLowerCase(), sources: [...(r.ipv4s ?? []), ...(r.ipv6s ?? [])] };
        });
    }
    // Hetzner firewalls drop whatever no rule allows.
    return (fw.inputs.rules as { description: string; port: string; protocol: string; sourceIps: string[]; direction: string }[]).map((r) => {
        assert.equal(r.direction, "in");
        return { service: r.description.split("-")[0], port: r.port, protocol: r.protocol, sources: r.sourceIps };
    });
}

describe("program (mock runtime)", function () {
    this.timeout(60000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("creates exactly the prod stack's servers on each provider", () => {
        const names = (rs: RecordedResource[]) => rs.map((r) => r.name).sort();
        assert.deepEqual(names(ofType(prod, TYPES.linodeInstance)), ["app-1", "db-3", "lb-1"]);
        assert.deepEqual(names(ofType(prod, TYPES.hcloudServer)), ["app-2", "db-1", "db-2", "lb-2"]);
        for (const r of ofType(prod, TYPES.linodeInstance)) assert.equal(r.inputs.image, "linode/debian13");
        for (const r of ofType(prod, TYPES.hcloudServer)) assert.equal(r.inputs.image, "debian-13");
        const db3 = ofType(prod, TYPES.linodeInstance).find((r) => r.name === "db-3");
        assert.equal(db3?.inputs.region, "de-fra-2");
        assert.equal(db3?.inputs.type, "g6-standard-1");
    });

    it("firewalls open WireGuard to all, 80/443 on HAProxy nodes to Cloudflare only, and nothing else", () => {
        for (const node of ["app-1", "app-2", "db-1", "db-2", "db-3"]) {
            assert.deepEqual(firewallRules(prod, node), [{ service: "wireguard", port: "51820", protocol: "udp", sources: ANYWHERE }], node);
        }
        for (const node of ["lb-1", "lb-2"]) {
            assert.deepEqual(firewallRules(prod, node), [
                { service: "wireguard", port: "51820", protocol: "udp", sources: ANYWHERE },
                { service: "http", port: "80", protocol: "tcp", sources: CLOUDFLARE },
                { service: "https", port: "443", protocol: "tcp", sources: CLOUDFLARE },
            ], node);
        }
    });

    it("opens SSH only from the configured admin ranges", async () => {
        const e = await evaluate(withConfig({ admin: { sshCidrs: ["203.0.113.0/24", "2001:db8::/48"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] } }));
        for (const node of ["app-1", "db-1"]) {
            const ssh = firewallRules(e, node).filter((r) => r.port === "22");
            assert.deepEqual(ssh, [{ service: "ssh", port: "22", protocol: "tcp", sources: ["203.0.113.0/24", "2001:db8::/48"] }]);
        }
        // And sshd stays on; without admin ranges every node turns it off (its desired state's SSH policy).
        const policy = (x: Evaluation) => x.desired["db-1"].files.find((f) => f.path === `/etc/systemd/system/${SSH_POLICY_UNIT}`)?.content ?? "";
        assert.match(policy(e), /ExecStart=systemctl enable --now --no-block --no-reload ssh.service/);
        assert.match(policy(prod), /ExecStart=systemctl disable --now --no-block --no-reload ssh.service/);
        assert.equal(e.userData["db-1"], prod.userData["db-1"], "the bootstrap is the same either way");
    });

    it("keeps every key and the user-data secret", () => {
        const servers = [...ofType(prod, TYPES.linodeInstance), ...ofType(prod, TYPES.hcloudServer)];
        for (const s of servers) {
            const field = s.type === TYPES.linodeInstance ? "metadatas" : "userData";
            assert.ok(s.secretInputs.includes(field), `${s.name}: ${field} is not secret`);
        }
        // No private key appears in any input Pulumi does not hold as secret.
        const privateKeys = Object.values(prod.userData).map((u) => /PrivateKey = (\S+)/.exec(u)?.[1] as string);
        assert.equal(privateKeys.length, 7);
        for (const r of prod.resources) {
            const open = JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k))));
            for (const k of privateKeys) assert.ok(!open.includes(k), `${r.type} ${r.name} carries a private key in the clear`);
        }
        // The directory's signing key only ever reaches resources as a secret.
        const signing = prod.resources.find((r) => r.type === "tls:index/privateKey:PrivateKey" && r.name === "directory-signing-key");
        assert.equal(signing?.inputs.algorithm, "ED25519");
        const signingPem = String(signing?.outputs.privateKeyPem);
        const signingBody = signingPem.split("\n")[1];
        for (const r of prod.resources) {
            const open = JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k))));
            assert.ok(!open.includes(signingBody), `${r.type} ${r.name} carries the directory's signing key in the clear`);
        }
        for (const u of Object.values(prod.userData)) assert.ok(!u.includes(signingBody));
        // Stack outputs hold no key or token at all.
        const outputs = JSON.stringify(prod.outputs);
        for (const k of [...privateKeys, signingBody]) assert.ok(!outputs.includes(k));
        assert.ok(!outputs.includes("placeholder"));
    });

    it("gives each node a DNS-only record of its public address", () => {
        const records = ofType(prod, TYPES.dnsRecord);
        const a = records.find((r) => r.inputs.name === "db-1.prod.nodes.example.com" && r.inputs.type === "A");
        assert.equal(a?.inputs.content, prod.publicIpv4["db-1"]);
        assert.equal(a?.inputs.proxied, false);
        assert.equal(a?.inputs.zoneId, "fedcba9876543210fedcba9876543210");
        assert.equal(records.filter((r) => r.inputs.type === "A").length, 7);
    });

    it("publishes the signed mesh directory: one TXT record per node and an index, DNS-only", () => {
        const txt = ofType(prod, TYPES.dnsRecord).filter((r) => r.inputs.type === "TXT");
        const key = /"publicKey": "([^"]+)"/.exec(prod.userData["db-1"])?.[1] as string;
        const index = directoryIndexName("prod.nodes.example.com");
        const indexRecords = txt.filter((r) => r.inputs.name === index);
        assert.equal(indexRecords.length, 1);
        const parsedIndex = parseRecord(index, txtStrings(String(indexRecords[0].inputs.content)).join(""), key);
        assert.ok(parsedIndex.kind === "index");
        assert.deepEqual([...parsedIndex.members].sort(), Object.keys(prod.userData).sort());
        const nodes = prod.outputs.nodes as { name: string; role: string; meshAddress: string; dnsName: string }[];
        for (const n of nodes) {
            const owner = directoryRecordName(n.dnsName);
            const record = txt.find((r) => r.inputs.name === owner);
            assert.ok(record, `no directory record for ${n.name}`);
            assert.equal(record.inputs.proxied, false);
            assert.equal(record.inputs.ttl, 60);
            assert.ok(!record.secretInputs.includes("content"), "a signature is not a secret");
            const parsed = parseRecord(owner, txtStrings(String(record.inputs.content)).join(""), key);
            assert.ok(parsed.kind === "node");
            const wg0 = /PrivateKey = (\S+)/.exec(prod.userData[n.name])?.[1] as string;
            assert.deepEqual({ name: parsed.name, role: parsed.role, mesh: parsed.meshAddress, dns: parsed.dnsName, wg: parsed.wireguardKey }, { name: n.name, role: n.role, mesh: n.meshAddress, dns: n.dnsName, wg: wireguardPublicKey(wg0) });
        }
        assert.equal(txt.filter((r) => !String(r.inputs.name).startsWith("_desired")).length, nodes.length + 2, "a record per node, the index, the release");
    });

    it("exports every node's name, provider, region, public IPs and mesh address", () => {
        const nodes = prod.outputs.nodes as Record<string, unknown>[];
        assert.equal(nodes.length, 7);
        const db3 = nodes.find((n) => n.name === "db-3");
        assert.deepEqual(
            { provider: db3?.provider, region: db3?.region, publicIpv4: db3?.publicIpv4, publicIpv6: db3?.publicIpv6 },
            { provider: "linode", region: "de-fra-2", publicIpv4: prod.publicIpv4["db-3"], publicIpv6: "2001:db8::1" },
        );
        assert.match(String(db3?.meshAddress), /^10\.77\.0\.\d+$/);
        assert.ok(typeof prod.outputs.monthlyCostUsd === "number");
    });

    it("adding or removing a node changes no existing server's user-data, only the directory's DNS records", async () => {
        // A server's inputs, less the ids of other resources (the mock numbers them in order of creation).
        const ids = new Set(["firewallIds", "firewallId", "placementGroupId", "sshKeys"]);
        const serverInputs = (e: Evaluation) => new Map([...ofType(e, TYPES.linodeInstance), ...ofType(e, TYPES.hcloudServer)].map((r) => [r.name, JSON.stringify(Object.entries(r.inputs).filter(([k]) => !ids.has(k)))]));
        const recordsOf = (e: Evaluation) => new Map(ofType(e, TYPES.dnsRecord).map((r) => [`${r.inputs.name} ${r.inputs.type}`, String(r.inputs.content)]));
        const grown = prodNodes();
        grown.app.push({ name: "app-3", provider: "linode", region: "de-fra-2", size: "g6-nanode-1" });
        const withApp3 = await evaluate(withConfig({ nodes: grown }));
        const shrunk = prodNodes();
        shrunk.app = [grown.app[1], grown.app[2]]; // app-1 leaves, app-3 stays
        const withoutApp1 = await evaluate(withConfig({ nodes: shrunk }));

        for (const [before, after, added, removed] of [[prod, withApp3, ["app-3"], []], [withApp3, withoutApp1, [], ["app-1"]]] as const) {
            // Every server that stays gets the very same user-data and inputs: nothing is replaced.
            const was = serverInputs(before);
            const now = serverInputs(after);
            for (const [name, inputs] of now) if (was.has(name)) assert.ok(inputs === was.get(name), `${name}'s server inputs changed`);
            for (const name of Object.keys(after.userData)) if (before.userData[name]) assert.ok(after.userData[name] === before.userData[name], `${name}'s user-data changed`);
            assert.deepEqual([...now.keys()].filter((n) => !was.has(n)), [...added]);
            assert.deepEqual([...was.keys()].filter((n) => !now.has(n)), [...removed]);
            // What does change: the index, the newcomer's records, the leaver's records gone.
            const r0 = recordsOf(before);
            const r1 = recordsOf(after);
            // Desired-state records carry a generation that the mock, as Pulumi's state would, carries
            // from one evaluation to the next: compared by what the nodes read from them. The
            // newcomer's and the leaver's come and go with them; their rollout group's (the app
            // nodes') carry the group's new order and id; no kept node's files change.
            const appNodes = (e: Evaluation) => (e.outputs.nodes as { name: string; role: string }[]).filter((n) => n.role === "app").map((n) => n.name);
            const group = new Set([...appNodes(before), ...appNodes(after)]);
            for (const n of Object.keys(after.desired)) {
                if (!before.desired[n]) continue;
                const { generation: _g1, rollout: r1, ...was } = before.desired[n];
                const { generation: _g2, rollout: r2, ...now } = after.desired[n];
                assert.deepEqual(now, was, `${n}'s desired state changed`);
                if (!group.has(n)) assert.deepEqual(r2, r1, `${n}'s rollout changed`);
            }
            assert.deepEqual(Object.keys(after.desired).filter((n) => !before.desired[n]), [...added]);
            const changed = [...new Set([...r0.keys(), ...r1.keys()])].filter((k) => r0.get(k) !== r1.get(k) && !k.startsWith("_desired")).sort();
            const expected = [
                `${directoryIndexName("prod.nodes.example.com")} TXT`,
                ...[...added, ...removed].flatMap((n) => [`_mesh.${n}.prod.nodes.example.com TXT`, `${n}.prod.nodes.example.com A`, `${n}.prod.nodes.example.com AAAA`]),
            ].sort();
            assert.deepEqual(changed, expected);
        }
        // The newcomer is in the signed index the existing nodes read.
        const key = /"publicKey": "([^"]+)"/.exec(prod.userData["lb-1"])?.[1] as string;
        const index = directoryIndexName("prod.nodes.example.com");
        const content = ofType(withApp3, TYPES.dnsRecord).find((r) => r.inputs.name === index)?.inputs.content;
        const parsed = parseRecord(index, txtStrings(String(content)).join(""), key);
        assert.ok(parsed.kind === "index" && parsed.members.includes("app-3"));
    });

    it("moving one node to the other provider changes no other node's user-data", async () => {
        const nodes = prodNodes();
        nodes.db[1] = { name: "db-2", provider: "linode", region: "eu-central", size: "g6-standard-1" };
        const moved = await evaluate(withConfig({ nodes }));
        assert.deepEqual(ofType(moved, TYPES.hcloudServer).map((r) => r.name).sort(), ["app-2", "db-1", "lb-2"]);
        assert.notEqual(moved.userData["db-2"], undefined);
        for (const name of Object.keys(prod.userData)) assert.equal(moved.userData[name], prod.userData[name], name);
    });

    it("creates nothing when the config is invalid, and says why without a stack trace", async () => {
        const nodes = prodNodes();
        nodes.db = nodes.db.slice(0, 2);
        const file = withConfig({ nodes });
        let created = 0;
        await assert.rejects(
            evaluateProgram({ stack: "prod", values: file.values, secretKeys: file.secretKeys, env: {}, onResource: () => created++ }),
            (e: Error) => /nodes\.db: has 2 member/.test(e.message) && (e as { __pulumiRunError?: boolean }).__pulumiRunError === true,
        );
        assert.equal(created, 0);
    });

    it("evaluates the same stack file to the same user-data every time", async () => {
        const again = await evaluate(prodStack(), "prod", { fresh: true });
        assert.deepEqual(again.userData, prod.userData);
    });
});

describe("program: a host you bring (provider ssh)", function () {
    this.timeout(60000);
    it("bootstraps it over SSH with the same kind of cloud-config, key and user-data kept secret", async () => {
        const nodes = prodNodes();
        nodes.witness = [{ name: "witness-1", provider: "ssh", region: "office-zurich", host: "203.0.113.10", user: "debian" }];
        const file = withConfig({ nodes, admin: { sshCidrs: ["198.51.100.7/32"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] }, sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----" });
        file.secretKeys.push("vps-ha:sshPrivateKey");
        const e = await evaluate(file);
        const boot = e.resources.find((r) => r.type === "command:remote:Command" && r.name === "witness-1-bootstrap");
        assert.ok(boot, "no bootstrap command for the host");
        assert.ok(boot.secretInputs.includes("stdin"), "the user-data sent over SSH must be secret");
        assert.ok(boot.secretInputs.includes("connection"), "the SSH private key must be secret");
        const connection = boot.inputs.connection as { host: string; user: string };
        assert.deepEqual([connection.host, connection.user], ["203.0.113.10", "debian"]);
        assert.match(String(boot.inputs.create), /cloud-init init --local/);
        assert.match(e.userData["witness-1"], /^#cloud-config\n/);
        // Its DNS record points at the host it names; no server is rented for it.
        const record = ofType(e, TYPES.dnsRecord).find((r) => r.inputs.name === "witness-1.prod.nodes.example.com");
        assert.equal(record?.inputs.content, "203.0.113.10");
        assert.equal(ofType(e, TYPES.hcloudServer).length + ofType(e, TYPES.linodeInstance).length, 7);
    });
});
