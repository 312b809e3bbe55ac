// The rollout drills' boot mark: a node's init start time read from /proc/1/stat, which stays put
// however the host's clock is adjusted, and changes when the node's container boots again.
import { strict as assert } from "node:assert";
import { initStartTicks } from "../scripts/lab/drills/rollout";

describe("lab boot marks", () => {
    it("reads /proc/PID/stat's start time, a command name with spaces and parentheses included", () => {
        const rest = "S 1 1 1 0 -1 4194560 402 62 0 0 0 0 0 0 20 0 1 0 138123 17080320 1876";
        assert.equal(initStartTicks(`1 (systemd) ${rest}`), "138123");
        assert.equal(initStartTicks(`1 (a (b) c) ${rest}\n`), "138123");
        assert.equal(initStartTicks(""), "");
        assert.equal(initStartTicks("1 (systemd) S 1 1"), "");
    });
});
