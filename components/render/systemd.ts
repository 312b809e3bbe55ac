// systemd units as text. Nodes run Debian 13 with systemd; the lab runs the same unit files
// through its own supervisor, so only directives both understand are used.
export interface UnitFile {
    path: string;
    content: string;
}

type Section = Record<string, string | string[] | undefined>;

export function renderUnit(sections: Record<string, Section>): string {
    const out: string[] = [];
    for (const [name, body] of Object.entries(sections)) {
        out.push(`[${name}]`);
        for (const [key, value] of Object.entries(body)) {
            if (value === undefined) continue;
            for (const v of Array.isArray(value) ? value : [value]) out.push(`${key}=${v}`);
        }
        out.push("");
    }
    return out.join("\n");
}
