// Keeps the etcd leader off the node that holds the PostgreSQL primary. When the two die
// together, etcd must first elect a new leader, and a new etcd leader renews every lease for a
// full TTL: Patroni's leader key would outlive the dead primary by that much, and failover would
// take ttl plus an election instead of ttl. Measured in the lab: a primary isolated together with
// the etcd leader came back after 25 s, one isolated alone after about 22 s.
import { DB_PORTS } from "../plan";
import { CloudConfigPart } from "./cloud-config";
import { ETCD_UNIT } from "./etcd";
import { PATRONI_UNIT } from "./patroni";
import { renderUnit } from "./systemd";

export const LEADER_AWAY_UNIT = "vps-ha-etcd-leader-away.service";
export const LEADER_AWAY_SCRIPT = "/usr/local/lib/vps-ha/etcd-leader-away";
/** How often the node looks: a leader change is rare, and moving it is quick. */
export const LEADER_AWAY_EVERY_SECONDS = 5;

export function renderLeaderAwayScript(meshAddress: string): string {
    return `#!/usr/bin/python3
"""Move etcd's leadership away from this node while it holds the PostgreSQL primary."""
import json, subprocess, time, urllib.request

PATRONI = "http://${meshAddress}:${DB_PORTS.patroni}/primary"
ETCD = ["etcdctl", "--endpoints=http://127.0.0.1:${DB_PORTS.etcdClient}", "--command-timeout=2s", "-w", "json"]

def is_primary():
    try:
        return urllib.request.urlopen(urllib.request.Request(PATRONI, method="OPTIONS"), timeout=2).status == 200
    except Exception:
        return False

def etcd(*args):
    return json.loads(subprocess.run(ETCD + list(args), capture_output=True, text=True, timeout=5, check=True).stdout)

while True:
    time.sleep(${LEADER_AWAY_EVERY_SECONDS})
    try:
        if not is_primary():
            continue
        status = etcd("endpoint", "status")[0]["Status"]
        # "leader" is left out of the JSON while there is none (an election is under way).
        me, leader = status["header"]["member_id"], status.get("leader")
        if me != leader:
            continue
        others = [m for m in etcd("member", "list")["members"] if m["ID"] != me and m.get("clientURLs") and not m.get("isLearner")]
        if others:
            target = "%x" % others[0]["ID"]
            subprocess.run(ETCD[:3] + ["move-leader", target], capture_output=True, timeout=10)
            print("moved the etcd leader to %s (%s): this node holds the PostgreSQL primary" % (others[0].get("name"), target), flush=True)
    except Exception as e:  # etcd or Patroni busy or restarting: look again next time
        print("leader check skipped: %s" % e, flush=True)
`;
}

export function leaderAwayPart(meshAddress: string): CloudConfigPart {
    return {
        files: [
            { path: LEADER_AWAY_SCRIPT, content: renderLeaderAwayScript(meshAddress), permissions: "0755" },
            {
                path: `/etc/systemd/system/${LEADER_AWAY_UNIT}`,
                content: renderUnit({
                    Unit: { Description: "Keep the etcd leader off the PostgreSQL primary", After: [ETCD_UNIT, PATRONI_UNIT] },
                    Service: { Type: "simple", User: "etcd", ExecStart: LEADER_AWAY_SCRIPT, Restart: "always", RestartSec: "5s" },
                    Install: { WantedBy: "multi-user.target" },
                }),
            },
        ],
        commands: [["systemctl", "enable", "--now", LEADER_AWAY_UNIT]],
    };
}
