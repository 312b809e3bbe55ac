// The desired-state agent: what a node's user-data holds beside its identity and mesh interface.
// It reads the node's signed, sealed document from DNS and applies it (node-agent/vpsha/desired.py);
// everything else the node runs arrives that way. Its config names this node, where its records
// are and the key that verifies them: nothing a routine change of the stack touches.
import { CloudConfigPart } from "./cloud-config";
import { DIRECTORY_PACKAGES } from "./directory-agent";
import { toolFiles } from "./python-lib";
import { renderUnit } from "./systemd";
import { MESH_INTERFACE, WIREGUARD_DIR } from "./wireguard";

export const DESIRED_AGENT = "/usr/local/sbin/vps-ha-desired";
export const DESIRED_CONFIG = "/etc/vps-ha/desired.json";
export const DESIRED_UNIT = "vps-ha-desired.service";
/** What the agent's last round saw and did (JSON: generation, published, applied, lastError, staleSeconds, changed; the rollout gate adds its keys). */
export const DESIRED_STATUS = "/run/vps-ha/desired-status.json";
export const DESIRED_STATE_DIR = "/var/lib/vps-ha/desired";
/** A round every 15 s, as the directory agent's: a published change is seen within a TTL and a round. */
export const DESIRED_EVERY_SECONDS = 15;

export interface DesiredAgentConfig {
    stack: string;
    node: string;
    /** The node's DNS name: its head record is `_desired.<dnsName>`. */
    dnsName: string;
    /** Raw Ed25519 public key, base64 (the mesh directory's). */
    publicKey: string;
    /** wg-quick's config: the agent opens its documents with the interface's private key. */
    wireguardConfig: string;
    stateDir: string;
    status: string;
    everySeconds: number;
}

export function desiredAgentConfig(c: { stack: string; node: string; dnsName: string; publicKey: string }): DesiredAgentConfig {
    return { ...c, wireguardConfig: `${WIREGUARD_DIR}/${MESH_INTERFACE}.conf`, stateDir: DESIRED_STATE_DIR, status: DESIRED_STATUS, everySeconds: DESIRED_EVERY_SECONDS };
}

export function renderDesiredUnit(): string {
    return renderUnit({
        Unit: { Description: "vps-ha desired state, from signed DNS records", After: "network-online.target", Wants: "network-online.target", StartLimitIntervalSec: "0" },
        // No time limit on a round's stop: a round may be installing packages.
        Service: { Type: "simple", ExecStart: DESIRED_AGENT, Restart: "always", RestartSec: "5s", RuntimeDirectory: "vps-ha", RuntimeDirectoryPreserve: "yes" },
        Install: { WantedBy: "multi-user.target" },
    });
}

/** The agent's tool files: in the bootstrap, and again in every document (so an upgrade of the agent reaches live nodes). */
export function desiredAgentFiles() {
    return toolFiles(DESIRED_AGENT, "desired");
}

export function desiredAgentPart(cfg: DesiredAgentConfig): CloudConfigPart {
    return {
        packages: DIRECTORY_PACKAGES,
        files: [
            ...desiredAgentFiles(),
            { path: DESIRED_CONFIG, content: JSON.stringify(cfg, null, 1) + "\n" },
            { path: `/etc/systemd/system/${DESIRED_UNIT}`, content: renderDesiredUnit() },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", DESIRED_UNIT],
        ],
    };
}
