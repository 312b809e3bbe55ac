// The app node's part: the user's container images run by podman under systemd, each web
// process on the mesh address and its image's own port, and, optionally, a worker (the active
// image, another command). Which images run is not in this part at all: the directory agent
// reads the signed release record and starts one web unit instance per live image.
//
// Podman rather than docker.io: no daemon, so each container is a child of its own systemd unit
// (systemd restarts it, stops it and sees it die; there is no dockerd whose restart takes every
// container with it), and Debian 13 ships it in main. Host networking: the app binds the mesh
// address it is given (HOST, PORT) and the host firewall admits its port from the HAProxy nodes
// only, so no NAT or bridge sits between HAProxy and the app; the container's own user namespace
// (APP_UID_BASE) makes its root an ordinary uid on the node, which the host firewall's
// owner-matching output rules see (render/nftables.ts): no metadata service, and of the mesh only
// the HAProxy nodes' database and pooler ports.
import { CloudConfigPart, FilePart } from "./cloud-config";
import { DIRECTORY_CONFIG_DIR, DIRECTORY_UNIT } from "./directory-agent";
import { CONTAINER_UID_BASE, CONTAINER_UID_COUNT } from "./nftables";
import { execWord, renderUnit } from "./systemd";

export const APP_DIR = "/etc/vps-ha/app";
export const APP_ENV_FILE = `${APP_DIR}/app.env`;
/** One instance per live image, named by the image's port: vps-ha-app@8921.service. */
export const APP_UNIT_TEMPLATE = "vps-ha-app@.service";
export const WORKER_UNIT = "vps-ha-worker.service";
/** IMAGE=<the active image>, written by the directory agent. */
export const WORKER_ENV_FILE = `${APP_DIR}/worker.env`;
/** The host uids an app container's users map to; the host firewall knows its traffic by them. */
export const APP_UID_BASE = CONTAINER_UID_BASE;
export const APP_UID_COUNT = CONTAINER_UID_COUNT;
/** Seconds a container gets between SIGTERM and SIGKILL when it is stopped. */
const STOP_TIMEOUT_SECONDS = 10;

/** The web unit instance for the image on `port`. */
export function appUnit(port: number): string {
    return `vps-ha-app@${port}.service`;
}

/** IMAGE=<image> for the web instance on `port`, written by the directory agent. */
export function releaseEnvFile(port: number | string): string {
    return `${APP_DIR}/release-${port}.env`;
}

export interface AppNodeConfig {
    /** this node's mesh address: the app binds it (HOST) */
    meshAddress: string;
    /** the app's own variables; values may be secrets (the file is 0600) */
    env: Record<string, string>;
    /** libpq URL of the database through both HAProxy nodes (secret) */
    databaseUrl: string;
    /** the same through the poolers (pgbouncer, transaction pooling): switchovers pause it, failing nothing */
    pooledDatabaseUrl?: string;
    /** overrides the image's command for the web process */
    command?: string[];
    /** a background worker: the same image with this command, no HTTP */
    workerCommand?: string[];
    /** how long an image that left the release keeps running (vps-ha:app.retireAfterSeconds) */
    retireAfterSeconds: number;
}

/** systemd's EnvironmentFile and podman's --env-file both read KEY=VALUE lines, unquoted. */
export function renderEnvFile(vars: Record<string, string>): string {
    return Object.entries(vars).map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
}

/**
 * What the app sees: the user's variables, then ours (ours win: HOST must be true). PORT is not
 * here: each image has its own, passed by its unit instance.
 */
export function appEnvironment(c: AppNodeConfig): Record<string, string> {
    return { ...c.env, DATABASE_URL: c.databaseUrl, ...(c.pooledDatabaseUrl ? { DATABASE_POOLED_URL: c.pooledDatabaseUrl } : {}), HOST: c.meshAddress };
}

/**
 * The image is not in the unit: the unit reads IMAGE from `imageEnvFile`, which the directory
 * agent writes from the signed release record. So a release changes no server's user-data.
 */
function containerUnit(description: string, container: string, imageEnvFile: string, extraEnv: string[], command: string[] | undefined): string {
    const run = [
        "/usr/bin/podman", "run", "--rm", "--replace", "--name", container,
        // A tiny init as PID 1 passes SIGTERM on and reaps zombies: many images run a process
        // as PID 1 that ignores SIGTERM, which turns every stop into a 10 s wait and a SIGKILL.
        "--init",
        // Contained: its own user namespace (root inside is an unprivileged uid here), no
        // capability, no gaining one through setuid files, and an image it cannot change (podman
        // mounts fresh tmpfs on /tmp, /var/tmp and /run). Host networking stays (see above).
        `--uidmap=0:${APP_UID_BASE}:${APP_UID_COUNT}`, `--gidmap=0:${APP_UID_BASE}:${APP_UID_COUNT}`,
        "--cap-drop=all", "--security-opt=no-new-privileges", "--read-only",
        "--network", "host", "--env-file", APP_ENV_FILE, ...extraEnv.flatMap((e) => ["--env", e]), "--pull", "missing",
        "--stop-timeout", String(STOP_TIMEOUT_SECONDS), "--log-driver", "passthrough",
    ]; // bare words of ours: %i is the instance's port
    // \${IMAGE} as a word of its own: systemd substitutes it as exactly one argument. The user's words are quoted for systemd.
    const execStart = [...run, "${IMAGE}", ...(command ?? []).map(execWord)].join(" ");
    return renderUnit({
        Unit: {
            Description: description,
            // The app needs the mesh (its address, the database behind HAProxy) before it starts.
            Wants: "network-online.target",
            After: ["network-online.target", "wg-quick@wg0.service"],
            StartLimitIntervalSec: "0",
        },
        Service: {
            Type: "simple",
            EnvironmentFile: imageEnvFile,
            ExecStart: execStart,
            ExecStop: `/usr/bin/podman stop --ignore -t ${STOP_TIMEOUT_SECONDS} ${container}`,
            // A crashed app comes back in 2 s, forever: HAProxy keeps it out until it is healthy.
            Restart: "always",
            RestartSec: "2s",
            TimeoutStartSec: "15min", // the first start pulls the image
            TimeoutStopSec: String(STOP_TIMEOUT_SECONDS + 5),
            // podman run returns the container's status: an app stopped on purpose (SIGTERM) exits
            // 143, which is the stop succeeding, not the unit failing (a retired colour stays clean).
            SuccessExitStatus: "143",
        },
        Install: { WantedBy: "multi-user.target" },
    });
}

/** What the directory agent does on an app node: which units run which image of the release. */
export interface DirectoryApp {
    dir: string;
    /** release-<port>.env files: IMAGE for each web instance */
    releaseEnvGlob: string;
    releaseEnvFile: string;
    webUnit: string;
    worker: { unit: string; envFile: string } | null;
    systemctl: string[];
    /** When each instance left the release (JSON): it is stopped retireAfterSeconds later. */
    retiredState: string;
    retireAfterSeconds: number;
}

export function appDirectory(c: Pick<AppNodeConfig, "workerCommand" | "retireAfterSeconds">): DirectoryApp {
    return {
        dir: APP_DIR,
        releaseEnvGlob: releaseEnvFile("*"),
        releaseEnvFile: releaseEnvFile("{port}"),
        webUnit: "vps-ha-app@{port}.service",
        worker: c.workerCommand ? { unit: WORKER_UNIT, envFile: WORKER_ENV_FILE } : null,
        systemctl: ["systemctl"],
        retiredState: "/var/lib/vps-ha/app-retired.json",
        retireAfterSeconds: c.retireAfterSeconds,
    };
}

export function appPart(c: AppNodeConfig): CloudConfigPart {
    const files: FilePart[] = [
        { path: APP_ENV_FILE, content: renderEnvFile(appEnvironment(c)), permissions: "0600" },
        {
            path: `/etc/systemd/system/${APP_UNIT_TEMPLATE}`,
            content: containerUnit("vps-ha app (web) on port %i", "vps-ha-app-%i", releaseEnvFile("%i"), ["PORT=%i"], c.command),
        },
        { path: `${DIRECTORY_CONFIG_DIR}/app.json`, content: JSON.stringify({ app: appDirectory(c) }, null, 1) + "\n" },
    ];
    if (c.workerCommand) {
        files.push({ path: `/etc/systemd/system/${WORKER_UNIT}`, content: containerUnit("vps-ha app (worker)", "vps-ha-worker", WORKER_ENV_FILE, [], c.workerCommand) });
    }
    return {
        packages: ["podman", "catatonit"], // catatonit: podman's --init
        files,
        // Nothing starts here: the directory agent starts the images the release record names.
        commands: [["systemctl", "daemon-reload"]],
        restarts: [
            // Every running instance of the template (the agent's release ports).
            { unit: "vps-ha-app@*.service", paths: [APP_ENV_FILE, `/etc/systemd/system/${APP_UNIT_TEMPLATE}`] },
            ...(c.workerCommand ? [{ unit: WORKER_UNIT, paths: [APP_ENV_FILE, `/etc/systemd/system/${WORKER_UNIT}`] }] : []),
            { unit: DIRECTORY_UNIT, paths: [`${DIRECTORY_CONFIG_DIR}/app.json`] },
        ],
    };
}
