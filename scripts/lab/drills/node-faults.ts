// The two faults every node can suffer: its processes die at once (node-kill: power loss,
// kernel panic), or its network goes (node-isolate: a provider's network partition).
import { healNode, isolateNode, killNode, labNodes, rebootNode } from "../realize";
import { nodeRtoTarget } from "./db";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill, DrillContext } from "./types";

const defaultTarget = () => (labNodes().find((n) => n.role === "app") ?? labNodes()[0])?.name;

export const nodeKill: Drill = {
    name: "node-kill",
    description: "SIGKILL every process of one node (--node NAME; default an app node), then restart it as after a reboot",
    run: (ctx: DrillContext) => {
        const target = pickNode(ctx, defaultTarget, "node");
        return nodeRtoTarget(target).then((rto) => faultUnderLoad(ctx, { drill: "node-kill", target, lost: [target], fault: () => killNode(target, ctx.log), repair: () => rebootNode(target, ctx.log), rtoTargetSeconds: rto }));
    },
};

export const nodeIsolate: Drill = {
    name: "node-isolate",
    description: "cut one node's network (--node NAME; default an app node), then reconnect it",
    run: (ctx: DrillContext) => {
        const target = pickNode(ctx, defaultTarget, "node");
        return nodeRtoTarget(target).then((rto) => faultUnderLoad(ctx, { drill: "node-isolate", target, lost: [target], fault: () => isolateNode(target), repair: () => healNode(target), rtoTargetSeconds: rto }));
    },
};
