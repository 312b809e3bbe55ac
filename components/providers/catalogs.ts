// Every provider's pure catalog, by name. Config validation and the plan read this; only the
// adapters (./index.ts) pull in the Pulumi provider packages.
import { hcloudCatalog } from "./hcloud-catalog";
import { linodeCatalog } from "./linode-catalog";
import { sshCatalog } from "./ssh-catalog";
import { ProviderCatalog } from "./types";

export const catalogs: Readonly<Record<string, ProviderCatalog>> = {
    [linodeCatalog.name]: linodeCatalog,
    [hcloudCatalog.name]: hcloudCatalog,
    [sshCatalog.name]: sshCatalog,
};

export const providerNames = Object.keys(catalogs);

/** Providers that rent servers from a catalog (as opposed to hosts the user brings). */
export function isCloudProvider(name: string): boolean {
    return Object.keys(catalogs[name]?.sizes ?? {}).length > 0;
}

/** Hosts the user brings (reached over SSH), as opposed to rented servers. */
export function isOwnHost(name: string): boolean {
    return name in catalogs && !isCloudProvider(name);
}
