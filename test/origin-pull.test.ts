// Authenticated Origin Pulls under Pulumi's mock runtime: the stack's own client certificate,
// uploaded to Cloudflare and enabled for both hostnames; HAProxy nodes hold the certificate only,
// no node holds its key; and on hosts you bring, the host firewall admits 80/443 from
// Cloudflare's ranges alone (they have no provider firewall), checked by Debian 13's nft.
import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { ORIGIN_PULL_CA } from "../components/render/haproxy";
import { NFTABLES_FILE } from "../components/render/nftables";
import { Evaluation, MOCK_CLOUDFLARE_RANGES } from "../scripts/lib/mock-program";
import { originPullClientOf } from "../scripts/lab/edge/spec";
import { evaluate, ofType } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { prodNodes, prodStack, withConfig } from "./helpers/stack";
import { requireTools } from "./helpers/tools";

const T = {
    key: "tls:index/privateKey:PrivateKey",
    cert: "tls:index/selfSignedCert:SelfSignedCert",
    upload: "cloudflare:index/authenticatedOriginPullsHostnameCertificate:AuthenticatedOriginPullsHostnameCertificate",
    pulls: "cloudflare:index/authenticatedOriginPulls:AuthenticatedOriginPulls",
    zonePulls: "cloudflare:index/authenticatedOriginPullsSettings:AuthenticatedOriginPullsSettings",
} as const;

type Files = { path: string; content: string }[];
const filesOf = (e: Evaluation, node: string): Record<string, string> =>
    Object.fromEntries((parse(e.config[node]) as { write_files: Files }).write_files.map((f) => [f.path, f.content]));

describe("Authenticated Origin Pulls (mock runtime)", function () {
    this.timeout(300000);
    let prod: Evaluation;
    let own: Evaluation;
    before(async () => {
        prod = await evaluate();
        const nodes = prodNodes();
        nodes.haproxy = [
            { name: "lb-1", provider: "ssh", region: "office-a", host: "203.0.113.21" },
            nodes.haproxy[1],
        ] as typeof nodes.haproxy;
        const file = withConfig({ nodes, admin: { sshCidrs: ["198.51.100.7/32"], sshPublicKeys: ["ssh-ed25519 AAAAC3Nz ops"] }, sshPrivateKey: "k" });
        file.secretKeys.push("vps-ha:sshPrivateKey");
        own = await evaluate(file);
    });

    it("uploads the stack's own certificate, its key secret, and enables it for the app's and the candidate's hostnames; nothing zone-wide", () => {
        const uploads = ofType(prod, T.upload);
        assert.equal(uploads.length, 1);
        const upload = uploads[0];
        assert.ok(upload.secretInputs.includes("privateKey"), "the key goes to Cloudflare as a secret");
        assert.match(String(upload.inputs.privateKey), /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
        const cert = ofType(prod, T.cert).find((r) => r.outputs.certPem === upload.inputs.certificate);
        assert.ok(cert, "the uploaded certificate is the program's own self-signed one");
        assert.ok((cert.inputs.allowedUses as string[]).includes("client_auth"));
        // One association per resource: the provider refuses more (it manages one hostname each).
        assert.deepEqual(ofType(prod, T.pulls).map((r) => r.inputs.configs), [
            [{ hostname: "app.example.com", certId: upload.id, enabled: true }],
            [{ hostname: "candidate.example.com", certId: upload.id, enabled: true }],
        ]);
        assert.equal(ofType(prod, T.zonePulls).length, 0, "the zone's own AOP setting reaches other stacks' hostnames");
        for (const h of ["app.example.com", "candidate.example.com"]) assert.equal(originPullClientOf(prod, h).certificate, upload.inputs.certificate);
    });

    it("keeps the certificate when the hostnames change (a new one would be refused until HAProxy trusts it)", async () => {
        const renamed = await evaluate(withConfig({ cloudflare: { ...JSON.parse(prodStack().values["vps-ha:cloudflare"]), hostname: "www.example.com", candidateHostname: "next.example.com" } }));
        assert.deepEqual(ofType(renamed, T.cert)[0].inputs.subject, ofType(prod, T.cert)[0].inputs.subject);
        assert.deepEqual(ofType(renamed, T.pulls).map((r) => (r.inputs.configs as { hostname: string }[])[0].hostname), ["www.example.com", "next.example.com"]);
    });

    it("HAProxy nodes hold the certificate as HAProxy's CA file; no other node does; no node holds the key, nor any output", () => {
        const upload = ofType(prod, T.upload)[0];
        const keyBody = String(upload.inputs.privateKey).split("\n")[1];
        assert.ok(keyBody.length > 20);
        for (const node of Object.keys(prod.config)) {
            const files = filesOf(prod, node);
            if (node.startsWith("lb-")) assert.equal(files[ORIGIN_PULL_CA], upload.inputs.certificate, node);
            else assert.equal(files[ORIGIN_PULL_CA], undefined, node);
            assert.ok(!prod.config[node].includes(keyBody), `${node} holds the origin-pull key`);
        }
        for (const r of prod.resources) {
            const open = JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k))));
            assert.ok(!open.includes(keyBody), `${r.type} ${r.name} carries the origin-pull key in the clear`);
        }
        assert.ok(!JSON.stringify(prod.outputs).includes(keyBody));
        assert.match(filesOf(prod, "lb-1")["/etc/haproxy/haproxy.cfg"], new RegExp(`ssl crt \\S+ verify optional ca-file ${ORIGIN_PULL_CA} `));
    });

    it("a host you bring admits 80/443 from Cloudflare's ranges only; a provider's node keeps its rule (its provider firewall narrows it)", () => {
        const v4 = MOCK_CLOUDFLARE_RANGES.ipv4Cidrs.join(", ");
        const v6 = MOCK_CLOUDFLARE_RANGES.ipv6Cidrs.join(", ");
        const rules = (e: Evaluation, node: string) => filesOf(e, node)[NFTABLES_FILE].split("\n").map((l) => l.trim()).filter((l) => / dport (80|443) /.test(l));
        assert.deepEqual(rules(own, "lb-1"), [
            `ip saddr { ${v4} } tcp dport 80 accept comment "http"`,
            `ip6 saddr { ${v6} } tcp dport 80 accept comment "http"`,
            `ip saddr { ${v4} } tcp dport 443 accept comment "https"`,
            `ip6 saddr { ${v6} } tcp dport 443 accept comment "https"`,
        ]);
        assert.deepEqual(rules(own, "lb-2"), [`tcp dport 80 accept comment "http"`, `tcp dport 443 accept comment "https"`]);
        assert.deepEqual(rules(prod, "lb-1"), [`tcp dport 80 accept comment "http"`, `tcp dport 443 accept comment "https"`]);
    });

    it("the own host's ruleset is loaded by Debian 13's nft in a namespace @rootfs", async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "ip", "nsenter"], true);
        const rootfs = await labRootfs(own);
        const sb = await Sandbox.open(`vhtest-aopfw${process.pid}`, rootfs, [{ name: "lb-1", address: "10.77.0.9" }]);
        try {
            sb.write("lb-1", NFTABLES_FILE, filesOf(own, "lb-1")[NFTABLES_FILE], "0755");
            const load = sb.exec("lb-1", ["nft", "-f", NFTABLES_FILE], { timeoutMs: 30000 });
            assert.equal(load.status, 0, load.stdout + load.stderr);
            const listed = sb.exec("lb-1", ["nft", "list", "chain", "inet", "vps_ha", "input"], { timeoutMs: 30000 }).stdout;
            for (const port of [80, 443]) {
                assert.match(listed, new RegExp(`ip saddr \\{ 103\\.21\\.244\\.0/22, 104\\.16\\.0\\.0/13, 173\\.245\\.48\\.0/20 \\} tcp dport ${port} accept`));
                assert.doesNotMatch(listed, new RegExp(`^\\s*tcp dport ${port} accept`, "m"));
            }
        } finally {
            await sb.close();
        }
    });
});
