// Linode: an Instance booted from Debian 13 with the cloud-config as Metadata user data, and a
// Cloud Firewall that drops every inbound packet the plan does not allow.
import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import { ruleLabel, splitSources } from "./firewall-sources";
import { linodeCatalog } from "./linode-catalog";
import { ProviderAdapter, ProviderContext, ServerSpec } from "./types";
import { packUserData, unpackUserData } from "./user-data";

const IMAGE = "linode/debian13";
const INSTANCE = "linode:index/instance:Instance";

function init(ctx: ProviderContext) {
    return {
        createServer(spec: ServerSpec, parent: pulumi.Resource) {
            const instance = new linode.Instance(spec.name, {
                label: `${ctx.prefix}-${spec.name}`.slice(0, 64),
                region: spec.region,
                type: spec.size,
                image: IMAGE,
                authorizedKeys: spec.sshPublicKeys,
                metadatas: [{ userData: pulumi.output(spec.userData).apply(packUserData) }],
                tags: Object.entries(spec.tags).map(([k, v]) => `${k}:${v}`),
                privateIp: false,
            }, { parent, additionalSecretOutputs: ["metadatas"] });
            new linode.Firewall(`${spec.name}-firewall`, {
                label: `${ctx.prefix}-${spec.name}`.slice(0, 32),
                inboundPolicy: "DROP",
                outboundPolicy: "ACCEPT",
                inbounds: spec.firewall.map((rule) => {
                    const sources = splitSources(rule);
                    return {
                        label: ruleLabel(rule),
                        action: "ACCEPT",
                        protocol: rule.protocol.toUpperCase(),
                        ports: String(rule.port),
                        ipv4s: sources.ipv4,
                        ipv6s: sources.ipv6,
                    };
                }),
                linodes: [instance.id.apply(Number)],
            }, { parent });
            return {
                publicIpv4: instance.ipAddress,
                publicIpv6: instance.ipv6.apply((v) => (v ? v.split("/")[0] : undefined)),
            };
        },
    };
}

export const linodeAdapter: ProviderAdapter = {
    catalog: linodeCatalog,
    init,
    mocks: {
        outputs(type, _name, inputs, publicIpv4) {
            if (type !== INSTANCE) return undefined;
            const ip = publicIpv4();
            return { ...inputs, ipAddress: ip, ipv4s: [ip], ipv6: "2001:db8::1/128", status: "running" };
        },
        userData(type, inputs) {
            if (type !== INSTANCE) return undefined;
            const meta = (inputs.metadatas as { userData?: string }[] | undefined)?.[0]?.userData;
            return meta === undefined ? undefined : unpackUserData(meta);
        },
    },
};
