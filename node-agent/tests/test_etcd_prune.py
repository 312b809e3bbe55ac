"""A voter takes out of etcd's member list the members the stack no longer has: only once every voter
the stack names is a started member, never a member the stack names (voting or not) nor one joining
at a voter's peer URL. etcd's JSON gateway is the fake of test_etcd_leave, then a real etcd."""

import json
import urllib.request

import pytest
from etcd_server import tls_of
from test_etcd_leave import Gateway, member

from vpsha import etcd_prune


@pytest.fixture
def gateway():
    g = Gateway([])
    yield g
    g.server.shutdown()


def args(voters, keep, voter_peers=None, wait=10):
    peers = voter_peers if voter_peers is not None else [v.replace(":2379", ":2380") for v in voters]
    return {"voters": voters, "voter_peers": peers, "keep": keep, "wait": wait}


def test_it_removes_a_member_the_stack_no_longer_has_before_the_member_that_votes_again_joins(gateway, clock):
    # The witness left the stack file (cut off the mesh already); db-2, which did not vote beside it,
    # votes again but joins in its own turn, after this one: etcd would refuse its join while it
    # still counts the witness, and the members that stay (db-1, db-3) are both started.
    v2, v3 = "https://10.0.0.2:2379", "https://10.0.0.3:2379"
    gateway.members = [member("1", "db-1", gateway.url), member("3", "db-3", v3),
                       member("9", "witness-1", "https://10.0.0.9:2379")]
    a = args([gateway.url, v2, v3], ["db-1", "db-2", "db-3"])
    removed = etcd_prune.prune(a, None, sleep=clock.sleep, now=clock)
    assert removed == ["witness-1"]
    assert [m["name"] for m in gateway.members] == ["db-1", "db-3"]


def test_it_leaves_the_pruning_to_a_later_turn_while_the_members_that_stay_are_no_started_majority(gateway, clock):
    # Of db-1 and db-2 (just added, not started yet), one is started: no majority of two.
    v2 = "https://10.0.0.2:2379"
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", v2, started=False),
                       member("9", "witness-1", "https://10.0.0.9:2379")]
    assert etcd_prune.prune(args([gateway.url, v2], ["db-1", "db-2"]), None, sleep=clock.sleep, now=clock) == []
    assert "/v3/cluster/member/remove" not in gateway.paths
    assert len(gateway.members) == 3
    # Once db-2 runs, its own turn removes the witness.
    gateway.members[1] = member("2", "db-2", v2)
    removed = etcd_prune.prune(args([gateway.url, v2], ["db-1", "db-2"]), None, sleep=clock.sleep, now=clock)
    assert removed == ["witness-1"]


def test_it_keeps_every_member_the_stack_names_and_one_joining_at_a_voter_peer_url(gateway, clock):
    # db-2 no longer votes but is still a member of the stack (it leaves by itself); the witness is
    # being added (no name yet); a member added at an address no voter has is a stranger.
    w = "https://10.0.0.9:2379"
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", "https://10.0.0.2:2379"),
                       member("9", "witness-1", w, started=False),
                       member("7", "x", "https://10.0.0.7:2379", started=False)]
    peers = ["https://10.0.0.1:2380", w.replace(":2379", ":2380")]
    a = args([gateway.url], ["db-1", "db-2", "witness-1"], peers)
    removed = etcd_prune.prune(a, None, sleep=clock.sleep, now=clock)
    assert removed == ["an unstarted member at https://10.0.0.7:2380"]
    assert [m["ID"] for m in gateway.members] == ["1", "2", "9"]


def test_it_asks_again_when_etcd_does_not_answer_the_removal(gateway, clock):
    # etcd does not answer the first removals in time (the cluster just lost the witness to the mesh).
    gateway.members = [member("1", "db-1", gateway.url), member("9", "witness-1", "https://10.0.0.9:2379")]
    gateway.fail_removes = 2
    assert etcd_prune.prune(args([gateway.url], ["db-1"]), None, sleep=clock.sleep, now=clock) == ["witness-1"]
    assert gateway.paths.count("/v3/cluster/member/remove") == 3
    assert [m["name"] for m in gateway.members] == ["db-1"]


def test_nothing_to_prune_asks_once_and_removes_nothing(gateway, clock):
    gateway.members = [member("1", "db-1", gateway.url)]
    assert etcd_prune.prune(args([gateway.url], ["db-1"]), None, sleep=clock.sleep, now=clock) == []
    assert gateway.paths == ["/v3/cluster/member/list"]


def test_it_fails_when_no_voter_answers_within_its_wait(clock):
    with pytest.raises(etcd_prune.Failed, match="no voter answered the member list"):
        etcd_prune.prune(args(["http://127.0.0.1:1"], ["db-1"], wait=6), None, sleep=clock.sleep, now=clock)
    assert clock.now >= 6


def test_arguments_are_checked():
    assert etcd_prune.main(["--voters", "x"]) == 2
    tls = ["--cacert", "a", "--cert", "b", "--key", "c"]
    assert etcd_prune.main(["--voters", "", "--voter-peers", "p", "--keep", "db-1", "--wait", "5", *tls]) == 2
    assert etcd_prune.main(["--voters", "u", "--voter-peers", "p", "--keep", "", "--wait", "5", *tls]) == 2
    assert etcd_prune.main(["--voters", "u", "--voter-peers", "p", "--keep", "db-1", "--wait", "soon", *tls]) == 2


def gateway_call(url, path, body, files):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5, context=tls_of(files)) as r:
        return json.load(r)


@pytest.mark.daemons
def test_a_real_etcd_loses_a_stranger_and_keeps_its_voter(etcd_urls, etcd_pki):
    client, peer = etcd_urls
    # A learner at an address no voter has (the way a failed join leaves one): it does not count
    # toward the quorum, so a one-member cluster takes it.
    gateway_call(client, "/v3/cluster/member/add", {"peerURLs": ["https://127.0.0.1:9"], "isLearner": True}, etcd_pki)
    assert len(gateway_call(client, "/v3/cluster/member/list", {}, etcd_pki)["members"]) == 2
    files = ["--cacert", etcd_pki["cacert"], "--cert", etcd_pki["cert"], "--key", etcd_pki["key"]]
    # The member the stack names stays: only the stranger goes.
    assert etcd_prune.main(["--voters", client, "--voter-peers", peer, "--keep", "t", "--wait", "5", *files]) == 0
    left = gateway_call(client, "/v3/cluster/member/list", {}, etcd_pki)["members"]
    assert [m["name"] for m in left] == ["t"]
