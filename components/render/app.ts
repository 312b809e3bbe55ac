// The app node's part: the user's container image run by podman under systemd, with the web
// process on the mesh address and, optionally, a worker (the same image, another command).
//
// Podman rather than docker.io: no daemon, so each container is a child of its own systemd unit
// (systemd restarts it, stops it and sees it die; there is no dockerd whose restart takes every
// container with it), and Debian 13 ships it in main. Host networking: the app binds the mesh
// address it is given (HOST, PORT) and the host firewall admits its port from the HAProxy nodes
// only, so no NAT or bridge sits between HAProxy and the app.
import { CloudConfigPart, FilePart } from "./cloud-config";
import { renderUnit } from "./systemd";

export const APP_DIR = "/etc/vps-ha/app";
export const APP_ENV_FILE = `${APP_DIR}/app.env`;
export const APP_UNIT = "vps-ha-app.service";
export const WORKER_UNIT = "vps-ha-worker.service";
/** Seconds a container gets between SIGTERM and SIGKILL when it is stopped. */
const STOP_TIMEOUT_SECONDS = 10;

export interface AppNodeConfig {
    /** image reference with a tag or digest */
    image: string;
    /** this node's mesh address: the app binds it (HOST) */
    meshAddress: string;
    port: number;
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
}

/** systemd's EnvironmentFile and podman's --env-file both read KEY=VALUE lines, unquoted. */
export function renderEnvFile(vars: Record<string, string>): string {
    return Object.entries(vars).map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
}

/** What the app sees: the user's variables, then ours (ours win: HOST and PORT must be true). */
export function appEnvironment(c: AppNodeConfig): Record<string, string> {
    return { ...c.env, DATABASE_URL: c.databaseUrl, ...(c.pooledDatabaseUrl ? { DATABASE_POOLED_URL: c.pooledDatabaseUrl } : {}), HOST: c.meshAddress, PORT: String(c.port) };
}

/** systemd splits ExecStart on spaces and honours double quotes; quote what needs it. */
function quoteArg(a: string): string {
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `"${a.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function containerUnit(description: string, container: string, image: string, command: string[] | undefined): string {
    const run = [
        "/usr/bin/podman", "run", "--rm", "--replace", "--name", container,
        // A tiny init as PID 1 passes SIGTERM on and reaps zombies: many images run a process
        // as PID 1 that ignores SIGTERM, which turns every stop into a 10 s wait and a SIGKILL.
        "--init",
        "--network", "host", "--env-file", APP_ENV_FILE, "--pull", "missing",
        "--stop-timeout", String(STOP_TIMEOUT_SECONDS), "--log-driver", "passthrough",
        image, ...(command ?? []),
    ];
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
            ExecStart: run.map(quoteArg).join(" "),
            ExecStop: `/usr/bin/podman stop --ignore -t ${STOP_TIMEOUT_SECONDS} ${container}`,
            // A crashed app comes back in 2 s, forever: HAProxy keeps it out until it is healthy.
            Restart: "always",
            RestartSec: "2s",
            TimeoutStartSec: "15min", // the first start pulls the image
            TimeoutStopSec: String(STOP_TIMEOUT_SECONDS + 5),
        },
        Install: { WantedBy: "multi-user.target" },
    });
}

export function appPart(c: AppNodeConfig): CloudConfigPart {
    const files: FilePart[] = [
        { path: APP_ENV_FILE, content: renderEnvFile(appEnvironment(c)), permissions: "0600" },
        { path: `/etc/systemd/system/${APP_UNIT}`, content: containerUnit("vps-ha app (web)", "vps-ha-app", c.image, c.command) },
    ];
    const units = [APP_UNIT];
    if (c.workerCommand) {
        files.push({ path: `/etc/systemd/system/${WORKER_UNIT}`, content: containerUnit("vps-ha app (worker)", "vps-ha-worker", c.image, c.workerCommand) });
        units.push(WORKER_UNIT);
    }
    return {
        packages: ["podman", "catatonit"], // catatonit: podman's --init
        files,
        commands: [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", ...units]],
    };
}
