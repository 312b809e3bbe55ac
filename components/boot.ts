// What every node boots with, whatever its role: the mesh, the host firewall, the directory
// agent that fills both in from DNS, the peer watch, and SSH as the stack config says. Pure, so
// the program, the lab and the tests build the same documents. Nothing here depends on which other nodes exist.
import { directoryIndexName, directoryReleaseName } from "./directory-records";
import { nodesDomain, PlannedNode, PortRule, StackPlan } from "./plan";
import { CloudConfigPart, NodeBoot } from "./render/cloud-config";
import { DIRECTORY_ONCE, directoryAgentConfig, directoryAgentPart } from "./render/directory-agent";
import { meshPart } from "./render/mesh";
import { HostFirewallRule, hostFirewallPart } from "./render/nftables";
import { peerWatchConfig, peerWatchPart } from "./render/peer-watch";
import { MeshInterface } from "./render/wireguard";

export function hostFirewallRules(plan: StackPlan, node: PlannedNode): HostFirewallRule[] {
    return plan.ports[node.role].map((rule: PortRule): HostFirewallRule => {
        const base = { service: rule.service, protocol: rule.protocol, port: rule.port, ...(rule.portEnd !== undefined ? { portEnd: rule.portEnd } : {}) };
        switch (rule.from.kind) {
            case "internet":
            case "cloudflare": // the provider firewall narrows these to Cloudflare's ranges
                return { ...base, from: "any" };
            case "admin":
                return { ...base, from: { cidrs: rule.from.cidrs } };
            case "mesh":
                return { ...base, from: { meshRoles: rule.from.roles } };
        }
    });
}

/** `directoryKey`: the directory's Ed25519 public key (raw, base64), the same for every node. */
export function nodeBoot(plan: StackPlan, node: PlannedNode, mesh: MeshInterface, directoryKey: string, roleParts: CloudConfigPart[]): NodeBoot {
    const agent = directoryAgentConfig({
        self: node.name,
        index: directoryIndexName(nodesDomain(plan.config)),
        release: directoryReleaseName(nodesDomain(plan.config)),
        nodesDomain: nodesDomain(plan.config),
        publicKey: directoryKey,
        meshCidr: plan.config.mesh.cidr,
        meshPort: plan.config.mesh.port,
    });
    return {
        hostname: node.name,
        fqdn: node.dnsName,
        sshAuthorizedKeys: plan.config.admin.sshPublicKeys,
        sshEnabled: plan.config.admin.sshCidrs.length > 0,
        parts: [meshPart(mesh, DIRECTORY_ONCE), hostFirewallPart(hostFirewallRules(plan, node)), directoryAgentPart(agent), peerWatchPart(peerWatchConfig(node.name)), ...roleParts],
    };
}
