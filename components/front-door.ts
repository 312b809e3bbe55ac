// The Cloudflare front door: what visitors reach. The app's hostname and the release candidate's
// go through Cloudflare's proxy to the HAProxy pair, either through a load balancer that checks
// both HAProxy nodes and steers around a dead one (the Load Balancing add-on), or, in budget
// mode, through proxied records for both nodes with health checks that only tell. The hostnames'
// TLS settings (and, when asked, the zone's) and the alerts live here too. The nodes' own DNS-only
// records are NodeRecords'. Every name here carries the stack, so stacks can share a zone.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { frontDoorHostnames } from "./config";
import { checkRegionsFor, healthCheckSpec, hostnameTlsSettings, zoneSettings } from "./front-door-spec";
import { VpsNode } from "./node";
import { PlannedNode, StackPlan } from "./plan";

export interface CloudflareFrontDoorArgs {
    plan: StackPlan;
    /** The HAProxy pair's nodes, in config order: the origins, the first preferred. */
    origins: VpsNode[];
}

/** What the alerts are about: the load balancer's pools and origins, or the health checks. */
type AlertSubject = { alertType: string; filters: cloudflare.types.input.NotificationPolicyFilters };

export class CloudflareFrontDoor extends pulumi.ComponentResource {
    readonly hostname: string;
    readonly candidateHostname: string;
    /** Sent by Cloudflare in the cf-webhook-auth header of each alert, so the receiver can tell (secret). */
    readonly webhookSecret?: pulumi.Output<string>;

    constructor(name: string, args: CloudflareFrontDoorArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:CloudflareFrontDoor", name, {}, opts);
        const { plan } = args;
        const names = frontDoorHostnames(plan.config);
        this.hostname = names.app;
        this.candidateHostname = names.candidate;
        const zoneId = plan.config.cloudflare.zoneId;
        for (const s of zoneSettings(plan.config)) {
            new cloudflare.ZoneSetting(`${name}-${s.settingId.replace(/_/g, "-")}`, { zoneId, settingId: s.settingId, value: s.value }, { parent: this });
        }
        hostnameTlsSettings(plan.config).forEach((s, i) => {
            new cloudflare.HostnameTlsSetting(`${name}-${i === 0 ? "app" : "candidate"}-${s.settingId.replace(/_/g, "-")}`, { zoneId, hostname: s.hostname, settingId: s.settingId, value: s.value }, { parent: this });
        });
        const origins = args.origins.map((vps) => ({ vps, planned: plannedNode(plan, vps) }));
        const subject = plan.config.cloudflare.loadBalancer ? this.loadBalanced(name, plan, origins) : this.budget(name, plan, origins);
        const alerts = plan.config.cloudflare.alerts;
        if (alerts?.enabled) this.webhookSecret = this.alerts(name, plan, subject, alerts);
        this.registerOutputs({ hostname: this.hostname, candidateHostname: this.candidateHostname });
    }

    /** A monitor, one pool per HAProxy node (so one per provider), and a load balancer per hostname. */
    private loadBalanced(name: string, plan: StackPlan, origins: Origin[]): AlertSubject {
        const accountId = plan.config.cloudflare.accountId;
        const check = healthCheckSpec(plan.config);
        const monitor = new cloudflare.LoadBalancerMonitor(`${name}-monitor`, {
            accountId,
            description: `${prefixOf(plan)}: HAProxy ${check.path}`,
            type: check.type,
            method: check.method,
            port: check.port,
            path: check.path,
            expectedCodes: check.expectedCodes,
            interval: check.interval,
            retries: check.retries,
            timeout: check.timeout,
            header: { Host: [check.host] },
            // The origins present an Origin CA certificate, which Cloudflare's proxy trusts in Full
            // (strict) mode but public roots do not; a check that insisted on those would mark
            // both nodes down. Visitors' traffic is still verified (zone setting ssl: strict).
            allowInsecure: true,
            followRedirects: false,
            // No probeZone: a monitor presents an Authenticated Origin Pulls certificate only when
            // it simulates the zone, so it presents none; HAProxy answers the monitor path without
            // one (render/haproxy.ts), and nothing else.
        }, { parent: this });
        const pools = origins.map(({ vps, planned }) => new cloudflare.LoadBalancerPool(`${name}-${vps.name}`, {
            accountId,
            name: `${prefixOf(plan)}-${vps.name}`,
            description: `HAProxy node ${vps.name} (${planned.provider}/${planned.region})`,
            monitor: monitor.id,
            origins: [{ name: vps.name, address: vps.publicIpv4, enabled: true }],
            minimumOrigins: 1,
            ...optional("checkRegions", checkRegionsFor(planned)),
        }, { parent: this }));
        const poolIds = pools.map((p) => p.id);
        const spread = plan.config.cloudflare.steering === "random";
        for (const [key, hostname] of [["app", this.hostname], ["candidate", this.candidateHostname]] as const) {
            new cloudflare.LoadBalancer(`${name}-${key}`, {
                zoneId: plan.config.cloudflare.zoneId,
                name: hostname,
                description: `${prefixOf(plan)}: ${key === "app" ? "the app" : "the release candidate"} over both HAProxy nodes`,
                proxied: true,
                // off: the pools in order, the first healthy one takes all traffic, and traffic
                // returns to the first once it is healthy again. random: spread over the healthy ones.
                steeringPolicy: spread ? "random" : "off",
                ...(spread ? { randomSteering: { defaultWeight: 1 } } : {}),
                defaultPools: poolIds,
                fallbackPool: poolIds[poolIds.length - 1],
                // A request that meets a dead node (521-523) is retried on the other pool at
                // once, instead of failing until the monitor notices.
                adaptiveRouting: { failoverAcrossPools: true },
                sessionAffinity: "none",
            }, { parent: this });
        }
        return { alertType: "load_balancing_health_alert", filters: { poolIds, eventSources: ["pool", "origin"] } };
    }

    /**
     * Budget mode: each hostname gets a proxied A (and AAAA) record per HAProxy node; Cloudflare
     * spreads visitors over them and does not steer around a dead one. Health checks watch each
     * node and alert, so a person can take a dead node's records out.
     */
    private budget(name: string, plan: StackPlan, origins: Origin[]): AlertSubject {
        const zoneId = plan.config.cloudflare.zoneId;
        const check = healthCheckSpec(plan.config);
        const checks = origins.map(({ vps, planned }) => {
            for (const [key, hostname] of [["app", this.hostname], ["candidate", this.candidateHostname]] as const) {
                // ttl 1 is "automatic", the only TTL a proxied record has.
                new cloudflare.DnsRecord(`${name}-${key}-${vps.name}-v4`, { zoneId, name: hostname, type: "A", content: vps.publicIpv4, proxied: true, ttl: 1 }, { parent: this });
                if (!planned.host) {
                    new cloudflare.DnsRecord(`${name}-${key}-${vps.name}-v6`, {
                        zoneId, name: hostname, type: "AAAA", content: vps.publicIpv6.apply((ip) => ip ?? ""), proxied: true, ttl: 1,
                    }, { parent: this });
                }
            }
            return new cloudflare.Healthcheck(`${name}-${vps.name}-check`, {
                zoneId,
                name: `${prefixOf(plan)}-${vps.name}`,
                description: `HAProxy node ${vps.name} (${planned.provider}/${planned.region})`,
                address: vps.publicIpv4,
                type: "HTTPS",
                interval: check.interval,
                retries: check.retries,
                timeout: check.timeout,
                // Same reason as the load balancer's monitor: the Origin CA certificate is trusted by the proxy only.
                httpConfig: { method: check.method, path: check.path, port: check.port, expectedCodes: [check.expectedCodes], header: { Host: [check.host] }, allowInsecure: true, followRedirects: false },
                ...optional("checkRegions", checkRegionsFor(planned)),
            }, { parent: this });
        });
        return { alertType: "health_check_status_notification", filters: { healthCheckIds: checks.map((c) => c.id) } };
    }

    private alerts(name: string, plan: StackPlan, subject: AlertSubject, alerts: { email?: string; webhookUrl?: string; webhookSecret?: string }): pulumi.Output<string> | undefined {
        const accountId = plan.config.cloudflare.accountId;
        let webhookSecret: pulumi.Output<string> | undefined;
        let webhook: cloudflare.NotificationPolicyWebhooks | undefined;
        if (alerts.webhookUrl) {
            // Cloudflare sends a test to the webhook when it is created: a receiver that checks
            // cf-webhook-auth must know the secret by then, so the stack's own one is used when
            // set; a generated one exists (dependsOn) before the webhook is asked for.
            const generated = alerts.webhookSecret === undefined
                ? new random.RandomPassword(`${name}-webhook-secret`, { length: 32, special: false }, { parent: this })
                : undefined;
            webhookSecret = pulumi.secret(generated ? generated.result : pulumi.output(alerts.webhookSecret as string));
            webhook = new cloudflare.NotificationPolicyWebhooks(`${name}-webhook`, {
                accountId,
                name: `${prefixOf(plan)}-alerts`,
                // Slack-style URLs carry a token: a secret in state too.
                url: pulumi.secret(alerts.webhookUrl),
                secret: webhookSecret,
            }, { parent: this, ...(generated ? { dependsOn: [generated] } : {}) });
        }
        new cloudflare.NotificationPolicy(`${name}-health-alert`, {
            accountId,
            name: `${prefixOf(plan)}: origin health`,
            description: "An HAProxy node (or its pool) became unhealthy or healthy again",
            alertType: subject.alertType,
            enabled: true,
            filters: subject.filters,
            mechanisms: {
                ...(alerts.email ? { emails: [{ id: alerts.email }] } : {}),
                ...(webhook ? { webhooks: [{ id: webhook.id }] } : {}),
            },
        }, { parent: this });
        return webhookSecret;
    }
}

interface Origin {
    vps: VpsNode;
    planned: PlannedNode;
}

function plannedNode(plan: StackPlan, vps: VpsNode): PlannedNode {
    const planned = plan.nodes.find((n) => n.name === vps.name);
    if (!planned) throw new Error(`no planned node for origin ${vps.name}`);
    return planned;
}

/** Names in the Cloudflare account carry the project and stack, so stacks can share an account. */
function prefixOf(plan: StackPlan): string {
    return `${pulumi.getProject()}-${plan.config.stack}`;
}

/** `{ key: value }` when there is a value, `{}` otherwise (an absent input, not an explicit undefined). */
function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
    return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
