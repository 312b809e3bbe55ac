"""vps-ha pooler guard: no pgbouncer stays paused, whatever happens to the switchover tool.

Runs on each HAProxy node beside pgbouncer, holding a session on its admin console. The
switchover tool (on a database member) pauses the poolers over the mesh and keeps one admin
session open on each, named by its application_name, until it has resumed them. The guard
resumes a paused database itself when nobody holds it (the tool's sessions are gone: it was
killed, ran out of memory or lost the node) for GRACE seconds and this node's HAProxy routes the
primary port to one server (a switchover Patroni was already asked for goes on without the tool:
clients held until then reach the new primary, not HAProxy's queue), and in any case once the
pause has lasted the bound (a tool still connected but stuck, a partition that leaves its TCP
sessions open). It resumes as the tool does: RECONNECT first, so no server connection made to
a former primary is used again. The guard runs from the node's boot on (Restart=always): the resume is armed before any
pause.

usage: vps-ha-pooler-guard [--config FILE]
"""
import json
import sys
import time
import urllib.error
import urllib.request

import psycopg2

from vpsha.switchover import TOOL_NAME, servers_up

CONFIG = "/etc/vps-ha/pooler-guard.json"
GUARD_NAME = "vps-ha-pooler-guard"


def log(msg):
    print("vps-ha-pooler-guard: %s" % msg, flush=True)


def rows(cur, command):
    """An admin console command's answer as dicts, by column name."""
    cur.execute(command)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def paused_databases(databases):
    """The databases SHOW DATABASES says are paused."""
    return sorted(d["name"] for d in databases if str(d.get("paused", 0)) not in ("0", "", "None"))


def holders(clients, tool_name=TOOL_NAME):
    """How many admin sessions the switchover tool holds (SHOW CLIENTS rows)."""
    return sum(1 for c in clients if c.get("database") == "pgbouncer" and c.get("application_name") == tool_name)


class Guard:
    """
    What has been paused since when, and what to resume: a pause nobody holds for `grace` seconds,
    and any pause older than `max_pause` seconds.
    """

    def __init__(self, max_pause, grace):
        self.max_pause = max_pause
        self.grace = grace
        self.paused_since = {}
        self.unheld_since = None

    def look(self, now, paused, held, routed=True):
        """One look at the pooler: [(database, why)] to resume now (`routed`: HAProxy has one primary)."""
        self.paused_since = {d: self.paused_since.get(d, now) for d in paused}
        if not paused or held:
            self.unheld_since = None
        elif self.unheld_since is None:
            self.unheld_since = now
        out = []
        for d, since in sorted(self.paused_since.items()):
            if now - since >= self.max_pause:
                out.append((d, "paused for %.1f s, the bound is %d s" % (now - since, self.max_pause)))
            elif self.unheld_since is not None and now - self.unheld_since >= self.grace and routed:
                out.append((d, "paused %.1f s and no switchover holds it (its sessions are gone)" % (now - since)))
        return out

    def resumed(self, database):
        self.paused_since.pop(database, None)
        if not self.paused_since:
            self.unheld_since = None


def routed(cfg):
    """Does this node's HAProxy send the primary port to exactly one server? (its stats, as CSV)"""
    url = "http://%s:%d/stats;csv" % (cfg["haproxyStats"], cfg["haproxyStatsPort"])
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return len(servers_up(r.read().decode().splitlines(), cfg["haproxyPrimaryListen"])) == 1
    except (urllib.error.URLError, OSError):
        return False


def connect(cfg):
    conn = psycopg2.connect(host=cfg["host"], port=cfg["port"], user=cfg["adminUser"], password=cfg["adminPassword"],
                            dbname="pgbouncer", connect_timeout=3, application_name=GUARD_NAME)
    # The admin console knows no transactions
    conn.autocommit = True
    return conn


def run(cfg, rounds=None):
    """Looks every `everySeconds` until `rounds` looks have been made (None: for ever)."""
    guard = Guard(cfg["maxPauseSeconds"], cfg["graceSeconds"])
    conn = None
    done = 0
    while rounds is None or done < rounds:
        done += 1
        try:
            conn = conn or connect(cfg)
            with conn.cursor() as cur:
                paused = paused_databases(rows(cur, "SHOW DATABASES"))
                held = holders(rows(cur, "SHOW CLIENTS"))
                one = bool(paused) and not held and routed(cfg)
                for db, why in guard.look(time.monotonic(), paused, held, one):
                    cur.execute("RECONNECT %s" % db)
                    cur.execute("RESUME %s" % db)
                    guard.resumed(db)
                    log("resumed %s: %s" % (db, why))
        except psycopg2.Error as e:
            # pgbouncer restarting: a restarted one is not paused; look again on a new session
            log("pgbouncer's admin console: %s" % str(e).strip())
            if conn is not None:
                conn.close()
            conn = None
        time.sleep(cfg["everySeconds"])
    return 0


def main(argv):
    config = CONFIG
    if argv[:1] == ["--config"] and len(argv) == 2:
        config = argv[1]
    elif argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(config) as f:
        cfg = json.load(f)
    log("resuming any pause nobody holds for %s s, and any older than %s s"
        % (cfg["graceSeconds"], cfg["maxPauseSeconds"]))
    return run(cfg)
