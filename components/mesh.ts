// The WireGuard mesh between every node: one key pair per node, generated in the program and
// kept in state as a secret. A node's boot holds its own interface only; who its peers are
// (public key, mesh address, DNS name) it learns at run time from the signed directory
// (mesh-directory.ts), so adding, removing, replacing or moving a node changes no other node's
// boot (DESIGN decision 1).
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { clampPrivateKey, wireguardPublicKey } from "./keys";
import { PlannedNode, StackPlan } from "./plan";
import { MeshInterface } from "./render/wireguard";

export interface MeshArgs {
    plan: StackPlan;
}

export class Mesh extends pulumi.ComponentResource {
    /** Each node's WireGuard public key, by node name (not secret). */
    readonly publicKeys: Record<string, pulumi.Output<string>> = {};
    private readonly privateKeys: Record<string, pulumi.Output<string>> = {};
    private readonly plan: StackPlan;

    constructor(name: string, args: MeshArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:Mesh", name, {}, opts);
        this.plan = args.plan;
        for (const node of args.plan.nodes) {
            const bytes = new random.RandomBytes(`${name}-${node.name}-key`, { length: 32 }, { parent: this });
            const privateKey = pulumi.secret(bytes.base64.apply(clampPrivateKey));
            this.privateKeys[node.name] = privateKey;
            this.publicKeys[node.name] = pulumi.unsecret(privateKey.apply(wireguardPublicKey));
        }
        this.registerOutputs({ publicKeys: this.publicKeys });
    }

    /** Everything `node` needs to bring up its end of the mesh; secret, as it holds the private key. */
    interfaceFor(node: PlannedNode): pulumi.Output<MeshInterface> {
        const prefixLength = Number(this.plan.config.mesh.cidr.split("/")[1]);
        return this.privateKeys[node.name].apply((privateKey) => ({ privateKey, meshAddress: node.meshAddress, prefixLength, listenPort: this.plan.config.mesh.port }));
    }
}
