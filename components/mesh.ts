// The WireGuard mesh between every node: one key pair per node, generated in the program and
// kept in state as a secret. A node's mesh interface names its peers by public key, mesh
// address and DNS name only, never by another server's outputs, so replacing or moving one
// node changes no other node's boot (DESIGN decision 1).
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
        const peers = this.plan.nodes.filter((p) => p.name !== node.name);
        const prefixLength = Number(this.plan.config.mesh.cidr.split("/")[1]);
        return pulumi.all([this.privateKeys[node.name], ...peers.map((p) => this.publicKeys[p.name])]).apply(([privateKey, ...keys]) => ({
            privateKey,
            meshAddress: node.meshAddress,
            prefixLength,
            listenPort: this.plan.config.mesh.port,
            peers: peers.map((p, i) => ({ name: p.name, publicKey: keys[i], meshAddress: p.meshAddress, dnsName: p.dnsName })),
        }));
    }
}
