// What the lab evaluates: the stack file through the real program, with the lab's own settings
// where the file has none.
import { strict as assert } from "node:assert";
import { LAB_RETIRE_AFTER_SECONDS, labProgram, stackSource } from "../scripts/lab/program";

describe("the lab's program", function () {
    this.timeout(120_000);

    it("retires a dropped image after the lab's 30 s unless the stack file or a drill's edit sets app.retireAfterSeconds", async () => {
        const source = stackSource({});
        const agentSetting = (p: Awaited<ReturnType<typeof labProgram>>) =>
            p.specs.filter((s) => s.role === "app").map((s) => /retireAfterSeconds\\?"?:\s*(\d+)/.exec(String(s.config))?.[1]);
        const plain = await labProgram(source);
        assert.equal(LAB_RETIRE_AFTER_SECONDS, 30);
        assert.equal(plain.retireAfterSeconds, 30);
        assert.deepEqual(agentSetting(plain), ["30", "30"], "what the app nodes' agent is given");
        // A release drill replaces vps-ha:app with its own release: the lab's setting stays.
        const app = { release: { active: "ghcr.io/example/app:1.4.2", candidate: "ghcr.io/example/app:1.5.0" }, port: 8080 };
        assert.equal((await labProgram(source, { app })).retireAfterSeconds, 30);
        const set = await labProgram(source, { app: { ...app, retireAfterSeconds: 60 } });
        assert.equal(set.retireAfterSeconds, 60);
        assert.deepEqual(agentSetting(set), ["60", "60"]);
    });
});
