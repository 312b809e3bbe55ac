// Which of the shared rootfs's packages a node has. The rootfs holds the union of every node's
// packages, and each package's own units are enabled in it; on a real server a package the
// node's cloud-config does not install is not there, so neither do its units start. A node that
// boots its own systemd gets the enablement of every other package's units removed.
import { existsSync, readdirSync, readFileSync, rmSync, lstatSync } from "node:fs";
import { basename, join } from "node:path";

export interface DpkgPackage {
    name: string;
    priority?: string;
    /** Each entry a list of alternatives ("a | b"), names only. */
    depends: string[][];
    provides: string[];
}

const name = (dep: string) => dep.trim().split(/[\s(]/)[0].replace(/:.*$/, "");

/** Installed packages from a dpkg status file. */
export function parseDpkgStatus(text: string): Map<string, DpkgPackage> {
    const out = new Map<string, DpkgPackage>();
    for (const stanza of text.split(/\n\s*\n/)) {
        const fields: Record<string, string> = {};
        let last = "";
        for (const line of stanza.split("\n")) {
            if (/^\s/.test(line) && last) fields[last] += ` ${line.trim()}`;
            else if (line.includes(":")) {
                last = line.slice(0, line.indexOf(":"));
                fields[last] = line.slice(line.indexOf(":") + 1).trim();
            }
        }
        if (!fields.Package || !/\binstalled$/.test(fields.Status ?? "")) continue;
        const list = (f?: string) => (f ? f.split(",").map((d) => d.split("|").map(name).filter(Boolean)).filter((a) => a.length) : []);
        out.set(fields.Package, {
            name: fields.Package,
            priority: fields.Priority,
            depends: [...list(fields["Pre-Depends"]), ...list(fields.Depends)],
            provides: list(fields.Provides).flat(),
        });
    }
    return out;
}

/** `roots` and everything they depend on, among the installed packages (the first installed alternative). */
export function dependencyClosure(installed: Map<string, DpkgPackage>, roots: string[]): Set<string> {
    const providers = new Map<string, string[]>();
    for (const p of installed.values()) for (const v of p.provides) providers.set(v, [...(providers.get(v) ?? []), p.name]);
    const resolve = (n: string): string[] => (installed.has(n) ? [n] : providers.get(n) ?? []);
    const seen = new Set<string>();
    const queue = roots.flatMap(resolve);
    while (queue.length) {
        const p = queue.pop() as string;
        if (seen.has(p)) continue;
        seen.add(p);
        for (const alternatives of installed.get(p)?.depends ?? []) {
            const pick = alternatives.map(resolve).find((r) => r.length);
            if (pick) queue.push(...pick);
        }
    }
    return seen;
}

/**
 * Installed packages the node would not have: not required by Debian itself, not the lab's own
 * (`labPackages`), and not pulled in by the node's cloud-config `packages`.
 */
export function foreignPackages(installed: Map<string, DpkgPackage>, labPackages: string[], nodePackages: string[]): string[] {
    const base = [...installed.values()].filter((p) => p.priority === "required").map((p) => p.name);
    const own = dependencyClosure(installed, [...base, "apt", ...labPackages, ...nodePackages]);
    return [...installed.keys()].filter((p) => !own.has(p)).sort();
}

const UNIT = /^\/(usr\/)?lib\/systemd\/system\/([^/]+\.(service|socket|timer|path))$/;

/** Remove, in the node's /etc/systemd/system, what enables the units of `packages`; returns the units. */
export function disablePackageUnits(root: string, packages: string[]): string[] {
    const units = new Set<string>();
    const info = join(root, "var/lib/dpkg/info");
    for (const p of packages) {
        const list = [join(info, `${p}.list`), ...readdirSync(info).filter((f) => f.startsWith(`${p}:`) && f.endsWith(".list")).map((f) => join(info, f))].find(existsSync);
        if (!list) continue;
        for (const line of readFileSync(list, "utf8").split("\n")) {
            const m = UNIT.exec(line);
            if (m) units.add(m[2]);
        }
    }
    const etc = join(root, "etc/systemd/system");
    for (const dir of existsSync(etc) ? readdirSync(etc) : []) {
        if (!/\.(wants|requires)$/.test(dir)) continue;
        for (const f of readdirSync(join(etc, dir))) {
            if (units.has(basename(f)) && lstatSync(join(etc, dir, f)).isSymbolicLink()) rmSync(join(etc, dir, f));
        }
    }
    return [...units].sort();
}
