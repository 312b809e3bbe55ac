"""A member that stops voting leaves etcd's member list: only once every voter the stack names is a
started member, through whichever voter answers, forgetting its etcd data; a member already gone
has nothing to do. etcd's JSON gateway is played by a small HTTP server that keeps a member list."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vpsha import etcd_leave


class Gateway:
    """Members as etcd lists them; records each request's path."""

    def __init__(self, members):
        self.members = members
        self.paths = []
        # How many member removals answer 503 first (etcd not answering in time).
        self.fail_removes = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.paths.append(self.path)
                if self.path == "/v3/cluster/member/remove" and gateway.fail_removes > 0:
                    gateway.fail_removes -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == "/v3/cluster/member/remove":
                    gateway.members = [m for m in gateway.members if m["ID"] != body["ID"]]
                out = json.dumps({"members": gateway.members}).encode()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gateway():
    g = Gateway([])
    yield g
    g.server.shutdown()


def member(id_, name, url, started=True):
    return {"ID": id_, "name": name if started else "", "peerURLs": [url.replace(":2379", ":2380")],
            "clientURLs": [url] if started else []}


def args(tmp_path, voters, wait=10):
    data = tmp_path / "vps-ha"
    # Stands in for systemctl: records its calls; is-active says what the file "state" holds.
    (tmp_path / "state").write_text("active\n")
    tool = tmp_path / "systemctl"
    tool.write_text('#!/bin/sh\necho "$@" >> %s/calls\n[ "$1" = stop ] && echo inactive > %s/state\n'
                    '[ "$1" = is-active ] && cat %s/state\nexit 0\n' % (tmp_path, tmp_path, tmp_path))
    tool.chmod(0o755)
    data.mkdir()
    (data / "member").mkdir()
    state = tmp_path / "vps-ha.cluster.env"
    state.write_text("ETCD_INITIAL_CLUSTER_STATE=existing\n")
    return {"name": "db-2", "peer_url": "https://10.0.0.2:2380", "voters": voters, "unit": "vps-ha-etcd.service",
            "data_dir": str(data), "wait": wait}


def systemctl(tmp_path):
    return (str(tmp_path / "systemctl"),)


def calls(tmp_path):
    p = tmp_path / "calls"
    return p.read_text().splitlines() if p.exists() else []


def test_it_leaves_once_every_voter_is_started_and_forgets_its_data(gateway, tmp_path, clock):
    # The gateway is db-1's etcd (a voter); the witness, also a voter, has been added but not started.
    w = "https://10.0.0.9:2379"
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", "https://10.0.0.2:2379"),
                       member("9", "witness-1", w, started=False)]
    a = args(tmp_path, [gateway.url, w])
    turns = []

    def sleep(s):
        turns.append(s)
        if len(turns) == 2:
            gateway.members[2] = member("9", "witness-1", w)
        clock.sleep(s)
    etcd_leave.leave(a, None, sleep=sleep, now=clock, systemctl=systemctl(tmp_path))
    assert [m["name"] for m in gateway.members] == ["db-1", "witness-1"]
    # Its etcd ran while it waited, and stopped right before the removal.
    assert calls(tmp_path) == ["stop vps-ha-etcd.service", "is-active vps-ha-etcd.service"]
    assert gateway.paths.count("/v3/cluster/member/remove") == 1 and len(turns) == 2
    assert not (tmp_path / "vps-ha").exists() and not (tmp_path / "vps-ha.cluster.env").exists()


def test_a_removal_that_is_not_answered_is_asked_again_until_the_member_is_gone(gateway, tmp_path, clock):
    # etcd elects a leader just then (the stopped member led): its first answer is an error.
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", "https://10.0.0.2:2379")]
    gateway.fail_removes = 2
    etcd_leave.leave(args(tmp_path, [gateway.url]), None, sleep=clock.sleep, now=clock, systemctl=systemctl(tmp_path))
    assert [m["name"] for m in gateway.members] == ["db-1"]
    assert gateway.paths.count("/v3/cluster/member/remove") == 3 and clock.now == 4.0
    # Asked to remove a member that is gone (an answer lost on the way): done, nothing asked.
    assert not (tmp_path / "vps-ha").exists()


def test_a_removal_never_answered_fails_at_the_bound(gateway, tmp_path, clock, capsys):
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", "https://10.0.0.2:2379")]
    gateway.fail_removes = 100
    with pytest.raises(etcd_leave.Failed, match="db-2 is stopped but still an etcd member after 10 s"):
        etcd_leave.leave(args(tmp_path, [gateway.url]), None, sleep=clock.sleep, now=clock,
                         systemctl=systemctl(tmp_path))
    assert ["db-1", "db-2"] == [m["name"] for m in gateway.members]
    assert "asking again" in capsys.readouterr().err


def test_a_voter_that_never_starts_keeps_the_member_and_fails_at_the_bound(gateway, tmp_path, clock):
    w = "https://10.0.0.9:2379"
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", "https://10.0.0.2:2379"),
                       member("9", "witness-1", w, started=False)]
    with pytest.raises(etcd_leave.Failed, match=r"the voters https://10.0.0.9:2379 are not started members after 10 s"):
        a = args(tmp_path, [gateway.url, w])
        etcd_leave.leave(a, None, sleep=clock.sleep, now=clock, systemctl=systemctl(tmp_path))
    assert len(gateway.members) == 3 and "/v3/cluster/member/remove" not in gateway.paths
    # Its etcd still runs: the cluster kept every voter it had.
    assert calls(tmp_path) == []
    # Its data stays: the rollback starts its etcd again.
    assert (tmp_path / "vps-ha" / "member").exists()


def test_a_member_no_longer_listed_only_forgets_its_data(gateway, tmp_path):
    gateway.members = [member("1", "db-1", gateway.url)]
    etcd_leave.leave(args(tmp_path, [gateway.url]), None, sleep=lambda s: None, systemctl=systemctl(tmp_path))
    assert gateway.paths == ["/v3/cluster/member/list"] and not (tmp_path / "vps-ha").exists()


def test_an_etcd_that_does_not_stop_is_not_removed(gateway, tmp_path):
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", "https://10.0.0.2:2379")]
    a = args(tmp_path, [gateway.url])
    # A stop that leaves it running (a stuck unit).
    (tmp_path / "systemctl").write_text('#!/bin/sh\necho active\n')
    with pytest.raises(etcd_leave.Failed, match="vps-ha-etcd.service is still active after a stop"):
        etcd_leave.leave(a, None, sleep=lambda s: None, systemctl=systemctl(tmp_path))
    assert len(gateway.members) == 2


def test_it_asks_the_next_voter_when_one_does_not_answer(gateway, tmp_path):
    gateway.members = [member("1", "db-1", gateway.url), member("2", "db-2", "https://10.0.0.2:2379")]
    members, via = etcd_leave.member_list(["http://127.0.0.1:9", gateway.url], None)
    assert via == gateway.url and len(members) == 2
    with pytest.raises(etcd_leave.Failed, match="no voter answered the member list"):
        etcd_leave.member_list(["http://127.0.0.1:9"], None)


def test_the_arguments_are_checked(capsys):
    good = ["--name", "db-2", "--peer-url", "https://10.0.0.2:2380", "--voters", "https://a:2379,https://b:2379",
            "--unit", "vps-ha-etcd.service", "--data-dir", "/var/lib/etcd/vps-ha", "--wait", "90",
            "--cacert", "ca", "--cert", "c", "--key", "k"]
    a, files = etcd_leave.parse(good)
    assert a["voters"] == ["https://a:2379", "https://b:2379"] and a["wait"] == 90 and files == ("ca", "c", "k")
    assert a["unit"] == "vps-ha-etcd.service"
    assert etcd_leave.main(good[:-2]) == 2
    assert etcd_leave.main([x if x != "90" else "soon" for x in good]) == 2
    assert "usage: vps-ha-etcd-leave" in capsys.readouterr().err
