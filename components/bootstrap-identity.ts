// A server's bootstrap identity: what its user-data says about who the node is, apart from the
// code that brings it up. A server keeps the user-data it was created with (cloud-init reads it at
// the first boot only, and a new user-data would make the provider replace the server); a newer
// agent, tool or unit reaches a live node as desired state. So a vps-ha upgrade replaces nothing,
// and a server is replaced for its user-data only when this identity changes.
import { PlannedNode, StackPlan } from "./plan";
import { sha256 } from "./providers/server-id";

/**
 * Raised by hand when a bootstrap from before can no longer bring a node of this version up (its
 * agent could not read today's documents): every server is then replaced, one member per run.
 */
export const BOOTSTRAP_FORMAT = 1;

/** Everything the program puts in a node's bootstrap that is not code, nor a key that stays the same from run to run. */
export interface BootstrapIdentity {
    format: number;
    stack: string;
    node: string;
    fqdn: string;
    meshAddress: string;
    meshPrefixLength: number;
    meshPort: number;
}

export function bootstrapIdentity(plan: StackPlan, node: PlannedNode): BootstrapIdentity {
    return {
        format: BOOTSTRAP_FORMAT,
        stack: plan.config.stack,
        node: node.name,
        fqdn: node.dnsName,
        meshAddress: node.meshAddress,
        meshPrefixLength: Number(plan.config.mesh.cidr.split("/")[1]),
        meshPort: plan.config.mesh.port,
    };
}

/** sha256 of the identity: known before any secret resolves, not secret itself. */
export function bootstrapDigest(plan: StackPlan, node: PlannedNode): string {
    return sha256(JSON.stringify(bootstrapIdentity(plan, node)));
}
