// The lab's reading of a node's own systemd: unit states as `systemctl show` prints them.
import assert from "node:assert/strict";
import { parseSystemctlShow } from "../scripts/lab/nspawn";
import { scheduledJob } from "../scripts/lab/health";

const block = (p: Record<string, string | number>) => Object.entries(p).map(([k, v]) => `${k}=${v}`).join("\n");

describe("lab nodes on real systemd: reading systemctl show", function () {
    it("reads each started unit's state, main PID and restarts, in any property order", function () {
        const text = [
            block({ MainPID: 63, NRestarts: 2, Id: "etcd.service", Type: "notify", ActiveState: "active", SubState: "running", Result: "success", InactiveExitTimestampMonotonic: 2041 }),
            block({ Id: "vps-ha-backup.timer", ActiveState: "active", SubState: "waiting", Result: "success", InactiveExitTimestampMonotonic: 3000 }),
            block({ Id: "patroni.service", Type: "simple", ActiveState: "failed", SubState: "failed", MainPID: 0, NRestarts: 0, Result: "exit-code", InactiveExitTimestampMonotonic: 5000 }),
            block({ Id: "pgbouncer.service", Type: "notify", ActiveState: "inactive", SubState: "dead", MainPID: 0, NRestarts: 0, Result: "success", InactiveExitTimestampMonotonic: 4000 }),
        ].join("\n\n");
        assert.deepEqual(parseSystemctlShow(text), [
            { unit: "etcd.service", state: "active", sub: "running", main: 63, restarts: 2, result: "success" },
            { unit: "vps-ha-backup.timer", state: "active", sub: "waiting", main: null, restarts: undefined, result: "success" },
            { unit: "patroni.service", state: "failed", sub: "failed", main: null, restarts: 0, result: "exit-code" },
            // Stopped after it ran: still listed, as not active.
            { unit: "pgbouncer.service", state: "inactive", sub: "dead", main: null, restarts: 0, result: "success" },
        ]);
    });

    it("leaves out units never started this boot and oneshots that finished well, keeps a failed one", function () {
        const text = [
            block({ Id: "initrd-parse-etc.service", Type: "oneshot", ActiveState: "inactive", SubState: "dead", Result: "success", InactiveExitTimestampMonotonic: 0 }),
            block({ Id: "cloud-final.service", Type: "oneshot", ActiveState: "inactive", SubState: "dead", Result: "success", InactiveExitTimestampMonotonic: 900 }),
            block({ Id: "cloud-config.service", Type: "oneshot", ActiveState: "failed", SubState: "failed", Result: "exit-code", InactiveExitTimestampMonotonic: 800 }),
        ].join("\n\n");
        assert.deepEqual(parseSystemctlShow(text).map((u) => `${u.unit}=${u.state}`), ["cloud-config.service=failed"]);
    });

    it("skips blocks without an Id or a state", function () {
        assert.deepEqual(parseSystemctlShow(""), []);
        assert.deepEqual(parseSystemctlShow("SubState=running\n\nId=x.service\n"), []);
    });
});

describe("lab health: a scheduled job", function () {
    it("is a service its own timer starts; a daemon is not", function () {
        const units = [{ unit: "vps-ha-backup-incr.service" }, { unit: "vps-ha-backup-incr.timer" }, { unit: "vps-ha-patroni.service" }];
        assert.equal(scheduledJob("vps-ha-backup-incr.service", units), true);
        assert.equal(scheduledJob("vps-ha-patroni.service", units), false);
        assert.equal(scheduledJob("vps-ha-backup-full.service", units), false);
    });
});
