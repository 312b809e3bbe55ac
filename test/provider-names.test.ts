// The names each provider keeps unique: valid under the provider's rule, never cut into a
// trailing '-' or into another node's name, and new when the server is replaced.
import { strict as assert } from "node:assert";
import { sshKeyFingerprint, sshKeyPlan, KEY_OWNER_LABEL } from "../components/providers/hcloud";
import { HCLOUD_NAME, LINODE_FIREWALL_LABEL, LINODE_INSTANCE_LABEL, NAME_PATTERN, NameRule, providerName } from "../components/providers/names";
import { hostInstanceId } from "../components/providers/ssh";

/** Linode's label rule as its API states it: a letter first; letters, digits, '-', '_', '.'; never two of '-', '_', '.' in a row. */
const LINODE_LABEL = /^[A-Za-z](?:[A-Za-z0-9]|[-_.](?![-_.]))*$/;
/** RFC 1123 host name label, what Hetzner asks of a server name. */
const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const longest = "a2345678901234567890123456789012"; // a 32-character node name, the longest config allows
const prefixes = ["vps-ha-prod", "vps-ha-staging-eu-west-and-more"];
const nodes = ["db-1", "app-10", longest, `${longest.slice(0, 30)}-x`, "a--b", "a-b"];

function valid(name: string, rule: NameRule, extra: RegExp): void {
    assert.ok(name.length >= rule.min && name.length <= rule.max, `${name}: ${name.length} characters, ${rule.what} takes ${rule.min}-${rule.max}`);
    assert.match(name, NAME_PATTERN);
    assert.match(name, extra);
    assert.ok(!name.endsWith("-"));
}

describe("provider names", () => {
    it("keeps a name that fits as it is", () => {
        assert.equal(providerName("vps-ha-prod-db-1", LINODE_FIREWALL_LABEL), "vps-ha-prod-db-1");
        assert.equal(providerName("vps-ha-prod-db-1", LINODE_INSTANCE_LABEL, "0a1b2c3d"), "vps-ha-prod-db-1-0a1b2c3d");
    });

    for (const [adapter, rule, extra, suffixed] of [
        ["linode instance", LINODE_INSTANCE_LABEL, LINODE_LABEL, true],
        ["linode firewall", LINODE_FIREWALL_LABEL, LINODE_LABEL, false],
        ["hcloud server", HCLOUD_NAME, HOST_LABEL, true],
        ["hcloud firewall / placement group / ssh key", HCLOUD_NAME, HOST_LABEL, false],
    ] as const) {
        it(`${adapter}: every stack and node name gives a valid name, distinct from every other`, () => {
            const seen = new Map<string, string>();
            for (const prefix of prefixes) {
                for (const node of nodes) {
                    const base = `${prefix}-${node}`;
                    const name = providerName(base, rule, suffixed ? "89abcdef" : "");
                    valid(name, rule, extra);
                    if (suffixed) assert.ok(name.endsWith("-89abcdef"), `${name}: the suffix is kept whole`);
                    assert.ok(!seen.has(name), `${base} and ${seen.get(name)} both give ${name}`);
                    seen.set(name, base);
                }
            }
        });
    }

    it("a cut never ends in '-', even where the cut falls on one", () => {
        // 31 characters then '-': a plain slice to 32 would end in '-'.
        const name = providerName(`${"b".repeat(31)}-cdef`, LINODE_FIREWALL_LABEL);
        valid(name, LINODE_FIREWALL_LABEL, LINODE_LABEL);
        assert.notEqual(name, providerName(`${"b".repeat(31)}-cdeg`, LINODE_FIREWALL_LABEL));
    });

    it("a replacement's suffix gives a new name; the same suffix, the same name", () => {
        const base = "vps-ha-prod-app-1";
        assert.notEqual(providerName(base, HCLOUD_NAME, "00000001"), providerName(base, HCLOUD_NAME, "00000002"));
        assert.equal(providerName(base, HCLOUD_NAME, "00000001"), providerName(base, HCLOUD_NAME, "00000001"));
        assert.throws(() => providerName(base, HCLOUD_NAME, "Not-Hex"), /suffix/);
    });

    it("own hosts: cloud-init's instance id is new with each new user-data, and plain text", () => {
        const a = hostInstanceId("witness-1", "#cloud-config\na: 1\n");
        const b = hostInstanceId("witness-1", "#cloud-config\na: 2\n");
        assert.match(a, /^vps-ha-witness-1-[0-9a-f]{12}$/);
        assert.notEqual(a, b);
        assert.equal(a, hostInstanceId("witness-1", "#cloud-config\na: 1\n"));
        assert.notEqual(a, hostInstanceId("witness-2", "#cloud-config\na: 1\n"));
    });
});

describe("Hetzner SSH keys", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOgk0W0wYy3c1GLrY3wXMZ0VHfJpRmrNoRa1pN9T8B9o ops@example.com";
    const other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBVlHl4Bm6x2n0dJ2eQ0k1Yk0mQk6Q3YwqgMZ8L3c9x0 dev@example.com";

    it("fingerprints a key as Hetzner does (MD5 of the key blob, the comment aside)", async () => {
        const { execFileSync } = await import("node:child_process");
        const { mkdtempSync, writeFileSync } = await import("node:fs");
        const { join } = await import("node:path");
        const { tmpdir } = await import("node:os");
        const file = join(mkdtempSync(join(tmpdir(), "vps-ha-key-")), "key.pub");
        writeFileSync(file, `${key}\n`);
        const md5 = /MD5:([0-9a-f:]+)/.exec(execFileSync("ssh-keygen", ["-l", "-E", "md5", "-f", file], { encoding: "utf8" }))?.[1];
        assert.equal(sshKeyFingerprint(key), md5);
        assert.equal(sshKeyFingerprint(key.replace(" ops@example.com", " someone-else")), md5);
    });

    it("reuses a key the project already has, uploads only the missing ones, and keeps its own", () => {
        const fp = sshKeyFingerprint(key);
        // Uploaded by the user long ago (or by another stack): reused, never uploaded again.
        assert.deepEqual(sshKeyPlan([key, other], [{ id: 7, fingerprint: fp, labels: {} }], "vps-ha-prod"), { reuse: [{ key, id: 7 }], create: [other] });
        assert.deepEqual(sshKeyPlan([key], [{ id: 7, fingerprint: fp, labels: { [KEY_OWNER_LABEL]: "vps-ha-staging" } }], "vps-ha-prod"), { reuse: [{ key, id: 7 }], create: [] });
        // Uploaded by this stack: still this stack's resource (or the next run would delete it).
        assert.deepEqual(sshKeyPlan([key], [{ id: 9, fingerprint: fp, labels: { [KEY_OWNER_LABEL]: "vps-ha-prod" } }], "vps-ha-prod"), { reuse: [], create: [key] });
        // The same key twice (another comment) is one key to Hetzner.
        assert.deepEqual(sshKeyPlan([key, `${key.split(" ").slice(0, 2).join(" ")} again`], [], "vps-ha-prod"), { reuse: [], create: [key] });
    });
});
