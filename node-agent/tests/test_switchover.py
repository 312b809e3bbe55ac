import json
import os
import types

import pytest

from vpsha import switchover
from vpsha.switchover import choose, servers_up


def member(name, role="replica", state="streaming"):
    return {"name": name, "role": role, "state": state, "api_url": "http://%s:8008/patroni" % name}


class TestChoose:
    def test_no_primary_no_switchover(self):
        assert choose([member("db-1"), member("db-2")], None) == (None, [], [])

    def test_the_synchronous_standbys_first(self):
        members = [member("db-1", "leader", "running"), member("db-2", "quorum_standby"), member("db-3")]
        leader, ready, pick = choose(members, None)
        assert leader["name"] == "db-1"
        assert [m["name"] for m in ready] == ["db-2", "db-3"]
        assert [m["name"] for m in pick] == ["db-2"]

    def test_any_streaming_replica_when_none_is_synchronous(self):
        members = [member("db-1", "primary", "running"), member("db-2"), member("db-3", state="starting")]
        _, ready, pick = choose(members, None)
        assert [m["name"] for m in ready] == [m["name"] for m in pick] == ["db-2"]

    def test_a_named_candidate_only_if_it_streams(self):
        members = [member("db-1", "leader", "running"), member("db-2", "sync_standby"), member("db-3", state="stopped")]
        assert [m["name"] for m in choose(members, "db-2")[2]] == ["db-2"]
        assert choose(members, "db-3")[2] == []
        assert choose(members, "db-9")[2] == []


def stats_row(listen, server, status):
    fields = [listen, server] + [""] * 15 + [status] + [""] * 5
    return ",".join(fields)


def test_the_servers_haproxy_has_up_in_the_primary_listen():
    rows = [
        "# pxname,svname,...",
        stats_row("db-primary", "FRONTEND", "OPEN"),
        stats_row("db-primary", "db-1", "DOWN"),
        stats_row("db-primary", "db-2", "UP"),
        stats_row("db-primary", "db-3", "UP 1/3"),
        stats_row("db-replicas", "db-1", "UP"),
        stats_row("db-primary", "BACKEND", "UP"),
        "short,row",
    ]
    assert servers_up(rows, "db-primary") == ["db-2", "db-3"]
    assert servers_up(rows, "db-replicas") == ["db-1"]


def test_the_poolers_from_the_directory_cache(signer, write_json):
    nodes = [("lb-1", "haproxy", "10.77.0.47"), ("lb-2", "haproxy", "10.77.0.48"), ("db-1", "db", "10.77.0.5")]
    texts = {n: signer.node(n, role=r, mesh=m)[1] for n, r, m in nodes}
    cache = write_json("cache.json", {"index": [], "members": texts, "release": None})
    assert switchover.poolers({"directoryCache": cache}) == {"lb-1": "10.77.0.47", "lb-2": "10.77.0.48"}
    # No cache (the agent has not verified a directory yet): no pooler, and the tool says so.
    assert switchover.poolers({"directoryCache": cache + ".missing"}) == {}


class TestBeforeStop:
    """Patroni's before_stop hook pauses the poolers only for a live switchover's request."""

    def test_a_stop_nobody_asked_for_pauses_nothing(self, tmp_path):
        assert switchover.before_stop(str(tmp_path)) == 0
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize("stale", [{"pid": 2 ** 22 + 12345}, {"deadline": 0}])
    def test_a_stale_request_pauses_nothing(self, tmp_path, stale, capsys):
        ask = {"pid": os.getpid(), "deadline": 2 ** 40, "pools": {"lb-1": "192.0.2.1"}, **stale}
        (tmp_path / "request.json").write_text(json.dumps(ask))
        assert switchover.before_stop(str(tmp_path)) == 0
        # The hook took the request (no second hook acts on it) and answered nothing.
        assert sorted(os.listdir(tmp_path)) == ["claimed.json"]
        assert "stale" in capsys.readouterr().out


def test_alive():
    assert switchover.alive(os.getpid())
    assert not switchover.alive(2 ** 22 + 12345)


def test_write_json_is_private_and_read_json_forgives(tmp_path):
    path = str(tmp_path / "x.json")
    switchover.write_json(path, {"a": 1})
    assert switchover.read_json(path) == {"a": 1}
    assert os.stat(path).st_mode & 0o777 == 0o600
    (tmp_path / "bad.json").write_text("{")
    assert switchover.read_json(str(tmp_path / "bad.json")) is None
    assert switchover.read_json(str(tmp_path / "none.json")) is None


def test_a_bad_argument_prints_the_usage_line(capsys):
    assert switchover.main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("usage: vps-ha-switchover ")



def test_a_pooler_without_the_new_admin_password_yet_is_asked_with_the_one_before():
    tried = []

    def connect(**kw):
        tried.append(kw["password"])
        if kw["password"] != "old":
            raise switchover.psycopg2.OperationalError('FATAL:  password authentication failed for user "x"')
        return types.SimpleNamespace(autocommit=False)

    cfg = {"poolerPort": 6432, "poolerAdminUser": "vps_ha_admin", "poolerAdminPassword": "new",
           "previousPoolerAdminPassword": "old"}
    assert switchover.session(cfg, "10.0.0.5", connect).autocommit is True
    assert tried == ["new", "old"]
    # Without a rotation, or for another failure, nothing else is tried.
    tried.clear()
    with pytest.raises(switchover.psycopg2.OperationalError):
        switchover.session({**cfg, "previousPoolerAdminPassword": None}, "10.0.0.5", connect)
    assert tried == ["new"]

    def unreachable(**kw):
        tried.append(kw["password"])
        raise switchover.psycopg2.OperationalError("connection refused")

    tried.clear()
    with pytest.raises(switchover.psycopg2.OperationalError):
        switchover.session(cfg, "10.0.0.5", unreachable)
    assert tried == ["new"]


class TestIfLeader:
    """--if-leader (a member's shutdown): a switchover only from the primary's own node, else exit 0 at once."""

    HERE = "http://10.77.0.5:8008"

    @pytest.fixture
    def run(self, write_json, monkeypatch):
        cfg = write_json("switchover.json", {"patroniUrl": self.HERE, "restUser": "patroni", "restPassword": "pw",
                                             "directoryCache": "/nonexistent/cache.json"})
        asked = []

        def start(answer):
            def patroni(cfg, url, method="GET", body=None, timeout=5):
                asked.append((method, url))
                return answer
            monkeypatch.setattr(switchover, "patroni", patroni)
            # Past the checks, the normal switchover goes on: here it finds no pooler and stops.
            monkeypatch.setattr(switchover, "poolers", lambda cfg: {})
            return switchover.main(["--config", cfg, "--if-leader"])
        start.asked = asked
        return start

    def cluster(self, *members):
        return 200, json.dumps({"members": list(members)})

    def here(self, role="leader", state="running"):
        return {**member("db-1", role, state), "api_url": self.HERE + "/patroni"}

    def test_patroni_not_answering_holds_no_shutdown_up(self, run, capsys):
        assert run((None, "connection refused")) == 0
        assert capsys.readouterr().out == ("vps-ha-switchover: Patroni did not answer /cluster: "
                                           "None connection refused; nothing to hand over\n")
        assert run.asked == [("GET", self.HERE + "/cluster")]

    def test_a_replica_hands_nothing_over(self, run, capsys):
        assert run(self.cluster(self.here("replica", "streaming"), member("db-2", "leader", "running"))) == 0
        assert capsys.readouterr().out == ("vps-ha-switchover: this member is not the primary (db-2 is); "
                                           "nothing to hand over\n")
        assert run.asked == [("GET", self.HERE + "/cluster")]

    def test_no_primary_at_all_hands_nothing_over(self, run, capsys):
        assert run(self.cluster(self.here("replica", "streaming"), member("db-2"))) == 0
        assert "(no member is); nothing to hand over" in capsys.readouterr().out

    def test_the_primary_with_no_streaming_replica_lets_patroni_stop(self, run, capsys):
        assert run(self.cluster(self.here(), member("db-2", state="starting"), member("db-3", state="stopped"))) == 0
        assert capsys.readouterr().out == ("vps-ha-switchover: no streaming replica to switch over to; "
                                           "Patroni's own stop follows\n")

    def test_the_primary_with_a_streaming_replica_switches_over(self, run, capsys):
        # The normal switchover, and its exit code: here it stops at the poolers it cannot find.
        assert run(self.cluster(self.here(), member("db-2", "quorum_standby"))) == 1
        assert "no HAProxy node in the directory cache" in capsys.readouterr().out

    def test_without_it_the_same_cases_fail(self, write_json, monkeypatch):
        cfg = write_json("switchover.json", {"patroniUrl": self.HERE})
        monkeypatch.setattr(switchover, "patroni", lambda *a, **kw: (None, "connection refused"))
        assert switchover.main(["--config", cfg]) == 1
        monkeypatch.setattr(switchover, "patroni", lambda *a, **kw: self.cluster(self.here()))
        assert switchover.main(["--config", cfg]) == 1
