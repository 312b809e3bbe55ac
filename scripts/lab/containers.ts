// App nodes run the user's image with podman. The lab has no registry and no user image, so it
// stands in for both: before the cloud-config runs, each app node gets a small image under the
// very name the stack config gives (`--pull missing` then finds it locally), built from the
// node's own static busybox. It serves the health path and `/` (naming the image, so a drill can
// tell releases apart) on HOST:PORT, and provides whatever web or worker command the config names.
//
// Podman itself runs as on a real node, under the node's systemd, but for three lab settings
// (containers.conf.d and storage.conf): runc, since the rootfs has no crun; no pids limit, since
// the container's cgroup v2 tree on this hybrid host has no controllers; and vfs storage, since
// overlay-on-overlay is not available.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Log, elapsed } from "./exec";
import { execInNode } from "./realize";
import { nodeState } from "./state";

export interface LabApp {
    /** Every image the release names (active first): each gets a stand-in. */
    images: string[];
    /** The active image's port. */
    port: number;
    healthPath: string;
    command?: string[];
    workerCommand?: string[];
}

/**
 * With the node's own systemd as PID 1 (nspawn.ts), podman keeps its systemd cgroup manager;
 * the container's cgroup v2 tree has no controllers on this hybrid host, so no pids limit can be
 * set (runc fails writing pids.max otherwise). runc: the rootfs has no crun.
 */
const CONTAINERS_CONF = `# vps-ha lab: podman under the node's systemd, in a cgroup v2 tree without controllers
[containers]
pids_limit = 0
[engine]
runtime = "runc"
`;

const STORAGE_CONF = `# vps-ha lab: the node's root is already an overlay
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
`;

/** The stand-in's web server: the app contract (HOST, PORT) that vps-ha gives every image. */
const WEB_SCRIPT = `#!/bin/sh
exec /bin/busybox httpd -f -p "\${HOST:?}:\${PORT:?}" -h /www
`;

/** A worker that shows it runs: a heartbeat file the lab can read with podman exec. */
const WORKER_SCRIPT = `#!/bin/sh
while :; do date +%s > /tmp/worker-heartbeat; sleep 2; done
`;

/** Shell that builds the image tree in `dir` and imports it as `image`. */
export function standInImageScript(app: Omit<LabApp, "images" | "port">, image: string, dir = "/tmp/vps-ha-lab-image"): string {
    const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    const healthFile = `/www${app.healthPath.split("?")[0].replace(/\/$/, "/index.html")}`;
    const lines = [
        "set -eu",
        `rm -rf ${q(dir)}`,
        `mkdir -p ${q(dir)}/bin ${q(dir)}/www ${q(dir)}/usr/local/bin ${q(dir)}/tmp`,
        `cp /bin/busybox ${q(dir)}/bin/busybox`,
        `for a in sh date sleep cat echo; do ln -s busybox ${q(dir)}/bin/$a; done`,
        `printf '%s\\n' ${q(`vps-ha lab app ${image}`)} > ${q(dir)}/www/index.html`,
        `mkdir -p "$(dirname ${q(dir + healthFile)})"`,
        `echo ok > ${q(dir + healthFile)}`,
        `printf '%s' ${q(WEB_SCRIPT)} > ${q(dir)}/usr/local/bin/vps-ha-lab-web`,
        `printf '%s' ${q(WORKER_SCRIPT)} > ${q(dir)}/usr/local/bin/vps-ha-lab-worker`,
    ];
    // Commands the config names become the stand-in's web server or worker, unless the image
    // already has them (a busybox applet such as sh).
    const provide = (command: string[] | undefined, script: string) => {
        if (!command) return;
        const path = command[0].includes("/") ? (command[0].startsWith("/") ? command[0] : `/${command[0]}`) : `/usr/local/bin/${command[0]}`;
        lines.push(`[ -e ${q(dir + path)} ] || { mkdir -p "$(dirname ${q(dir + path)})"; cp ${q(dir)}/usr/local/bin/${script} ${q(dir + path)}; }`);
    };
    provide(app.command, "vps-ha-lab-web");
    provide(app.workerCommand, "vps-ha-lab-worker");
    lines.push(
        `chmod 0755 ${q(dir)}/usr/local/bin/*`,
        `tar -C ${q(dir)} -c . | podman import --change 'CMD ["/usr/local/bin/vps-ha-lab-web"]' - ${q(image)} >/dev/null`,
        `rm -rf ${q(dir)}`,
    );
    return lines.join("\n");
}

/** Lab podman settings and a stand-in for every image of the release, in each app node, before its cloud-config runs. */
export async function prepareAppNodes(nodes: string[], app: LabApp, log: Log): Promise<void> {
    await importStandIns(nodes, app, app.images, log);
}

/** A stand-in for each of `images` in each app node (a release adds one while the lab runs). */
export async function importStandIns(nodes: string[], app: Omit<LabApp, "images" | "port">, images: string[], log: Log): Promise<void> {
    await Promise.all(nodes.map(async (name) => {
        const t = Date.now();
        const root = nodeState(name).paths.merged;
        mkdirSync(join(root, "etc/containers/containers.conf.d"), { recursive: true });
        writeFileSync(join(root, "etc/containers/containers.conf.d/50-vps-ha-lab.conf"), CONTAINERS_CONF);
        writeFileSync(join(root, "etc/containers/storage.conf"), STORAGE_CONF);
        for (const image of images) {
            await execInNode(name, ["sh", "-c", standInImageScript(app, image)], { timeoutMs: 120_000, env: { PODMAN_IGNORE_CGROUPSV1_WARNING: "1" } });
            log(`[${name}] stand-in app image ${image} ready in ${elapsed(t)}`);
        }
    }));
}
