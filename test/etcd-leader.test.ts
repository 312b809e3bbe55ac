import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { LEADER_AWAY_SCRIPT, LEADER_AWAY_UNIT } from "../components/render/etcd-leader";
import { ETCD_TLS_FILES } from "../components/render/etcd";
import { renderLauncher } from "../components/render/python-lib";
import { evaluate } from "./helpers/program";

describe("etcd leader kept off the PostgreSQL primary", function () {
    this.timeout(60000);

    it("runs on every database node that votes in etcd, and nowhere else", async () => {
        const e = await evaluate();
        for (const [node, userData] of Object.entries(e.config)) {
            const doc = parse(userData) as { write_files: { path: string; content: string }[]; runcmd: string[][] };
            const unit = doc.write_files.find((f) => f.path === `/etc/systemd/system/${LEADER_AWAY_UNIT}`)?.content;
            const has = doc.write_files.some((f) => f.path === LEADER_AWAY_SCRIPT);
            assert.equal(has, node.startsWith("db-"), node);
            assert.equal(doc.runcmd.some((c) => c.includes(LEADER_AWAY_UNIT)), has, node);
            if (has) {
                const mesh = (e.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === node)?.meshAddress;
                assert.equal(doc.write_files.find((f) => f.path === LEADER_AWAY_SCRIPT)?.content, renderLauncher("etcd_leader"), node);
                assert.match(unit ?? "", new RegExp(`^ExecStart=${LEADER_AWAY_SCRIPT} --patroni http://${mesh?.replace(/\./g, "\\.")}:8008/primary --etcd https://127\\.0\\.0\\.1:2379 --cacert ${ETCD_TLS_FILES.ca} --cert ${ETCD_TLS_FILES.cert} --key ${ETCD_TLS_FILES.key} --every 5$`, "m"), node);
            }
        }
    });
});
