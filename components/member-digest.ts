// A database member's user-data digest, known before any secret resolves: the member's
// cloud-config rendered as the program renders it, with a fixed placeholder for each secret. The
// secrets themselves (passwords, keys, certificates) stay the same from one run to the next, so
// this digest changes exactly when the text around them does (the config, or how it is rendered),
// which is when the member's server would be replaced. A secret that is renewed (a certificate in
// its last month) replaces the server without changing this digest.
import { nodeBoot } from "./boot";
import { backupTarget } from "./config";
import { PlannedNode, StackPlan } from "./plan";
import { sha256 } from "./providers/server-id";
import { renderCloudConfig } from "./render/cloud-config";
import { databaseParts, DatabaseSecrets } from "./render/database";

const PLACEHOLDER = "placeholder";
/** A well-formed WireGuard private key (32 zero bytes), for renderers that derive from it. */
const KEY_PLACEHOLDER = Buffer.alloc(32).toString("base64");

export function memberUserDataDigest(plan: StackPlan, node: PlannedNode): string {
    const secrets: DatabaseSecrets = {
        superuserPassword: PLACEHOLDER,
        replicationPassword: PLACEHOLDER,
        rewindPassword: PLACEHOLDER,
        appPassword: PLACEHOLDER,
        restApiPassword: PLACEHOLDER,
        poolerAdminPassword: PLACEHOLDER,
        ...(backupTarget(plan.config) && node.role === "db" ? { backup: { cipherPassphrase: PLACEHOLDER, caCertPem: PLACEHOLDER, certPem: PLACEHOLDER, keyPem: PLACEHOLDER } } : {}),
    };
    const mesh = { privateKey: KEY_PLACEHOLDER, meshAddress: node.meshAddress, prefixLength: Number(plan.config.mesh.cidr.split("/")[1]), listenPort: plan.config.mesh.port };
    return sha256(renderCloudConfig(nodeBoot(plan, node, mesh, KEY_PLACEHOLDER, databaseParts(plan, node, secrets))));
}
