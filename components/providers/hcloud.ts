// Hetzner Cloud: a Server booted from Debian 13 with the cloud-config as user data, a Firewall
// per server, the admins' SSH keys registered once per stack, and a spread placement group per
// role so two members of a role never share a physical host.
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { ruleLabel } from "./firewall-sources";
import { hcloudCatalog } from "./hcloud-catalog";
import { ProviderAdapter, ProviderContext, ServerSpec } from "./types";
import { HCLOUD_USER_DATA_LIMIT, packUserData, unpackUserData } from "./user-data";

const IMAGE = "debian-13";
const SERVER = "hcloud:index/server:Server";

function init(ctx: ProviderContext) {
    const keyIds = ctx.sshPublicKeys.map((key) => {
        const id = createHash("sha256").update(key).digest("hex").slice(0, 8);
        return new hcloud.SshKey(`${ctx.prefix}-hcloud-key-${id}`, { name: `${ctx.prefix}-${id}`, publicKey: key }, { parent: ctx.parent }).id;
    });
    const groups = new Map<string, hcloud.PlacementGroup>();
    const groupFor = (group: string) => {
        let g = groups.get(group);
        if (!g) {
            g = new hcloud.PlacementGroup(`${ctx.prefix}-hcloud-${group}`, { name: `${ctx.prefix}-${group}`, type: "spread" }, { parent: ctx.parent });
            groups.set(group, g);
        }
        return g;
    };
    return {
        createServer(spec: ServerSpec, parent: pulumi.Resource) {
            const firewall = new hcloud.Firewall(`${spec.name}-firewall`, {
                name: `${ctx.prefix}-${spec.name}`,
                rules: spec.firewall.map((rule) => ({
                    description: ruleLabel(rule),
                    direction: "in",
                    protocol: rule.protocol,
                    port: String(rule.port),
                    sourceIps: rule.sources,
                })),
                labels: spec.tags,
            }, { parent });
            const server = new hcloud.Server(spec.name, {
                name: `${ctx.prefix}-${spec.name}`,
                serverType: spec.size,
                image: IMAGE,
                location: spec.region,
                userData: pulumi.output(spec.userData).apply((text) => {
                    const packed = packUserData(text);
                    if (packed.length > HCLOUD_USER_DATA_LIMIT) throw new pulumi.RunError(`node ${spec.name}: its user data is ${packed.length} bytes compressed; Hetzner Cloud takes at most ${HCLOUD_USER_DATA_LIMIT}`);
                    return packed;
                }),
                sshKeys: keyIds,
                placementGroupId: groupFor(spec.group).id.apply(Number),
                firewallIds: [firewall.id.apply(Number)],
                publicNets: [{ ipv4Enabled: true, ipv6Enabled: true }],
                labels: spec.tags,
            }, { parent, additionalSecretOutputs: ["userData"] });
            return {
                publicIpv4: server.ipv4Address,
                publicIpv6: server.ipv6Address.apply((v) => v || undefined),
            };
        },
    };
}

export const hcloudAdapter: ProviderAdapter = {
    catalog: hcloudCatalog,
    init,
    mocks: {
        outputs(type, _name, inputs, publicIpv4) {
            if (type !== SERVER) return undefined;
            return { ...inputs, ipv4Address: publicIpv4(), ipv6Address: "2001:db8::2", status: "running" };
        },
        userData(type, inputs) {
            const packed = type === SERVER ? (inputs.userData as string | undefined) : undefined;
            return packed === undefined ? undefined : unpackUserData(packed);
        },
    },
};
