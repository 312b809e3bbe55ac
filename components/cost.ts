// What the stack costs per month, in US dollars. Server prices come from each provider's
// catalog (components/providers/*-catalog.ts, each with its date and source); the Cloudflare
// prices are here. Cloudflare, as of 2026-04 (https://www.cloudflare.com/plans/ and the Load
// Balancing add-on page): Load Balancing starts at $5/month for 2 origins, $5 for each further
// origin; DNS and proxied records cost nothing on any plan; standalone health checks come with
// the Pro plan and above. Plans are counted at their month-to-month price (Pro $25, Business
// $250; $20 and $200 a month when paid yearly); an Enterprise price is a contract, not counted.
// R2 is billed by use: 10 GB-month of storage free, then $0.015 per GB-month, no egress fees.
import type { NodeConfig, ZonePlan } from "./config";
import { catalogs } from "./providers/catalogs";

export const CLOUDFLARE_PRICES = {
    asOf: "2026-04",
    loadBalancerBaseUsd: 5,
    loadBalancerOriginsIncluded: 2,
    loadBalancerExtraOriginUsd: 5,
    zonePlanUsd: { free: 0, pro: 25, business: 250, enterprise: 0 } satisfies Record<ZonePlan, number>,
    r2FreeGbMonths: 10,
    r2UsdPerGbMonth: 0.015,
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

export interface CostLine {
    item: string;
    monthlyUsd: number;
}

/** Cloudflare's part of the monthly bill: the zone's plan, the Load Balancing add-on, R2. */
export function cloudflareCosts(config: { cloudflare: { loadBalancer: boolean; zonePlan: ZonePlan }; database: { backups?: { endpoint?: string } } }, origins: number): CostLine[] {
    const lines: CostLine[] = [];
    const plan = config.cloudflare.zonePlan;
    if (plan !== "free") {
        const note = plan === "enterprise" ? "contract price, not counted" : `month-to-month; ${plan === "pro" ? "$20" : "$200"} paid yearly`;
        lines.push({ item: `Cloudflare ${plan[0].toUpperCase()}${plan.slice(1)} plan (${note})`, monthlyUsd: CLOUDFLARE_PRICES.zonePlanUsd[plan] });
    }
    if (config.cloudflare.loadBalancer) lines.push({ item: `Cloudflare Load Balancing (${origins} origins)`, monthlyUsd: loadBalancerMonthlyUsd(origins) });
    else lines.push({ item: `Cloudflare health checks (${origins}, included in the ${plan} plan)`, monthlyUsd: 0 });
    if (config.database.backups && !config.database.backups.endpoint) {
        lines.push({ item: `Cloudflare R2 backups (by use: ${CLOUDFLARE_PRICES.r2FreeGbMonths} GB free, then $${CLOUDFLARE_PRICES.r2UsdPerGbMonth}/GB)`, monthlyUsd: 0 });
    }
    return lines;
}
