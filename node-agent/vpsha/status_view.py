"""vps-ha status view: the stack's health in one answer, for `npm run status` on the user's machine.

The rollout view's server answers it too (same port on 127.0.0.1, same token checked by HAProxy),
at /vps-ha/status. One answer gathers, each source read at once and each read bounded:
  - every node's generation and rollout state: the rollout view's own node reads;
  - Patroni's members, roles, states and lag: `GET /cluster` on every database member of the
    directory, the first member in name order that answered;
  - the alerts firing: Prometheus's `GET /api/v1/alerts` on every monitoring node, the first that
    answered (pending ones and the always-firing heartbeat left out). Prometheus evaluates the
    rules whether or not Alertmanager runs (only with vps-ha:alerts), so the view reads them there;
  - the last backup, WAL archive and restore check: one Prometheus query of vps-ha's own signals.
A source that does not answer is named as such in the answer, and makes the stack "degraded":
health that cannot be seen is not called healthy.
"""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from vpsha.rest import request

PATH = "/vps-ha/status"
# Patroni 4's member states that mean "serving": the leader runs, a replica streams.
SERVING = ("running", "streaming")
# Each firing alert's labels worth showing; the rest (stack, job, role...) say nothing here.
ALERT_LABELS = ("instance", "stanza", "severity")
SIGNAL_KEYS = ("backupLastSuccess", "walArchiveLastSuccess", "restoreCheckLastRun", "restoreCheckSuccess",
               "restoreCheckLastSuccess")


def fetch_json(url, timeout):
    """(document, None) or (None, why): one bounded GET."""
    status, body = request(url, timeout=timeout)
    if status is None:
        return None, body[:200]
    if status != 200:
        return None, "HTTP %d" % status
    try:
        return json.loads(body), None
    except ValueError:
        return None, "not JSON"


def first_answer(sources, ask):
    """
    Asks every (name, url) at once; ({"answered": True, "from": name}, document) from the first in
    order whose answer `ask` accepted, else ({"answered": False, "error": every source's why}, None).
    `ask(url)` returns (document, None) or (None, why).
    """
    if not sources:
        return {"answered": False, "error": "no source to ask"}, None
    with ThreadPoolExecutor(max_workers=min(8, len(sources))) as pool:
        answers = list(pool.map(lambda s: ask(s[1]), sources))
    for (name, _), (doc, _) in zip(sources, answers, strict=True):
        if doc is not None:
            return {"answered": True, "from": name}, doc
    why = "; ".join("%s: %s" % (name, err) for (name, _), (_, err) in zip(sources, answers, strict=True))
    return {"answered": False, "error": why}, None


def _number(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def patroni_members(doc):
    """The members of a `GET /cluster` answer, or None when it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("members"), list):
        return None
    members = []
    for m in doc["members"]:
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            continue
        lag = m.get("lag")
        # Bytes behind the leader, or Patroni's "unknown"; none for the leader.
        members.append({"name": m["name"], "role": m.get("role"), "state": m.get("state"),
                        "lag": lag if _number(lag) is not None or isinstance(lag, str) else None,
                        "timeline": _number(m.get("timeline"))})
    return sorted(members, key=lambda m: m["name"])


def patroni_cluster(doc):
    """{"members": [...], "paused": bool} of a `GET /cluster` answer, or None when it is not one."""
    members = patroni_members(doc)
    return None if members is None else {"members": members, "paused": doc.get("pause") is True}


def alert_list(doc, ignore):
    """The firing alerts of a Prometheus `/api/v1/alerts` answer, or None when it is not one."""
    data = doc.get("data") if isinstance(doc, dict) and doc.get("status") == "success" else None
    alerts = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(alerts, list):
        return None
    firing = []
    for a in alerts:
        if not isinstance(a, dict) or not isinstance(a.get("labels"), dict):
            continue
        labels = a["labels"]
        if labels.get("alertname") in ignore or a.get("state") != "firing":
            continue
        annotations = a.get("annotations") if isinstance(a.get("annotations"), dict) else {}
        firing.append({"name": labels.get("alertname"), "severity": labels.get("severity"),
                       "summary": annotations.get("summary"), "since": a.get("activeAt"),
                       "labels": {k: labels[k] for k in ALERT_LABELS if k in labels and k != "severity"}})
    return sorted(firing, key=lambda f: (str(f["name"]), json.dumps(f["labels"], sort_keys=True)))


def signal_selector(signals, stanza):
    """One PromQL selector for every signal the view reads, for one stanza."""
    names = "|".join(signals[k] for k in SIGNAL_KEYS)
    return '{__name__=~"%s",stanza="%s"}' % (names, stanza)


def backup_view(doc, signals):
    """
    What a Prometheus instant query's answer says of backups: the newest backup (finished at, its
    type), the newest archived WAL, the newest restore check (its node, when, passed or not) and
    the newest passing one. None when the answer is not a query result.
    """
    try:
        if doc.get("status") != "success":
            return None
        result = doc["data"]["result"]
    except (AttributeError, KeyError, TypeError):
        return None
    by_name = {}
    for series in result if isinstance(result, list) else []:
        try:
            metric, value = series["metric"], float(series["value"][1])
        except (KeyError, TypeError, ValueError, IndexError):
            continue
        by_name.setdefault(metric.get("__name__"), []).append((metric, value))

    def newest(key):
        rows = by_name.get(signals[key], [])
        return max(rows, key=lambda r: r[1]) if rows else None

    backup = newest("backupLastSuccess")
    wal = newest("walArchiveLastSuccess")
    run = newest("restoreCheckLastRun")
    passed = newest("restoreCheckLastSuccess")
    check = None
    if run is not None:
        node = run[0].get("instance")
        result = [v for m, v in by_name.get(signals["restoreCheckSuccess"], []) if m.get("instance") == node]
        check = {"node": node, "lastRunAt": run[1], "passed": (result[0] == 1) if result else None,
                 "lastPassedAt": passed[1] if passed else None}
    return {"lastBackup": {"finishedAt": backup[1], "type": backup[0].get("type")} if backup else None,
            "lastWalArchiveAt": wal[1] if wal else None, "restoreCheck": check}


def problems_of(nodes, patroni, alerts, backups, db_names):
    """What keeps the stack from being healthy, one line each (empty: healthy)."""
    out = []
    for name, v in sorted(nodes.items()):
        if not v.get("answered"):
            out.append("node %s: no answer from its status server" % name)
        elif v.get("rolloutState") == "halted":
            out.append("node %s: rollout halted (%s)" % (name, (v.get("haltedReason") or "no reason given")[:200]))
    if not patroni["answered"]:
        out.append("patroni: no member answered (%s)" % patroni["error"])
    else:
        members = patroni["members"]
        if not any(m["role"] in ("leader", "standby_leader") and m["state"] in SERVING for m in members):
            out.append("patroni: no leader running")
        for m in members:
            if m["state"] not in SERVING:
                out.append("patroni: member %s is %s" % (m["name"], m["state"] or "in no known state"))
        for name in sorted(set(db_names) - {m["name"] for m in members}):
            out.append("patroni: member %s is not in the cluster" % name)
        if patroni.get("paused"):
            out.append("patroni: paused (maintenance mode): no failover happens")
    if not alerts["answered"]:
        out.append("alerts: no Prometheus answered (%s)" % alerts["error"])
    else:
        for a in alerts["firing"]:
            where = ", ".join("%s=%s" % kv for kv in sorted(a["labels"].items()))
            out.append("alert %s%s: %s" % (a["name"], " (%s)" % where if where else "", a.get("summary") or ""))
    if backups.get("enabled") and not backups["answered"]:
        out.append("backups: no Prometheus answered (%s)" % backups["error"])
    return out


class StatusView:
    """
    The stack's health; `nodes()` gives the rollout view's node reads and `members()` the
    directory's members. `fetch(url, timeout)`: one JSON read (tests give their own).
    """

    def __init__(self, cfg, nodes, members, fetch=fetch_json, clock=time.time, monotonic=time.monotonic):
        self.cfg = cfg
        self.status = cfg["status"]
        self.nodes = nodes
        self.members = members
        self.fetch = fetch
        self.clock = clock
        self.monotonic = monotonic
        self.lock = threading.Lock()
        self.cached = None

    def _ask(self, check):
        timeout = self.status["timeoutSeconds"]

        def ask(url):
            doc, why = self.fetch(url, timeout)
            if doc is None:
                return None, why
            parsed = check(doc)
            return (parsed, None) if parsed is not None else (None, "an answer of another kind")
        return ask

    def patroni(self, db):
        s = self.status
        sources = [(n, "http://%s:%d/cluster" % (db[n], s["patroniPort"])) for n in sorted(db)]
        head, cluster = first_answer(sources, self._ask(patroni_cluster))
        return {**head, **(cluster or {})}

    def alerts(self):
        s = self.status
        sources = [(m["name"], "http://%s:%d/api/v1/alerts" % (m["address"], s["prometheusPort"]))
                   for m in s["monitors"]]
        head, firing = first_answer(sources, self._ask(lambda doc: alert_list(doc, set(s["ignoreAlerts"]))))
        return {**head, "firing": firing} if firing is not None else head

    def backups(self):
        s = self.status
        if not s["stanza"]:
            return {"enabled": False}
        query = "query=" + quote(signal_selector(s["signals"], s["stanza"]), safe="")
        sources = [(m["name"], "http://%s:%d/api/v1/query?%s" % (m["address"], s["prometheusPort"], query))
                   for m in s["monitors"]]
        head, view = first_answer(sources, self._ask(lambda doc: backup_view(doc, s["signals"])))
        return {"enabled": True, "stanza": s["stanza"], **head, **(view or {})}

    def gather(self):
        """The whole answer, every source read at once."""
        members = self.members() or {}
        db = {n: m.get("mesh") for n, m in members.items() if m.get("role") == "db" and m.get("mesh")}
        with ThreadPoolExecutor(max_workers=4) as pool:
            nodes = pool.submit(self.nodes)
            patroni = pool.submit(self.patroni, db)
            alerts = pool.submit(self.alerts)
            backups = pool.submit(self.backups)
            try:
                node_views = nodes.result()
                node_error = None
            except OSError as err:
                node_views, node_error = {}, str(err)
            doc = {"patroni": patroni.result(), "alerts": alerts.result(), "backups": backups.result()}
        problems = problems_of(node_views, doc["patroni"], doc["alerts"], doc["backups"], db)
        if node_error:
            problems.insert(0, "nodes: %s" % node_error)
        return {"state": "degraded" if problems else "healthy", "problems": problems, "checkedAt": int(self.clock()),
                "nodes": node_views, **doc}

    def answer(self):
        """(HTTP status, document): the last answer while fresh enough, else a new one (one at a time)."""
        with self.lock:
            now = self.monotonic()
            if self.cached is None or now - self.cached[0] >= self.cfg["cacheSeconds"]:
                self.cached = (self.monotonic(), self.gather())
            return 200, self.cached[1]


def config_problem(status):
    """What is wrong with the view's `status` settings (None: nothing), naming the key."""
    if not isinstance(status, dict):
        return "status is %r; expected an object" % (status,)
    port = lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536  # noqa: E731
    checks = {
        "patroniPort": (port, "a TCP port"),
        "prometheusPort": (port, "a TCP port"),
        "timeoutSeconds": (lambda v: _number(v) is not None and 0 < v <= 10, "seconds in (0, 10]"),
        "monitors": (lambda v: isinstance(v, list) and v and all(
            isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("address"), str) for m in v),
            "a non-empty list of {name, address}"),
        "stanza": (lambda v: v is None or (isinstance(v, str) and v.replace("-", "").isalnum()),
                   "null or a stanza name"),
        "signals": (lambda v: isinstance(v, dict) and all(
            isinstance(v.get(k), str) and v[k].replace("_", "").isalnum() for k in SIGNAL_KEYS),
            "a metric name for each of %s" % ", ".join(SIGNAL_KEYS)),
        "ignoreAlerts": (lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v), "a list of alert names"),
    }
    for k, (ok, expected) in checks.items():
        if not ok(status.get(k)):
            return "status.%s is %r; expected %s" % (k, status.get(k), expected)
    return None
