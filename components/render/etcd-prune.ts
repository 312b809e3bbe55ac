// A witness or member removed from the stack file leaves etcd's membership behind with its deleted
// server; each voter takes such members out in its rollout turn when the stack's members change
// (vpsha/etcd_prune.py), as soon as the members that stay, as far as started, are a majority of
// them. It runs only as a restart of the change that rewrote its unit file (the member list is in
// its command line), before the voter's own etcd restarts: a member that votes again (a witness
// removed) would otherwise be refused its join while etcd still counts the witness, which the
// directory has already cut off. It asks the other voters; it is never enabled.
import { StackPlan } from "../plan";
import { CloudConfigPart } from "./cloud-config";
import { ETCD_TLS_FILES, etcdClientUrl, etcdPeerUrl, etcdVoterPeers } from "./etcd";
import { oneshotToolPart } from "./python-lib";

export const ETCD_PRUNE_UNIT = "vps-ha-etcd-prune.service";
export const ETCD_PRUNE_TOOL = "/usr/local/lib/vps-ha/etcd-prune";
/** How long the voter keeps asking for the member list (its own etcd just restarted). */
export const ETCD_PRUNE_WAIT_SECONDS = 30;

/** The tool's command: the stack's voters and every member it names (voting or not). */
export function etcdPruneCommand(plan: StackPlan): string {
    const voters = etcdVoterPeers(plan);
    const keep = plan.nodes.filter((n) => n.role === "db" || n.role === "witness").map((n) => n.name);
    return [ETCD_PRUNE_TOOL, "--voters", voters.map((v) => etcdClientUrl(v.meshAddress)).join(","),
        "--voter-peers", voters.map((v) => etcdPeerUrl(v.meshAddress)).join(","), "--keep", keep.join(","),
        "--wait", String(ETCD_PRUNE_WAIT_SECONDS),
        "--cacert", ETCD_TLS_FILES.ca, "--cert", ETCD_TLS_FILES.cert, "--key", ETCD_TLS_FILES.key].join(" ");
}

/** On a voter: before its etcd part, so its restart comes before etcd's. */
export function etcdPrunePart(plan: StackPlan): CloudConfigPart {
    return oneshotToolPart({
        command: ETCD_PRUNE_TOOL, module: "etcd_prune", unit: ETCD_PRUNE_UNIT,
        description: "Remove etcd members the stack no longer has",
        execStart: etcdPruneCommand(plan), timeoutSeconds: ETCD_PRUNE_WAIT_SECONDS + 30,
    });
}
