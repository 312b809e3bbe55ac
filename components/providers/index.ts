// The provider adapters, by name. The only module outside this folder that the program asks
// for a provider.
import { hcloudAdapter } from "./hcloud";
import { linodeAdapter } from "./linode";
import { sshAdapter } from "./ssh";
import { ProviderAdapter } from "./types";

export const adapters: Readonly<Record<string, ProviderAdapter>> = {
    [linodeAdapter.catalog.name]: linodeAdapter,
    [hcloudAdapter.catalog.name]: hcloudAdapter,
    [sshAdapter.catalog.name]: sshAdapter,
};

export * from "./types";
export { catalogs, providerNames } from "./catalogs";
