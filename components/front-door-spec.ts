// What the Cloudflare front door asks of Cloudflare, decided in pure code from the config: the
// health check both modes run against the HAProxy nodes, the zone's TLS settings, the names the
// origin certificate covers and where the checks run from. The front door's resources carry
// these values unchanged, so tests (and the lab) can read them back from the resource inputs.
import { frontDoorHostnames, StackConfig } from "./config";
import { HAPROXY_PORTS, PlannedNode } from "./plan";
import { catalogs } from "./providers/catalogs";

export interface HealthCheckSpec {
    type: "https";
    method: "GET";
    port: number;
    path: string;
    expectedCodes: string;
    interval: number;
    retries: number;
    timeout: number;
    /** The Host header the check sends: the app's hostname, which the origin certificate names. */
    host: string;
}

export function healthCheckSpec(config: Pick<StackConfig, "cloudflare" | "domain" | "stack">): HealthCheckSpec {
    const m = config.cloudflare.monitor;
    return {
        type: "https",
        method: "GET",
        port: HAPROXY_PORTS.https,
        path: m.path,
        expectedCodes: "200",
        interval: m.interval,
        retries: m.retries,
        timeout: m.timeout,
        host: frontDoorHostnames(config).app,
    };
}

export interface ZoneSettingSpec {
    settingId: string;
    value: unknown;
}

/**
 * TLS for the whole zone, only with cloudflare.zoneSettings: true (they reach every hostname of
 * the zone, so one stack per zone at most): Full (strict) makes Cloudflare verify the origin's
 * certificate (the Origin CA one), plain HTTP is redirected, TLS below 1.2 refused, and HSTS sent
 * with the configured max-age. The setting values are passed to Cloudflare's API as they are
 * (they are free-form in the provider), so they use the API's own field names.
 */
export function zoneSettings(config: Pick<StackConfig, "cloudflare">): ZoneSettingSpec[] {
    if (!config.cloudflare.zoneSettings) return [];
    return [
        { settingId: "ssl", value: "strict" },
        { settingId: "always_use_https", value: "on" },
        { settingId: "min_tls_version", value: "1.2" },
        {
            settingId: "security_header",
            value: {
                strict_transport_security: { enabled: true, max_age: config.cloudflare.hstsMaxAgeSeconds, include_subdomains: true, nosniff: true, preload: false },
            },
        },
    ];
}

/** Per-hostname TLS settings (Cloudflare's hostname TLS settings), which touch no other name of the zone. */
export function hostnameTlsSettings(config: Pick<StackConfig, "cloudflare" | "domain" | "stack">): { hostname: string; settingId: string; value: unknown }[] {
    const { app, candidate } = frontDoorHostnames(config);
    return [app, candidate].map((hostname) => ({ hostname, settingId: "min_tls_version", value: "1.2" }));
}

/**
 * The names on the origin certificate: the zone and every name one level under it (validation
 * keeps the hostnames there). A wildcard rather than the two hostnames, so renaming one does not
 * change the certificate, which would replace both HAProxy servers. Fixed by the domain alone, so
 * the certificate ignores the order the API reads them back in (see OriginCertificate).
 */
export function originHostnames(config: Pick<StackConfig, "domain">): string[] {
    return [config.domain, `*.${config.domain}`];
}

/**
 * The Cloudflare health-check region nearest a place (Cloudflare runs each region's checks from
 * three data centres). One region near each origin keeps the checks' load on the origin small.
 */
export function checkRegionNear(lat: number, lon: number): string {
    if (lon < -30) {
        if (lat >= 12) return lon < -100 ? "WNAM" : "ENAM";
        return lat >= -15 ? "NSAM" : "SSAM";
    }
    if (lon < 60) {
        if (lat >= 36) return lon < 20 ? "WEU" : "EEU";
        if (lon >= 35 && lat >= 12) return "ME";
        return lat >= 0 ? "NAF" : "SAF";
    }
    if (lon < 90 && lat < 36) return "IN";
    if (lat < -10) return "OC";
    return lat < 24 ? "SEAS" : "NEAS";
}

/** Where to check a node from: the region near its data centre; Cloudflare's default for a host you bring. */
export function checkRegionsFor(node: Pick<PlannedNode, "provider" | "region">): string[] | undefined {
    const place = catalogs[node.provider]?.regions[node.region];
    return place ? [checkRegionNear(place.lat, place.lon)] : undefined;
}
