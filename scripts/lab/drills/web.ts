// Web tier drills: an app node or an HAProxy node dies under HTTP and database load. Clients of
// the app must see no failed request (HAProxy retries an idempotent request that hit the dying
// node on another one); database clients, holding both HAProxy nodes in their connection
// string, keep writing through the other proxy, and the drill reports how long writes paused.
import { HAPROXY_PORTS } from "../../../components/plan";
import { killNode, labNodes, rebootNode } from "../realize";
import { parsePostgresUrl } from "../load/writes";
import { labStack } from "../stack";
import { killAndReboot, UNAFFECTED_RTO_SECONDS } from "./db";
import { faultUnderLoad, pickNode } from "./harness";
import { Drill } from "./types";

const first = (role: string) => () => labNodes().find((n) => n.role === role)?.name;

export const appNodeKill: Drill = {
    name: "app-node-kill",
    description: "SIGKILL every process of an app node (--node NAME) under HTTP load: no request may fail",
    run: async (ctx) => killAndReboot(ctx, "app-node-kill", await pickNode(ctx, first("app"), "app node"), UNAFFECTED_RTO_SECONDS),
};

/** The HAProxy node database clients use while both are up: the first in the connection string. */
function clientsProxy(): string | undefined {
    const url = labStack()?.connectionString;
    if (!url) return first("haproxy")();
    const host = parsePostgresUrl(url).hosts[0].split(":")[0];
    return labNodes().find((n) => n.role === "haproxy" && n.meshAddress === host)?.name;
}

export const haproxyKill: Drill = {
    name: "haproxy-kill",
    description: "SIGKILL every process of the HAProxy node database clients use (--node NAME): writes go on through the other; how long they pause",
    run: async (ctx) => {
        const target = await pickNode(ctx, clientsProxy, "HAProxy node");
        const node = labNodes().find((n) => n.name === target);
        if (node?.role !== "haproxy") throw new Error(`haproxy-kill: ${target} is not an HAProxy node`);
        return faultUnderLoad(ctx, {
            drill: "haproxy-kill", target, lost: [target], rtoTargetSeconds: UNAFFECTED_RTO_SECONDS,
            fault: () => killNode(target, ctx.log), repair: () => rebootNode(target, ctx.log),
            writesVia: `${node.meshAddress}:${HAPROXY_PORTS.dbPrimary}`,
        });
    },
};
