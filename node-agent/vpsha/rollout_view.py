"""vps-ha rollout view: every node's rollout, in one answer, for `pulumi up` on a HAProxy node.

The machine running `pulumi up` is not on the mesh; it asks HAProxy (on the app's hostname,
with a token HAProxy checks) and HAProxy sends the request here, on 127.0.0.1 only. Each answer
reads every node's rollout status server (rollout.py --serve-status; at once, each read bounded)
for the nodes of the directory agent's last verified directory, and says per node: the desired
generation applied and last published, the rollout state, what halted it or what it waits on.

The generation each node must reach comes with the request (`?want=name:generation,...`, from
the program's outputs): nodes hold no list of what was published. The summary then says done
(every wanted node applied at least its generation), halted (a wanted node read that generation
or a later one and halted: named with the node that halted first and why) or pending (the nodes
not there yet, and their state). Answers are cached for a moment: many askers cost one round.

The same server answers /vps-ha/status (vpsha.status_view): the stack's health at a glance.

usage: vps-ha-rollout-view [--config FILE]
"""
import json
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from vpsha import status_view
from vpsha.records import NAME, cached_members
from vpsha.rollout import read_peer
from vpsha.status_view import StatusView

CONFIG = "/etc/vps-ha/rollout-view.json"
PATH = "/vps-ha/rollout"
# A stack has tens of nodes; more in one request is not one of ours.
MAX_WANTED = 256
GENERATION = re.compile(r"^[1-9][0-9]{0,15}$")


def log(msg):
    print("vps-ha-rollout-view: %s" % msg, flush=True)


class Bad(ValueError):
    """A request the view cannot answer, and why (the asker gets it with a 400)."""


def parse_want(query):
    """{node: generation} from `want=name:generation,...` (empty when absent); raises Bad saying what is wrong."""
    values = parse_qs(query, keep_blank_values=True).get("want", [])
    if len(values) > 1:
        raise Bad("want is given %d times; expected once" % len(values))
    want = {}
    for item in (values[0].split(",") if values and values[0] else []):
        name, sep, gen = item.partition(":")
        if not sep or not NAME.match(name) or not GENERATION.match(gen):
            raise Bad("want: %r is not name:generation (a node name, a positive whole number)" % item[:80])
        if name in want:
            raise Bad("want: %s is named twice" % name)
        want[name] = int(gen)
    if len(want) > MAX_WANTED:
        raise Bad("want names %d nodes; at most %d" % (len(want), MAX_WANTED))
    return want


def node_view(member, status):
    """What the view says of one node: its directory role and what its status server answered (None: no answer)."""
    view = {"role": member.get("role"), "meshAddress": member.get("mesh"), "answered": status is not None}
    if status is not None:
        for k in ("generation", "published", "rolloutState", "rolloutId", "haltedBy", "haltedReason", "waitingOn",
                  "waitReason", "desiredError", "patroniRole"):
            view[k] = status.get(k)
        if isinstance(view["rolloutId"], str):
            # Enough to tell rollouts apart; the whole id says nothing more to whoever reads this.
            view["rolloutId"] = view["rolloutId"][:12]
    return view


def _gen(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def pending_reason(view):
    if view is None:
        return "not in the directory"
    if not view["answered"]:
        return "no answer from its status server"
    state = view.get("rolloutState")
    applied = _gen(view.get("generation"))
    # No generation at all: nothing applied yet, or a status server from before generations were served.
    parts = ["generation %d applied" % applied if applied is not None else "no generation applied"]
    if _gen(view.get("published")) is not None and view.get("published") != view.get("generation"):
        parts.append("%s read" % view.get("published"))
    if state == "waiting" and view.get("waitingOn"):
        parts.append("waiting on %s (%s)" % (view["waitingOn"], view.get("waitReason") or "its turn"))
    elif state:
        parts.append(state)
    if view.get("desiredError") and state != "waiting":
        parts.append(view["desiredError"][:200])
    return ", ".join(parts)


def summarize(views, want):
    """
    For the wanted nodes: {"state": done | halted | pending, "summary": text, "done": [names],
    "halted": {name: {by, reason}}, "pending": {name: why}}.
    """
    done, halted, pending = [], {}, {}
    for name in sorted(want):
        v = views.get(name)
        answered = bool(v and v["answered"])
        applied, published = (_gen(v.get("generation")), _gen(v.get("published"))) if answered else (None, None)
        if applied is not None and applied >= want[name]:
            done.append(name)
        elif answered and v.get("rolloutState") == "halted" and published is not None and published >= want[name]:
            # It read this run's document (or a later one) and halted on it: not a halt left over from before.
            halted[name] = {"by": v.get("haltedBy") or name, "reason": v.get("haltedReason") or "no reason given"}
        else:
            pending[name] = pending_reason(v)
    if halted:
        # The nodes that halted themselves first; the others were held back by them.
        first = sorted({h["by"] for h in halted.values()})
        causes = []
        for by in first:
            own = halted.get(by)
            if own and own["by"] == by:
                reason = own["reason"]
            else:
                reason = next(h["reason"] for h in halted.values() if h["by"] == by)
            causes.append("%s: %s" % (by, reason))
        held = sorted(n for n, h in halted.items() if h["by"] != n)
        text = "rollout halted at " + "; at ".join(causes)
        if held:
            text += " (held back: %s)" % ", ".join(held)
        state = "halted"
    elif pending:
        state = "pending"
        text = "pending: " + "; ".join("%s (%s)" % (n, r) for n, r in pending.items())
    else:
        state = "done"
        text = "every node applied its generation: %s" % (", ".join(done) or "none asked")
    return {"state": state, "summary": text, "done": done, "halted": halted, "pending": pending}


class View:
    """Reads the nodes; `members` and `read`: the directory cache and a status read (tests give their own)."""

    def __init__(self, cfg, members=None, read=None, monotonic=time.monotonic):
        self.cfg = cfg
        self.members = members or (lambda: cached_members(cfg["directoryCache"]))
        self.read = read or (lambda address: read_peer(address, cfg["statusPort"], cfg["peerTimeoutSeconds"]))
        self.monotonic = monotonic
        self.lock = threading.Lock()
        self.cached = None

    def poll(self):
        """{node: view} of every member of the directory, each status read at once."""
        members = self.members()
        if members is None:
            raise OSError("the directory agent's cache %s cannot be read" % self.cfg.get("directoryCache"))
        names = sorted(members)
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(names)))) as pool:
            statuses = list(pool.map(lambda n: self.read(members[n].get("mesh")), names))
        return {n: node_view(members[n], s) for n, s in zip(names, statuses, strict=True)}

    def views(self):
        """The last poll when it is fresh enough, else a new one (one at a time)."""
        with self.lock:
            now = self.monotonic()
            if self.cached is None or now - self.cached[0] >= self.cfg["cacheSeconds"]:
                views = self.poll()
                self.cached = (self.monotonic(), views)
            return self.cached[1]

    def answer(self, query):
        """(HTTP status, document) for a request's query string."""
        try:
            want = parse_want(query)
        except Bad as err:
            return 400, {"error": str(err)}
        try:
            views = self.views()
        except OSError as err:
            return 503, {"error": str(err)}
        s = summarize(views, want)
        # "state" and "summary" lead, one a line: the wait script reads them with sed.
        return 200, {"state": s["state"], "summary": s["summary"], "want": want, "done": s["done"],
                     "halted": s["halted"], "pending": s["pending"], "nodes": views}


def encode(doc):
    """The answer's bytes: indented JSON, ASCII only, so every top-level key is on a line of its own."""
    return (json.dumps(doc, indent=1, ensure_ascii=True) + "\n").encode()


def handler_for(view, status=None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "vps-ha-rollout-view"

        def do_GET(self):  # noqa: N802 - the name http.server calls
            url = urlsplit(self.path)
            if url.path == PATH:
                code, doc = view.answer(url.query)
            elif url.path == status_view.PATH and status is not None:
                code, doc = status.answer()
            else:
                code, doc = 404, {"error": "not found"}
            body = encode(doc)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass

    return Handler


def load_config(path):
    """The config; exits naming the key and value when one is wrong."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as err:
        raise SystemExit("%s: %s" % (path, err)) from None
    if not isinstance(cfg, dict):
        raise SystemExit("%s: expected a JSON object" % path)
    checks = {
        "listen": lambda v: isinstance(v, str) and v,
        "port": lambda v: isinstance(v, int) and 0 < v < 65536,
        "statusPort": lambda v: isinstance(v, int) and 0 < v < 65536,
        "directoryCache": lambda v: isinstance(v, str) and v.startswith("/"),
        "peerTimeoutSeconds": lambda v: isinstance(v, (int, float)) and 0 < v <= 30,
        "cacheSeconds": lambda v: isinstance(v, (int, float)) and 0 <= v <= 60,
    }
    for k, ok in checks.items():
        if not ok(cfg.get(k)):
            raise SystemExit("%s: %s is %r; expected %s" % (path, k, cfg.get(k), {
                "listen": "an address", "port": "a TCP port", "statusPort": "a TCP port",
                "directoryCache": "an absolute path", "peerTimeoutSeconds": "seconds in (0, 30]",
                "cacheSeconds": "seconds in [0, 60]"}[k]))
    problem = status_view.config_problem(cfg.get("status"))
    if problem:
        raise SystemExit("%s: %s" % (path, problem))
    return cfg


def serve(cfg, view=None, status=None):
    """The server for both paths; the status view only when the config has its `status` settings."""
    view = view or View(cfg)
    if status is None and "status" in cfg:
        status = StatusView(cfg, nodes=view.views, members=view.members)
    server = ThreadingHTTPServer((cfg["listen"], cfg["port"]), handler_for(view, status))
    server.daemon_threads = True
    return server


def main(argv):
    if argv not in ([],) and (len(argv) != 2 or argv[0] != "--config"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    cfg = load_config(argv[1] if argv else CONFIG)
    server = serve(cfg)
    log("answering %s and %s on %s:%d" % (PATH, status_view.PATH, cfg["listen"], cfg["port"]))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
