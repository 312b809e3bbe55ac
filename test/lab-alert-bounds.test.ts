import assert from "node:assert/strict";
import { ALERT_BOUNDS, renderAlertRules } from "../components/render/alert-rules";
import { alertBound, durationSeconds, ruleBounds } from "../scripts/lab/drills/alert-bounds";

describe("the alerts drill's bounds, read from the rendered rules", function () {
    const rules = renderAlertRules({ stack: "prod", stanza: "prod", synchronous: true, hasDatabase: true });
    const bounds = ruleBounds(rules);

    it("reads each alert's for: from the rendered file", function () {
        assert.equal(alertBound(bounds, "DatabaseMemberDown"), ALERT_BOUNDS.downSeconds);
        assert.equal(alertBound(bounds, "EtcdVoterDown"), ALERT_BOUNDS.downSeconds);
        assert.equal(alertBound(bounds, "SystemdUnitFailed"), ALERT_BOUNDS.unitFailedSeconds);
        assert.equal(alertBound(bounds, "DiskAlmostFull"), ALERT_BOUNDS.diskUsedSeconds);
    });

    it("adds the window a rule without for: looks back over", function () {
        const wal = bounds.find((b) => b.alert === "WalArchivingFailing");
        assert.deepEqual(wal && { for: wal.forSeconds, window: wal.windowSeconds }, { for: 0, window: ALERT_BOUNDS.archiveFailingSeconds });
        assert.equal(alertBound(bounds, "RestoreCheckFailed"), 0);
        // The main rule of an alert with several: the one without a cause label.
        assert.equal(alertBound(bounds, "BackupMissing"), 0);
        assert.ok(bounds.some((b) => b.alert === "BackupMissing" && b.cause === "unreported" && b.boundSeconds === ALERT_BOUNDS.backupMaxAgeSeconds));
    });

    it("names a missing alert and a bad duration", function () {
        assert.throws(() => alertBound(bounds, "NoSuchAlert"), /the rendered rules have no alert NoSuchAlert; they have Watchdog, NodeDown/);
        assert.equal(durationSeconds("1h30m"), 5400);
        assert.throws(() => durationSeconds("5 minutes"), /"5 minutes" is not a Prometheus duration/);
    });
});
