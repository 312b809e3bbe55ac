# The status view: Patroni members and Prometheus servers are real HTTP servers on
# loopback addresses answering recorded documents (one may be absent, one may accept and never
# answer); the view reads them over real HTTP, and answers over real HTTP behind the rollout view's server.
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from vpsha import rollout_view, status_view
from vpsha.status_view import StatusView, backup_view, config_problem, signal_selector

SIGNALS = {
    "backupLastSuccess": "vpsha_backup_last_success_timestamp_seconds",
    "walArchiveLastSuccess": "vpsha_wal_archive_last_success_timestamp_seconds",
    "restoreCheckLastRun": "vpsha_restore_check_last_run_timestamp_seconds",
    "restoreCheckSuccess": "vpsha_restore_check_success",
    "restoreCheckLastSuccess": "vpsha_restore_check_last_success_timestamp_seconds",
}
DB = {"db-1": "127.0.0.12", "db-2": "127.0.0.13", "db-3": "127.0.0.14"}
MONITORS = [{"name": "lb-1", "address": "127.0.0.15"}, {"name": "lb-2", "address": "127.0.0.16"}]
TIMEOUT = 1


def cluster(states=None):
    states = states or {}
    roles = {"db-1": "leader", "db-2": "sync_standby", "db-3": "replica"}
    return {"scope": "prod", "members": [
        {"name": n, "role": roles[n], "state": states.get(n, "running" if n == "db-1" else "streaming"),
         "host": DB[n], "port": 5432, "timeline": 4, **({} if n == "db-1" else {"lag": 0 if n == "db-2" else 4096})}
        for n in DB if not states or n in states]}


def alert(name, severity="critical", **labels):
    return {"labels": {"alertname": name, "severity": severity, "stack": "prod", **labels},
            "annotations": {"summary": "%s summary" % name}, "activeAt": "2026-12-02T10:00:00Z",
            "state": "firing", "value": "1e+00"}


def sample(key, value, **labels):
    return {"metric": {"__name__": SIGNALS[key], "stanza": "prod", **labels}, "value": [1764670000.0, str(value)]}


SIGNAL_SAMPLES = [
    sample("backupLastSuccess", 1764600000, instance="db-2", type="full"),
    sample("backupLastSuccess", 1764660000, instance="db-2", type="incr"),
    sample("backupLastSuccess", 1764650000, instance="db-3", type="diff"),
    sample("walArchiveLastSuccess", 1764669000, instance="db-1"),
    sample("restoreCheckLastRun", 1764500000, instance="db-3"),
    sample("restoreCheckSuccess", 1, instance="db-3"),
    sample("restoreCheckLastSuccess", 1764500000, instance="db-3"),
    sample("restoreCheckLastRun", 1764580000, instance="db-2"),
    sample("restoreCheckSuccess", 0, instance="db-2"),
    sample("restoreCheckLastSuccess", 1764400000, instance="db-2"),
]


class Fake:
    """One address's HTTP server: `routes` maps a path to a document; None makes it hang past the timeout."""

    def __init__(self, address, port, routes):
        self.routes = routes
        self.asked = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                url = urlsplit(self.path)
                outer.asked.append((url.path, parse_qs(url.query)))
                if outer.routes is None:
                    time.sleep(TIMEOUT + 1)
                    return
                doc = outer.routes.get(url.path)
                body = json.dumps(doc if doc is not None else {"error": "not found"}).encode()
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def monitor_routes(alerts=(), samples=SIGNAL_SAMPLES):
    return {"/api/v1/alerts": {"status": "success", "data": {"alerts": [alert("Watchdog", "none"), *alerts]}},
            "/api/v1/query": {"status": "success", "data": {"resultType": "vector", "result": list(samples)}}}


@pytest.fixture
def fakes():
    """Starts fakes by address on one shared port: start({address: routes}) -> port."""
    started = []
    port = [0]

    def start(routes_by_address):
        for address, routes in routes_by_address.items():
            f = Fake(address, port[0], routes)
            port[0] = f.port
            started.append(f)
        return port[0]
    yield start
    for f in started:
        f.close()


def config(port, stanza="prod"):
    return {"cacheSeconds": 0, "status": {
        "patroniPort": port, "prometheusPort": port, "timeoutSeconds": TIMEOUT,
        "monitors": MONITORS, "stanza": stanza, "signals": SIGNALS, "ignoreAlerts": ["Watchdog"]}}


def node(gen, state="healthy", **kw):
    return {"role": "db", "answered": True, "generation": gen, "published": gen, "rolloutState": state, **kw}


NODES = {"db-1": node(7), "db-2": node(7), "db-3": node(7), "lb-1": node(9), "lb-2": node(9)}


def members():
    return {**{n: {"role": "db", "mesh": a} for n, a in DB.items()},
            **{m["name"]: {"role": "haproxy", "mesh": m["address"]} for m in MONITORS}}


def view(port, nodes=NODES, stanza="prod"):
    return StatusView(config(port, stanza), nodes=lambda: nodes, members=members)


def test_healthy(fakes):
    port = fakes({**{a: {"/cluster": cluster()} for a in DB.values()},
                  **{m["address"]: monitor_routes() for m in MONITORS}})
    code, doc = view(port).answer()
    assert code == 200
    assert (doc["state"], doc["problems"]) == ("healthy", [])
    assert doc["nodes"] == NODES
    assert doc["patroni"]["answered"] and doc["patroni"]["from"] == "db-1" and doc["patroni"]["paused"] is False
    assert [(m["name"], m["role"], m["state"], m["lag"]) for m in doc["patroni"]["members"]] == [
        ("db-1", "leader", "running", None), ("db-2", "sync_standby", "streaming", 0),
        ("db-3", "replica", "streaming", 4096)]
    # The heartbeat always fires: not a problem, not shown.
    assert doc["alerts"] == {"answered": True, "from": "lb-1", "firing": []}
    b = doc["backups"]
    assert (b["enabled"], b["answered"], b["from"], b["stanza"]) == (True, True, "lb-1", "prod")
    assert b["lastBackup"] == {"finishedAt": 1764660000, "type": "incr"}
    assert b["lastWalArchiveAt"] == 1764669000
    # The newest run (db-2's) failed; the newest pass is db-3's older run.
    assert b["restoreCheck"] == {"node": "db-2", "lastRunAt": 1764580000, "passed": False, "lastPassedAt": 1764500000}


def test_what_is_asked(fakes):
    port = fakes({DB["db-1"]: {"/cluster": cluster()}, MONITORS[0]["address"]: monitor_routes()})
    mon = Fake(MONITORS[1]["address"], port, monitor_routes())
    try:
        view(port).answer()
    finally:
        mon.close()
    asked = dict(mon.asked)
    assert asked["/api/v1/alerts"] == {}
    assert asked["/api/v1/query"] == {"query": [signal_selector(SIGNALS, "prod")]}
    assert signal_selector(SIGNALS, "prod") == (
        '{__name__=~"vpsha_backup_last_success_timestamp_seconds|vpsha_wal_archive_last_success_timestamp_seconds|'
        'vpsha_restore_check_last_run_timestamp_seconds|vpsha_restore_check_success|'
        'vpsha_restore_check_last_success_timestamp_seconds",stanza="prod"}')


def test_one_source_down(fakes):
    """db-1 absent, lb-1 hangs: the answer comes from db-2 and lb-2 within the read bound, and is still healthy."""
    port = fakes({DB["db-2"]: {"/cluster": cluster()}, DB["db-3"]: {"/cluster": cluster()},
                  MONITORS[0]["address"]: None, MONITORS[1]["address"]: monitor_routes()})
    started = time.monotonic()
    _, doc = view(port).answer()
    assert time.monotonic() - started < TIMEOUT + 1.5
    assert (doc["state"], doc["problems"]) == ("healthy", [])
    assert (doc["patroni"]["from"], doc["alerts"]["from"], doc["backups"]["from"]) == ("db-2", "lb-2", "lb-2")


def test_all_down(fakes):
    """Nothing answers (members absent, monitors hanging), nor the node reads: every source named, no crash."""
    port = fakes({m["address"]: None for m in MONITORS})

    def no_nodes():
        raise OSError("the directory agent's cache /var/cache/x cannot be read")
    v = StatusView(config(port), nodes=no_nodes, members=members)
    started = time.monotonic()
    code, doc = v.answer()
    assert time.monotonic() - started < TIMEOUT + 1.5
    assert code == 200 and doc["state"] == "degraded"
    assert doc["nodes"] == {}
    assert doc["patroni"]["answered"] is False and "members" not in doc["patroni"]
    assert doc["alerts"]["answered"] is False and doc["backups"]["answered"] is False
    p = doc["problems"]
    assert p[0] == "nodes: the directory agent's cache /var/cache/x cannot be read"
    assert p[1].startswith("patroni: no member answered (db-1: ") and "db-3: " in p[1]
    assert p[2].startswith("alerts: no Prometheus answered (lb-1: ") and "lb-2: " in p[2]
    assert p[3].startswith("backups: no Prometheus answered (lb-1: ")
    assert len(p) == 4


def test_degraded(fakes):
    """A member stopped, one gone from the cluster, a node halted, a silent node, two alerts firing (one pending)."""
    states = {"db-1": "running", "db-2": "stopped"}
    alerts = [alert("ReplicaLagHigh", "warning", instance="db-2"), alert("BackupMissing", stanza="prod"),
              {**alert("DiskFilling", instance="db-1"), "state": "pending"}]
    port = fakes({**{a: {"/cluster": cluster(states)} for a in DB.values()},
                  **{m["address"]: monitor_routes(alerts) for m in MONITORS}})
    nodes = {**NODES, "db-3": {"role": "db", "answered": False},
             "lb-2": node(8, "halted", haltedReason="not healthy within 180 s after the change")}
    _, doc = view(port, nodes).answer()
    assert doc["state"] == "degraded"
    assert doc["problems"] == [
        "node db-3: no answer from its status server",
        "node lb-2: rollout halted (not healthy within 180 s after the change)",
        "patroni: member db-2 is stopped",
        "patroni: member db-3 is not in the cluster",
        "alert BackupMissing (stanza=prod): BackupMissing summary",
        "alert ReplicaLagHigh (instance=db-2): ReplicaLagHigh summary",
    ]
    assert [a["name"] for a in doc["alerts"]["firing"]] == ["BackupMissing", "ReplicaLagHigh"]


def test_no_leader_and_paused(fakes):
    doc = cluster({"db-1": "stopped", "db-2": "streaming", "db-3": "streaming"})
    doc["pause"] = True
    port = fakes({DB["db-1"]: {"/cluster": doc}, **{m["address"]: monitor_routes() for m in MONITORS}})
    _, got = view(port).answer()
    assert got["problems"] == ["patroni: no leader running", "patroni: member db-1 is stopped",
                               "patroni: paused (maintenance mode): no failover happens"]


def test_backups_off_and_answers_of_another_kind(fakes):
    # A member that answers something that is not Patroni's cluster is passed over for one that does.
    port = fakes({DB["db-1"]: {"/cluster": {"hello": 1}}, DB["db-2"]: {"/cluster": cluster()},
                  **{m["address"]: monitor_routes() for m in MONITORS}})
    _, doc = view(port, stanza=None).answer()
    assert doc["backups"] == {"enabled": False}
    assert doc["patroni"]["from"] == "db-2"
    assert doc["state"] == "healthy"


def test_backup_view_edges():
    assert backup_view({"status": "error"}, SIGNALS) is None
    assert backup_view([], SIGNALS) is None
    empty = backup_view({"status": "success", "data": {"result": []}}, SIGNALS)
    assert empty == {"lastBackup": None, "lastWalArchiveAt": None, "restoreCheck": None}
    run = {"status": "success", "data": {"result": [sample("restoreCheckLastRun", 5, instance="db-1")]}}
    only_run = backup_view(run, SIGNALS)
    assert only_run["restoreCheck"] == {"node": "db-1", "lastRunAt": 5, "passed": None, "lastPassedAt": None}


def test_config_problem():
    good = config(9000)["status"]
    assert config_problem(good) is None
    assert config_problem(None) == "status is None; expected an object"
    assert config_problem({**good, "monitors": []}) == (
        "status.monitors is []; expected a non-empty list of {name, address}")
    assert config_problem({**good, "stanza": 'x"}'}).startswith(
        "status.stanza is 'x\"}'; expected null or a stanza name")
    bad_signal = {**SIGNALS, "restoreCheckSuccess": "a{b}"}
    assert config_problem({**good, "signals": bad_signal}).startswith("status.signals is ")
    assert config_problem({**good, "timeoutSeconds": 0}) == "status.timeoutSeconds is 0; expected seconds in (0, 10]"


def test_load_config_names_the_status_key(tmp_path):
    cfg = {"listen": "127.0.0.1", "port": 1, "statusPort": 2, "directoryCache": "/x", "peerTimeoutSeconds": 1,
           "cacheSeconds": 0, **config(9000)}
    path = tmp_path / "view.json"
    path.write_text(json.dumps(cfg))
    assert rollout_view.load_config(str(path)) == cfg
    path.write_text(json.dumps({**cfg, "status": {**cfg["status"], "patroniPort": "x"}}))
    with pytest.raises(SystemExit, match=r"view\.json: status\.patroniPort is 'x'; expected a TCP port"):
        rollout_view.load_config(str(path))


def test_served_beside_the_rollout_view(fakes, tmp_path, signer):
    """The rollout view's server answers /vps-ha/status from the directory's members; without `status`, a 404."""
    port = fakes({**{a: {"/cluster": cluster()} for a in DB.values()},
                  **{m["address"]: monitor_routes() for m in MONITORS}})
    cache = tmp_path / "directory-cache.json"
    records = {n: signer.node(n, role=m["role"], mesh=m["mesh"])[1] for n, m in members().items()}
    cache.write_text(json.dumps({"index": [], "members": records, "release": None}))
    base = {"listen": "127.0.0.1", "port": 0, "statusPort": port + 1 if port < 65535 else port - 1,
            "directoryCache": str(cache), "peerTimeoutSeconds": TIMEOUT}
    cfg = {**base, **config(port)}
    for c, expect in [(cfg, 200), ({**base, "cacheSeconds": 0}, 404)]:
        server = rollout_view.serve(c)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            url = "http://127.0.0.1:%d%s" % (server.server_address[1], status_view.PATH)
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    code, body = r.status, json.loads(r.read())
            except urllib.error.HTTPError as err:
                code, body = err.code, json.loads(err.read())
        finally:
            server.shutdown()
            server.server_close()
        assert code == expect
        if expect == 200:
            # No status servers on those addresses: every node is named silent; Patroni and the monitors answered.
            assert sorted(body["nodes"]) == sorted(members())
            assert body["problems"] == ["node %s: no answer from its status server" % n for n in sorted(members())]
            assert body["patroni"]["from"] == "db-1" and body["alerts"]["from"] == "lb-1"
