// A host the user brings (provider "ssh"): the cloud-config it is seeded with holds the node's
// keys and passwords, so the seed is root's alone; run by the real sh against a directory here.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootstrapScript, seedScript } from "../components/providers/ssh";

describe("own hosts: the seeded user-data", () => {
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-seed-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const seed = join(dir, "seed", "nocloud");
    const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
    const run = (input: string) => {
        // The caller's umask, as root's usually is: the script must not depend on it.
        const r = spawnSync("sh", ["-c", `umask 022; set -eu\n${seedScript("vps-ha-w-1-abc", seed)}`], { input, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
    };

    it("is written readable by root alone, in a directory only root may enter", () => {
        run("#cloud-config\nwrite_files: []\n");
        assert.equal(readFileSync(join(seed, "user-data"), "utf8"), "#cloud-config\nwrite_files: []\n");
        assert.equal(mode(join(seed, "user-data")), "600");
        assert.equal(mode(seed), "700");
        assert.equal(readFileSync(join(seed, "meta-data"), "utf8"), "instance-id: vps-ha-w-1-abc\n");
    });

    it("does not keep the mode of a seed an older bootstrap left world-readable", () => {
        rmSync(seed, { recursive: true, force: true });
        mkdirSync(seed, { recursive: true, mode: 0o755 });
        writeFileSync(join(seed, "user-data"), "old", { mode: 0o644 });
        run("new");
        assert.equal(readFileSync(join(seed, "user-data"), "utf8"), "new");
        assert.equal(mode(join(seed, "user-data")), "600");
        assert.equal(mode(seed), "700");
    });

    it("is what the bootstrap runs, before cloud-init", () => {
        const script = bootstrapScript("vps-ha-w-1-abc");
        assert.ok(script.includes(seedScript("vps-ha-w-1-abc")));
        assert.ok(script.indexOf("(umask 077 && cat > /var/lib/cloud/seed/nocloud/user-data)") < script.indexOf("cloud-init clean"));
    });
});
