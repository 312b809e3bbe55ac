// Expected round-trip times between failure domains, from the catalogs' coordinates. The etcd
// renderer sizes its heartbeat and election timeout from these, so a stack spread over a
// continent gets timeouts that fit it without anyone measuring first.
import { catalogs } from "./providers/catalogs";
import { RegionInfo } from "./providers/types";

/** Where a node runs, as the plan says it. */
export interface Placement {
    provider: string;
    region: string;
}

const EARTH_RADIUS_KM = 6371;
/**
 * Light in fibre covers about 200 km per ms one way, so 100 km of distance per ms of round
 * trip; real routes are longer than great circles, which the fixed 1 ms (switching, last mile
 * and detours inside a metro) only partly covers. Good enough to size timeouts, not to promise
 * latency.
 */
const KM_PER_RTT_MS = 100;
const BASE_RTT_MS = 1;
/**
 * A host you bring (provider ssh) has no coordinates: assume an intercontinental link, so the
 * timeouts err on the side of no spurious elections.
 */
export const UNKNOWN_RTT_MS = 150;

export function regionInfo(p: Placement): RegionInfo | undefined {
    return catalogs[p.provider]?.regions[p.region];
}

/** Great-circle distance in km (haversine). */
export function distanceKm(a: Pick<RegionInfo, "lat" | "lon">, b: Pick<RegionInfo, "lat" | "lon">): number {
    const rad = (d: number) => (d * Math.PI) / 180;
    const dLat = rad(b.lat - a.lat);
    const dLon = rad(b.lon - a.lon);
    const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
    return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/**
 * Estimated round-trip time in ms between two placements:
 *   rtt = greatCircleKm / 100 + 1
 * (e.g. Falkenstein-Frankfurt ≈ 2.9 ms, Frankfurt-Ashburn ≈ 66 ms). Same region: 1 ms.
 * A placement without coordinates (a host you bring) counts as UNKNOWN_RTT_MS away.
 */
export function rttMs(a: Placement, b: Placement): number {
    if (a.provider === b.provider && a.region === b.region) return BASE_RTT_MS;
    const ra = regionInfo(a);
    const rb = regionInfo(b);
    if (!ra || !rb) return UNKNOWN_RTT_MS;
    return distanceKm(ra, rb) / KM_PER_RTT_MS + BASE_RTT_MS;
}

/** The largest estimated RTT between any two of `placements` (1 ms for fewer than two). */
export function maxRttMs(placements: Placement[]): number {
    let max = BASE_RTT_MS;
    for (let i = 0; i < placements.length; i++) {
        for (let j = i + 1; j < placements.length; j++) max = Math.max(max, rttMs(placements[i], placements[j]));
    }
    return max;
}
