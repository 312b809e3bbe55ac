// Linode (Akamai Cloud) regions and shared-CPU plans. Prices: Linode's public pricing page,
// USD per month, as of 2026-04 (core regions; a few regions such as Jakarta and São Paulo
// charge more, which the plan does not model).
import { ProviderCatalog } from "./types";

const r = (city: string, country: string, lat: number, lon: number) => ({ city, country, lat, lon });

export const linodeCatalog: ProviderCatalog = {
    name: "linode",
    displayName: "Linode",
    token: { configKey: "linode:token", envVar: "LINODE_TOKEN" },
    pricesAsOf: "2026-04",
    pricesSource: "https://www.linode.com/pricing/",
    image: "linode/debian13",
    regionChange: "migrate",
    regions: {
        "us-east": r("Newark", "US", 40.7, -74.2),
        "us-central": r("Dallas", "US", 32.8, -96.8),
        "us-west": r("Fremont", "US", 37.5, -122.0),
        "us-southeast": r("Atlanta", "US", 33.7, -84.4),
        "us-iad": r("Washington", "US", 38.9, -77.0),
        "us-ord": r("Chicago", "US", 41.9, -87.6),
        "us-sea": r("Seattle", "US", 47.6, -122.3),
        "us-lax": r("Los Angeles", "US", 34.1, -118.2),
        "us-mia": r("Miami", "US", 25.8, -80.2),
        "ca-central": r("Toronto", "CA", 43.7, -79.4),
        "eu-west": r("London", "GB", 51.5, -0.1),
        "gb-lon": r("London 2", "GB", 51.5, -0.1),
        "eu-central": r("Frankfurt", "DE", 50.1, 8.7),
        "de-fra-2": r("Frankfurt 2", "DE", 50.1, 8.7),
        "fr-par": r("Paris", "FR", 48.9, 2.4),
        "nl-ams": r("Amsterdam", "NL", 52.4, 4.9),
        "se-sto": r("Stockholm", "SE", 59.3, 18.1),
        "it-mil": r("Milan", "IT", 45.5, 9.2),
        "es-mad": r("Madrid", "ES", 40.4, -3.7),
        "ap-south": r("Singapore", "SG", 1.3, 103.8),
        "ap-northeast": r("Tokyo", "JP", 35.7, 139.7),
        "jp-osa": r("Osaka", "JP", 34.7, 135.5),
        "ap-west": r("Mumbai", "IN", 19.1, 72.9),
        "in-maa": r("Chennai", "IN", 13.1, 80.3),
        "ap-southeast": r("Sydney", "AU", -33.9, 151.2),
        "au-mel": r("Melbourne", "AU", -37.8, 145.0),
    },
    sizes: {
        "g6-nanode-1": { vcpus: 1, memoryMiB: 1024, diskGiB: 25, monthlyUsd: 5 },
        "g6-standard-1": { vcpus: 1, memoryMiB: 2048, diskGiB: 50, monthlyUsd: 12 },
        "g6-standard-2": { vcpus: 2, memoryMiB: 4096, diskGiB: 80, monthlyUsd: 24 },
        "g6-standard-4": { vcpus: 4, memoryMiB: 8192, diskGiB: 160, monthlyUsd: 48 },
        "g6-standard-6": { vcpus: 6, memoryMiB: 16384, diskGiB: 320, monthlyUsd: 96 },
        "g6-dedicated-2": { vcpus: 2, memoryMiB: 4096, diskGiB: 80, monthlyUsd: 36 },
        "g6-dedicated-4": { vcpus: 4, memoryMiB: 8192, diskGiB: 160, monthlyUsd: 72 },
    },
};
