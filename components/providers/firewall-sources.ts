// Splitting provider-agnostic rule sources into the IPv4 and IPv6 lists providers ask for.
import * as pulumi from "@pulumi/pulumi";
import { PublicInboundRule } from "./types";

export function splitSources(rule: PublicInboundRule): pulumi.Output<{ ipv4: string[]; ipv6: string[] }> {
    return pulumi.output(rule.sources).apply((sources) => ({
        ipv4: sources.filter((s) => !s.includes(":")),
        ipv6: sources.filter((s) => s.includes(":")),
    }));
}

/** Provider labels allow 3-32 characters of letters, digits, '-', '_' and '.'. */
export function ruleLabel(rule: PublicInboundRule): string {
    return `${rule.description}-${rule.protocol}-${rule.port}`.replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 32);
}
