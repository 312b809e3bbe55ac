"""vps-ha etcd prune: a voter takes members the stack no longer has out of etcd's member list.

A witness or member removed from the stack file is deleted with its server (and cut off the mesh
as soon as the directory drops it), but etcd would go on counting it: one more voter lost would
then cost the quorum, and etcd refuses to add a member (a member that votes again) while too few
of the counted ones answer. Each voter runs this once in its rollout turn when the stack's members
change (before its own etcd restarts; it asks the voters): it removes every member whose name the
stack does not have (an unnamed one, added but never started, unless its peer URL is a voter's),
provided the members that stay, as far as started, are a majority of those that stay; otherwise it
leaves the pruning to a later turn. A member the stack still names but that no longer votes leaves
by itself (etcd_leave). Asks for --wait seconds at most.

Exit: 0 pruned, nothing to prune, or left to a later turn; 1 failed; 2 usage.

usage: vps-ha-etcd-prune --voters U,.. --voter-peers U,.. --keep N,.. --wait S --cacert F --cert F --key F
"""
import sys
import time

from vpsha import etcd_tls
from vpsha.etcd_leave import Failed, gateway, member_list

OPTIONS = ("--voters", "--voter-peers", "--keep", "--wait")


def log(message):
    print("etcd-prune: %s" % message, file=sys.stderr, flush=True)


def wanted(member, keep, voter_peers):
    """The stack's: a member it names, or one added but not yet started at a voter's peer URL."""
    name = member.get("name")
    if name:
        return name in keep
    return any(u in voter_peers for u in member.get("peerURLs", []))


def label(member):
    if member.get("name"):
        return member["name"]
    return "an unstarted member at %s" % (",".join(member.get("peerURLs", [])) or member.get("ID"))


def prune(args, ctx, sleep=time.sleep, now=time.time):
    """
    The members removed (their labels); empty when there were none or it is not time yet. Asks
    again within --wait when etcd does not answer in time: the cluster has just lost a member to
    the mesh (it may have led), and one removal in the lab took longer than an ask.
    """
    deadline = now() + args["wait"]
    while True:
        try:
            return prune_once(args, ctx)
        except (Failed, OSError) as err:
            if now() >= deadline:
                raise Failed(str(err)) from err
            log("asking again: %s" % err)
            sleep(2)


def prune_once(args, ctx):
    members, via = member_list(args["voters"], ctx)
    strangers = [m for m in members if not wanted(m, args["keep"], args["voter_peers"])]
    if not strangers:
        log("every etcd member is one the stack has")
        return []
    stay = [m for m in members if m not in strangers]
    started = [m for m in stay if m.get("name") and m.get("clientURLs")]
    if len(started) <= len(stay) // 2:
        log("not removing %s yet: of the %d members that stay, %d are started, no majority; a later turn removes them"
            % (", ".join(label(m) for m in strangers), len(stay), len(started)))
        return []
    for m in strangers:
        gateway(via, "/v3/cluster/member/remove", {"ID": m["ID"]}, ctx)
    removed = [label(m) for m in strangers]
    log("removed %s from etcd through %s; the voters are %s" % (", ".join(removed), via, ", ".join(args["voters"])))
    return removed


def parse(argv):
    args, files = etcd_tls.parse_options(argv, OPTIONS)
    for key in ("voters", "voter_peers", "keep"):
        args[key] = [v for v in args[key].split(",") if v]
    args["wait"] = int(args["wait"])
    if not args["voters"] or not args["keep"]:
        raise ValueError("no voters or no members to keep")
    return args, files


def main(argv):
    return etcd_tls.tool_main(argv, __doc__, parse, prune, log, (Failed,))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
