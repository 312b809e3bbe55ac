// Bring-your-own hosts: any machine the user already runs Debian 13 on, reached over SSH.
// It has no regions or sizes of its own: its region is a free label that names its failure
// domain (for example a witness in a third data centre), and its price is what the user says.
import { ProviderCatalog } from "./types";

export const sshCatalog: ProviderCatalog = {
    name: "ssh",
    displayName: "Own host (SSH)",
    pricesAsOf: "n/a",
    pricesSource: "the node's monthlyUsd in stack config",
    regions: {},
    sizes: {},
};
