// The mesh's share of a node's boot: the wg-quick config for this node's own interface. The
// peers come from the directory agent (render/directory-agent.ts), which also runs once each
// time the interface comes up.
import { CloudConfigPart } from "./cloud-config";
import { renderUnit } from "./systemd";
import { MESH_INTERFACE, MeshInterface, renderWireguardConfig, WIREGUARD_DIR } from "./wireguard";

export const MESH_UNIT = `wg-quick@${MESH_INTERFACE}.service`;
export const MESH_DROPIN = `/etc/systemd/system/${MESH_UNIT}.d/vps-ha.conf`;

/** `afterUp`: run once the interface is up (its failure does not fail the interface). */
export function meshPart(m: MeshInterface, afterUp: string): CloudConfigPart {
    return {
        packages: ["wireguard-tools"],
        files: [
            { path: `${WIREGUARD_DIR}/${MESH_INTERFACE}.conf`, content: renderWireguardConfig(m), permissions: "0600" },
            {
                // Peers as soon as the interface is up, and the interface up again if it fails.
                path: MESH_DROPIN,
                content: renderUnit({ Unit: { StartLimitIntervalSec: "0" }, Service: { ExecStartPost: `-${afterUp}`, Restart: "on-failure", RestartSec: "5s" } }),
            },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", MESH_UNIT],
        ],
    };
}
