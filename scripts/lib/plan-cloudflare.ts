// The offline plan's Cloudflare section: every Cloudflare resource the program would create, read
// back from the mock runtime's record of it, with a few words on what each one is.
import type { CostLine } from "../../components/cost";
import type { Evaluation, RecordedResource } from "./mock-program";

export interface CloudflareResourceLine {
    /** The resource type's short name, e.g. LoadBalancer. */
    type: string;
    /** The Pulumi resource name. */
    name: string;
    /** What it is: a hostname, a setting's value, the pool's origin... */
    what: string;
}

export interface CloudflareSummary {
    mode: "load balancer" | "budget";
    resources: CloudflareResourceLine[];
}

const CLOUDFLARE = /^cloudflare:index\/[A-Za-z0-9]+:([A-Za-z0-9]+)$/;

export function cloudflareSummary(e: Evaluation): CloudflareSummary {
    const names = new Map(e.resources.map((r) => [r.id, String(r.inputs.name ?? r.name)]));
    const resources = e.resources.flatMap((r) => {
        const type = CLOUDFLARE.exec(r.type)?.[1];
        return type ? [{ type, name: r.name, what: describe(type, r, (id) => names.get(String(id)) ?? String(id)) }] : [];
    });
    return { mode: resources.some((r) => r.type === "LoadBalancer") ? "load balancer" : "budget", resources };
}

function describe(type: string, r: RecordedResource, nameOf: (id: unknown) => string): string {
    const i = r.inputs;
    switch (type) {
        case "LoadBalancer":
            return `${i.name}${i.proxied ? ", proxied" : ""}, steering ${i.steeringPolicy}: ${(i.defaultPools as unknown[]).map(nameOf).join(" > ")}, fallback ${nameOf(i.fallbackPool)}`;
        case "LoadBalancerPool":
            return `${i.name}: ${(i.origins as { address: string }[]).map((o) => o.address).join(", ")} (checked from ${(i.checkRegions as string[] | undefined)?.join(", ") ?? "Cloudflare's default"})`;
        case "LoadBalancerMonitor":
            return `${String(i.type).toUpperCase()} ${i.method} ${i.path} expects ${i.expectedCodes}, every ${i.interval} s, ${i.retries} retries, timeout ${i.timeout} s`;
        case "Healthcheck":
            return `${i.name}: ${i.type} ${i.address} every ${i.interval} s`;
        case "DnsRecord":
            return `${i.name} ${i.type} ${i.content}${i.proxied ? " (proxied)" : " (DNS only)"}`;
        case "ZoneSetting":
            return `${i.settingId} = ${JSON.stringify(i.value)}`;
        case "HostnameTlsSetting":
            return `${i.hostname} ${i.settingId} = ${JSON.stringify(i.value)}`;
        case "OriginCaCertificate":
            return `${(i.hostnames as string[]).join(", ")} for ${i.requestedValidity} days`;
        case "AuthenticatedOriginPullsHostnameCertificate":
            return "the stack's client certificate for Authenticated Origin Pulls (key secret)";
        case "AuthenticatedOriginPulls":
            return `presents ${nameOf((i.configs as { certId: unknown }[])[0]?.certId)} to the origins for ${(i.configs as { hostname: string }[]).map((c) => c.hostname).join(", ")}`;
        case "NotificationPolicy":
            return `${i.alertType} to ${Object.keys((i.mechanisms as object) ?? {}).join(" and ")}`;
        case "NotificationPolicyWebhooks":
            // The URL may carry a token: the plan names the host only.
            return `${i.name} to ${new URL(String(i.url)).host}`;
        case "R2Bucket":
            return `${i.name}${i.location ? ` (${i.location})` : ""}`;
        default:
            return r.name;
    }
}

function pad(s: string, n: number): string {
    return s.length >= n ? s + " " : s + " ".repeat(n - s.length);
}

export function formatCloudflare(c: CloudflareSummary, costs: CostLine[]): string[] {
    const lines = [`Cloudflare (${c.mode === "budget" ? "budget mode: proxied records and health checks, no steering" : "Load Balancing add-on"})`];
    // The nodes' own DNS-only records are many and alike: one line for them all.
    const nodeRecords = c.resources.filter((r) => r.type === "DnsRecord" && r.what.endsWith("(DNS only)"));
    for (const r of c.resources.filter((x) => !nodeRecords.includes(x))) lines.push(`  ${pad(r.type, 27)}${r.what}`);
    if (nodeRecords.length) lines.push(`  ${pad("DnsRecord", 27)}${nodeRecords.length} DNS-only node records (<node>.<stack>.nodes.<domain>)`);
    for (const cost of costs.filter((x) => x.item.startsWith("Cloudflare"))) lines.push(`  ${pad(cost.item, 79)}${cost.monthlyUsd.toFixed(2).padStart(5)}`);
    return lines;
}
