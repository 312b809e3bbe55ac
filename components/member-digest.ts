// A database member's user-data digest, known before any secret resolves: the member's bootstrap
// (identity, mesh interface, desired-state agent) rendered as the program renders it, with a
// placeholder for its WireGuard key and the directory's public key. Both stay the same from one
// run to the next, so this digest changes exactly when the bootstrap's text does, which is when
// the member's server would be replaced. Everything else a member holds is desired state: a
// change there is applied in place (components/in-place.ts says how).
import { nodeBootstrap } from "./boot";
import { PlannedNode, StackPlan } from "./plan";
import { sha256 } from "./providers/server-id";
import { renderCloudConfig } from "./render/cloud-config";

/** A well-formed 32-byte key (zeros), for renderers that derive from one. */
const KEY_PLACEHOLDER = Buffer.alloc(32).toString("base64");

export function memberBootstrap(plan: StackPlan, node: PlannedNode): string {
    const mesh = { privateKey: KEY_PLACEHOLDER, meshAddress: node.meshAddress, prefixLength: Number(plan.config.mesh.cidr.split("/")[1]), listenPort: plan.config.mesh.port };
    return renderCloudConfig(nodeBootstrap(plan, node, mesh, KEY_PLACEHOLDER));
}

export function memberUserDataDigest(plan: StackPlan, node: PlannedNode): string {
    return sha256(memberBootstrap(plan, node));
}
