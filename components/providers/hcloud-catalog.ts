// Hetzner Cloud locations and server types. Prices: Hetzner's cloud price list after the
// 2026-04-01 adjustment, in EUR converted at 1.16 USD/EUR, with the primary IPv4 (EUR 0.50)
// included. The CX line is offered in the EU locations only.
import { ProviderCatalog } from "./types";

const r = (city: string, country: string, lat: number, lon: number) => ({ city, country, lat, lon });
const EU = ["fsn1", "nbg1", "hel1"] as const;
const usd = (eur: number) => Math.round((eur + 0.5) * 1.16 * 100) / 100;

export const hcloudCatalog: ProviderCatalog = {
    name: "hcloud",
    displayName: "Hetzner Cloud",
    token: { configKey: "hcloud:token", envVar: "HCLOUD_TOKEN" },
    pricesAsOf: "2026-04",
    pricesSource: "https://www.hetzner.com/cloud/",
    image: "debian-13",
    regionChange: "replace",
    regions: {
        fsn1: r("Falkenstein", "DE", 50.5, 12.4),
        nbg1: r("Nuremberg", "DE", 49.5, 11.1),
        hel1: r("Helsinki", "FI", 60.2, 24.9),
        ash: r("Ashburn", "US", 39.0, -77.5),
        hil: r("Hillsboro", "US", 45.5, -122.9),
        sin: r("Singapore", "SG", 1.3, 103.8),
    },
    sizes: {
        cx23: { vcpus: 2, memoryMiB: 4096, diskGiB: 40, monthlyUsd: usd(3.99), regions: EU },
        cx33: { vcpus: 4, memoryMiB: 8192, diskGiB: 80, monthlyUsd: usd(6.49), regions: EU },
        cx43: { vcpus: 8, memoryMiB: 16384, diskGiB: 160, monthlyUsd: usd(11.99), regions: EU },
        cax11: { vcpus: 2, memoryMiB: 4096, diskGiB: 40, monthlyUsd: usd(4.49), regions: EU },
        cax21: { vcpus: 4, memoryMiB: 8192, diskGiB: 80, monthlyUsd: usd(7.99), regions: EU },
        cpx22: { vcpus: 2, memoryMiB: 4096, diskGiB: 80, monthlyUsd: usd(7.99) },
        cpx32: { vcpus: 4, memoryMiB: 8192, diskGiB: 160, monthlyUsd: usd(13.99) },
        ccx13: { vcpus: 2, memoryMiB: 8192, diskGiB: 80, monthlyUsd: usd(15.99) },
    },
};
