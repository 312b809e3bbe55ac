// What every node runs, whatever its role. Its user-data (the bootstrap) holds its identity, its
// mesh interface and the desired-state agent; the host firewall, the directory agent that fills
// the mesh and firewall in from DNS, the peer watch, admin SSH and the role's parts come as its
// desired state. Pure, so the program, the lab and the tests build the same documents. Nothing
// here depends on which other nodes exist.
import { directoryIndexName, directoryReleaseName } from "./directory-records";
import { nodesDomain, PlannedNode, PortRule, ROLLOUT_STATUS_PORT, StackPlan } from "./plan";
import { DesiredContent } from "./desired-state-records";
import { adminSshPart } from "./render/admin-ssh";
import { CloudConfigPart, NodeBoot } from "./render/cloud-config";
import { desiredAgentConfig, desiredAgentFiles, desiredAgentPart } from "./render/desired-agent";
import { desiredContentOf } from "./render/desired-content";
import { moduleFiles } from "./render/python-lib";
import { DIRECTORY_ONCE, DIRECTORY_UNIT, directoryAgentConfig, directoryAgentPart } from "./render/directory-agent";
import { meshPart } from "./render/mesh";
import { HostFirewallRule, hostFirewallPart } from "./render/nftables";
import { PEER_WATCH_UNIT, peerWatchConfig, peerWatchPart } from "./render/peer-watch";
import { rolloutStatusPart } from "./render/rollout-status";
import { unattendedUpgradesPart } from "./render/unattended-upgrades";
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

/**
 * What a node's user-data holds: its identity, its mesh interface and the desired-state agent,
 * nothing a routine change of the stack touches (admin keys and ranges, secrets, backups,
 * membership, the release). `directoryKey`: the directory's Ed25519 public key (raw, base64),
 * which also signs every node's desired state.
 */
export function nodeBootstrap(plan: StackPlan, node: PlannedNode, mesh: MeshInterface, directoryKey: string): NodeBoot {
    const agent = desiredAgentConfig({ stack: plan.config.stack, node: node.name, dnsName: node.dnsName, publicKey: directoryKey });
    return {
        hostname: node.name,
        fqdn: node.dnsName,
        // The provider's keys (the day-1 rescue path) are the only ones cloud-init installs; the admins' come as desired state.
        sshAuthorizedKeys: [],
        sshEnabled: true,
        parts: [meshPart(mesh, DIRECTORY_ONCE), desiredAgentPart(agent)],
    };
}

/** Everything else the node holds: what the bootstrap's agent fetches and applies, as parts. */
export function nodeDesiredParts(plan: StackPlan, node: PlannedNode, directoryKey: string, roleParts: CloudConfigPart[]): CloudConfigPart[] {
    const agent = directoryAgentConfig({
        self: node.name,
        index: directoryIndexName(nodesDomain(plan.config)),
        release: directoryReleaseName(nodesDomain(plan.config)),
        nodesDomain: nodesDomain(plan.config),
        publicKey: directoryKey,
        meshCidr: plan.config.mesh.cidr,
        meshPort: plan.config.mesh.port,
    });
    return [
        // The agent's own code again (a newer one reaches a live node this way), and the rollout
        // gate it loads for a later generation.
        { files: [...desiredAgentFiles(), ...moduleFiles("rollout")] },
        adminSshPart({ publicKeys: plan.config.admin.sshPublicKeys, enabled: plan.config.admin.sshCidrs.length > 0 }),
        {
            ...hostFirewallPart(hostFirewallRules(plan, node)),
            // A new ruleset empties the mesh sets: the agents that fill them start again at once.
            restarts: [{ unit: "nftables.service" }, { unit: DIRECTORY_UNIT }, { unit: PEER_WATCH_UNIT }],
        },
        directoryAgentPart(agent),
        peerWatchPart(peerWatchConfig(node.name)),
        // The group's other nodes read this node's rollout state here (components/rollout.ts).
        rolloutStatusPart({ meshAddress: node.meshAddress, port: ROLLOUT_STATUS_PORT }),
        // Debian's security updates, the rollout's daemons held for a release.
        unattendedUpgradesPart(),
        ...roleParts,
    ];
}

/** The node's desired-state content (see nodeDesiredParts). */
export function nodeDesired(plan: StackPlan, node: PlannedNode, directoryKey: string, roleParts: CloudConfigPart[]): DesiredContent {
    return desiredContentOf(node.name, nodeDesiredParts(plan, node, directoryKey, roleParts));
}
