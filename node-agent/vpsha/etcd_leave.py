"""vps-ha etcd leave: a database member that no longer votes in etcd takes itself out of its membership.

When members plus witness would be even, one member of the provider holding the most members does
not vote (components/plan.ts, etcdVoters): a stack that gains a witness turns a voting member into
such a one. Its desired state then drops its etcd (the applier removes those files last), and
this tool, run once in that member's rollout turn, removes it from etcd's member list: otherwise
the cluster would count a member that never answers again, and one more voter lost would cost the
quorum. It leaves only once every voter the stack names is a started member (the witness has
joined), so the cluster never has fewer voters than the stack wants; within --wait seconds, or it
fails and the rollout halts there. Its own etcd runs meanwhile (one voter more, never one fewer)
and stops right before the removal (its unit would otherwise add the member back); the removal is
asked again, within --wait seconds more, until the member is no longer listed. Its etcd data is
removed, so it joins anew if it votes again.

Exit: 0 left, or was no member; 1 failed; 2 usage.

usage: vps-ha-etcd-leave --name N --peer-url U --voters U,.. --unit U --data-dir D --wait S --cacert F --cert F --key F
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

from vpsha import etcd_tls

OPTIONS = ("--name", "--peer-url", "--voters", "--unit", "--data-dir", "--wait")
ASK_TIMEOUT = 5


class Failed(Exception):
    """The member cannot leave now; the message says why."""


def log(message):
    print("etcd-leave: %s" % message, file=sys.stderr, flush=True)


def gateway(url, path, body, ctx):
    """etcd's JSON gateway (v3 API over HTTPS with this node's certificate)."""
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=ASK_TIMEOUT, context=ctx) as r:
        return json.load(r)


def member_list(voters, ctx):
    """(members, the voter that answered); etcd answers a member list only with a quorum."""
    last = None
    for url in voters:
        try:
            return gateway(url, "/v3/cluster/member/list", {}, ctx).get("members", []), url
        except (OSError, ValueError) as err:
            last = "%s: %s" % (url, err)
    raise Failed("no voter answered the member list (%s)" % last)


def is_me(member, name, peer_url):
    return member.get("name") == name or peer_url in member.get("peerURLs", [])


def not_started(members, voters):
    """The voters (client URLs) that are not yet a started member: one that never ran has no client URLs."""
    started = {u for m in members if m.get("name") and m.get("clientURLs") for u in m["clientURLs"]}
    return [v for v in voters if v not in started]


def forget_data(data_dir):
    """The data directory, and the join script's state file beside it (<data dir>.cluster.env)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    try:
        os.unlink(data_dir.rstrip("/") + ".cluster.env")
    except FileNotFoundError:
        pass


def stop(unit, systemctl):
    """Stops this member's etcd; fails unless it is then inactive (or not there at all)."""
    subprocess.run(systemctl + ["stop", unit], capture_output=True, timeout=120)
    state = subprocess.run(systemctl + ["is-active", unit], capture_output=True, text=True, timeout=30).stdout.strip()
    if state in ("active", "activating", "deactivating", "reloading"):
        raise Failed("%s is still %s after a stop" % (unit, state))


def remove(args, ctx, member_id, sleep, now):
    """
    Asks the voters to remove this member until one has (it is no longer listed), for at most
    --wait seconds: etcd may be electing a leader just then (this member's own etcd, stopped
    first, may have led), and a removal that answered too late may have happened all the same.
    """
    deadline = now() + args["wait"]
    while True:
        try:
            members, via = member_list(args["voters"], ctx)
            if not any(is_me(m, args["name"], args["peer_url"]) for m in members):
                return
            gateway(via, "/v3/cluster/member/remove", {"ID": member_id}, ctx)
            return
        except (Failed, OSError, ValueError) as err:
            if now() >= deadline:
                raise Failed("%s is stopped but still an etcd member after %d s: %s"
                             % (args["name"], args["wait"], err)) from err
            log("removing %s from etcd's members: %s; asking again" % (args["name"], err))
        sleep(2)


def leave(args, ctx, sleep=time.sleep, now=time.time, systemctl=("systemctl",)):
    deadline = now() + args["wait"]
    while True:
        members, via = member_list(args["voters"], ctx)
        mine = [m for m in members if is_me(m, args["name"], args["peer_url"])]
        if not mine:
            forget_data(args["data_dir"])
            log("%s is no etcd member: nothing to leave" % args["name"])
            return
        missing = not_started(members, args["voters"])
        if not missing:
            stop(args["unit"], list(systemctl))
            remove(args, ctx, mine[0]["ID"], sleep, now)
            forget_data(args["data_dir"])
            log("%s left etcd; the voters are %s" % (args["name"], ", ".join(args["voters"])))
            return
        if now() >= deadline:
            raise Failed("not leaving: the voters %s are not started members after %d s"
                         % (", ".join(missing), args["wait"]))
        sleep(2)


def parse(argv):
    args, files = etcd_tls.parse_options(argv, OPTIONS)
    args["voters"] = [v for v in args["voters"].split(",") if v]
    args["wait"] = int(args["wait"])
    if not args["voters"]:
        raise ValueError("no voters")
    return args, files


def main(argv):
    return etcd_tls.tool_main(argv, __doc__, parse, leave, log, (Failed, subprocess.SubprocessError))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
