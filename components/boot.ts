// What every node boots with, whatever its role: the mesh, the host firewall and SSH as the
// stack config says. Pure, so the program, the lab and the tests build the same documents.
import { PlannedNode, PortRule, StackPlan } from "./plan";
import { CloudConfigPart, NodeBoot } from "./render/cloud-config";
import { meshPart } from "./render/mesh";
import { HostFirewallRule, hostFirewallPart } from "./render/nftables";
import { MeshInterface } from "./render/wireguard";

export function hostFirewallRules(plan: StackPlan, node: PlannedNode): HostFirewallRule[] {
    return plan.ports[node.role].map((rule: PortRule): HostFirewallRule => {
        const base = { service: rule.service, protocol: rule.protocol, port: rule.port };
        switch (rule.from.kind) {
            case "internet":
            case "cloudflare": // the provider firewall narrows these to Cloudflare's ranges
                return { ...base, from: "any" };
            case "admin":
                return { ...base, from: { cidrs: rule.from.cidrs } };
            case "mesh": {
                const roles = rule.from.roles;
                return { ...base, from: { meshAddresses: plan.nodes.filter((n) => roles.includes(n.role)).map((n) => n.meshAddress) } };
            }
        }
    });
}

export function nodeBoot(plan: StackPlan, node: PlannedNode, mesh: MeshInterface, roleParts: CloudConfigPart[]): NodeBoot {
    return {
        hostname: node.name,
        fqdn: node.dnsName,
        sshAuthorizedKeys: plan.config.admin.sshPublicKeys,
        sshEnabled: plan.config.admin.sshCidrs.length > 0,
        parts: [meshPart(mesh), hostFirewallPart(hostFirewallRules(plan, node)), ...roleParts],
    };
}
