// A node's whole boot: one #cloud-config document composed from the parts each concern adds
// (mesh, host firewall, database, proxy, app). The yaml library writes it, so quoting and
// multi-line file contents are always valid YAML.
import { stringify } from "yaml";

export interface FilePart {
    path: string;
    content: string;
    /** Octal mode as cloud-init writes it, e.g. "0600". */
    permissions?: string;
    owner?: string;
    /** Write after packages are installed (for owners such as postgres that packages create). */
    defer?: boolean;
}

/** A unit to restart (or reload) on a live node when files of its part change. */
export interface PartRestart {
    unit: string;
    /** The part's files that matter to it; every file of the part when absent. */
    paths?: string[];
    /** Reload instead of restart. */
    reload?: boolean;
}

/**
 * What one concern adds to a node. Commands run in order, once, after every file is written
 * (a node's first boot or first desired state); `restarts` say what a later change of its
 * files restarts, in order.
 */
export interface CloudConfigPart {
    packages?: string[];
    files?: FilePart[];
    commands?: string[][];
    restarts?: PartRestart[];
}

export interface NodeBoot {
    hostname: string;
    fqdn: string;
    sshAuthorizedKeys: string[];
    /** false: sshd is stopped and disabled on boot (nobody logs in; the stack runs itself). */
    sshEnabled: boolean;
    parts: CloudConfigPart[];
}

export const CLOUD_CONFIG_HEADER = "#cloud-config\n";

function sameFile(a: FilePart, b: FilePart): boolean {
    return a.content === b.content && (a.permissions ?? "0644") === (b.permissions ?? "0644") && (a.owner ?? "root:root") === (b.owner ?? "root:root") && !a.defer === !b.defer;
}

export function renderCloudConfig(boot: NodeBoot): string {
    const packages = [...new Set(boot.parts.flatMap((p) => p.packages ?? []))].sort();
    // A file two parts both need (a module the node agent's tools share) is written once, as
    // long as they agree on it.
    const files: FilePart[] = [];
    const seen = new Map<string, FilePart>();
    for (const f of boot.parts.flatMap((p) => p.files ?? [])) {
        const before = seen.get(f.path);
        if (before === undefined) {
            seen.set(f.path, f);
            files.push(f);
        } else if (!sameFile(before, f)) {
            throw new Error(`two parts of ${boot.hostname}'s cloud-config write ${f.path}, differently`);
        }
    }
    const runcmd = boot.parts.flatMap((p) => p.commands ?? []);
    if (!boot.sshEnabled) runcmd.push(["systemctl", "disable", "--now", "ssh.service"]);
    const doc = {
        hostname: boot.hostname,
        fqdn: boot.fqdn,
        prefer_fqdn_over_hostname: false,
        ssh_pwauth: false,
        ...(boot.sshAuthorizedKeys.length > 0 ? { ssh_authorized_keys: boot.sshAuthorizedKeys } : {}),
        package_update: true,
        packages,
        write_files: files.map((f) => ({ path: f.path, content: f.content, permissions: f.permissions ?? "0644", owner: f.owner ?? "root:root", ...(f.defer ? { defer: true } : {}) })),
        runcmd,
    };
    return CLOUD_CONFIG_HEADER + stringify(doc, { lineWidth: 0 });
}
