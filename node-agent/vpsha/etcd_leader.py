"""vps-ha: move etcd's leadership away from this node while it holds the PostgreSQL primary.

On every database member that votes in etcd (components/render/etcd-leader.ts says why: a new
etcd leader renews every lease for a full TTL, so a primary that dies together with the etcd
leader keeps its leader key that much longer). Every few seconds it asks Patroni whether this
node is primary and etcd whether this node leads; when both, it hands etcd's leadership to
another voting member.

usage: vps-ha-etcd-leader-away --patroni URL --etcd URL --cacert FILE --cert FILE --key FILE --every SECONDS
"""
import json
import subprocess
import sys
import time
import urllib.request

from vpsha import etcd_tls


def is_primary(patroni):
    try:
        return urllib.request.urlopen(urllib.request.Request(patroni, method="OPTIONS"), timeout=2).status == 200
    except Exception:
        return False


def etcd(command, *args):
    done = subprocess.run(command + list(args), capture_output=True, text=True, timeout=5, check=True)
    return json.loads(done.stdout)


def leads(status):
    """Does this node lead etcd, per its `endpoint status`?"""
    # "leader" is left out of the JSON while there is none (an election is under way).
    return status["header"]["member_id"] == status.get("leader")


def successor(me, members):
    """The voting member to hand the leadership to (`members`: etcd's member list), or None."""
    others = [m for m in members if m["ID"] != me and m.get("clientURLs") and not m.get("isLearner")]
    return others[0] if others else None


def etcdctl_command(endpoint, files):
    """etcdctl against `endpoint` with this node's certificate, JSON out."""
    return ["etcdctl", "--endpoints=" + endpoint, "--command-timeout=2s", *etcd_tls.etcdctl_flags(files), "-w", "json"]


def main(argv):
    try:
        argv, files = etcd_tls.split_args(argv)
    except ValueError:
        argv = []
    if len(argv) != 6 or argv[0::2] != ["--patroni", "--etcd", "--every"] or not argv[5].isdigit():
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    patroni, every = argv[1], int(argv[5])
    command = etcdctl_command(argv[3], files)
    while True:
        time.sleep(every)
        try:
            if not is_primary(patroni):
                continue
            status = etcd(command, "endpoint", "status")[0]["Status"]
            if not leads(status):
                continue
            target = successor(status["header"]["member_id"], etcd(command, "member", "list")["members"])
            if target:
                subprocess.run(command[:-2] + ["move-leader", "%x" % target["ID"]], capture_output=True, timeout=10)
                print("moved the etcd leader to %s (%x): this node holds the PostgreSQL primary"
                      % (target.get("name"), target["ID"]), flush=True)
        # etcd or Patroni busy or restarting: look again next time
        except Exception as e:
            print("leader check skipped: %s" % e, flush=True)
