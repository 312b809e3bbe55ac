// etcd 3.5, one voting member per database node (and the witness): Patroni's store. Listens on
// the node's mesh address (peers, clients) and on loopback (local tools); never on 0.0.0.0.
// Clients and peers speak TLS and must show a certificate from the stack's etcd CA (see
// ETCD_TLS_FILES); only /metrics and /health stay plain http, on their own port.
// The members are static, from the plan; a member rebuilt with an empty disk heals itself
// (see renderEtcdJoinScript).
import { DB_PORTS, MONITORING_PORTS, PlannedNode, StackPlan } from "../plan";
import { maxRttMs } from "../latency";
import { MESH_UNIT } from "./mesh";
import { DIRECTORY_STATUS } from "./directory-agent";
import { renderUnit } from "./systemd";

export const ETCD_UNIT = "vps-ha-etcd.service";
export const ETCD_ENV_FILE = "/etc/vps-ha/etcd.env";
export const ETCD_DATA_DIR = "/var/lib/etcd/vps-ha";
/** Written by the join script before every start; overrides the static initial-cluster settings. */
export const ETCD_CLUSTER_STATE_FILE = `${ETCD_DATA_DIR}.cluster.env`;
export const ETCD_JOIN_SCRIPT = "/usr/local/lib/vps-ha/etcd-join";

/**
 * The etcd CA and this node's certificate and key (server and client alike), on every node that
 * runs etcd or talks to it: etcd, Patroni, the join script and vps-ha's tools all read these.
 */
export const ETCD_TLS_FILES = {
    ca: "/etc/vps-ha/etcd-tls/ca.crt",
    cert: "/etc/vps-ha/etcd-tls/member.crt",
    key: "/etc/vps-ha/etcd-tls/member.key",
} as const;

/**
 * A database member that does not vote: the same CA, and a client certificate and key of its
 * own name, Patroni's (the postgres user's). Other paths than a voter's: a member that stops voting
 * writes these while its etcd still runs on the member files, which go only once it has left.
 */
export const ETCD_CLIENT_TLS_FILES = {
    ca: ETCD_TLS_FILES.ca,
    cert: "/etc/vps-ha/etcd-tls/client.crt",
    key: "/etc/vps-ha/etcd-tls/client.key",
} as const;

/** The etcd certificate files a node's tools and Patroni use: a voter's member files, else its client files. */
export function etcdTlsPaths(node: { etcdVoter: boolean }): { ca: string; cert: string; key: string } {
    return node.etcdVoter ? ETCD_TLS_FILES : ETCD_CLIENT_TLS_FILES;
}

/** etcdctl's flags for ETCD_TLS_FILES. */
export const ETCDCTL_TLS_FLAGS = [`--cacert=${ETCD_TLS_FILES.ca}`, `--cert=${ETCD_TLS_FILES.cert}`, `--key=${ETCD_TLS_FILES.key}`];

export interface EtcdPeer {
    name: string;
    meshAddress: string;
}

export interface EtcdMemberSpec {
    name: string;
    meshAddress: string;
    /** Every voter, this member included, in plan order. */
    voters: EtcdPeer[];
    /** Keeps clusters of different stacks apart even if their members could meet. */
    clusterToken: string;
    heartbeatMs: number;
    electionMs: number;
}

/**
 * etcd's tuning guide: the heartbeat interval should be about the largest round-trip time
 * between members, and the election timeout at least 10 times that; etcd's own defaults
 * (100 ms / 1000 ms) are the floors, since shorter ones only add elections on a busy host.
 * etcd refuses election timeouts above 50 s.
 */
export function etcdTiming(maxRtt: number): { heartbeatMs: number; electionMs: number } {
    const heartbeatMs = Math.max(100, Math.ceil(maxRtt));
    return { heartbeatMs, electionMs: Math.min(50000, Math.max(1000, 10 * heartbeatMs)) };
}

export function etcdVoterPeers(plan: StackPlan): PlannedNode[] {
    return plan.nodes.filter((n) => n.etcdVoter);
}

export function etcdMemberSpec(plan: StackPlan, node: PlannedNode): EtcdMemberSpec {
    const voters = etcdVoterPeers(plan);
    if (!voters.some((v) => v.name === node.name)) throw new Error(`${node.name} is not an etcd voter`);
    return {
        name: node.name,
        meshAddress: node.meshAddress,
        voters: voters.map((v) => ({ name: v.name, meshAddress: v.meshAddress })),
        clusterToken: `vps-ha-${plan.config.stack}`,
        ...etcdTiming(maxRttMs(voters)),
    };
}

export const etcdPeerUrl = (address: string) => `https://${address}:${DB_PORTS.etcdPeer}`;
/** An etcd client URL (TLS, a client certificate required). */
export const etcdClientUrl = (address: string) => `https://${address}:${DB_PORTS.etcdClient}`;
const clientUrl = etcdClientUrl;
/** etcd's plain-http /metrics and /health (no client API) on a member's mesh address. */
export const etcdMetricsUrl = (address: string) => `http://${address}:${MONITORING_PORTS.etcdMetrics}`;

/** The static initial cluster: name=peer URL of every voter. */
export function initialCluster(spec: EtcdMemberSpec): string {
    return spec.voters.map((v) => `${v.name}=${etcdPeerUrl(v.meshAddress)}`).join(",");
}

/** Client endpoints of every voter (what Patroni and etcdctl dial). */
export function etcdClientHosts(voters: EtcdPeer[]): string[] {
    return voters.map((v) => `${v.meshAddress}:${DB_PORTS.etcdClient}`);
}

/** The member's settings as etcd reads them from its environment (ETCD_<FLAG>). */
export function renderEtcdEnv(spec: EtcdMemberSpec): string {
    const lines = [
        `# etcd member ${spec.name} of the vps-ha cluster. Each ETCD_X is etcd's --x flag.`,
        `ETCD_NAME=${spec.name}`,
        `ETCD_DATA_DIR=${ETCD_DATA_DIR}`,
        `ETCD_LISTEN_PEER_URLS=${etcdPeerUrl(spec.meshAddress)}`,
        `ETCD_INITIAL_ADVERTISE_PEER_URLS=${etcdPeerUrl(spec.meshAddress)}`,
        `ETCD_LISTEN_CLIENT_URLS=${clientUrl(spec.meshAddress)},${clientUrl("127.0.0.1")}`,
        `ETCD_ADVERTISE_CLIENT_URLS=${clientUrl(spec.meshAddress)}`,
        "# Every client and every peer shows a certificate from the stack's etcd CA, or the TLS handshake fails.",
        "ETCD_CLIENT_CERT_AUTH=true",
        `ETCD_TRUSTED_CA_FILE=${ETCD_TLS_FILES.ca}`,
        `ETCD_CERT_FILE=${ETCD_TLS_FILES.cert}`,
        `ETCD_KEY_FILE=${ETCD_TLS_FILES.key}`,
        "ETCD_PEER_CLIENT_CERT_AUTH=true",
        `ETCD_PEER_TRUSTED_CA_FILE=${ETCD_TLS_FILES.ca}`,
        `ETCD_PEER_CERT_FILE=${ETCD_TLS_FILES.cert}`,
        `ETCD_PEER_KEY_FILE=${ETCD_TLS_FILES.key}`,
        "# /metrics and /health for the monitoring nodes, apart from the client API (plain http: no keys there).",
        `ETCD_LISTEN_METRICS_URLS=${etcdMetricsUrl(spec.meshAddress)}`,
        "# How a fresh cluster starts; the join script overrides both for a member that rejoins.",
        `ETCD_INITIAL_CLUSTER=${initialCluster(spec)}`,
        "ETCD_INITIAL_CLUSTER_STATE=new",
        `ETCD_INITIAL_CLUSTER_TOKEN=${spec.clusterToken}`,
        "# Sized from the largest expected round trip between the voters' regions (etcdTiming).",
        `ETCD_HEARTBEAT_INTERVAL=${spec.heartbeatMs}`,
        `ETCD_ELECTION_TIMEOUT=${spec.electionMs}`,
        "# --pre-vote: an isolated member does not raise its term and force an election when it heals.",
        "ETCD_PRE_VOTE=true",
        "# Patroni rewrites a few small keys every loop: keep one hour of history, no more.",
        "ETCD_AUTO_COMPACTION_MODE=periodic",
        "ETCD_AUTO_COMPACTION_RETENTION=1h",
        "ETCD_LOG_LEVEL=warn",
    ];
    return lines.join("\n") + "\n";
}

/** How many times the join script asks for the member list while another member holds data, a second apart, before it exits for the unit's restart. */
const JOIN_ASK_ROUNDS = 5;

/**
 * Runs before every start of etcd (ExecStartPre) and decides how this member joins:
 * - data on disk: etcd knows its cluster; the initial-cluster settings are ignored.
 * - empty data dir, no cluster answers, and no other member holds data: start "new" from the
 *   static list. etcd forms the cluster only when a majority of the list does the same, so a new
 *   cluster (etcd's, and PostgreSQL's through Patroni) needs a majority of members with empty
 *   disks; a member alone behind a partition waits without a leader.
 * - empty data dir, no cluster answers, but another member holds data: ask again (a cluster still
 *   forming answers within seconds), then wait (exit 1), never "new".
 *   etcd serves clients only once it has had a leader, but its peer port answers /version at
 *   once: "etcdcluster" is "not_decided" on a member that never had a leader (an empty disk), and
 *   the cluster's version on one that holds data, whose cluster has lost its quorum or is out of
 *   reach: a second cluster must never start beside it. (python3 is on every node: cloud-init's.)
 * - empty data dir, the cluster answers: this member was rebuilt (replaced, resized, moved).
 *   Its old identity, if it ever started, is removed through a surviving member and added back,
 *   and it starts "existing" with the membership the cluster has now. A member that is listed
 *   but never ran (a late first boot) is simply started as "existing".
 * Any failure exits non-zero; the unit restarts and the script runs again.
 */
export function renderEtcdJoinScript(spec: EtcdMemberSpec): string {
    const others = spec.voters.filter((v) => v.name !== spec.name).map((v) => clientUrl(v.meshAddress));
    return `#!/bin/sh
# vps-ha: how etcd member ${spec.name} joins its cluster (ExecStartPre of ${ETCD_UNIT}).
set -u
NAME=${spec.name}
PEER_URL=${etcdPeerUrl(spec.meshAddress)}
DATA_DIR=${ETCD_DATA_DIR}
STATE_FILE=${ETCD_CLUSTER_STATE_FILE}
OTHERS="${others.join(" ")}"
CA=${ETCD_TLS_FILES.ca}
CERT=${ETCD_TLS_FILES.cert}
KEY=${ETCD_TLS_FILES.key}
# The peer port wants this member's certificate too.
DECIDED='import ssl,sys,urllib.request as u;c=ssl.create_default_context(cafile=sys.argv[2]);c.load_cert_chain(sys.argv[3],sys.argv[4]);sys.exit(b"not_decided" in u.urlopen(sys.argv[1],timeout=3,context=c).read())'
DIRECTORY_STATUS=${DIRECTORY_STATUS}

say() { echo "etcd-join: $*"; }
ctl() { etcdctl --dial-timeout=2s --command-timeout=3s --cacert="$CA" --cert="$CERT" --key="$KEY" --endpoints="$endpoint" "$@"; }
write_state() {
  { echo "ETCD_INITIAL_CLUSTER_STATE=$1"; [ -z "\${2:-}" ] || echo "ETCD_INITIAL_CLUSTER=$2"; } > "$STATE_FILE.tmp" && mv "$STATE_FILE.tmp" "$STATE_FILE"
}

if [ -d "$DATA_DIR/member" ]; then
  say "data present in $DATA_DIR: etcd rejoins with the membership it has on disk"
  exit 0
fi

# The other members are reachable only once the directory agent has put them on the mesh. Until
# it has, silence would mean nothing: a rebuilt member whose first directory read failed must not
# take it for a fresh cluster and start a new one under its old name (it would never rejoin).
i=0
until grep -Eq '"source": *"(dns|cache)"' "$DIRECTORY_STATUS" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 40 ]; then
    say "the directory agent has not put the other members on the mesh yet ($DIRECTORY_STATUS); trying again later"
    exit 1
  fi
  sleep 0.5
done

# member list needs a quorum: while a fresh cluster is still forming, nobody answers it. The
# others are asked at once, so a first boot waits one timeout, not one per member. A member that
# holds data has a cluster, perhaps one just forming without this member (its first boot came
# late): asked again a few times here before the unit's slower restart.
answers=$(mktemp -d) || exit 1
trap 'rm -rf "$answers"' EXIT
round=0
while :; do
  round=$((round + 1))
  i=0
  for candidate in $OTHERS; do
    i=$((i + 1))
    ( endpoint=$candidate; ctl member list > /dev/null 2>&1 && echo "$candidate" > "$answers/$i" ) &
  done
  wait
  endpoint=$(cat "$answers"/* 2>/dev/null | head -n 1)
  [ -z "$endpoint" ] || break
  holder=""
  for peer in $OTHERS; do
    peer=\${peer%:*}:${DB_PORTS.etcdPeer}
    if python3 -c "$DECIDED" "$peer/version" "$CA" "$CERT" "$KEY" 2> /dev/null; then
      holder=$peer
      break
    fi
  done
  if [ -z "$holder" ]; then
    say "starting a new cluster from the static member list"
    write_state new
    exit 0
  fi
  if [ "$round" -ge ${JOIN_ASK_ROUNDS} ]; then
    say "$holder holds data: waiting"
    exit 1
  fi
  sleep 1
done

# etcdctl's simple format: ID, status, name, peer URLs, client URLs, is learner. A member that
# has ever run published its client URLs; one from the static list that never ran has none
# (its status says "started" all the same, since the static list gave it a name).
mine=$(ctl member list | awk -F', ' -v url="$PEER_URL" '$4 == url { print $1, ($5 == "" ? "never-ran" : "has-run") }')
id=\${mine%% *}
if [ -n "$mine" ] && [ "\${mine#* }" = has-run ]; then
  say "the cluster still lists this member ($id) but its data is gone: removing it through $endpoint"
  ctl member remove "$id" || exit 1
  mine=""
fi
if [ -z "$mine" ]; then
  say "adding this member through $endpoint"
  ctl member add "$NAME" --peer-urls="$PEER_URL" > /dev/null || exit 1
fi
# The membership as the cluster has it now (members that never started have no name yet).
cluster=$(ctl member list | awk -F', ' -v me="$NAME" -v url="$PEER_URL" '
  { name = ($4 == url) ? me : ($3 == "" ? "unstarted-" $1 : $3)
    n = split($4, urls, ",")
    for (i = 1; i <= n; i++) { printf "%s%s=%s", (count++ ? "," : ""), name, urls[i] } }')
[ -n "$cluster" ] || exit 1
say "joining the existing cluster: $cluster"
write_state existing "$cluster"
`;
}

export function renderEtcdUnit(): string {
    return renderUnit({
        Unit: {
            Description: "etcd member of the vps-ha cluster (Patroni's store)",
            After: `network-online.target ${MESH_UNIT}`,
            Wants: "network-online.target",
        },
        Service: {
            Type: "simple",
            User: "etcd",
            Group: "etcd",
            // Later files win: the join script's decision overrides the static defaults.
            EnvironmentFile: [ETCD_ENV_FILE, `-${ETCD_CLUSTER_STATE_FILE}`],
            ExecStartPre: ETCD_JOIN_SCRIPT,
            ExecStart: "/usr/bin/etcd",
            Restart: "always",
            RestartSec: "5s",
        },
        Install: { WantedBy: "multi-user.target" },
    });
}
