// What the host must offer before the lab touches anything.
import { existsSync } from "node:fs";
import { run, Log } from "./exec";

/** Host commands the lab calls, and the Debian package that provides each. */
const HOST_TOOLS: [string, string][] = [
    ["debootstrap", "debootstrap"],
    ["ip", "iproute2"],
    ["bridge", "iproute2"],
    ["nsenter", "util-linux"],
    ["unshare", "util-linux"],
    ["mount", "mount"],
    ["mknod", "coreutils"],
    ["wg", "wireguard-tools"], // the lab test generates WireGuard keys on the host
    ["openssl", "openssl"], // the lab CA behind the S3 endpoint that plays R2
    ["systemd-nspawn", "systemd-container"], // each node's own systemd (nspawn.ts)
];

export function hostPackages(): string[] {
    return [...new Set(HOST_TOOLS.map(([, p]) => p))].sort();
}

export function requireRoot(): void {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) {
        throw new Error("lab: must run as root (it creates network namespaces, veths, a bridge and overlay mounts)");
    }
}

function which(cmd: string): boolean {
    return ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((d) => existsSync(`${d}/${cmd}`));
}

export function missingTools(): string[] {
    return HOST_TOOLS.filter(([cmd]) => !which(cmd)).map(([cmd, pkg]) => `${cmd} (package ${pkg})`);
}

/** Install missing host packages with apt-get; the lab needs them and they are small. */
export async function ensureHostTools(log: Log): Promise<void> {
    requireRoot();
    const missing = HOST_TOOLS.filter(([cmd]) => !which(cmd)).map(([, pkg]) => pkg);
    if (missing.length === 0) return;
    const pkgs = [...new Set(missing)];
    log(`installing host packages: ${pkgs.join(" ")}`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    await run(["apt-get", "update"], { timeoutMs: 300_000, env, progress: { label: "apt-get update", log } });
    await run(["apt-get", "install", "-y", "--no-install-recommends", ...pkgs], {
        timeoutMs: 600_000,
        env,
        progress: { label: `apt-get install ${pkgs.join(" ")}`, log },
    });
    const still = missingTools();
    if (still.length) throw new Error(`lab: still missing after install: ${still.join(", ")}`);
}
