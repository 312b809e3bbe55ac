// The rollout drills publish desired state, which the lab's nodes take only from the process that
// brought the lab up: run by `npm run lab -- drill` against a lab another process brought up, they
// stop before anything else, naming how to run them (they used to publish the first generation
// again and wait out their 600 s bound).
import { strict as assert } from "node:assert";
import { badChangeHalts, upgradeInPlace } from "../scripts/lab/drills/rollout";
import { DrillContext } from "../scripts/lab/drills/types";
import { addWitnessLive } from "../scripts/lab/drills/witness-live";

describe("lab rollout drills outside the process that brought the lab up", () => {
    for (const drill of [upgradeInPlace, badChangeHalts, addWitnessLive]) {
        it(`${drill.name} stops at once, saying how to run it`, async () => {
            const logged: string[] = [];
            const ctx = { log: (m: string) => logged.push(m) } as unknown as DrillContext;
            await assert.rejects(drill.run(ctx), new RegExp(`^Error: ${drill.name} publishes desired state, which the nodes take only from the process that brought the lab up .*: run it with npm run lab -- all --drills ${drill.name}`));
            assert.deepEqual(logged, [], "nothing ran before the refusal");
        });
    }
});
