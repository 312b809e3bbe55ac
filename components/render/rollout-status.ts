// Every node's rollout status server: a systemd socket on the node's mesh address whose service
// (one per connection, Accept=yes) writes this node's rollout state as JSON and closes
// (vpsha/rollout.py --serve-status, with the live Patroni role on a database member). The
// group's other nodes read it to know whose turn it is; the host firewall admits the group only.
import { CloudConfigPart } from "./cloud-config";
import { toolFiles } from "./python-lib";
import { enableReloaded, renderUnit } from "./systemd";

export const ROLLOUT_TOOL = "/usr/local/sbin/vps-ha-rollout";
/** The node's rollout state (vpsha/rollout.py STATE: in the desired-state agent's state directory). */
export const ROLLOUT_STATE = "/var/lib/vps-ha/desired/rollout.json";
export const ROLLOUT_STATUS_SOCKET = "vps-ha-rollout-status.socket";
/** The per-connection service template the socket starts. */
export const ROLLOUT_STATUS_SERVICE = "vps-ha-rollout-status@.service";

export interface RolloutStatusSpec {
    /** The node's mesh address: the socket listens there only. */
    meshAddress: string;
    port: number;
}

export function rolloutStatusUnits(s: RolloutStatusSpec): { socket: string; service: string } {
    return {
        socket: renderUnit({
            Unit: { Description: "vps-ha rollout status: this node's rollout state for its group's nodes" },
            Socket: {
                ListenStream: `${s.meshAddress}:${s.port}`,
                // The mesh address may not be up yet when sockets start (wg0 comes later).
                FreeBind: "true",
                Accept: "yes",
                // A few peers poll it; more at once is not one of ours.
                MaxConnections: "16",
            },
            Install: { WantedBy: "sockets.target" },
        }),
        service: renderUnit({
            Unit: { Description: "vps-ha rollout status answer" },
            Service: {
                ExecStart: `${ROLLOUT_TOOL} --serve-status`,
                StandardInput: "socket",
                StandardOutput: "socket",
                StandardError: "journal",
                // A slow Patroni REST call must not hold the answer for long.
                RuntimeMaxSec: "10",
                NoNewPrivileges: "yes",
                ProtectSystem: "strict",
                ProtectHome: "yes",
                PrivateTmp: "yes",
            },
        }),
    };
}

export function rolloutStatusPart(s: RolloutStatusSpec): CloudConfigPart {
    const units = rolloutStatusUnits(s);
    const socket = `/etc/systemd/system/${ROLLOUT_STATUS_SOCKET}`;
    return {
        files: [
            ...toolFiles(ROLLOUT_TOOL, "rollout"),
            { path: socket, content: units.socket },
            // Each connection starts the template afresh: a change to it or the tool needs no restart.
            { path: `/etc/systemd/system/${ROLLOUT_STATUS_SERVICE}`, content: units.service },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            enableReloaded([ROLLOUT_STATUS_SOCKET]),
        ],
        restarts: [{ unit: ROLLOUT_STATUS_SOCKET, paths: [socket] }],
    };
}
