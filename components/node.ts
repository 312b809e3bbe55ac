// One node of the stack: its server on whichever provider the plan names, booted from the
// node's cloud-config, behind a firewall built from the plan's public rules.
import * as cloudflare from "@pulumi/cloudflare";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { bootstrapDigest } from "./bootstrap-identity";
import { PlannedNode, PortRule, StackPlan } from "./plan";
import { catalogs } from "./providers/catalogs";
import { PublicInboundRule, ServerFactory, ServerLifecycle } from "./providers";
import { STAND_DOWN_COMMAND, STAND_DOWN_ENV, STAND_DOWN_TOKEN_ENV, StandDownProvider, standDownStepName } from "./stand-down";

export interface VpsNodeArgs {
    plan: StackPlan;
    node: PlannedNode;
    servers: ServerFactory;
    userData: pulumi.Output<string>;
    /** Needed for hosts you bring: the key that reaches them over SSH. */
    sshPrivateKey?: pulumi.Output<string>;
    /** How the server is replaced (components/replacement.ts). */
    lifecycle: ServerLifecycle;
    /** A member replaced (on another provider or its own): its old server, shut down before the new one is created. */
    standDown?: { provider: string; serverId: string };
}

/**
 * The old server's shutdown through its provider's API, run by `pulumi up` before the replaced
 * member's new server is created (scripts/stand-down.ts): an ACPI shutdown, which hands a
 * primary over first (vps-ha-hand-over.service, render/switchover.ts), then a wait until the provider reports it off.
 */
function standDownStep(name: string, node: string, from: { provider: string; serverId: string }, parent: pulumi.Resource): command.local.Command {
    const token = catalogs[from.provider]?.token;
    const configured = token ? new pulumi.Config(token.configKey.split(":")[0]).getSecret(token.configKey.split(":")[1]) : undefined;
    const env = STAND_DOWN_TOKEN_ENV[from.provider as StandDownProvider];
    return new command.local.Command(standDownStepName(name), {
        create: STAND_DOWN_COMMAND,
        environment: {
            [STAND_DOWN_ENV.node]: node,
            [STAND_DOWN_ENV.provider]: from.provider,
            [STAND_DOWN_ENV.server]: from.serverId,
            // Otherwise the command inherits the token's environment variable, as the provider does.
            ...(configured && env ? { [env]: configured } : {}),
        },
    }, { parent, additionalSecretOutputs: ["environment"] });
}

const ANYWHERE = ["0.0.0.0/0", "::/0"];


/** Cloudflare's published edge ranges (an invoke, so the firewall follows when they change). */
function cloudflareSources(): pulumi.Output<string[]> {
    return cloudflare.getIpRangesOutput().apply((r) => [...r.ipv4Cidrs, ...r.ipv6Cidrs]);
}

/** The plan's public rules for a role, as provider-agnostic firewall rules. Mesh rules stay off. */
export function publicRules(rules: PortRule[]): PublicInboundRule[] {
    return rules.flatMap((r): PublicInboundRule[] => {
        switch (r.from.kind) {
            case "internet":
                return [{ description: r.service, protocol: r.protocol, port: r.port, sources: ANYWHERE }];
            case "cloudflare":
                return [{ description: r.service, protocol: r.protocol, port: r.port, sources: cloudflareSources() }];
            case "admin":
                return [{ description: r.service, protocol: r.protocol, port: r.port, sources: r.from.cidrs }];
            case "mesh":
                return [];
        }
    });
}

export class VpsNode extends pulumi.ComponentResource {
    readonly name: string;
    readonly role: string;
    /** The provider's id of the server (a host you bring: its address). */
    readonly serverId: pulumi.Output<string>;
    readonly publicIpv4: pulumi.Output<string>;
    readonly publicIpv6: pulumi.Output<string | undefined>;

    constructor(name: string, args: VpsNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:Node", name, {}, opts);
        const { node, plan } = args;
        this.name = node.name;
        this.role = node.role;
        const standDown = args.standDown ? standDownStep(name, node.name, args.standDown, this) : undefined;
        const server = args.servers.createServer({
            name: node.name,
            region: node.region,
            size: node.size ?? "",
            userData: pulumi.secret(args.userData),
            bootstrapDigest: bootstrapDigest(plan, node),
            sshPublicKeys: plan.config.admin.sshPublicKeys,
            firewall: publicRules(plan.ports[node.role]),
            group: node.role,
            tags: { "vps-ha-stack": plan.config.stack, "vps-ha-role": node.role },
            ...(node.host ? { host: { ...node.host, privateKey: args.sshPrivateKey ?? pulumi.output("") } } : {}),
            lifecycle: args.lifecycle,
            ...(standDown ? { after: [standDown] } : {}),
        }, this);
        this.serverId = server.id;
        this.publicIpv4 = server.publicIpv4;
        this.publicIpv6 = server.publicIpv6;
        this.registerOutputs({ publicIpv4: this.publicIpv4, publicIpv6: this.publicIpv6 });
    }
}
