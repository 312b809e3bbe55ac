# The rollout view: nodes are real status servers on loopback addresses (one answers a
# connection with its JSON, one accepts and never answers, one refuses), the node list is a
# directory cache as the directory agent writes it, and the view answers over real HTTP.
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from status_server import StatusServer

from vpsha import rollout_view
from vpsha.rollout_view import Bad, View, parse_want, summarize

WANT = {"db-1": 20, "db-2": 20, "db-3": 20, "lb-1": 30, "lb-2": 30}


def healthy(gen):
    return {"rolloutId": "a" * 64, "rolloutState": "healthy", "generation": gen, "published": gen, "desiredError": None}


@pytest.fixture
def stack(tmp_path, signer):
    """db-1 done, db-2 halted on this run's document, db-3 held back by it, lb-1 silent, lb-2 refusing."""
    statuses = {
        "db-1": ("127.0.0.2", healthy(20)),
        "db-2": ("127.0.0.3", {"rolloutId": "b" * 64, "rolloutState": "halted", "generation": 19, "published": 20,
                               "haltedReason": "not healthy within 180 s after the change: patroni: 503"}),
        "db-3": ("127.0.0.4", {"rolloutId": "b" * 64, "rolloutState": "halted", "generation": 19, "published": 20,
                               "haltedBy": "db-2", "haltedReason": "rollout halted at db-2: not healthy within 180 s"}),
        "lb-1": ("127.0.0.5", None),
    }
    servers, port = {}, 0
    for name, (address, status) in statuses.items():
        servers[name] = StatusServer(address, port, status)
        port = servers[name].port
    members = {name: signer.node(name, role="db" if name.startswith("db") else "haproxy", mesh=address)[1]
               for name, (address, _) in [*statuses.items(), ("lb-2", ("127.0.0.6", None))]}
    cache = tmp_path / "directory-cache.json"
    cache.write_text(json.dumps({"index": [], "members": members, "release": None}))
    cfg = {"listen": "127.0.0.1", "port": 0, "statusPort": port, "directoryCache": str(cache),
           "peerTimeoutSeconds": 1, "cacheSeconds": 0}
    yield cfg, servers
    for s in servers.values():
        s.close()


def get(server, path):
    url = "http://127.0.0.1:%d%s" % (server.server_address[1], path)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def serving(stack):
    cfg, servers = stack
    server = rollout_view.serve(cfg)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server, cfg, servers
    server.shutdown()
    server.server_close()


def test_parse_want():
    assert parse_want("want=db-1:20,lb-1:1767225600001") == {"db-1": 20, "lb-1": 1767225600001}
    assert parse_want("") == {}
    for bad, why in [("want=db-1", "not name:generation"), ("want=db-1:0", "not name:generation"),
                     ("want=DB:3", "not name:generation"), ("want=db-1:2,db-1:3", "named twice"),
                     ("want=a:1&want=b:2", "given 2 times")]:
        with pytest.raises(Bad, match=why):
            parse_want(bad)


def view(gen=None, published=None, state=None, **kw):
    return {"role": "db", "answered": True, "generation": gen, "published": published, "rolloutState": state, **kw}


def test_summary_done_pending_halted():
    want = {"db-1": 20, "db-2": 20}
    assert summarize({"db-1": view(20, 20, "healthy"), "db-2": view(21, 21, "healthy")}, want)["state"] == "done"
    waiting = view(19, 19, "waiting", waitingOn="db-1", waitReason="not yet healthy")
    s = summarize({"db-1": view(20, 20, "healthy"), "db-2": waiting}, want)
    assert s["state"] == "pending"
    assert s["summary"] == "pending: db-2 (generation 19 applied, waiting on db-1 (not yet healthy))"
    # A halt left from an earlier rollout (the node has not read this run's document yet) is not this run's.
    s = summarize({"db-1": view(20, 20, "healthy"), "db-2": view(18, 19, "halted", haltedReason="old")}, want)
    assert s["state"] == "pending" and "db-2 (generation 18 applied, 19 read, halted)" in s["summary"]
    s = summarize({"db-1": view(None, None, None), "db-2": view(None, 20, "waiting", waitingOn="db-1")}, want)
    assert s["pending"] == {"db-1": "no generation applied",
                            "db-2": "no generation applied, 20 read, waiting on db-1 (its turn)"}
    s = summarize({"db-1": {"role": "db", "answered": False}}, want)
    assert s["pending"] == {"db-1": "no answer from its status server", "db-2": "not in the directory"}
    s = summarize({"db-1": view(19, 20, "halted", haltedBy="db-2", haltedReason="rollout halted at db-2: x"),
                   "db-2": view(19, 20, "halted", haltedReason="applying failed: boom")}, want)
    assert s["state"] == "halted" and s["summary"] == "rollout halted at db-2: applying failed: boom (held back: db-1)"
    # The node that halted first may not be asked about (or not answer): its reason comes from the held-back node.
    held = view(19, 20, "halted", haltedBy="db-9", haltedReason="rollout halted at db-9: x")
    s = summarize({"db-1": held}, {"db-1": 20})
    assert s["summary"] == "rollout halted at db-9: rollout halted at db-9: x (held back: db-1)"
    assert summarize({}, {})["state"] == "done"


def test_the_view_over_http_with_several_nodes(serving):
    server, cfg, servers = serving
    query = "want=" + ",".join("%s:%d" % kv for kv in WANT.items())
    started = time.monotonic()
    code, body = get(server, "/vps-ha/rollout?" + query)
    took = time.monotonic() - started
    assert code == 200, body
    doc = json.loads(body)
    # The silent node costs one bounded read, in parallel with the others.
    assert took < cfg["peerTimeoutSeconds"] + 1.5, took
    assert doc["state"] == "halted"
    assert doc["summary"] == ("rollout halted at db-2: not healthy within 180 s after the change: patroni: 503"
                              " (held back: db-3)")
    assert doc["done"] == ["db-1"]
    assert doc["pending"] == {"lb-1": "no answer from its status server", "lb-2": "no answer from its status server"}
    assert doc["nodes"]["db-1"]["generation"] == 20 and doc["nodes"]["db-1"]["role"] == "db"
    assert doc["nodes"]["db-2"]["rolloutId"] == "b" * 12
    assert doc["nodes"]["lb-1"] == {"role": "haproxy", "meshAddress": "127.0.0.5", "answered": False}
    # The wait script's contract: state and summary each on a line of its own, first.
    lines = body.splitlines()
    assert lines[1] == ' "state": "halted",' and lines[2].startswith(' "summary": "rollout halted at db-2: ')

    # Fixed and converged: done.
    servers["db-2"].status = healthy(21)
    servers["db-3"].status = healthy(20)
    servers["lb-1"].status = healthy(30)
    doc = json.loads(get(server, "/vps-ha/rollout?want=db-1:20,db-2:20,db-3:20,lb-1:30")[1])
    assert doc["state"] == "done" and doc["summary"] == "every node applied its generation: db-1, db-2, db-3, lb-1"
    # No want: every node's view, and nothing to wait for.
    doc = json.loads(get(server, "/vps-ha/rollout")[1])
    assert doc["state"] == "done" and sorted(doc["nodes"]) == ["db-1", "db-2", "db-3", "lb-1", "lb-2"]


def test_bad_requests_and_paths(serving, tmp_path):
    server, cfg, _ = serving
    code, body = get(server, "/vps-ha/rollout?want=db-1:x")
    assert code == 400 and "not name:generation" in json.loads(body)["error"]
    assert get(server, "/other")[0] == 404
    gone = View({**cfg, "directoryCache": str(tmp_path / "none.json")})
    assert gone.answer("")[0] == 503


def test_answers_are_cached_for_a_moment(stack):
    cfg, servers = stack
    clock = [100.0]
    v = View({**cfg, "cacheSeconds": 2}, monotonic=lambda: clock[0])
    v.answer("want=db-1:20")
    v.answer("want=db-1:20")
    assert servers["db-1"].connections == 1
    clock[0] += 2
    v.answer("want=db-1:20")
    assert servers["db-1"].connections == 2


def test_config_errors_name_the_key(tmp_path, stack):
    cfg, _ = stack
    path = tmp_path / "view.json"
    path.write_text(json.dumps({**cfg, "port": 2383, "statusPort": "2382"}))
    with pytest.raises(SystemExit, match="statusPort is '2382'; expected a TCP port"):
        rollout_view.load_config(str(path))
    assert rollout_view.main(["--nonsense"]) == 2


def test_listens_where_it_is_told_only(stack):
    cfg, _ = stack
    server = rollout_view.serve({**cfg, "listen": "127.0.0.1"})
    try:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", server.server_address[1]), timeout=1).close()
    finally:
        server.server_close()
