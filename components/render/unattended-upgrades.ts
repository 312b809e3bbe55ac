// Debian 13's unattended-upgrades on every node: apt's daily timers fetch the package lists and
// install what Debian's security archive publishes, except the daemons whose restart the rollout
// orders (a database member, an etcd voter, the HAProxy pair): those are upgraded one node at a
// time (README: Security updates), never by every node's timer at once. Two apt.conf files:
// 20auto-upgrades (the periodic switches) and vps-ha's drop-in, read after Debian's
// 50unattended-upgrades and replacing its lists.
import { CloudConfigPart } from "./cloud-config";

export const AUTO_UPGRADES_CONF = "/etc/apt/apt.conf.d/20auto-upgrades";
export const UNATTENDED_UPGRADES_CONF = "/etc/apt/apt.conf.d/52vps-ha-unattended-upgrades";
/** Its dependency python3-apt is what the upgrades' signals (vpsha.upgrades) read apt with. */
export const UNATTENDED_UPGRADES_PACKAGES = ["unattended-upgrades"] as const;
/** apt.systemd.daily's install stage (runs unattended-upgrade) and its download stage. */
export const APT_UPGRADE_UNIT = "apt-daily-upgrade.service";

/** Debian's security archive, as Debian 13's 50unattended-upgrades names it. */
export const SECURITY_ORIGIN = "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";

/**
 * Packages (Python regular expressions, anchored at the name's start, as unattended-upgrades reads
 * them) whose upgrade restarts a daemon the rollout must restart one node at a time: a database
 * member (PostgreSQL, Patroni), an etcd voter, a pooler or HAProxy (both HAProxy nodes at once).
 */
export const HELD_PACKAGES = ["haproxy$", "pgbouncer$", "patroni$", "etcd-server$", "postgresql-[0-9]+$"] as const;

export interface UnattendedUpgradesSpec {
    /** unattended-upgrades' Origins-Pattern: the archives it installs from. */
    origins: readonly string[];
    /** Package-Blacklist: never upgraded unattended (regular expressions on the package name). */
    held: readonly string[];
}

/** What every node runs: Debian's security archive only, the rollout's daemons held. */
export const NODE_UNATTENDED_UPGRADES: UnattendedUpgradesSpec = { origins: [SECURITY_ORIGIN], held: HELD_PACKAGES };

type AptValue = string | readonly string[];

/**
 * apt.conf syntax: `Key "value";`, a list as `#clear Key;` then `Key { "a"; "b"; };` (a list
 * replaces, not appends); `header` and `notes` (by key, above it) as // comments.
 */
export function renderAptConf(header: readonly string[], entries: Record<string, AptValue>, notes: Record<string, string> = {}): string {
    const quote = (v: string) => {
        if (/["\n\\]/.test(v)) throw new Error(`apt.conf: value ${JSON.stringify(v)} must not hold a quote, a backslash or a newline`);
        return `"${v}"`;
    };
    const lines = header.map((h) => `// ${h}`);
    for (const [key, value] of Object.entries(entries)) {
        if (!/^[A-Za-z][A-Za-z0-9-]*(::[A-Za-z][A-Za-z0-9-]*)*$/.test(key)) throw new Error(`apt.conf: key "${key}" must be names joined by ::`);
        if (notes[key]) lines.push(`// ${notes[key]}`);
        if (typeof value === "string") lines.push(`${key} ${quote(value)};`);
        else lines.push(`#clear ${key};`, `${key} {`, ...value.map((v) => `    ${quote(v)};`), "};");
    }
    return lines.join("\n") + "\n";
}

function check(spec: UnattendedUpgradesSpec): void {
    if (spec.origins.length === 0) throw new Error("unattended-upgrades: origins must name at least one archive");
    for (const o of spec.origins) {
        if (!/^([a-z]+=[^,"]+)(,[a-z]+=[^,"]+)*$/.test(o)) throw new Error(`unattended-upgrades: origin pattern "${o}" must be key=value pairs joined by commas`);
    }
    for (const p of spec.held) {
        if (!/^[a-z0-9][a-z0-9+.\-\[\]*?$]*$/.test(p)) throw new Error(`unattended-upgrades: held package "${p}" must be a package name or a pattern of one`);
    }
}

/** The periodic switches apt.systemd.daily reads: lists updated and upgrades run daily. */
export function renderAutoUpgrades(): string {
    return renderAptConf(["vps-ha: apt's daily timers update the package lists and run unattended-upgrade. Rendered by the program."], {
        "APT::Periodic::Update-Package-Lists": "1",
        "APT::Periodic::Unattended-Upgrade": "1",
    });
}

export function renderUnattendedUpgrades(spec: UnattendedUpgradesSpec): string {
    check(spec);
    return renderAptConf(
        [
            "vps-ha: what unattended-upgrades installs. Rendered by the program; read after Debian's",
            "50unattended-upgrades, whose lists the #clear lines replace.",
        ],
        {
            "Unattended-Upgrade::Origins-Pattern": spec.origins,
            "Unattended-Upgrade::Package-Blacklist": spec.held,
            "Unattended-Upgrade::Automatic-Reboot": "false",
            "Unattended-Upgrade::Remove-Unused-Dependencies": "false",
            "Unattended-Upgrade::Remove-New-Unused-Dependencies": "false",
        },
        {
            "Unattended-Upgrade::Package-Blacklist": "Restarted one node at a time, never all at once by the nodes' daily timers (README: Security updates).",
            "Unattended-Upgrade::Automatic-Reboot": "A database member's reboot is ordered like any other restart: never one on its own.",
            "Unattended-Upgrade::Remove-Unused-Dependencies": "No removals behind the program's back: it names every package a node holds.",
        },
    );
}

/** The node's share: the package and its two files (after the package, whose postinst writes 20auto-upgrades). */
export function unattendedUpgradesPart(spec: UnattendedUpgradesSpec = NODE_UNATTENDED_UPGRADES): CloudConfigPart {
    return {
        packages: [...UNATTENDED_UPGRADES_PACKAGES],
        files: [
            { path: AUTO_UPGRADES_CONF, content: renderAutoUpgrades(), defer: true },
            { path: UNATTENDED_UPGRADES_CONF, content: renderUnattendedUpgrades(spec), defer: true },
        ],
    };
}
