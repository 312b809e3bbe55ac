// The peer watch's share of every node's boot (vpsha/peer_watch.py in node-agent/, run by Debian's
// python3): it pings every mesh peer the directory names, and a peer that stopped answering gets
// its TCP traffic refused at once by this node's firewall (the set PEER_GONE_SET of
// render/nftables.ts) until it answers again. What it saves: every caller's own wait on a dead
// server. Patroni's leader race asks the old primary's REST API with a fixed 2 s limit, and a
// client's connect to a dead HAProxy node waits out its connect timeout before it tries the other.
import { toolFiles } from "./python-lib";
import { CloudConfigPart } from "./cloud-config";
import { DIRECTORY_CACHE, DIRECTORY_UNIT } from "./directory-agent";
import { NFT_FAMILY, NFT_TABLE, PEER_GONE_SET } from "./nftables";
import { enableReloaded, renderUnit } from "./systemd";

export const PEER_WATCH = "/usr/local/sbin/vps-ha-peer-watch";
export const PEER_WATCH_CONFIG = "/etc/vps-ha/peer-watch.json";
export const PEER_WATCH_UNIT = "vps-ha-peer-watch.service";

export interface PeerWatchConfig {
    /** This node's name: its own directory record is not a peer. */
    self: string;
    directoryCache: string;
    nftables: { family: string; table: string; set: string };
    probeEverySeconds: number;
    /**
     * Silence that makes a peer gone. Well under Patroni's ttl (the leader race comes after it),
     * and four missed pings: one late reply from a busy peer does not shut it out.
     */
    goneAfterSeconds: number;
    /** The set is rewritten this often even when nothing changed (a firewall reload empties it). */
    reapplySeconds: number;
}

export function peerWatchConfig(self: string): PeerWatchConfig {
    return {
        self,
        directoryCache: DIRECTORY_CACHE,
        nftables: { family: NFT_FAMILY, table: NFT_TABLE, set: PEER_GONE_SET },
        probeEverySeconds: 1,
        goneAfterSeconds: 4,
        reapplySeconds: 10,
    };
}

export function peerWatchPart(cfg: PeerWatchConfig): CloudConfigPart {
    return {
        files: [
            ...toolFiles(PEER_WATCH, "peer_watch"),
            { path: PEER_WATCH_CONFIG, content: JSON.stringify(cfg, null, 1) + "\n" },
            {
                path: `/etc/systemd/system/${PEER_WATCH_UNIT}`,
                content: renderUnit({
                    Unit: { Description: "vps-ha peer watch: refuse connections to mesh peers that stopped answering", After: [DIRECTORY_UNIT, "nftables.service"].join(" ") },
                    Service: { Type: "simple", ExecStart: PEER_WATCH, Restart: "always", RestartSec: "5s" },
                    Install: { WantedBy: "multi-user.target" },
                }),
            },
        ],
        commands: [
            ["systemctl", "daemon-reload"],
            enableReloaded([PEER_WATCH_UNIT]),
        ],
        restarts: [{ unit: PEER_WATCH_UNIT }],
    };
}
