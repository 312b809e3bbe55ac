// A node's cloud-config in the lab: Debian 13's cloud-init (25.1, from the rootfs) applies it
// when the node boots its own systemd (nspawn.ts), from a NoCloud seed in
// /var/lib/cloud/seed/nocloud, through its own units and stages.
//
// The lab narrows Debian's module lists only where a module would act on the host
// (/etc/cloud/cloud.cfg.d/90-vps-ha-lab.cfg): growpart, resizefs, disk_setup, mounts (the host's
// disks and mounts) and apt_configure (the node is offline: its sources stay empty, so
// package_update and packages run apt for real with nothing to fetch; the shared rootfs holds
// every package the nodes name). A user-data key of one of those modules is reported; anything
// else is cloud-init's to apply or to refuse (`cloud-init schema` fails the node on an unknown
// key). Network configuration is disabled: the lab sets up eth0 itself.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { Log, elapsed } from "./exec";
import { execInNode } from "./node";
import { startContainer, waitBooted } from "./nspawn";
import { NodeState } from "./state";

const LAB_CLOUD_CFG = `# vps-ha lab: Debian's module lists without what acts on the host's disks, mounts or apt sources
datasource_list: [ NoCloud ]
network: {config: disabled}
cloud_init_modules: [seed_random, bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts, ca_certs, rsyslog, users_groups, ssh]
cloud_config_modules: [snap, ssh_import_id, keyboard, locale, set_passwords, grub_dpkg, apt_pipelining, ntp, timezone, disable_ec2_metadata, runcmd, byobu]
cloud_final_modules: [package_update_upgrade_install, fan, landscape, lxd, write_files_deferred, puppet, chef, mcollective, salt_minion, reset_rmc, scripts_vendor, scripts_per_once, scripts_per_boot, scripts_per_instance, scripts_user, ssh_authkey_fingerprints, keys_to_console, install_hotplug, phone_home, final_message, power_state_change]
`;

/** Keys of the modules the lab leaves out, and why. */
const SKIPPED_KEYS: Record<string, string> = {
    growpart: "acts on the host's disks",
    resize_rootfs: "acts on the host's disks",
    disk_setup: "acts on the host's disks",
    fs_setup: "acts on the host's disks",
    mounts: "acts on the host's mounts",
    mount_default_fields: "acts on the host's mounts",
    swap: "acts on the host's memory",
    apt: "apt sources are not used offline",
};

export interface CloudConfigSummary {
    packages: string[];
    skipped: string[];
}

/** The packages user-data names, and its keys the lab does not apply; throws on what is not a cloud-config. */
export function readCloudConfig(node: string, userData: string): CloudConfigSummary {
    if (!userData.startsWith("#cloud-config")) {
        throw new Error(`lab: node ${node}: user-data must start with "#cloud-config" (the lab applies cloud-config only)`);
    }
    const doc: unknown = parse(userData);
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
        throw new Error(`lab: node ${node}: user-data is not a YAML mapping`);
    }
    const cfg = doc as Record<string, unknown>;
    const skipped = Object.keys(cfg).filter((key) => key in SKIPPED_KEYS).map((key) => `${key} (${SKIPPED_KEYS[key]})`);
    return { packages: packageNames(node, cfg.packages), skipped };
}

/** cloud-init allows "name", "name=version" and [name, version]. */
function packageNames(node: string, v: unknown): string[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new Error(`lab: node ${node}: packages must be a list`);
    return v.map((p: unknown) => {
        if (typeof p === "string") return p.split("=")[0];
        if (Array.isArray(p) && typeof p[0] === "string") return p[0];
        throw new Error(`lab: node ${node}: cannot read package entry ${JSON.stringify(p)}`);
    });
}

/** Union of the packages all user-data documents ask for (the rootfs must hold them all). */
export function packagesOf(nodes: { name: string; userData: string }[]): string[] {
    return [...new Set(nodes.flatMap((n) => readCloudConfig(n.name, n.userData).packages))].sort();
}

/** Seed the node's NoCloud datasource and the lab's module lists. */
function seed(n: NodeState, userData: string): void {
    const m = n.paths.merged;
    const seedDir = join(m, "var/lib/cloud/seed/nocloud");
    mkdirSync(seedDir, { recursive: true });
    writeFileSync(join(seedDir, "meta-data"), `instance-id: vh-${n.name}\nlocal-hostname: ${n.name}\n`);
    writeFileSync(join(seedDir, "user-data"), userData, { mode: 0o600 });
    writeFileSync(join(m, "etc/cloud/cloud.cfg.d/90-vps-ha-lab.cfg"), LAB_CLOUD_CFG);
}

/**
 * The node boots from its seed, and cloud-init runs every stage through its own units. A module
 * that failed (a runcmd command, a package apt could not install) fails the node; recoverable
 * problems (deprecated keys) are logged.
 */
async function bootWithCloudInit(n: NodeState, userData: string, log: Log, afterModules?: () => void): Promise<void> {
    const started = Date.now();
    seed(n, userData);
    startContainer(n);
    await waitBooted(n.name);
    const r = await execInNode(n.name, ["cloud-init", "status", "--long"], { timeoutMs: 60_000, allowFail: true });
    if (r.code === 1 || !/^status: done$/m.test(r.stdout)) {
        const out = await execInNode(n.name, ["tail", "-n", "40", "/var/log/cloud-init-output.log"], { timeoutMs: 10_000, allowFail: true });
        throw new Error(`[node ${n.name}] cloud-init failed (exit ${r.code}):\n${r.stdout.trim()}\n--- cloud-init-output.log ---\n${out.stdout.trimEnd()}\n${cloudInitProblems(n)}`);
    }
    if (r.code === 2) log(`[${n.name}] cloud-init: recoverable problems:\n${r.stdout.trim()}`);
    afterModules?.();
    log(`[${n.name}] booted, cloud-config applied in ${elapsed(started)}`);
}

/**
 * `cloud-init schema` on every node's user-data in one Python process (inside `host`, any node:
 * they share the rootfs), through the same function the CLI calls. One process instead of one
 * per node: importing cloud-init's schema costs about a second of CPU each time.
 */
export async function checkSchemas(host: NodeState, docs: { name: string; userData: string }[]): Promise<void> {
    // Not under /run or /tmp: a booting container mounts its own there.
    const dir = "var/lib/vps-ha-lab-schema";
    mkdirSync(join(host.paths.merged, dir), { recursive: true, mode: 0o700 });
    for (const d of docs) writeFileSync(join(host.paths.merged, dir, `${d.name}.yaml`), d.userData, { mode: 0o600 });
    const r = await execInNode(host.name, ["python3", "-c", SCHEMA_CHECK, ...docs.map((d) => `/${dir}/${d.name}.yaml`)], { timeoutMs: 120_000, allowFail: true });
    rmSync(join(host.paths.merged, dir), { recursive: true, force: true });
    if (r.code !== 0) throw new Error(`lab: cloud-config schema errors (cloud-init schema):\n${r.stderr.trim()}`);
}

const SCHEMA_CHECK = `
import sys
from cloudinit.config.schema import SchemaValidationError, get_schema, validate_cloudconfig_file
schema = get_schema()
failed = False
for path in sys.argv[1:]:
    try:
        validate_cloudconfig_file(path, schema)
    except (SchemaValidationError, RuntimeError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
`;

/**
 * Apply the cloud-config: the node boots from its seed and cloud-init applies it. The schema is
 * checked beforehand for all nodes at once (checkSchemas).
 */
export async function applyCloudConfig(n: NodeState, userData: string, log: Log, afterModules?: () => void): Promise<void> {
    for (const s of readCloudConfig(n.name, userData).skipped) log(`[${n.name}] cloud-config: not applied in the lab: ${s}`);
    return bootWithCloudInit(n, userData, log, afterModules);
}

/** WARNING/ERROR lines from the node's cloud-init log, for error messages. */
function cloudInitProblems(n: NodeState): string {
    const file = join(n.paths.merged, "var/log/cloud-init.log");
    if (!existsSync(file)) return "";
    return readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => /\[(WARNING|ERROR|CRITICAL)\]/.test(l))
        .slice(-20)
        .join("\n");
}
