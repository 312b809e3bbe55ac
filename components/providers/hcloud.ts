// Hetzner Cloud: a Server booted from Debian 13 with the cloud-config as user data, a Firewall
// per server, the admins' SSH keys (found in the project, or uploaded once per stack), and a
// spread placement group per role so two members of a role never share a physical host.
// Members are guarded by the stack's member guard (components/member-guard.ts) rather than Hetzner's
// delete protection: the provider refuses to delete a protected server, so a member's replacement
// or retirement would first need a run of its own.
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { ruleLabel } from "./firewall-sources";
import { hcloudCatalog } from "./hcloud-catalog";
import { HCLOUD_NAME, providerName } from "./names";
import { serverSuffix } from "./server-id";
import { ProviderAdapter, ProviderContext, ServerSpec } from "./types";
import { HCLOUD_USER_DATA_LIMIT, packUserData, unpackUserData } from "./user-data";

const IMAGE = hcloudCatalog.image as string;
const SERVER = "hcloud:index/server:Server";
export const GET_SSH_KEYS = "hcloud:index/getSshKeys:getSshKeys";
/** The label on the SSH keys a stack uploads itself; its value is the stack's name prefix. */
export const KEY_OWNER_LABEL = "vps-ha-owner";

/** Hetzner's fingerprint of an OpenSSH public key: MD5 of the key blob, as colon-separated hex. */
export function sshKeyFingerprint(publicKey: string): string {
    const blob = Buffer.from(publicKey.trim().split(/\s+/)[1] ?? "", "base64");
    return (createHash("md5").update(blob).digest("hex").match(/../g) as string[]).join(":");
}

export interface ProjectSshKey {
    id: number;
    fingerprint: string;
    labels: Record<string, string>;
}

/**
 * Which admin keys the project already has (Hetzner refuses a second key with the same
 * fingerprint) and which this stack uploads. A key this stack uploaded itself stays its own
 * resource, or the next run would see it as "already there" and delete it.
 */
export function sshKeyPlan(adminKeys: readonly string[], existing: readonly ProjectSshKey[], owner: string): { reuse: { key: string; id: number }[]; create: string[] } {
    const reuse: { key: string; id: number }[] = [];
    const create: string[] = [];
    for (const key of adminKeys) {
        const found = existing.find((k) => k.fingerprint === sshKeyFingerprint(key) && k.labels[KEY_OWNER_LABEL] !== owner);
        if (found) reuse.push({ key, id: found.id });
        else if (!create.some((k) => sshKeyFingerprint(k) === sshKeyFingerprint(key))) create.push(key);
    }
    return { reuse, create };
}

async function init(ctx: ProviderContext) {
    // Keys given at creation keep Hetzner from setting (and mailing) a root password; the same keys
    // also reach root through the cloud-config.
    const existing = ctx.sshPublicKeys.length === 0 ? [] : (await hcloud.getSshKeys({}, { parent: ctx.parent })).sshKeys ?? [];
    const keys = sshKeyPlan(ctx.sshPublicKeys, existing, ctx.prefix);
    const keyIds: pulumi.Input<string>[] = [
        ...keys.reuse.map((k) => String(k.id)),
        ...keys.create.map((key) => {
            const fp = sshKeyFingerprint(key).replace(/:/g, "").slice(0, 8);
            return new hcloud.SshKey(`${ctx.prefix}-hcloud-key-${fp}`, {
                name: providerName(`${ctx.prefix}-key-${fp}`, HCLOUD_NAME),
                publicKey: key,
                labels: { [KEY_OWNER_LABEL]: ctx.prefix },
            }, { parent: ctx.parent }).id;
        }),
    ];
    const groups = new Map<string, hcloud.PlacementGroup>();
    const groupFor = (group: string) => {
        let g = groups.get(group);
        if (!g) {
            g = new hcloud.PlacementGroup(`${ctx.prefix}-hcloud-${group}`, { name: providerName(`${ctx.prefix}-${group}`, HCLOUD_NAME), type: "spread" }, { parent: ctx.parent });
            groups.set(group, g);
        }
        return g;
    };
    return {
        createServer(spec: ServerSpec, parent: pulumi.Resource) {
            const base = `${ctx.prefix}-${spec.name}`;
            // Nothing in it forces a replacement: its name stays the same.
            const firewall = new hcloud.Firewall(`${spec.name}-firewall`, {
                name: providerName(base, HCLOUD_NAME),
                rules: spec.firewall.map((rule) => ({
                    description: ruleLabel(rule),
                    direction: "in",
                    protocol: rule.protocol,
                    port: String(rule.port),
                    sourceIps: rule.sources,
                })),
                labels: spec.tags,
            }, { parent });
            // Hetzner replaces a server for a new image, location or user data; names are unique per project.
            const keep = spec.lifecycle.keepUserData;
            const suffix = serverSuffix(spec.name, { image: IMAGE, location: spec.region, bootstrap: spec.bootstrapDigest }, keep, parent);
            const server = new hcloud.Server(spec.name, {
                name: suffix.apply((s) => providerName(base, HCLOUD_NAME, s)),
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
                // A member's ACPI shutdown hands its primary over first (vps-ha-hand-over.service).
                ...(spec.lifecycle.deleteBeforeReplace ? { shutdownBeforeDeletion: true } : {}),
            }, {
                parent,
                additionalSecretOutputs: ["userData"],
                ...(spec.after?.length ? { dependsOn: spec.after } : {}),
                // Said either way on purpose: the bridge deletes first whenever a name is given, but a
                // replacement here has a name of its own (the suffix), so only members need that.
                deleteBeforeReplace: spec.lifecycle.deleteBeforeReplace,
                // Keys count at creation only (the day-1 rescue path): a key changed in the stack file or
                // elsewhere never replaces a server; the admins' keys of the day come as desired state.
                // The user data likewise, unless the program replaces the server (ServerLifecycle).
                ignoreChanges: keep ? ["sshKeys", "userData"] : ["sshKeys"],
            });
            return {
                id: server.id,
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
