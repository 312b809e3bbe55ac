// What the stack costs per month, in US dollars. Server prices come from each provider's
// catalog (components/providers/*-catalog.ts, each with its date and source); the Cloudflare
// prices are here. Cloudflare, as of 2026-04 (https://www.cloudflare.com/plans/ and the Load
// Balancing add-on page): Load Balancing starts at $5/month for 2 origins, $5 for each further
// origin; DNS, proxied records and health checks on the Free plan cost nothing.
import type { NodeConfig } from "./config";
import { catalogs } from "./providers/catalogs";

export const CLOUDFLARE_PRICES = {
    asOf: "2026-04",
    loadBalancerBaseUsd: 5,
    loadBalancerOriginsIncluded: 2,
    loadBalancerExtraOriginUsd: 5,
} as const;

export function nodeMonthlyUsd(node: Pick<NodeConfig, "provider" | "size" | "monthlyUsd">): number {
    if (node.monthlyUsd !== undefined) return node.monthlyUsd;
    return (node.size && catalogs[node.provider]?.sizes[node.size]?.monthlyUsd) || 0;
}

export function loadBalancerMonthlyUsd(origins: number): number {
    const extra = Math.max(0, origins - CLOUDFLARE_PRICES.loadBalancerOriginsIncluded);
    return CLOUDFLARE_PRICES.loadBalancerBaseUsd + extra * CLOUDFLARE_PRICES.loadBalancerExtraOriginUsd;
}

export function roundUsd(n: number): number {
    return Math.round(n * 100) / 100;
}
