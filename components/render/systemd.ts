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

/** A oneshot service and the timer that runs it every `everySeconds`. */
export function periodicJob(name: string, description: string, command: string, everySeconds: number): UnitFile[] {
    return [
        { path: `/etc/systemd/system/${name}.service`, content: renderUnit({ Unit: { Description: description }, Service: { Type: "oneshot", ExecStart: command } }) },
        {
            path: `/etc/systemd/system/${name}.timer`,
            content: renderUnit({ Unit: { Description: `${description} (every ${everySeconds} s)` }, Timer: { OnBootSec: `${everySeconds}s`, OnUnitActiveSec: `${everySeconds}s` }, Install: { WantedBy: "timers.target" } }),
        },
    ];
}
