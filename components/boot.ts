// What every node runs, whatever its role. Its user-data (the bootstrap) holds its identity, its
// mesh interface and the desired-state agent; the host firewall, the directory agent that fills
// the mesh and firewall in from DNS, the peer watch, admin SSH and the role's parts come as its
// desired state. Pure, so the program, the lab and the tests build the same documents. Nothing
// here depends on which other nodes exist.
import { BootstrapIdentity } from "./bootstrap-identity";
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

/** Whether a node's host firewall must itself admit Cloudflare's ranges only: a host you bring has no provider firewall. */
export function needsCloudflareRanges(plan: StackPlan, node: PlannedNode): boolean {
    return node.host !== undefined && plan.ports[node.role].some((r) => r.from.kind === "cloudflare");
}

/**
 * Cloudflare's published ranges, for sizing a document before the real ones resolve (the real
 * ones come from the provider's invoke, as for the provider firewalls).
 */
export const CLOUDFLARE_RANGES_STAND_IN = [
    "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18", "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20",
    "197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15", "104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
    "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32", "2a06:98c0::/29", "2c0f:f248::/32",
];

/** `cloudflareRanges`: Cloudflare's edge ranges; needed for a host you bring that serves 80/443 (needsCloudflareRanges). */
export function hostFirewallRules(plan: StackPlan, node: PlannedNode, cloudflareRanges: string[] = []): HostFirewallRule[] {
    return plan.ports[node.role].map((rule: PortRule): HostFirewallRule => {
        const base = { service: rule.service, protocol: rule.protocol, port: rule.port, ...(rule.portEnd !== undefined ? { portEnd: rule.portEnd } : {}) };
        switch (rule.from.kind) {
            case "internet":
                return { ...base, from: "any" };
            case "cloudflare":
                // A provider's firewall narrows these to Cloudflare's ranges; a host you bring has none, so its own does.
                if (!node.host) return { ...base, from: "any" };
                if (cloudflareRanges.length === 0) throw new Error(`${node.name}: the host firewall of a host you bring needs Cloudflare's ranges for ${rule.service}`);
                return { ...base, from: { cidrs: cloudflareRanges } };
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
 * membership, the release). Made from the identity alone, besides two keys that stay the same
 * from run to run: `wireguardKey`, the node's private key, and `directoryKey`, the directory's
 * Ed25519 public key (raw, base64), which also signs every node's desired state.
 */
export function nodeBootstrap(id: BootstrapIdentity, wireguardKey: string, directoryKey: string): NodeBoot {
    const agent = desiredAgentConfig({ stack: id.stack, node: id.node, dnsName: id.fqdn, publicKey: directoryKey });
    const mesh: MeshInterface = { privateKey: wireguardKey, meshAddress: id.meshAddress, prefixLength: id.meshPrefixLength, listenPort: id.meshPort };
    return {
        hostname: id.node,
        fqdn: id.fqdn,
        // The provider's keys (the day-1 rescue path) are the only ones cloud-init installs; the admins' come as desired state.
        sshAuthorizedKeys: [],
        sshEnabled: true,
        parts: [meshPart(mesh, DIRECTORY_ONCE), desiredAgentPart(agent)],
    };
}

/** Everything else the node holds: what the bootstrap's agent fetches and applies, as parts. */
export function nodeDesiredParts(plan: StackPlan, node: PlannedNode, directoryKey: string, roleParts: CloudConfigPart[], cloudflareRanges: string[] = []): CloudConfigPart[] {
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
        // The agent's own code again (a newer one reaches a live node this way), and what it loads
        // for a later generation: its applier of later documents, with the rollout gate it calls.
        { files: [...desiredAgentFiles(), ...moduleFiles("update")] },
        adminSshPart({ publicKeys: plan.config.admin.sshPublicKeys, enabled: plan.config.admin.sshCidrs.length > 0 }),
        {
            ...hostFirewallPart(hostFirewallRules(plan, node, cloudflareRanges)),
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
export function nodeDesired(plan: StackPlan, node: PlannedNode, directoryKey: string, roleParts: CloudConfigPart[], cloudflareRanges: string[] = []): DesiredContent {
    return desiredContentOf(node.name, nodeDesiredParts(plan, node, directoryKey, roleParts, cloudflareRanges));
}
