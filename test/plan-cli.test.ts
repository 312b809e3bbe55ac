// `npm run plan` as a user runs it: a real process, its output and its exit code.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers/stack";

function plan(...args: string[]) {
    const r = spawnSync(process.execPath, [join(ROOT, "node_modules/tsx/dist/cli.mjs"), join(ROOT, "scripts/plan.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60000, env: { PATH: process.env.PATH ?? "" } });
    return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("npm run plan", function () {
    this.timeout(120000);

    it("prints nodes, cost, resources and failures for the prod stack", () => {
        const r = plan();
        assert.equal(r.code, 0, r.err);
        for (const text of ["Hetzner Cloud fsn1 (Falkenstein, DE)", "db-3", "Total", "linode:index/instance:Instance", "provider hcloud"]) assert.ok(r.out.includes(text), text);
    });

    it("--json has nodes, monthlyCostUsd and failures", () => {
        const r = plan("--json", "--stack", "prod");
        assert.equal(r.code, 0, r.err);
        const report = JSON.parse(r.out);
        assert.equal(report.nodes.length, 7);
        assert.ok(report.monthlyCostUsd > 0);
        assert.ok(report.failures.some((f: { scenario: string }) => f.scenario === "provider linode"));
    });

    it("exits 2 with the validation messages and no stack trace for a bad stack file", () => {
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-plan-"));
        const bad = join(dir, "Pulumi.bad.yaml");
        writeFileSync(bad, readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8").replace("region: nbg1", "region: atlantis"));
        const r = plan("--config", bad);
        assert.equal(r.code, 2);
        assert.match(r.err, /vps-ha:nodes\.db\[1\]\.region: "atlantis" is not a Hetzner Cloud region/);
        assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
        const missing = plan("--config", join(dir, "nope.yaml"));
        assert.equal(missing.code, 2);
        assert.match(missing.err, /cannot read .*nope\.yaml: ENOENT/);
        const notYaml = join(dir, "Pulumi.x.yaml");
        writeFileSync(notYaml, "config: [unclosed");
        assert.equal(plan("--config", notYaml).code, 2);
        assert.equal(plan("--bogus").code, 2);
    });
});
