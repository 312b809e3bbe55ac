// The rollout view on each HAProxy node (node-agent/vpsha/rollout_view.py): every node's rollout
// state in one JSON answer, for the `pulumi up` that waits on the rollout from outside the mesh.
// It listens on 127.0.0.1 only; HAProxy sends /vps-ha/rollout there when the request carries the
// token (render/haproxy.ts), and the nodes it reads come from the directory agent's cache.
import { CloudConfigPart } from "./cloud-config";
import { DIRECTORY_CACHE, DIRECTORY_UNIT } from "./directory-agent";
import { toolFiles } from "./python-lib";
import { renderUnit } from "./systemd";

export const ROLLOUT_VIEW = "/usr/local/sbin/vps-ha-rollout-view";
export const ROLLOUT_VIEW_CONFIG = "/etc/vps-ha/rollout-view.json";
export const ROLLOUT_VIEW_UNIT = "vps-ha-rollout-view.service";
/** The path it answers (HAProxy routes the same path to it). */
export const ROLLOUT_VIEW_PATH = "/vps-ha/rollout";

export interface RolloutViewSpec {
    /** Its port on 127.0.0.1. */
    port: number;
    /** Every node's rollout status server's port (on each node's mesh address). */
    statusPort: number;
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
}

export function rolloutViewConfig(s: RolloutViewSpec): RolloutViewConfig {
    return { listen: "127.0.0.1", port: s.port, statusPort: s.statusPort, directoryCache: DIRECTORY_CACHE, peerTimeoutSeconds: 3, cacheSeconds: 2 };
}

export function rolloutViewUnit(): string {
    return renderUnit({
        Unit: { Description: "vps-ha rollout view: every node's rollout state for pulumi up, on 127.0.0.1", After: `${DIRECTORY_UNIT} network.target` },
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
            ["systemctl", "enable", "--now", ROLLOUT_VIEW_UNIT],
        ],
        restarts: [{ unit: ROLLOUT_VIEW_UNIT }],
    };
}
