// A drill keeps what the nodes' daemons logged while it ran, beside its clients' logs.
import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyNodeLogs, markNodeLogs } from "../scripts/lab/drills/logs";

describe("drill node logs", () => {
    let root: string;
    const logsOf = (node: string) => join(root, "nodes", node);
    beforeEach(() => {
        root = mkdtempSync(join(tmpdir(), "vps-ha-drill-logs-"));
        for (const n of ["db-1", "db-2", "lb-1"]) mkdirSync(logsOf(n), { recursive: true });
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    it("copies only what each unit logged after the mark, per node, and skips units that said nothing", () => {
        writeFileSync(join(logsOf("db-1"), "vps-ha-patroni.service.log"), "before 1\n");
        writeFileSync(join(logsOf("db-2"), "vps-ha-patroni.service.log"), "before 2\n");
        writeFileSync(join(logsOf("lb-1"), "haproxy.service.log"), "quiet\n");
        const marks = markNodeLogs(["db-1", "db-2", "lb-1"], logsOf);
        appendFileSync(join(logsOf("db-1"), "vps-ha-patroni.service.log"), "promoted self to leader\n");
        appendFileSync(join(logsOf("db-2"), "vps-ha-patroni.service.log"), "following db-1\n");
        // A unit that started during the drill is copied whole.
        writeFileSync(join(logsOf("db-2"), "vps-ha-etcd.service.log"), "joined\n");
        const out = join(root, "run");
        copyNodeLogs(["db-1", "db-2", "lb-1"], marks, out, logsOf);
        assert.equal(readFileSync(join(out, "nodes", "db-1", "vps-ha-patroni.service.log"), "utf8"), "promoted self to leader\n");
        assert.equal(readFileSync(join(out, "nodes", "db-2", "vps-ha-patroni.service.log"), "utf8"), "following db-1\n");
        assert.equal(readFileSync(join(out, "nodes", "db-2", "vps-ha-etcd.service.log"), "utf8"), "joined\n");
        assert.equal(existsSync(join(out, "nodes", "lb-1")), false);
    });

    it("copies a log that started over (its node was rebuilt) from the start, even once longer than before", () => {
        const log = join(logsOf("db-1"), "vps-ha-patroni.service.log");
        writeFileSync(log, "old server\n");
        const marks = markNodeLogs(["db-1"], logsOf);
        // The rebuild moves the old logs aside; the new server's log is a new file.
        renameSync(logsOf("db-1"), `${logsOf("db-1")}.replaced`);
        mkdirSync(logsOf("db-1"));
        writeFileSync(log, "fresh boot, cloned from the leader, streaming\n");
        const out = join(root, "run");
        copyNodeLogs(["db-1"], marks, out, logsOf);
        assert.equal(readFileSync(join(out, "nodes", "db-1", "vps-ha-patroni.service.log"), "utf8"), "fresh boot, cloned from the leader, streaming\n");
    });
});
