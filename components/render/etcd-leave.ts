// A database member that stops voting in etcd (the stack gained a witness, and members plus
// witness would be even: components/plan.ts, etcdVoters) leaves etcd's membership in its rollout
// turn: this oneshot (vpsha/etcd_leave.py) waits until every voter the stack names has started,
// stops the member's etcd and removes it from the member list; the applier then removes the etcd
// files the desired state no longer has. It runs only as a restart of the change that brought its
// unit file; it is never enabled.
import { PlannedNode, StackPlan } from "../plan";
import { CloudConfigPart } from "./cloud-config";
import { ETCD_CLIENT_TLS_FILES, ETCD_DATA_DIR, ETCD_UNIT, etcdClientUrl, etcdPeerUrl, etcdVoterPeers } from "./etcd";
import { oneshotToolPart } from "./python-lib";

export const ETCD_LEAVE_UNIT = "vps-ha-etcd-leave.service";
export const ETCD_LEAVE_TOOL = "/usr/local/lib/vps-ha/etcd-leave";
/**
 * How long the member waits for the stack's voters to be started members (a new witness booting)
 * before it gives up and the rollout halts; with its asks, within the agent's bound on a restart.
 */
export const ETCD_LEAVE_WAIT_SECONDS = 90;

/** The tool's command for a member that does not vote. */
export function etcdLeaveCommand(plan: StackPlan, node: PlannedNode): string {
    const voters = etcdVoterPeers(plan).map((v) => etcdClientUrl(v.meshAddress)).join(",");
    return [ETCD_LEAVE_TOOL, "--name", node.name, "--peer-url", etcdPeerUrl(node.meshAddress), "--voters", voters,
        "--unit", ETCD_UNIT, "--data-dir", ETCD_DATA_DIR, "--wait", String(ETCD_LEAVE_WAIT_SECONDS),
        "--cacert", ETCD_CLIENT_TLS_FILES.ca, "--cert", ETCD_CLIENT_TLS_FILES.cert, "--key", ETCD_CLIENT_TLS_FILES.key].join(" ");
}

export function etcdLeavePart(plan: StackPlan, node: PlannedNode): CloudConfigPart {
    return oneshotToolPart({
        command: ETCD_LEAVE_TOOL, module: "etcd_leave", unit: ETCD_LEAVE_UNIT,
        description: "Leave etcd's membership: this database member no longer votes",
        execStart: etcdLeaveCommand(plan, node), timeoutSeconds: 2 * ETCD_LEAVE_WAIT_SECONDS + 25,
    });
}
