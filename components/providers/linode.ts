// Linode: an Instance booted from Debian 13 with the cloud-config as Metadata user data, behind a
// Cloud Firewall (attached at creation) that drops every inbound packet the plan does not allow.
// Linode has no delete protection on instances: members rely on the stack's member guard.
import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import { ruleLabel, splitSources } from "./firewall-sources";
import { linodeCatalog } from "./linode-catalog";
import { LINODE_FIREWALL_LABEL, LINODE_INSTANCE_LABEL, providerName } from "./names";
import { serverSuffix } from "./server-id";
import { ProviderAdapter, ProviderContext, ServerSpec } from "./types";
import { packUserData, unpackUserData } from "./user-data";

const IMAGE = linodeCatalog.image as string;
const INSTANCE = "linode:index/instance:Instance";

function init(ctx: ProviderContext) {
    return {
        createServer(spec: ServerSpec, parent: pulumi.Resource) {
            const base = `${ctx.prefix}-${spec.name}`;
            // Created first and given to the instance at creation (`firewallId`), so the server is
            // never up without it (an account's default firewall or a boot race cannot come first).
            // Nothing in it forces a replacement, so its label stays the same.
            const firewall = new linode.Firewall(`${spec.name}-firewall`, {
                label: providerName(base, LINODE_FIREWALL_LABEL),
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
            }, { parent });
            // Linode replaces an instance for a new image or user data (a region is a migration, in
            // place); labels are unique per account, so a replacement needs its own.
            const keep = spec.lifecycle.keepUserData;
            const suffix = serverSuffix(spec.name, { image: IMAGE, bootstrap: spec.bootstrapDigest }, keep, parent);
            const instance = new linode.Instance(spec.name, {
                label: suffix.apply((s) => providerName(base, LINODE_INSTANCE_LABEL, s)),
                region: spec.region,
                type: spec.size,
                image: IMAGE,
                authorizedKeys: spec.sshPublicKeys,
                metadatas: [{ userData: pulumi.output(spec.userData).apply(packUserData) }],
                firewallId: firewall.id.apply(Number),
                tags: Object.entries(spec.tags).map(([k, v]) => `${k}:${v}`),
                privateIp: false,
            }, {
                parent,
                additionalSecretOutputs: ["metadatas"],
                ...(spec.after?.length ? { dependsOn: spec.after } : {}),
                deleteBeforeReplace: spec.lifecycle.deleteBeforeReplace,
                // A new set of keys would replace the instance: the day-1 keys stay as the rescue path,
                // and the admins' keys of the day reach the node as its desired state. The user data
                // likewise, unless the program replaces the server (ServerLifecycle).
                ignoreChanges: keep ? ["authorizedKeys", "metadatas"] : ["authorizedKeys"],
            });
            return {
                id: instance.id,
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
