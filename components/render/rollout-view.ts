// The rollout view on each HAProxy node (node-agent/vpsha/rollout_view.py): every node's rollout
// state in one JSON answer, for the `pulumi up` that waits on the rollout from outside the mesh.
// It listens on 127.0.0.1 only; HAProxy sends /vps-ha/rollout there when the request carries the
// token (render/haproxy.ts), and the nodes it reads come from the directory agent's cache.
// The same server answers /vps-ha/status (vpsha.status_view): the stack's health for
// `npm run status`, from the nodes' reads above, Patroni's members and the monitoring nodes.
import { HEARTBEAT_ALERT } from "./alertmanager";
import { CloudConfigPart } from "./cloud-config";
import { DIRECTORY_CACHE, DIRECTORY_UNIT } from "./directory-agent";
import { toolFiles } from "./python-lib";
import { SIGNALS } from "./signals";
import { enableReloaded, renderUnit } from "./systemd";

export const ROLLOUT_VIEW = "/usr/local/sbin/vps-ha-rollout-view";
export const ROLLOUT_VIEW_CONFIG = "/etc/vps-ha/rollout-view.json";
export const ROLLOUT_VIEW_UNIT = "vps-ha-rollout-view.service";
/** The path it answers (HAProxy routes the same path to it). */
export const ROLLOUT_VIEW_PATH = "/vps-ha/rollout";
/** The status view's path, on the same server (HAProxy routes it there with the same token). */
export const STATUS_VIEW_PATH = "/vps-ha/status";

/** The vps-ha signals the status view reads from Prometheus (render/signals.ts names them). */
export const STATUS_SIGNALS = ["backupLastSuccess", "walArchiveLastSuccess", "restoreCheckLastRun", "restoreCheckSuccess", "restoreCheckLastSuccess"] as const;

export interface StatusViewSpec {
    /** Patroni's REST API port on each database member's mesh address (GET /cluster). */
    patroniPort: number;
    /** The nodes running Prometheus (the alerts firing, the backup signals), asked at once; the first that answers is used. */
    monitors: { name: string; address: string }[];
    prometheusPort: number;
    /** The pgBackRest stanza whose backups are shown; null when the stack takes no backups. */
    stanza: string | null;
}

export interface RolloutViewSpec {
    /** Its port on 127.0.0.1. */
    port: number;
    /** Every node's rollout status server's port (on each node's mesh address). */
    statusPort: number;
    /** What the status view reads besides the nodes' status servers. */
    status: StatusViewSpec;
}

export interface StatusViewConfig extends StatusViewSpec {
    /** Each read's bound: every source is read at once, so an answer takes about this long at most. */
    timeoutSeconds: number;
    /** Metric names by signal (vpsha.status_view reads one selector of them all). */
    signals: Record<(typeof STATUS_SIGNALS)[number], string>;
    /** Alerts that are not problems: the always-firing heartbeat. */
    ignoreAlerts: string[];
}

export interface RolloutViewConfig {
    listen: string;
    port: number;
    statusPort: number;
    directoryCache: string;
    /** Each status read's bound: reads run at once, so an answer takes about this long at most. */
    peerTimeoutSeconds: number;
    /** An answer this fresh is given again: many askers cost one round of reads. */
    cacheSeconds: number;
    status: StatusViewConfig;
}

export function statusViewConfig(s: StatusViewSpec): StatusViewConfig {
    return {
        ...s,
        timeoutSeconds: 3,
        signals: Object.fromEntries(STATUS_SIGNALS.map((k) => [k, SIGNALS[k].name])) as StatusViewConfig["signals"],
        ignoreAlerts: [HEARTBEAT_ALERT],
    };
}

export function rolloutViewConfig(s: RolloutViewSpec): RolloutViewConfig {
    return {
        listen: "127.0.0.1", port: s.port, statusPort: s.statusPort, directoryCache: DIRECTORY_CACHE, peerTimeoutSeconds: 3, cacheSeconds: 2,
        status: statusViewConfig(s.status),
    };
}

export function rolloutViewUnit(): string {
    return renderUnit({
        Unit: { Description: "vps-ha rollout and status views: every node's rollout state for pulumi up, the stack's health for npm run status, on 127.0.0.1", After: `${DIRECTORY_UNIT} network.target` },
        Service: {
            Type: "simple",
            ExecStart: ROLLOUT_VIEW,
            Restart: "always",
            RestartSec: "5s",
            // It reads a world-readable cache and the mesh: no privilege of its own.
            DynamicUser: "yes",
            NoNewPrivileges: "yes",
            ProtectSystem: "strict",
            ProtectHome: "yes",
            PrivateTmp: "yes",
        },
        Install: { WantedBy: "multi-user.target" },
    });
}

export function rolloutViewPart(s: RolloutViewSpec): CloudConfigPart {
    const unit = `/etc/systemd/system/${ROLLOUT_VIEW_UNIT}`;
    return {
        files: [
            ...toolFiles(ROLLOUT_VIEW, "rollout_view"),
            { path: ROLLOUT_VIEW_CONFIG, content: JSON.stringify(rolloutViewConfig(s), null, 1) + "\n" },
            { path: unit, content: rolloutViewUnit() },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            enableReloaded([ROLLOUT_VIEW_UNIT]),
        ],
        restarts: [{ unit: ROLLOUT_VIEW_UNIT }],
    };
}
