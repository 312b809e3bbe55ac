// Keeps the etcd leader off the node that holds the PostgreSQL primary. When the two die
// together, etcd must first elect a new leader, and a new etcd leader renews every lease for a
// full TTL: Patroni's leader key would outlive the dead primary by that much, and failover would
// take ttl plus an election instead of ttl. Measured in the lab: a primary isolated together with
// the etcd leader came back after 25 s, one isolated alone after about 22 s.
import { DB_PORTS } from "../plan";
import { CloudConfigPart } from "./cloud-config";
import { ETCD_TLS_FILES, ETCD_UNIT, etcdClientUrl } from "./etcd";
import { PATRONI_UNIT } from "./patroni";
import { toolFiles } from "./python-lib";
import { enableReloaded, renderUnit } from "./systemd";

export const LEADER_AWAY_UNIT = "vps-ha-etcd-leader-away.service";
export const LEADER_AWAY_SCRIPT = "/usr/local/lib/vps-ha/etcd-leader-away";
/** How often the node looks: a leader change is rare, and moving it is quick. */
export const LEADER_AWAY_EVERY_SECONDS = 5;

/** The unit's command: the tool (vpsha/etcd_leader.py in node-agent/) with this member's Patroni and etcd. */
export function leaderAwayCommand(meshAddress: string): string {
    return `${LEADER_AWAY_SCRIPT} --patroni http://${meshAddress}:${DB_PORTS.patroni}/primary --etcd ${etcdClientUrl("127.0.0.1")} --cacert ${ETCD_TLS_FILES.ca} --cert ${ETCD_TLS_FILES.cert} --key ${ETCD_TLS_FILES.key} --every ${LEADER_AWAY_EVERY_SECONDS}`;
}

export function leaderAwayPart(meshAddress: string): CloudConfigPart {
    return {
        files: [
            ...toolFiles(LEADER_AWAY_SCRIPT, "etcd_leader"),
            {
                path: `/etc/systemd/system/${LEADER_AWAY_UNIT}`,
                content: renderUnit({
                    Unit: { Description: "Keep the etcd leader off the PostgreSQL primary", After: [ETCD_UNIT, PATRONI_UNIT] },
                    Service: { Type: "simple", User: "etcd", ExecStart: leaderAwayCommand(meshAddress), Restart: "always", RestartSec: "5s" },
                    Install: { WantedBy: "multi-user.target" },
                }),
            },
        ],
        commands: [enableReloaded([LEADER_AWAY_UNIT])],
        restarts: [{ unit: LEADER_AWAY_UNIT }],
    };
}
