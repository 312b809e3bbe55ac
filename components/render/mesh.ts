// The mesh's share of a node's boot: wg-quick config, the endpoint finder and its timer.
import { CloudConfigPart } from "./cloud-config";
import { periodicJob, renderUnit } from "./systemd";
import { ENDPOINTS_FILE, ENDPOINTS_SCRIPT, MESH_INTERFACE, MeshInterface, renderEndpoints, renderEndpointsScript, renderWireguardConfig, WIREGUARD_DIR } from "./wireguard";

export const MESH_UNIT = `wg-quick@${MESH_INTERFACE}.service`;
const ENDPOINTS_JOB = "vps-ha-mesh-endpoints";

export function meshPart(m: MeshInterface): CloudConfigPart {
    return {
        packages: ["wireguard-tools"],
        files: [
            { path: `${WIREGUARD_DIR}/${MESH_INTERFACE}.conf`, content: renderWireguardConfig(m), permissions: "0600" },
            { path: ENDPOINTS_FILE, content: renderEndpoints(m) },
            { path: ENDPOINTS_SCRIPT, content: renderEndpointsScript(), permissions: "0755" },
            {
                // Find the peers as soon as the interface is up, and bring it up again if it fails.
                path: `/etc/systemd/system/${MESH_UNIT}.d/vps-ha.conf`,
                content: renderUnit({ Unit: { "StartLimitIntervalSec": "0" }, Service: { ExecStartPost: ENDPOINTS_SCRIPT, Restart: "on-failure", RestartSec: "5s" } }),
            },
            ...periodicJob(ENDPOINTS_JOB, "Find WireGuard mesh peers by DNS", ENDPOINTS_SCRIPT, 30).map((u) => ({ path: u.path, content: u.content })),
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", MESH_UNIT],
            ["systemctl", "enable", "--now", `${ENDPOINTS_JOB}.timer`],
        ],
    };
}
