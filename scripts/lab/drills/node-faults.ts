// The two faults every node can suffer: its processes die at once (node-kill: power loss,
// kernel panic), or its network goes (node-isolate: a provider's network partition).
import { healNode, isolateNode, labNodes } from "../realize";
import { killAndReboot, nodeRtoTarget } from "./db";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill, DrillContext } from "./types";

const defaultTarget = () => (labNodes().find((n) => n.role === "app") ?? labNodes()[0])?.name;

export const nodeKill: Drill = {
    name: "node-kill",
    description: "SIGKILL every process of one node (--node NAME; default an app node), then restart it as after a reboot",
    run: async (ctx: DrillContext) => {
        const target = await pickNode(ctx, defaultTarget, "node");
        return killAndReboot(ctx, "node-kill", target, await nodeRtoTarget(target));
    },
};

export const nodeIsolate: Drill = {
    name: "node-isolate",
    description: "cut one node's network (--node NAME; default an app node), then reconnect it",
    run: async (ctx: DrillContext) => {
        const target = await pickNode(ctx, defaultTarget, "node");
        return faultUnderLoad(ctx, { drill: "node-isolate", target, lost: [target], fault: () => isolateNode(target), repair: () => healNode(target), rtoTargetSeconds: await nodeRtoTarget(target) });
    },
};
