# The rollout gate: peers are real status servers on loopback addresses (each answers a
# connection with its JSON, as the socket unit does on the mesh); Patroni's REST is a local HTTP
# server; the database group's lock runs against a real etcd (marked daemons: installed with
# apt-get when missing, started on loopback, stopped by its PID).
import http.server
import io
import json
import os
import sys
import threading
import time

import pytest
from etcd_server import tls_of
from status_server import StatusServer

from vpsha import rollout
from vpsha.rollout import Env, Lock, apply_gated, effective_order, turn


@pytest.fixture
def peers():
    """Fake peers b and c at 127.0.0.2 and 127.0.0.3 on one port (node a is this node, 127.0.0.1)."""
    b = StatusServer("127.0.0.2")
    c = StatusServer("127.0.0.3", b.port)
    yield {"b": b, "c": c}
    b.close()
    c.close()


def spec_for(port, group="haproxy", rid="id-2", health=None, timeout=3, handover=()):
    return {
        "group": group, "id": rid, "statusPort": port,
        "order": [{"name": "a", "meshAddress": "127.0.0.1"}, {"name": "b", "meshAddress": "127.0.0.2"},
                  {"name": "c", "meshAddress": "127.0.0.3"}],
        "health": health if health is not None else [["true"]],
        "healthTimeoutSeconds": timeout, "handoverUnits": list(handover),
    }


def env_for(tmp_path, **kw):
    kw.setdefault("switchover_config", str(tmp_path / "no-switchover.json"))
    kw.setdefault("desired_status", str(tmp_path / "desired-status.json"))
    return Env(state=str(tmp_path / "rollout.json"), peer_timeout=1, poll=0.1, **kw)


class Calls:
    def __init__(self, fail=False):
        self.log, self.fail = [], fail

    def apply(self):
        self.log.append("apply")
        if self.fail:
            raise RuntimeError("the unit did not start")

    def rollback(self):
        self.log.append("rollback")


def healthy(rid="id-2", role=None):
    return {"rolloutId": rid, "rolloutState": "healthy", "patroniRole": role}


def test_first_node_applies_waits_for_health_and_reports_it(tmp_path, peers):
    env, calls, status = env_for(tmp_path), Calls(), {}
    marker = tmp_path / "up"
    spec = spec_for(peers["b"].port, health=[[sys.executable, "-c", "import os,sys; sys.exit(not os.path.exists(%r))"
                                              % str(marker)]])
    threading.Timer(0.5, marker.touch).start()
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env) is True
    assert calls.log == ["apply"]
    assert status["rolloutId"] == "id-2" and status["rolloutState"] == "healthy"
    state = json.loads((tmp_path / "rollout.json").read_text())
    assert state["rolloutState"] == "healthy" and os.stat(tmp_path / "rollout.json").st_mode & 0o777 == 0o644
    # Asked again (desired.py crashed before recording it): healthy, nothing applied twice.
    assert apply_gated(spec, "a", calls.apply, calls.rollback, {}, env=env) is True
    assert calls.log == ["apply"]


def test_a_node_waits_until_every_node_before_it_is_healthy_with_this_id(tmp_path, peers):
    env, calls, status = env_for(tmp_path), Calls(), {}
    spec = spec_for(peers["b"].port)
    # a runs the previous id: c waits on a, which does not answer at all (no server at 127.0.0.1)
    assert apply_gated(spec, "c", calls.apply, calls.rollback, status, env=env) is False
    assert calls.log == [] and status["rolloutState"] == "waiting" and status["waitingOn"] == "a"
    # b applies next: it waits on a too; once a reports this id healthy, b's turn.
    a = StatusServer("127.0.0.1", peers["b"].port)
    try:
        a.status = healthy("id-1")
        assert apply_gated(spec, "b", calls.apply, calls.rollback, status, env=env) is False
        assert status["waitingOn"] == "a"
        a.status = healthy()
        assert apply_gated(spec, "b", calls.apply, calls.rollback, status, env=env) is True
        assert calls.log == ["apply"]
    finally:
        a.close()


def test_a_node_applying_elsewhere_holds_everyone(tmp_path, peers):
    env, calls, status = env_for(tmp_path), Calls(), {}
    peers["c"].status = {"rolloutId": "id-2", "rolloutState": "applying"}
    assert apply_gated(spec_for(peers["b"].port), "a", calls.apply, calls.rollback, status, env=env) is False
    assert calls.log == [] and status["waitingOn"] == "c"


def test_unhealthy_after_the_change_rolls_back_halts_and_stays_halted_until_a_new_id(tmp_path, peers):
    env, calls, status = env_for(tmp_path), Calls(), {}
    spec = spec_for(peers["b"].port, health=[["sh", "-c", "echo haproxy is down >&2; exit 1"]], timeout=1)
    started = time.monotonic()
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env) is False
    assert time.monotonic() - started < 5, "the health wait is bounded by healthTimeoutSeconds"
    assert calls.log == ["apply", "rollback"]
    assert status["rolloutState"] == "halted" and "haproxy is down" in status["haltedReason"]
    # The same id again: halted, nothing applied.
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env) is False
    assert calls.log == ["apply", "rollback"]
    # A fixed state is a new id: it applies.
    fixed = spec_for(peers["b"].port, rid="id-3")
    assert apply_gated(fixed, "a", calls.apply, calls.rollback, status, env=env) is True
    assert calls.log == ["apply", "rollback", "apply"] and status["rolloutState"] == "healthy"


def test_apply_raising_rolls_back_and_halts(tmp_path, peers):
    env, calls, status = env_for(tmp_path), Calls(fail=True), {}
    assert apply_gated(spec_for(peers["b"].port), "a", calls.apply, calls.rollback, status, env=env) is False
    assert calls.log == ["apply", "rollback"] and "the unit did not start" in status["haltedReason"]


def test_a_peer_that_halted_this_id_stops_the_group_and_is_named(tmp_path, peers):
    env, calls, status = env_for(tmp_path), Calls(), {}
    peers["b"].status = {"rolloutId": "id-2", "rolloutState": "halted", "haltedReason": "haproxy did not start"}
    assert apply_gated(spec_for(peers["b"].port), "c", calls.apply, calls.rollback, status, env=env) is False
    assert calls.log == []
    assert status["rolloutState"] == "halted" and status["haltedBy"] == "b"
    assert "haproxy did not start" in status["haltedReason"]
    # b halted an older id: no longer in the way (c waits on a, which is not up).
    peers["b"].status = {"rolloutId": "id-1", "rolloutState": "halted"}
    assert apply_gated(spec_for(peers["b"].port), "c", calls.apply, calls.rollback, status, env=env) is False
    assert status["rolloutState"] == "waiting" and status["waitingOn"] == "a"


def test_waiting_is_bounded(tmp_path, peers):
    clock = [1000.0]
    env, calls, status = env_for(tmp_path, max_wait=60, now=lambda: clock[0]), Calls(), {}
    spec = spec_for(peers["b"].port)
    assert apply_gated(spec, "c", calls.apply, calls.rollback, status, env=env) is False
    clock[0] += 61
    assert apply_gated(spec, "c", calls.apply, calls.rollback, status, env=env) is False
    assert status["rolloutState"] == "halted" and "waited more than 60 s on a" in status["haltedReason"]
    assert calls.log == []


def test_the_patroni_primary_goes_last():
    spec = {"group": "db", "id": "x", "order": [{"name": n, "meshAddress": ""} for n in ("a", "b", "c", "w")]}
    st = {"a": healthy("x", "primary"), "b": healthy("x", "replica"),
          "c": {"rolloutId": "old", "patroniRole": "replica"}, "w": {"rolloutId": "old"}}
    assert effective_order(spec, st) == ["b", "c", "w", "a"]
    assert turn(spec, "c", st) == (None, None)
    assert turn(spec, "a", st) == ("c", "not yet healthy")
    # Outside the database group the order is the spec's.
    assert effective_order({**spec, "group": "haproxy"}, st) == ["a", "b", "c", "w"]


def test_record_applied_marks_the_id_healthy(tmp_path):
    env, status = env_for(tmp_path), {}
    rollout.record_applied({"group": "app", "id": "id-9"}, "a", status, env=env)
    assert status["rolloutId"] == "id-9" and status["rolloutState"] == "healthy"


# ---------------------------------------------------------------- Patroni: role, health and handover

class FakePatroni:
    """
    Patroni's GET /patroni (answering `self.body`) and POST /restart (`self.restart_code`; a
    successful restart clears pending_restart), as a local HTTP server; `events` gets
    (name, "restart") for each restart asked.
    """

    def __init__(self, name="a", events=None):
        self.body = {"state": "running", "role": "primary"}
        self.name, self.events = name, events if events is not None else []
        self.restarts, self.restart_code = [], 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.answer(200 if self.path == "/patroni" else 404, outer.body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path != "/restart":
                    return self.answer(404, {})
                outer.restarts.append((body, self.headers.get("Authorization")))
                outer.events.append((outer.name, "restart"))
                if outer.restart_code == 200:
                    outer.body = {**outer.body, "pending_restart": False}
                self.answer(outer.restart_code, {"restarted": outer.restart_code == 200})

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def patroni(tmp_path):
    p = FakePatroni()
    (tmp_path / "switchover.json").write_text(json.dumps({"patroniUrl": p.url}))
    yield p
    p.close()


def test_patroni_health_needs_running_and_streaming_on_a_replica(patroni):
    assert rollout.health("patroni", [patroni.url]) == 0
    patroni.body = {"state": "running", "role": "replica"}
    assert rollout.health("patroni", [patroni.url]) != 0
    patroni.body = {"state": "running", "role": "replica", "replication_state": "streaming"}
    assert rollout.health("patroni", [patroni.url]) == 0
    patroni.body = {"state": "starting", "role": "replica"}
    assert rollout.health("patroni", [patroni.url]) != 0
    assert rollout.health("patroni", ["http://127.0.0.1:1"]) != 0


def test_health_command_line(patroni, capsys):
    assert rollout.main(["health", "patroni", patroni.url]) == 0
    assert rollout.main(["health", "tcp", "127.0.0.1", "1"]) == 1
    assert rollout.main(["health", "nonsense"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("usage: vps-ha-rollout ")


def test_status_server_answers_the_state_and_the_live_role(tmp_path, patroni):
    env = env_for(tmp_path, switchover_config=str(tmp_path / "switchover.json"))
    rollout.save_state(env, {"rolloutId": "id-2", "rolloutState": "waiting"})
    out = io.StringIO()
    rollout.serve_status(env, out)
    got = json.loads(out.getvalue())
    assert got["rolloutId"] == "id-2" and got["patroniRole"] == "primary"
    # No desired-state status yet: the generations are there, unknown.
    assert (got["generation"], got["published"], got["desiredError"]) == (None, None, None)


def test_status_server_answers_the_desired_generations(tmp_path):
    env = env_for(tmp_path)
    rollout.save_state(env, {"rolloutId": "id-3", "rolloutState": "halted", "haltedReason": "x"})
    with open(env.desired_status, "w") as f:
        json.dump({"generation": 17, "published": 18, "lastError": "generation 18 is held back by the rollout gate"}, f)
    out = io.StringIO()
    rollout.serve_status(env, out)
    got = json.loads(out.getvalue())
    assert (got["generation"], got["published"], got["rolloutState"]) == (17, 18, "halted")
    assert got["desiredError"].startswith("generation 18 is held back")
    # A status that is not what desired.py writes yields nothing, never a wrong number.
    with open(env.desired_status, "w") as f:
        json.dump({"generation": "17", "published": True}, f)
    out = io.StringIO()
    rollout.serve_status(env, out)
    got = json.loads(out.getvalue())
    assert (got["generation"], got["published"]) == (None, None)


# ---------------------------------------------------------------- PostgreSQL restarted where Patroni says it must

PENDING = {"units": ["vps-ha-patroni-config.service"], "settleSeconds": 1}


def pending_env(tmp_path, patroni, name="a", **kw):
    """An Env whose switchover config points at `patroni`, with the REST credentials the switchover tool has."""
    config = tmp_path / ("switchover-%s.json" % name)
    config.write_text(json.dumps({"patroniUrl": patroni.url, "restUser": "patroni", "restPassword": "rest-secret"}))
    return env_for(tmp_path, switchover_config=str(config), **kw)


def test_a_replica_reporting_pending_restart_restarts_postgresql_through_patroni(tmp_path, patroni):
    patroni.body = {"state": "running", "role": "replica", "pending_restart": True}
    env = pending_env(tmp_path, patroni)
    assert rollout.restart_if_pending(env, {"pendingRestart": PENDING}, ["vps-ha-patroni-config.service"]) is None
    assert [b for b, _ in patroni.restarts] == [{"restart_pending": True}]
    assert patroni.restarts[0][1] == "Basic " + __import__("base64").b64encode(b"patroni:rest-secret").decode()


def test_nothing_restarts_when_nothing_is_pending_or_the_tool_did_not_run(tmp_path, patroni):
    patroni.body = {"state": "running", "role": "replica"}
    env = pending_env(tmp_path, patroni)
    started = time.monotonic()
    assert rollout.restart_if_pending(env, {"pendingRestart": PENDING}, ["vps-ha-patroni-config.service"]) is None
    assert 1 <= time.monotonic() - started < 3, "looks for pending_restart for settleSeconds, no longer"
    patroni.body["pending_restart"] = True
    # Only pgbouncer reloaded, or no pendingRestart in the spec (not a database member): not looked at.
    assert rollout.restart_if_pending(env, {"pendingRestart": PENDING}, ["pgbouncer.service"]) is None
    assert rollout.restart_if_pending(env, {}, None) is None
    assert patroni.restarts == []


def test_the_primary_hands_over_before_postgresql_restarts(tmp_path, patroni, monkeypatch):
    marker = tmp_path / "handed-over"
    patroni.body = {"state": "running", "role": "primary", "pending_restart": True}
    env = pending_env(tmp_path, patroni, switchover=["sh", "-c", "touch %s" % marker])
    assert rollout.restart_if_pending(env, {"pendingRestart": PENDING}, ["vps-ha-patroni-config.service"]) is None
    assert marker.exists() and len(patroni.restarts) == 1
    # The demotion restarted PostgreSQL with the new settings already: no second restart.
    patroni.body = {"state": "running", "role": "primary", "pending_restart": True}

    def demoted(env):
        patroni.body = {"state": "running", "role": "replica", "pending_restart": False}
    monkeypatch.setattr(rollout, "hand_over", demoted)
    assert rollout.restart_if_pending(env, {"pendingRestart": PENDING}, None) is None
    assert patroni.body["role"] == "replica" and len(patroni.restarts) == 1


def test_a_failed_handover_or_restart_halts_and_rolls_back(tmp_path, patroni):
    patroni.body = {"state": "running", "role": "primary", "pending_restart": True}
    env = pending_env(tmp_path, patroni, switchover=["sh", "-c", "echo no candidate >&2; exit 1"])
    spec = {**spec_for(1, group="haproxy", handover=[]), "order": [{"name": "a", "meshAddress": "127.0.0.1"}],
            "pendingRestart": PENDING}
    calls, status = Calls(), {}
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, units=["vps-ha-patroni-config.service"],
                       env=env) is False
    assert calls.log == ["apply", "rollback"] and patroni.restarts == []
    assert status["rolloutState"] == "halted" and "no candidate" in status["haltedReason"]
    patroni.body = {"state": "running", "role": "replica", "pending_restart": True}
    patroni.restart_code = 503
    calls, status = Calls(), {}
    assert apply_gated({**spec, "id": "id-3"}, "a", calls.apply, calls.rollback, status,
                       units=["vps-ha-patroni-config.service"], env=env) is False
    assert calls.log == ["apply", "rollback"] and len(patroni.restarts) == 1
    assert "restarting PostgreSQL after the change: Patroni's restart answered 503" in status["haltedReason"]


# ---------------------------------------------------------------- etcd: the database group's lock

@pytest.mark.daemons
def test_the_lock_is_refused_without_a_certificate_from_the_etcd_ca(tmp_path, etcd, etcd_pki):
    env = env_for(tmp_path, etcd=etcd, lock_wait=1)
    d = os.path.dirname(etcd_pki["cacert"])
    stranger = {**etcd_pki, "cert": os.path.join(d, "stranger.crt"), "key": os.path.join(d, "stranger.key")}
    for tls, what in ((None, "no certificate"), (tls_of(stranger), "another CA's certificate")):
        with pytest.raises(OSError, match="no etcd member answered.*(SSL|certificate|reset|EOF)") as refused:
            Lock(env, "db-1", 30, tls=tls).acquire()
        print("%s: %s" % (what, refused.value))
    # With the member's own certificate, the same call goes through.
    lock = Lock(env, "db-1", 30, tls=tls_of(etcd_pki))
    assert lock.acquire() and lock.holder() == "db-1"
    lock.release()


def test_a_spec_with_unusable_etcd_tls_files_waits_on_etcd_and_says_why(tmp_path, peers):
    env = env_for(tmp_path, etcd="https://127.0.0.1:1", lock_wait=1)
    calls, status = Calls(), {}
    peers["b"].status, peers["c"].status = healthy(role="replica"), healthy(role="replica")
    spec = {**spec_for(peers["b"].port, group="db"), "etcdTls": {"cacert": str(tmp_path / "none.crt"),
                                                              "cert": str(tmp_path / "none.crt"), "key": "k"}}
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, units=[], env=env) is False
    assert calls.log == [] and status["waitingOn"] == "etcd"
    assert "etcd's TLS files" in rollout.load_state(env)["waitReason"]
    assert "etcdTls is" in rollout.spec_problem({**spec, "etcdTls": {"cacert": "x"}}, "a")


@pytest.mark.daemons
def test_the_lock_admits_one_member_at_a_time(tmp_path, etcd, etcd_pki):
    env = env_for(tmp_path, etcd=etcd, lock_wait=1)
    first, second = Lock(env, "db-1", 30, tls=tls_of(etcd_pki)), Lock(env, "db-2", 30, tls=tls_of(etcd_pki))
    assert first.acquire() and first.holder() == "db-1"
    started = time.monotonic()
    assert not second.acquire() and second.held_by == "db-1"
    assert time.monotonic() - started < 4, "waiting for the lock is bounded"
    first.release()
    assert first.holder() is None
    assert second.acquire() and second.holder() == "db-2"
    second.release()


@pytest.mark.daemons
def test_a_member_without_its_own_etcd_takes_the_lock_through_another(tmp_path, etcd, etcd_pki):
    env = env_for(tmp_path, etcd="https://127.0.0.1:1", lock_wait=1)
    lock = Lock(env, "db-3", 30, ["https://127.0.0.1:1", etcd], tls_of(etcd_pki))
    assert lock.acquire() and lock.holder() == "db-3"
    lock.release()
    assert Lock(env, "x", 30, [etcd], tls_of(etcd_pki)).holder() is None
    with pytest.raises(OSError, match="no etcd member answered"):
        Lock(env, "db-3", 30, tls=tls_of(etcd_pki)).acquire()


@pytest.mark.daemons
def test_a_lock_whose_holder_died_lapses_with_its_lease(tmp_path, etcd, etcd_pki):
    env = env_for(tmp_path, etcd=etcd, lock_wait=6)
    dead = Lock(env, "db-1", 2, tls=tls_of(etcd_pki))
    assert dead.acquire()
    dead.lease = None  # it never releases
    after = Lock(env, "db-2", 30, tls=tls_of(etcd_pki))
    assert after.acquire()
    after.release()


@pytest.mark.daemons
def test_db_group_hands_over_on_the_primary_under_the_lock(tmp_path, peers, patroni, etcd, etcd_pki):
    marker = tmp_path / "handed-over"
    env = env_for(tmp_path, etcd=etcd, switchover_config=str(tmp_path / "switchover.json"),
                  switchover=["sh", "-c", "touch %s" % marker], lock_wait=1)
    calls, status = Calls(), {}
    spec = {**spec_for(peers["b"].port, group="db", handover=["patroni.service"]), "etcdTls": etcd_pki}
    peers["b"].status, peers["c"].status = healthy(role="replica"), healthy(role="replica")
    # Only a reload of pgbouncer: no handover needed.
    assert apply_gated({**spec, "id": "r"}, "a", calls.apply, calls.rollback, status, units=[], env=env) is False
    peers["b"].status, peers["c"].status = healthy("r", "replica"), healthy("r", "replica")
    assert apply_gated({**spec, "id": "r"}, "a", calls.apply, calls.rollback, status, units=[], env=env) is True
    assert not marker.exists()
    # a is the primary, so last: every other member is healthy with this id; patroni restarts here.
    peers["b"].status, peers["c"].status = healthy(role="replica"), healthy(role="replica")
    held = Lock(env, "b", 30, tls=tls_of(etcd_pki))
    assert held.acquire()
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, units=["patroni.service"], env=env) is False
    assert status["waitingOn"] == "b" and not marker.exists()
    held.release()
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, units=["patroni.service"], env=env) is True
    assert marker.exists() and calls.log == ["apply", "apply"]
    assert Lock(env, "x", 30, tls=tls_of(etcd_pki)).holder() is None, "the lock is released after the change"


@pytest.mark.daemons
def test_a_failed_handover_halts_before_anything_changes(tmp_path, peers, patroni, etcd, etcd_pki):
    env = env_for(tmp_path, etcd=etcd, switchover_config=str(tmp_path / "switchover.json"),
                  switchover=["sh", "-c", "echo no candidate >&2; exit 1"])
    calls, status = Calls(), {}
    peers["b"].status, peers["c"].status = healthy(role="replica"), healthy(role="replica")
    spec = {**spec_for(peers["b"].port, group="db", handover=["patroni.service"]), "etcdTls": etcd_pki}
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env) is False
    assert calls.log == [] and status["rolloutState"] == "halted" and "no candidate" in status["haltedReason"]


# ---------------------------------------------------------------- a group of three, each with its own agent

class Node:
    """One node: its own state file, its status server (the real serve_status per connection), its gate rounds."""

    def __init__(self, name, address, port, tmp_path, etcd, switchover_config):
        self.name = name
        self.env = Env(state=str(tmp_path / ("%s.json" % name)), etcd=etcd, switchover_config=switchover_config,
                       peer_timeout=1, poll=0.1, lock_wait=0.5)
        env = self.env

        def answer():
            out = io.StringIO()
            rollout.serve_status(env, out)
            return out.getvalue().encode()

        self.server = StatusServer(address, port, answer=answer)
        self.port = self.server.port

    def close(self):
        self.server.close()


def run_agents(nodes, apply_once, bound=60):
    """Each node's agent in its own thread, newest first, calling apply_once(node) until it applies
    (within `bound` seconds); the nodes closed after. Returns the nodes that never applied."""
    errors = []

    def agent(node):
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if apply_once(node):
                return
            time.sleep(0.2)
        errors.append("%s never applied" % node.name)

    threads = [threading.Thread(target=agent, args=(n,)) for n in reversed(nodes)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(bound + 30)
    finally:
        for n in nodes:
            n.close()
    return errors


@pytest.mark.daemons
def test_three_agents_change_one_at_a_time_in_order_with_the_primary_last(tmp_path, patroni, etcd, etcd_pki):
    (tmp_path / "none.json").write_text("{}")
    a = Node("a", "127.0.0.1", 0, tmp_path, etcd, str(tmp_path / "switchover.json"))  # the primary (FakePatroni)
    nodes = [a] + [Node(n, addr, a.port, tmp_path, etcd, str(tmp_path / "none.json"))
                   for n, addr in (("b", "127.0.0.2"), ("c", "127.0.0.3"))]
    spec = {**spec_for(a.port, group="db", rid="upgrade", handover=["patroni.service"]), "etcdTls": etcd_pki}
    addresses = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    spec["order"] = [{"name": n.name, "meshAddress": addr} for n, addr in zip(nodes, addresses, strict=True)]
    marker = tmp_path / "handed-over"
    a.env.switchover = ["sh", "-c", "touch %s" % marker]
    lock = threading.Lock()
    active, events, errors = [], [], []

    def change(name):
        def apply():
            with lock:
                active.append(name)
                if len(active) > 1:
                    errors.append("%s changed while %s did" % (name, active[0]))
                events.append((name, marker.exists()))
            time.sleep(0.3)
            with lock:
                active.remove(name)
        return apply

    errors += run_agents(nodes, lambda node: apply_gated(spec, node.name, change(node.name), lambda: None, {},
                                                        units=["patroni.service"], env=node.env))
    assert errors == []
    # b and c first (by name), the primary a last, handed over before its change and only then.
    assert events == [("b", False), ("c", False), ("a", True)]


@pytest.mark.daemons
def test_pending_restarts_go_one_member_at_a_time_replicas_first_the_primary_after_its_handover(
        tmp_path, etcd, etcd_pki, monkeypatch):
    # After the PATCH every member's Patroni reports pending_restart; a is the primary.
    events = []
    patronis = {n: FakePatroni(n, events) for n in ("a", "b", "c")}
    for n, p in patronis.items():
        p.body = {"state": "running", "role": "primary" if n == "a" else "replica", "pending_restart": True,
                  "replication_state": None if n == "a" else "streaming"}
    configs = {}
    for n, p in patronis.items():
        configs[n] = tmp_path / ("switchover-%s.json" % n)
        configs[n].write_text(json.dumps({"patroniUrl": p.url, "restUser": "patroni", "restPassword": "x"}))
    a = Node("a", "127.0.0.1", 0, tmp_path, etcd, str(configs["a"]))
    nodes = [a] + [Node(n, addr, a.port, tmp_path, etcd, str(configs[n]))
                   for n, addr in (("b", "127.0.0.2"), ("c", "127.0.0.3"))]
    for n in nodes:
        n.env.handover_timeout = 10
    # The handover: a demoted, b promoted (their Patroni say so), as the switchover tool leaves them.
    a.env.switchover = [sys.executable, "-c", "import sys; sys.stdout.write('ok')"]
    spec = {**spec_for(a.port, group="db", rid="max-connections", handover=["vps-ha-patroni.service"]),
            "pendingRestart": PENDING, "etcdTls": etcd_pki}
    spec["order"] = [{"name": n.name, "meshAddress": addr}
                     for n, addr in zip(nodes, ("127.0.0.1", "127.0.0.2", "127.0.0.3"), strict=True)]
    lock = threading.Lock()

    def handed_over():
        with lock:
            events.append(("a", "handover"))
        patronis["a"].body = {**patronis["a"].body, "role": "replica", "replication_state": "streaming"}
        patronis["b"].body = {**patronis["b"].body, "role": "primary"}
    real_hand_over = rollout.hand_over

    def hand_over(env):
        failed = real_hand_over(env)
        if not failed:
            handed_over()
        return failed

    monkeypatch.setattr(rollout, "hand_over", hand_over)
    try:
        # Only the dynamic configuration's tool restarted (settings changed): the pending path alone.
        errors = run_agents(nodes, lambda node: apply_gated(spec, node.name, lambda: None, lambda: None, {},
                                                            units=["vps-ha-patroni-config.service"], env=node.env))
    finally:
        for p in patronis.values():
            p.close()
    assert errors == []
    assert events == [("b", "restart"), ("c", "restart"), ("a", "handover"), ("a", "restart")]
    assert all(not p.body["pending_restart"] for p in patronis.values())


def test_the_first_node_failing_halts_the_group_and_a_fixed_state_completes_it(tmp_path):
    (tmp_path / "none.json").write_text("{}")
    nodes = [Node("a", "127.0.0.1", 0, tmp_path, "http://127.0.0.1:1", str(tmp_path / "none.json"))]
    nodes += [Node(n, addr, nodes[0].port, tmp_path, "http://127.0.0.1:1", str(tmp_path / "none.json"))
              for n, addr in (("b", "127.0.0.2"), ("c", "127.0.0.3"))]
    order = [{"name": n, "meshAddress": addr}
             for n, addr in (("a", "127.0.0.1"), ("b", "127.0.0.2"), ("c", "127.0.0.3"))]
    log = []

    def spec(node, rid, broken):
        health = [["sh", "-c", "echo haproxy did not start >&2; exit 1"]] if broken and node.name == "a" else [["true"]]
        return {**spec_for(nodes[0].port, rid=rid, health=health, timeout=1), "order": order}

    def rounds(rid, broken, count):
        statuses = {n.name: {} for n in nodes}
        for _ in range(count):
            for n in nodes:
                apply_gated(spec(n, rid, broken), n.name, lambda n=n: log.append(("apply", n.name, rid)),
                            lambda n=n: log.append(("rollback", n.name, rid)), statuses[n.name], env=n.env)
        return statuses

    try:
        statuses = rounds("bad", True, 3)
        assert log == [("apply", "a", "bad"), ("rollback", "a", "bad")]
        assert statuses["a"]["rolloutState"] == "halted" and "haproxy did not start" in statuses["a"]["haltedReason"]
        for other in ("b", "c"):
            assert statuses[other]["rolloutState"] == "halted" and statuses[other]["haltedBy"] == "a"
        log.clear()
        statuses = rounds("fixed", False, 3)
        assert log == [("apply", "a", "fixed"), ("apply", "b", "fixed"), ("apply", "c", "fixed")]
        assert all(s["rolloutState"] == "healthy" for s in statuses.values())
    finally:
        for n in nodes:
            n.close()


@pytest.mark.parametrize("change, why", [
    ({"id": ""}, "id is ''"),
    ({"order": [{"name": "x", "meshAddress": "127.0.0.9"}]}, "does not name this node a"),
    ({"statusPort": 0}, "statusPort is 0"),
    ({"health": [[]]}, "health is not a list of commands"),
    ({"healthTimeoutSeconds": -1}, "healthTimeoutSeconds is -1"),
    ({"order": None}, "missing or malformed"),
    ({"credentials": 0}, "credentials is 0"),
    ({"after": {"nodes": [], "credentials": 2}}, "after is not"),
    ({"after": {"nodes": [{"name": "x", "meshAddress": "127.0.0.9"}], "credentials": "2"}}, "after is not"),
])
def test_a_malformed_spec_changes_nothing_and_says_why(tmp_path, change, why):
    calls, status = Calls(), {}
    spec = {**spec_for(1), **change}
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env_for(tmp_path)) is False
    assert calls.log == [] and status["rolloutState"] == "halted" and why in status["haltedReason"]


def test_a_rotation_waits_until_every_node_of_the_group_before_reports_the_new_secrets(tmp_path, peers):
    # a is the first of its group; b and c stand for the group before it (the HAProxy pair for an app node).
    env, calls, status = env_for(tmp_path), Calls(), {}
    after = {"nodes": [{"name": "b", "meshAddress": "127.0.0.2"}, {"name": "c", "meshAddress": "127.0.0.3"}],
             "credentials": 2}
    spec = {**spec_for(peers["b"].port), "order": [{"name": "a", "meshAddress": "127.0.0.1"}], "credentials": 2,
            "after": after}
    peers["b"].status = {**healthy("other"), "credentials": 2}
    peers["c"].status = {**healthy("other"), "credentials": 1}
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env) is False
    assert calls.log == [] and status["waitingOn"] == "c"
    assert "secrets version 2" in json.loads((tmp_path / "rollout.json").read_text())["waitReason"]
    # Applying it, not yet healthy: still not.
    peers["c"].status = {"rolloutId": "other", "rolloutState": "applying", "credentials": 2}
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env) is False and status["waitingOn"] == "c"
    peers["c"].status = {**healthy("other"), "credentials": 3}
    assert apply_gated(spec, "a", calls.apply, calls.rollback, status, env=env) is True
    assert calls.log == ["apply"] and status["credentials"] == 2
    # What this node now serves says so to the group after it.
    out = io.StringIO()
    rollout.serve_status(env, out)
    assert rollout.has_credentials(json.loads(out.getvalue()), 2)


def test_app_health_asks_every_web_instance_the_directory_agent_runs(tmp_path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        port = server.server_address[1]
        (tmp_path / ("release-%d.env" % port)).write_text("IMAGE=x\n")
        pattern = str(tmp_path / "release-*.env")
        assert rollout.health("app", ["127.0.0.1", "/healthz", pattern]) == 0
        assert "503" in rollout.health("app", ["127.0.0.1", "/other", pattern])
        # An instance that should run and does not answer: not healthy.
        (tmp_path / "release-1.env").write_text("IMAGE=y\n")
        assert "port 1" in rollout.health("app", ["127.0.0.1", "/healthz", pattern])
    finally:
        server.shutdown()
        server.server_close()
