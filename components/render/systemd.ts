// systemd units as text. Nodes run Debian 13 with systemd; the lab runs the same unit files
// through its own supervisor, so only directives both understand are used.
export interface UnitFile {
    path: string;
    content: string;
}

type Section = Record<string, string | string[] | undefined>;

/**
 * `systemctl enable` for units a part has just reloaded the manager for (its own daemon-reload
 * before it): enable would reload it again by itself, a second or so of a booting node's systemd
 * each time, and a node's first setup enables a dozen units and more.
 */
export function enableReloaded(units: string[], now = true): string[] {
    return ["systemctl", "enable", ...(now ? ["--now"] : []), "--no-reload", ...units];
}

/** systemctl leaves init scripts alone: a native unit of the same name already hides one from systemd. */
export const SKIP_SYSV_ENV = "SYSTEMCTL_SKIP_SYSV=1";

/**
 * `systemctl disable --now` with no reload of its own, for the same reason: removing a unit's
 * links needs none. Nor SysV's: for a package that also ships an init script (etcd, postgresql,
 * pgbackrest, ssh, ...) systemctl would run update-rc.d, which reloads systemd twice more.
 */
export function disableReloaded(units: string[]): string[] {
    return ["env", SKIP_SYSV_ENV, "systemctl", "disable", "--now", "--no-reload", ...units];
}

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

/**
 * One word of an Exec*= command line, written so that systemd's parser (systemd.service(5),
 * "Command lines") yields exactly this word: bare when it holds only characters systemd takes
 * literally, else in double quotes with `\\` and `"` escaped (inside quotes systemd removes the
 * quotes, undoes C escapes and keeps spaces and `;`). `%` (specifiers), `$` (variables) and
 * control characters are refused: config validation keeps them out of every command.
 */
export function execWord(word: string): string {
    if (/[\u0000-\u001f\u007f%$]/.test(word)) throw new Error(`${JSON.stringify(word)}: a unit's command word cannot hold '%', '$' or a control character`);
    return /^[A-Za-z0-9_@+=:,./-]+$/.test(word) ? word : `"${word.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
