// What the lab's edge does, read from the resources the program gave Cloudflare: the load
// balancer for a hostname, its pools in order with their origins, the fallback pool, the steering
// policy, failover across pools, and the monitor's settings. Nothing here is configured twice:
// change the program's load balancer and the lab's edge follows.
import type { Evaluation, RecordedResource } from "../../lib/mock-program";

export interface EdgeOrigin {
    /** The pool's origin name (the HAProxy node). */
    name: string;
    address: string;
}

export interface EdgeMonitor {
    method: string;
    port: number;
    path: string;
    /** Cloudflare's form: "200", "2xx", or several separated by spaces. */
    expectedCodes: string;
    intervalSeconds: number;
    retries: number;
    timeoutSeconds: number;
    host: string;
    allowInsecure: boolean;
}

/** What Cloudflare presents to the origins for the stack's hostnames (Authenticated Origin Pulls), as the program uploaded it. */
export interface OriginPullClient {
    certificate: string;
    privateKey: string;
}

export interface EdgeConfig {
    hostname: string;
    listen: { address: string; port: number };
    origins: EdgeOrigin[];
    fallback: string;
    steering: "off" | "random";
    failoverAcrossPools: boolean;
    monitor: EdgeMonitor;
    originCaFile: string;
    /** The origin-pull certificate and key the edge presents on every connection to an origin (PEM files). */
    originPullCertFile: string;
    originPullKeyFile: string;
    eventLog: string;
}

export type EdgePlan = Omit<EdgeConfig, "listen" | "originCaFile" | "originPullCertFile" | "originPullKeyFile" | "eventLog">;

const T = {
    lb: "cloudflare:index/loadBalancer:LoadBalancer",
    pool: "cloudflare:index/loadBalancerPool:LoadBalancerPool",
    monitor: "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor",
    pullCert: "cloudflare:index/authenticatedOriginPullsHostnameCertificate:AuthenticatedOriginPullsHostnameCertificate",
    pulls: "cloudflare:index/authenticatedOriginPulls:AuthenticatedOriginPulls",
};

/**
 * The certificate Cloudflare presents for `hostname`: the uploaded one that the program's
 * per-hostname settings enable for it. Throws when there is none (the origins would refuse the edge).
 */
export function originPullClientOf(e: Evaluation, hostname: string): OriginPullClient {
    const enabledFor = e.resources.filter((r) => r.type === T.pulls).flatMap((r) => (r.inputs.configs ?? []) as { hostname?: string; certId?: string; enabled?: boolean }[])
        .find((c) => c.hostname === hostname && c.enabled === true);
    if (!enabledFor) throw new Error(`lab edge: the program enables no Authenticated Origin Pulls for ${hostname}`);
    const cert = e.resources.find((r) => r.type === T.pullCert && r.id === enabledFor.certId);
    if (!cert) throw new Error(`lab edge: Authenticated Origin Pulls for ${hostname} names certificate ${enabledFor.certId}, which the program did not upload`);
    return { certificate: str(cert, "certificate"), privateKey: str(cert, "privateKey") };
}

export function expectedCodeMatches(expected: string, status: number): boolean {
    return expected.split(/[\s,]+/).filter(Boolean).some((c) => (/^\dxx$/i.test(c) ? Math.floor(status / 100) === Number(c[0]) : Number(c) === status));
}

const str = (r: RecordedResource, k: string): string => {
    const v = r.inputs[k];
    if (typeof v !== "string") throw new Error(`lab edge: ${r.type} ${r.name} has no ${k}`);
    return v;
};
const num = (r: RecordedResource, k: string, fallback: number): number => (typeof r.inputs[k] === "number" ? (r.inputs[k] as number) : fallback);

/** The edge for `hostname`, or undefined when the program made no load balancer for it (budget mode). */
export function edgePlanOf(e: Evaluation, hostname: string): EdgePlan | undefined {
    const lb = e.resources.find((r) => r.type === T.lb && r.inputs.name === hostname);
    if (!lb) return undefined;
    const poolIds = (lb.inputs.defaultPools ?? []) as string[];
    const pools = poolIds.map((id) => {
        const p = e.resources.find((r) => r.type === T.pool && r.id === id);
        if (!p) throw new Error(`lab edge: load balancer ${hostname} names pool ${id}, which the program did not create`);
        return p;
    });
    const monitors = new Set(pools.map((p) => str(p, "monitor")));
    if (monitors.size !== 1) throw new Error(`lab edge: the pools of ${hostname} use ${monitors.size} monitors; the lab's edge plays one`);
    const monitor = e.resources.find((r) => r.type === T.monitor && r.id === [...monitors][0]);
    if (!monitor) throw new Error(`lab edge: no monitor for the pools of ${hostname}`);
    const originOf = (p: RecordedResource): EdgeOrigin => {
        const origins = ((p.inputs.origins ?? []) as { name: string; address: string; enabled?: boolean }[]).filter((o) => o.enabled !== false);
        if (origins.length !== 1) throw new Error(`lab edge: pool ${p.name} has ${origins.length} origins; the program gives each pool one HAProxy node`);
        return { name: origins[0].name, address: origins[0].address };
    };
    const fallback = pools.find((p) => p.id === lb.inputs.fallbackPool);
    const header = (monitor.inputs.header ?? {}) as Record<string, string[]>;
    return {
        hostname,
        origins: pools.map(originOf),
        fallback: fallback ? originOf(fallback).name : originOf(pools[pools.length - 1]).name,
        steering: lb.inputs.steeringPolicy === "random" ? "random" : "off",
        failoverAcrossPools: ((lb.inputs.adaptiveRouting ?? {}) as { failoverAcrossPools?: boolean }).failoverAcrossPools === true,
        monitor: {
            method: typeof monitor.inputs.method === "string" ? monitor.inputs.method : "GET",
            port: num(monitor, "port", 443),
            path: typeof monitor.inputs.path === "string" ? monitor.inputs.path : "/",
            expectedCodes: typeof monitor.inputs.expectedCodes === "string" ? monitor.inputs.expectedCodes : "200",
            intervalSeconds: num(monitor, "interval", 60),
            retries: num(monitor, "retries", 2),
            timeoutSeconds: num(monitor, "timeout", 5),
            host: header.Host?.[0] ?? hostname,
            allowInsecure: monitor.inputs.allowInsecure === true,
        },
    };
}
