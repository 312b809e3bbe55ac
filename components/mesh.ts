// The WireGuard mesh between every node: one key pair per node, generated in the program and
// kept in state as a secret. A node's boot holds its own interface only; who its peers are
// (public key, mesh address, DNS name) it learns at run time from the signed directory
// (mesh-directory.ts), so adding, removing, replacing or moving a node changes no other node's
// boot (DESIGN decision 1).
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { clampPrivateKey, wireguardPublicKey } from "./keys";
import { PlannedNode, StackPlan } from "./plan";

export interface MeshArgs {
    plan: StackPlan;
}

export class Mesh extends pulumi.ComponentResource {
    /** Each node's WireGuard public key, by node name (not secret). */
    readonly publicKeys: Record<string, pulumi.Output<string>> = {};
    private readonly privateKeys: Record<string, pulumi.Output<string>> = {};

    constructor(name: string, args: MeshArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:Mesh", name, {}, opts);
        for (const node of args.plan.nodes) {
            const bytes = new random.RandomBytes(`${name}-${node.name}-key`, { length: 32 }, { parent: this });
            const privateKey = pulumi.secret(bytes.base64.apply(clampPrivateKey));
            this.privateKeys[node.name] = privateKey;
            this.publicKeys[node.name] = pulumi.unsecret(privateKey.apply(wireguardPublicKey));
        }
        this.registerOutputs({ publicKeys: this.publicKeys });
    }

    /** `node`'s WireGuard private key (secret); its address and port are the plan's (components/bootstrap-identity.ts). */
    privateKeyFor(node: PlannedNode): pulumi.Output<string> {
        return this.privateKeys[node.name];
    }
}
