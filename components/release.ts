// A release: which image serves visitors (active) and which one is being tried beside it
// (candidate). Both run on every app node at once with host networking, so each image needs a
// port of its own, and that port must not move while the image is live: a swap (candidate
// becomes active) then only changes which HAProxy backend points at which port, and nothing on
// the app nodes restarts. A port derived from the image name alone is stable across every step
// (add a candidate, swap, swap back, remove it) without any state.

/** Images get ports in app.port .. app.port + RELEASE_PORT_SPAN - 1. */
export const RELEASE_PORT_SPAN = 1000;

export interface Release {
    active: string;
    candidate?: string;
}

export interface ReleasePorts {
    active: { image: string; port: number };
    candidate?: { image: string; port: number };
}

/** FNV-1a, 32 bits: tiny, well spread over short strings, the same in any language. */
export function fnv1a32(text: string): number {
    let h = 0x811c9dc5;
    for (const byte of Buffer.from(text, "utf8")) {
        h ^= byte;
        h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h >>> 0;
}

/** The port an image listens on, on every app node. */
export function imagePort(basePort: number, image: string): number {
    return basePort + (fnv1a32(image) % RELEASE_PORT_SPAN);
}

export function releasePorts(basePort: number, r: Release): ReleasePorts {
    return {
        active: { image: r.active, port: imagePort(basePort, r.active) },
        ...(r.candidate ? { candidate: { image: r.candidate, port: imagePort(basePort, r.candidate) } } : {}),
    };
}
