// Applying a node's cloud-config in the lab.
//
// Real cloud-init (Debian 13's 25.1, from the rootfs) runs inside the node (its namespaces +
// chroot) on the node's user-data, from a NoCloud seed in /var/lib/cloud/seed/nocloud, the way
// Debian 13 boots it: one process (`cloud-init --all-stages`, cloud-init-main.service) runs the
// four stages (local, network, config, final), each when its systemd unit sends "start" over a
// Unix socket. The lab plays systemd: it runs each stage unit's own ExecStart, in order.
// The lab only narrows the module lists (/etc/cloud/cloud.cfg.d/90-vps-ha-lab.cfg):
//
//   real cloud-init:  bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts,
//                     ca_certs, users_groups, ssh (host keys, authorized keys), set_passwords,
//                     timezone, runcmd (writes the script), write_files_deferred, final_message.
//   emulated:         runcmd execution (cloud-init's scripts_user): each command runs in order,
//                     a string via `sh -c`, a list as argv, stopping at the first failure with
//                     the command and its output; real scripts_user only logs a failure.
//                     packages / package_update / package_upgrade: nothing is installed per
//                     node (no network; the shared rootfs holds the union of all nodes'
//                     packages); each named package is checked with dpkg-query instead.
//   not run, named:   growpart, resizefs, disk_setup, mounts (they act on the host's disks and
//                     mounts), ntp (the clock is the host's), power_state_change (would reboot),
//                     apt_configure (sources unused offline), locale, keyboard, seed_random,
//                     rsyslog, phone_home. A user-data key belonging to one of these is reported.
//   anything else:    a key the lab does not know fails the node, as does a schema error
//                     (`cloud-init schema`), so user-data the lab cannot vouch for never passes.
//
// Network configuration is disabled: the lab sets up eth0 itself.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { Log, elapsed, describe } from "./exec";
import { execInNode } from "./node";
import { nspawnEnabled, startContainer, waitBooted } from "./nspawn";
import { NodeState } from "./state";

const LAB_CLOUD_CFG = `# vps-ha lab: modules that are safe and meaningful inside a node namespace + chroot
datasource_list: [ NoCloud ]
network: {config: disabled}
cloud_init_modules: [bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts, ca_certs, users_groups, ssh]
cloud_config_modules: [set_passwords, timezone, runcmd]
cloud_final_modules: [write_files_deferred, final_message]
`;

/**
 * With real systemd (nspawn.ts) cloud-init boots with the node, with Debian's own module lists
 * but for the modules that act on the host's disks and mounts, and apt-configure (the node is
 * offline: its sources stay empty, so package_update and packages run apt with nothing to fetch).
 */
const LAB_CLOUD_CFG_BOOTED = `# vps-ha lab: Debian's module lists without what acts on the host's disks, mounts or apt sources
datasource_list: [ NoCloud ]
network: {config: disabled}
cloud_init_modules: [seed_random, bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts, ca_certs, rsyslog, users_groups, ssh]
cloud_config_modules: [snap, ssh_import_id, keyboard, locale, set_passwords, grub_dpkg, apt_pipelining, ntp, timezone, disable_ec2_metadata, runcmd, byobu]
cloud_final_modules: [package_update_upgrade_install, fan, landscape, lxd, write_files_deferred, puppet, chef, mcollective, salt_minion, reset_rmc, scripts_vendor, scripts_per_once, scripts_per_boot, scripts_per_instance, scripts_user, ssh_authkey_fingerprints, keys_to_console, install_hotplug, phone_home, final_message, power_state_change]
`;

/** Top-level keys handled by the real modules above (or harmless meta keys). */
const REAL_KEYS = new Set([
    "bootcmd", "write_files", "hostname", "fqdn", "prefer_fqdn_over_hostname", "preserve_hostname", "create_hostname_file",
    "manage_etc_hosts", "ca_certs", "ca-certs", "users", "groups", "user", "ssh_authorized_keys", "ssh_keys",
    "ssh_genkeytypes", "ssh_deletekeys", "ssh_quiet_keygen", "ssh_publish_hostkeys", "disable_root", "disable_root_opts",
    "allow_public_ssh_keys", "ssh_pwauth", "chpasswd", "password", "timezone", "runcmd", "final_message",
    "merge_how", "merge_type",
]);
/** Keys whose effect the lab provides another way. */
const EMULATED_KEYS = new Set(["packages", "package_update", "package_upgrade", "package_reboot_if_required"]);
/** Keys the lab deliberately does not apply, and why. */
const SKIPPED_KEYS: Record<string, string> = {
    growpart: "acts on the host's disks",
    resize_rootfs: "acts on the host's disks",
    disk_setup: "acts on the host's disks",
    fs_setup: "acts on the host's disks",
    mounts: "acts on the host's mounts",
    mount_default_fields: "acts on the host's mounts",
    swap: "acts on the host's memory",
    ntp: "the lab shares the host's clock",
    power_state: "would reboot",
    apt: "apt sources are not used offline",
    locale: "locales are not installed in the lab rootfs",
    keyboard: "no console",
    random_seed: "entropy seeding is meaningless in a chroot",
    rsyslog: "no syslog daemon in the lab",
    phone_home: "no network beyond the lab",
};

export interface CloudConfigSummary {
    packages: string[];
    runcmd: (string | string[])[];
    skipped: string[];
}

/** Parse and classify user-data; throws on anything the lab cannot apply faithfully. */
export function readCloudConfig(node: string, userData: string): CloudConfigSummary {
    if (!userData.startsWith("#cloud-config")) {
        throw new Error(`lab: node ${node}: user-data must start with "#cloud-config" (the lab applies cloud-config only)`);
    }
    const doc: unknown = parse(userData);
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
        throw new Error(`lab: node ${node}: user-data is not a YAML mapping`);
    }
    const cfg = doc as Record<string, unknown>;
    const skipped: string[] = [];
    for (const key of Object.keys(cfg)) {
        if (REAL_KEYS.has(key) || EMULATED_KEYS.has(key)) continue;
        if (key in SKIPPED_KEYS) {
            skipped.push(`${key} (${SKIPPED_KEYS[key]})`);
            continue;
        }
        throw new Error(`lab: node ${node}: cloud-config key "${key}" is not applied by the lab; add it to scripts/lab/cloudinit.ts deliberately`);
    }
    return { packages: packageNames(node, cfg.packages), runcmd: runcmdList(node, cfg.runcmd), skipped };
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

function runcmdList(node: string, v: unknown): (string | string[])[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new Error(`lab: node ${node}: runcmd must be a list`);
    return v.map((c: unknown) => {
        if (typeof c === "string") return c;
        if (Array.isArray(c) && c.every((w) => typeof w === "string" || typeof w === "number")) return c.map(String);
        throw new Error(`lab: node ${node}: cannot read runcmd entry ${JSON.stringify(c)}`);
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
    writeFileSync(join(m, "etc/cloud/cloud.cfg.d/90-vps-ha-lab.cfg"), nspawnEnabled() ? LAB_CLOUD_CFG_BOOTED : LAB_CLOUD_CFG);
}

/**
 * Real systemd: the node boots from its seed, and cloud-init runs every stage through its own
 * units. A module that failed (a runcmd command, a package apt could not install) fails the node;
 * recoverable problems (deprecated keys) are logged.
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

/** The units that start cloud-init's stages, in boot order (each sends "start" to its stage's socket). */
const STAGE_UNITS = ["cloud-init-local.service", "cloud-init-network.service", "cloud-config.service", "cloud-final.service"];
const STAGE_SOCKETS = "run/cloud-init/share";
const SOCKETS_TIMEOUT_MS = 30_000;
/** A node alone boots cloud-init in about 4 s; seven at once on two cores in about 15 s. */
const MAIN_TIMEOUT_MS = 120_000;

/** A unit's ExecStart, as Debian's cloud-init package ships it in the node's rootfs. */
function execStartOf(n: NodeState, unit: string): string {
    const file = join(n.paths.merged, "usr/lib/systemd/system", unit);
    const line = readFileSync(file, "utf8").split("\n").find((l) => l.startsWith("ExecStart="));
    if (!line) throw new Error(`[node ${n.name}] ${unit} has no ExecStart (${file})`);
    return line.slice("ExecStart=".length);
}

/** cloud-init's single process binds one socket per stage before it waits for the first "start". */
async function waitForStageSockets(n: NodeState, main: { done: boolean }): Promise<void> {
    const dir = join(n.paths.merged, STAGE_SOCKETS);
    const deadline = Date.now() + SOCKETS_TIMEOUT_MS;
    while (!["local", "network", "config", "final"].every((s) => existsSync(join(dir, `${s}.sock`)))) {
        if (main.done) throw new Error(`[node ${n.name}] cloud-init --all-stages exited before binding its stage sockets`);
        if (Date.now() > deadline) throw new Error(`[node ${n.name}] cloud-init --all-stages bound no stage sockets in ${dir} within ${SOCKETS_TIMEOUT_MS / 1000} s`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

/**
 * Boot cloud-init as Debian 13 does: the single process, and each stage unit's ExecStart in
 * order. As under systemd (the units are ordered, not required), a failed stage does not stop
 * the later ones from being started; the node fails once all have run.
 */
async function runCloudInitStages(n: NodeState): Promise<void> {
    const state = { done: false };
    const main = execInNode(n.name, ["cloud-init", "--all-stages"], { timeoutMs: MAIN_TIMEOUT_MS, allowFail: true }).finally(() => (state.done = true));
    const failures: string[] = [];
    try {
        await waitForStageSockets(n, state);
        for (const unit of STAGE_UNITS) {
            const r = await execInNode(n.name, ["sh", "-c", execStartOf(n, unit)], { timeoutMs: MAIN_TIMEOUT_MS, allowFail: true });
            if (r.code !== 0) failures.push(`${unit} failed (exit ${r.code}): ${`${r.stdout} ${r.stderr}`.trim()}`);
        }
    } catch (e) {
        failures.push((e as Error).message);
    }
    const r = await main;
    if (r.code !== 0) failures.push(`cloud-init --all-stages failed (exit ${r.code}): ${r.stderr.trim()}`);
    if (failures.length) throw new Error(`[node ${n.name}] ${failures.join("\n")}\n${cloudInitProblems(n)}`);
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
 * Apply the cloud-config: the package check, real cloud-init's boot stages, then runcmd. The
 * schema is checked beforehand for all nodes at once (checkSchemas).
 */
export async function applyCloudConfig(n: NodeState, userData: string, log: Log, afterModules?: () => void): Promise<void> {
    const started = Date.now();
    const summary = readCloudConfig(n.name, userData);
    for (const s of summary.skipped) log(`[${n.name}] cloud-config: not applied in the lab: ${s}`);
    if (nspawnEnabled()) return bootWithCloudInit(n, userData, log, afterModules);
    seed(n, userData);
    await assertPackages(n, summary.packages);
    await runCloudInitStages(n);
    const warnings = cloudInitProblems(n);
    if (warnings) log(`[${n.name}] cloud-init warnings:\n${warnings}`);
    afterModules?.();

    for (const [i, cmd] of summary.runcmd.entries()) {
        const argv = typeof cmd === "string" ? ["sh", "-c", cmd] : cmd;
        const label = typeof cmd === "string" ? cmd : describe(cmd);
        const t = Date.now();
        log(`[${n.name}] runcmd ${i + 1}/${summary.runcmd.length}: ${label}`);
        const r = await execInNode(n.name, argv, { timeoutMs: 600_000, allowFail: true });
        if (r.code !== 0) {
            throw new Error(
                `[node ${n.name}] runcmd ${i + 1} failed (exit ${r.code}) after ${elapsed(t)}: ${label}\n--- stdout ---\n${r.stdout.trimEnd()}\n--- stderr ---\n${r.stderr.trimEnd()}`,
            );
        }
    }
    log(`[${n.name}] cloud-config applied in ${elapsed(started)}`);
}

async function assertPackages(n: NodeState, packages: string[]): Promise<void> {
    if (packages.length === 0) return;
    const r = await execInNode(n.name, ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", ...packages], {
        timeoutMs: 60_000,
        allowFail: true, // exit 1 when a name is unknown; its line is then missing
    });
    const installed = new Set(
        r.stdout
            .split("\n")
            .map((l) => l.trim().split(" "))
            .filter(([, s]) => s === "installed")
            .map(([p]) => p.replace(/:.*$/, "")),
    );
    const missing = packages.filter((p) => !installed.has(p));
    if (missing.length) {
        throw new Error(`[node ${n.name}] cloud-config packages not in the lab rootfs: ${missing.join(" ")} (the rootfs is built from the union of all nodes' packages)`);
    }
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
