// The directory agent's share of every node's boot: the agent (vpsha/directory.py in node-agent/,
// run by Debian's python3 with python3-dnspython and python3-cryptography), its config and
// its service. The config names this node, the stack's directory and its public key, never
// another node: what the node set is, the agent reads at run time from the signed records
// (../directory-records.ts), so a node's user-data stays the same when nodes come and go.
import { Role, ROLES } from "../config";
import { toolFiles } from "./python-lib";
import { CloudConfigPart } from "./cloud-config";
import { MESH_UNIT } from "./mesh";
import { meshSetName, NFT_FAMILY, NFT_TABLE } from "./nftables";
import { enableReloaded, renderUnit } from "./systemd";
import { MESH_INTERFACE, PERSISTENT_KEEPALIVE_SECONDS } from "./wireguard";

export const DIRECTORY_AGENT = "/usr/local/sbin/vps-ha-directory";
export const DIRECTORY_CONFIG = "/etc/vps-ha/directory.json";
/** Role parts add settings here (the HAProxy pair: which server lines the agent keeps). */
export const DIRECTORY_CONFIG_DIR = "/etc/vps-ha/directory.d";
export const DIRECTORY_UNIT = "vps-ha-directory.service";
/** The last directory the agent verified: {index: [texts], members: {name: text}}. */
export const DIRECTORY_CACHE = "/var/lib/vps-ha/directory-cache.json";
/** What the last round saw and did (JSON: at, source, generation applied, members, release, refused, ignoredGenerations, problems). */
export const DIRECTORY_STATUS = "/run/vps-ha/directory-status.json";
export const DIRECTORY_PACKAGES = ["python3-dnspython", "python3-cryptography"];
/** A round every 15 s: with the records' 60 s TTL, a change reaches every node within about 75 s. */
export const DIRECTORY_EVERY_SECONDS = 15;
/** A handshake younger than this proves a peer's endpoint; older ones are looked up again. */
const STALE_HANDSHAKE_SECONDS = 150;

export interface HaproxyServerBlock {
    /** Names the block in logs and markers, e.g. "app". */
    id: string;
    /** The role whose members become servers here. */
    role: Role;
    /** Marker lines in haproxy.cfg; the agent keeps the server lines between them. */
    begin: string;
    end: string;
    /** One server line, with {name} and {address} (the member's mesh address) filled in, and {port}. */
    line: string;
    /** {port} is this image's port from the release record; no servers while it names none. */
    release?: "active" | "candidate";
}

/** Lines the agent keeps from the release record: {aport} and {cport} ("-" for none) filled in. */
export interface ReleaseLinesBlock {
    id: string;
    begin: string;
    end: string;
    lines: string[];
}

export interface DirectoryHaproxy {
    config: string;
    /** The admin socket (`show servers state` before a reload). */
    socket: string;
    /** haproxy.cfg's server-state-file: the reloaded process starts from these states. */
    stateFile: string;
    /** argv + candidate file: must exit 0 before the candidate replaces the config. */
    check: string[];
    isActive: string[];
    reload: string[];
    blocks: HaproxyServerBlock[];
    releaseBlocks: ReleaseLinesBlock[];
}

export interface DirectoryAgentConfig {
    /** This node's name (its own record is not a peer). */
    self: string;
    /** DNS name of the index; member records are `_mesh.<name>.<nodesDomain>`. */
    index: string;
    /** DNS name of the release record (which images run, on which ports). */
    release: string;
    nodesDomain: string;
    /** Raw Ed25519 public key, base64: only records it verifies count. */
    publicKey: string;
    meshCidr: string;
    roles: readonly Role[];
    wireguard: { interface: string; port: number; keepalive: number; staleHandshakeSeconds: number };
    nftables: { family: string; table: string; sets: Record<Role, string> };
    everySeconds: number;
    /** The last verified directory (its record texts), used while DNS cannot be read. */
    cache: string;
    status: string;
    lock: string;
}

export function directoryAgentConfig(c: { self: string; index: string; release: string; nodesDomain: string; publicKey: string; meshCidr: string; meshPort: number }): DirectoryAgentConfig {
    return {
        self: c.self,
        index: c.index,
        release: c.release,
        nodesDomain: c.nodesDomain,
        publicKey: c.publicKey,
        meshCidr: c.meshCidr,
        roles: ROLES,
        wireguard: { interface: MESH_INTERFACE, port: c.meshPort, keepalive: PERSISTENT_KEEPALIVE_SECONDS, staleHandshakeSeconds: STALE_HANDSHAKE_SECONDS },
        nftables: { family: NFT_FAMILY, table: NFT_TABLE, sets: Object.fromEntries(ROLES.map((r) => [r, meshSetName(r)])) as Record<Role, string> },
        everySeconds: DIRECTORY_EVERY_SECONDS,
        cache: DIRECTORY_CACHE,
        status: DIRECTORY_STATUS,
        lock: "/run/vps-ha/directory.lock",
    };
}

export function renderDirectoryUnit(): string {
    // A long-running loop rather than a timer: one process, one lock, and the lab's service
    // supervisor (which runs no timers) runs it as a node would.
    return renderUnit({
        Unit: { Description: "vps-ha directory agent: mesh peers, firewall sets and proxy servers from the signed DNS directory", After: [MESH_UNIT, "nftables.service"].join(" ") },
        Service: { Type: "simple", ExecStart: DIRECTORY_AGENT, Restart: "always", RestartSec: "5s" },
        Install: { WantedBy: "multi-user.target" },
    });
}

export function directoryAgentPart(cfg: DirectoryAgentConfig): CloudConfigPart {
    return {
        packages: DIRECTORY_PACKAGES,
        files: [
            ...toolFiles(DIRECTORY_AGENT, "directory"),
            { path: DIRECTORY_CONFIG, content: JSON.stringify(cfg, null, 1) + "\n" },
            { path: `/etc/systemd/system/${DIRECTORY_UNIT}`, content: renderDirectoryUnit() },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            enableReloaded([DIRECTORY_UNIT]),
        ],
        restarts: [{ unit: DIRECTORY_UNIT }],
    };
}

/** The agent's one-shot run, as the mesh interface runs it when it comes up. */
export const DIRECTORY_ONCE = `${DIRECTORY_AGENT} --once`;
