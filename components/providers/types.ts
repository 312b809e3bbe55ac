// The one interface every provider adapter implements. The rest of the program speaks only of
// these types; what a provider calls a region, a size or a firewall stays in its own file.
import * as pulumi from "@pulumi/pulumi";

/** Where a region is, so the plan can estimate round-trip times between failure domains. */
export interface RegionInfo {
    city: string;
    country: string;
    lat: number;
    lon: number;
}

export interface SizeInfo {
    vcpus: number;
    memoryMiB: number;
    diskGiB: number;
    /** Monthly price in US dollars, public IPv4 included (see the catalog's pricesAsOf). */
    monthlyUsd: number;
    /** Regions that offer the size; absent means every region of the provider. */
    regions?: readonly string[];
}

/** Pure data about a provider: no Pulumi resources, so config validation and the plan can use it. */
export interface ProviderCatalog {
    /** The name used in stack config (`provider: ...`). */
    name: string;
    displayName: string;
    /** Regions by id; an empty record means any label is accepted (bring-your-own hosts). */
    regions: Readonly<Record<string, RegionInfo>>;
    /** Sizes by id; an empty record means the provider has no sizes (bring-your-own hosts). */
    sizes: Readonly<Record<string, SizeInfo>>;
    /** The Pulumi config key holding the API token, and the environment variable that may replace it. */
    token?: { configKey: string; envVar: string };
    pricesAsOf: string;
    pricesSource: string;
    /**
     * What a new region does to a server: "migrate" (the same server and disk, powered off while it
     * moves) or "replace" (a new server, empty disk). Absent: a region is only a label (own hosts).
     */
    regionChange?: "migrate" | "replace";
    /** The image every server is created from (a new one replaces the server); absent for hosts you bring. */
    image?: string;
}

/** A provider-agnostic inbound rule on a node's public interface. Everything else is dropped. */
export interface PublicInboundRule {
    description: string;
    protocol: "tcp" | "udp";
    port: number;
    /** Source ranges (IPv4 and IPv6 CIDRs). */
    sources: pulumi.Input<string[]>;
}

export interface ServerSpec {
    /** The node's stable name (from the plan); resource names derive from it. */
    name: string;
    region: string;
    size: string;
    /** Full `#cloud-config` text; a secret, since it carries the node's private keys. */
    userData: pulumi.Input<string>;
    /** The bootstrap identity's digest: a new one replaces the server (components/bootstrap-identity.ts). */
    bootstrapDigest: string;
    sshPublicKeys: string[];
    firewall: PublicInboundRule[];
    /** Spread servers of the same group over different hosts where the provider can. */
    group: string;
    /** Provider-specific extras for bring-your-own hosts (address, user). */
    host?: { address: string; user: string; privateKey: pulumi.Input<string> };
    tags: Record<string, string>;
    /** How the server may be replaced or deleted (see components/replacement.ts). */
    lifecycle: ServerLifecycle;
    /** What must be done before the server is created (a moved member's old server standing down). */
    after?: pulumi.Resource[];
}

/** Resource options for a node's server, decided by the program from the deployed stack. */
export interface ServerLifecycle {
    /**
     * Delete the old server before creating its replacement. Database members and the witness:
     * their identity (etcd member name, Patroni name, mesh address and WireGuard key) must never
     * run twice. Other nodes are replaced create-before-delete, under a new name.
     */
    deleteBeforeReplace: boolean;
    /**
     * Keep the user-data (and the name) the server was created with, even if the program renders
     * another: true unless the program replaces this server in this run (then the new server gets
     * today's). The code in a bootstrap changes with every vps-ha version; a live node gets the
     * newer code as desired state, so only its identity may replace it (components/bootstrap-identity.ts).
     */
    keepUserData: boolean;
}

export interface ServerOutputs {
    /** The provider's id of the server (a host you bring: its address). */
    id: pulumi.Output<string>;
    publicIpv4: pulumi.Output<string>;
    publicIpv6: pulumi.Output<string | undefined>;
}

/** Creates servers on one provider; resources it shares between them are made once, lazily. */
export interface ServerFactory {
    /** Creates the server, its firewall and what the provider needs around them, parented to `parent`. */
    createServer(spec: ServerSpec, parent: pulumi.Resource): ServerOutputs;
}

export interface ProviderContext {
    /** Prefix for names that must be unique in the provider account, e.g. "vps-ha-prod". */
    prefix: string;
    sshPublicKeys: string[];
    /** Parent of the resources the servers share (SSH keys, placement groups). */
    parent: pulumi.Resource;
}

export interface ProviderAdapter {
    catalog: ProviderCatalog;
    /** May look things up first (Hetzner: the project's SSH keys), hence a promise. */
    init(ctx: ProviderContext): ServerFactory | Promise<ServerFactory>;
    mocks: ProviderMocks;
}

/** What the mock runtime needs to know about a provider's resources (offline plan, lab, tests). */
export interface ProviderMocks {
    /** Output state for a resource of this provider, given its inputs and a lab public address. */
    outputs(type: string, name: string, inputs: Record<string, unknown>, publicIpv4: () => string): Record<string, unknown> | undefined;
    /** The cloud-config a server resource received, if `type` is this provider's server. */
    userData(type: string, inputs: Record<string, unknown>): string | undefined;
}
