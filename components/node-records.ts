// Each node's DNS name, pointing at its public addresses: DNS-only (never proxied, since
// WireGuard is UDP and Cloudflare's proxy carries HTTP), short TTL so a replaced node is found
// again quickly. Mesh peers dial these names.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { isIP } from "node:net";
import { StackPlan } from "./plan";
import { VpsNode } from "./node";

export interface NodeRecordsArgs {
    plan: StackPlan;
    nodes: VpsNode[];
}

export const NODE_RECORD_TTL = 60;

export class NodeRecords extends pulumi.ComponentResource {
    constructor(name: string, args: NodeRecordsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:NodeRecords", name, {}, opts);
        const zoneId = args.plan.config.cloudflare.zoneId;
        for (const vps of args.nodes) {
            const planned = args.plan.nodes.find((n) => n.name === vps.name);
            if (!planned) continue;
            // A host you bring may be given by name: point at it with a CNAME.
            const type = vps.publicIpv4.apply((ip) => (isIP(ip) ? "A" : "CNAME"));
            new cloudflare.DnsRecord(`${name}-${vps.name}-v4`, { zoneId, name: planned.dnsName, type, content: vps.publicIpv4, ttl: NODE_RECORD_TTL, proxied: false }, { parent: this });
            if (!planned.host) {
                new cloudflare.DnsRecord(`${name}-${vps.name}-v6`, {
                    zoneId, name: planned.dnsName, type: "AAAA", content: vps.publicIpv6.apply((ip) => ip ?? ""), ttl: NODE_RECORD_TTL, proxied: false,
                }, { parent: this });
            }
        }
        this.registerOutputs({});
    }
}
