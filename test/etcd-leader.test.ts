import { strict as assert } from "node:assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { LEADER_AWAY_SCRIPT, LEADER_AWAY_UNIT, renderLeaderAwayScript } from "../components/render/etcd-leader";
import { evaluate } from "./helpers/program";
import { requireTools, run } from "./helpers/tools";

describe("etcd leader kept off the PostgreSQL primary", function () {
    this.timeout(60000);

    it("runs on every database node that votes in etcd, and nowhere else", async () => {
        const e = await evaluate();
        for (const [node, userData] of Object.entries(e.userData)) {
            const doc = parse(userData) as { write_files: { path: string; content: string }[]; runcmd: string[][] };
            const has = doc.write_files.some((f) => f.path === LEADER_AWAY_SCRIPT);
            assert.equal(has, node.startsWith("db-"), node);
            assert.equal(doc.runcmd.some((c) => c.includes(LEADER_AWAY_UNIT)), has, node);
            if (has) {
                const mesh = (e.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === node)?.meshAddress;
                assert.ok(doc.write_files.find((f) => f.path === LEADER_AWAY_SCRIPT)?.content.includes(`http://${mesh}:8008/primary`), node);
            }
        }
    });

    it("is a valid Python program", function () {
        requireTools(this, ["python3"]);
        const file = join(mkdtempSync(join(tmpdir(), "vps-ha-leader-")), "leader-away.py");
        writeFileSync(file, renderLeaderAwayScript("10.77.0.5"));
        const r = run("python3", ["-m", "py_compile", file]);
        assert.equal(r.status, 0, r.stderr);
    });
});
