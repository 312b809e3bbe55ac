// How long an alert may take to fire, read from the rules file the monitoring nodes were given:
// the rule's `for:` plus the longest range its expression looks back over (a rule such as "no WAL
// archived in the last 5 minutes" fires 5 minutes after the last success, with no `for:`).
import { parse } from "yaml";

export interface RuleBound {
    alert: string;
    /** The `cause` label telling apart two rules of one alert (absent on an alert's main rule). */
    cause?: string;
    forSeconds: number;
    /** The longest range selector or subquery window in the expression (0: none). */
    windowSeconds: number;
    /** forSeconds + windowSeconds. */
    boundSeconds: number;
}

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

/** A Prometheus duration ("5m", "1h30m", "90s") in seconds. */
export function durationSeconds(text: string): number {
    const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)];
    if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) throw new Error(`"${text}" is not a Prometheus duration (such as 30s, 5m, 1h30m)`);
    return parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_SECONDS[p[2]], 0);
}

/** Every alerting rule of a Prometheus rules file with its bound. */
export function ruleBounds(rulesYaml: string): RuleBound[] {
    const doc = parse(rulesYaml) as { groups?: { rules?: { alert?: string; expr?: string; for?: string; labels?: Record<string, string> }[] }[] } | null;
    const out: RuleBound[] = [];
    for (const g of doc?.groups ?? []) {
        for (const r of g.rules ?? []) {
            if (!r.alert || typeof r.expr !== "string") continue;
            const forSeconds = r.for ? durationSeconds(r.for) : 0;
            // [5m] or a subquery's [1h:1m]: the window is the part before the colon.
            const windows = [...r.expr.matchAll(/\[([0-9a-z]+)(?::[0-9a-z]*)?\]/g)].map((m) => durationSeconds(m[1]));
            const windowSeconds = Math.max(0, ...windows);
            out.push({ alert: r.alert, ...(r.labels?.cause ? { cause: r.labels.cause } : {}), forSeconds, windowSeconds, boundSeconds: forSeconds + windowSeconds });
        }
    }
    return out;
}

/** The bound of an alert's main rule (the one without a `cause`); an error naming the alert if the file has none. */
export function alertBound(bounds: RuleBound[], alert: string): number {
    const b = bounds.find((x) => x.alert === alert && x.cause === undefined);
    if (!b) throw new Error(`the rendered rules have no alert ${alert}; they have ${[...new Set(bounds.map((x) => x.alert))].join(", ")}`);
    return b.boundSeconds;
}
