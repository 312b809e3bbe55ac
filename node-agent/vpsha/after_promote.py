"""vps-ha: after a promotion, keep Patroni's loop turning while commits wait for absent standbys.

Patroni's on_role_change hook on a database member (Patroni adds: action, role, scope). When a
member is promoted, Patroni first names the standbys it had in synchronous_standby_names; with
several standbys per commit, after losing most of the members, those may all be gone, and every
commit waits until Patroni's quorum hand-over takes them out. Patroni does that in two loops:
the first records the new leader in /sync, the next one that comes more than loop_wait later
gives up the standbys that did not come back. Patroni's loop runs every loop_wait (1 s), so the
second step came up to a second after Patroni's own rule allowed it.

While this node is primary and commits would wait (fewer of the named standbys stream than the
setting asks for), this wakes Patroni's loop every NUDGE_SECONDS with a PATCH of its dynamic
configuration that changes nothing (Patroni runs a loop at once after any PATCH /config). Patroni
decides everything as before, by its own rules and its own clock; only the idle wait for the next
loop is gone. It stops when commits no longer wait, after SETTLE_SECONDS, or when Patroni calls
the next hook (Patroni stops a hook still running when it starts the next one).

usage: vps-ha-after-promote --patroni-config FILE ACTION ROLE SCOPE
"""
import re
import sys
import time

import psycopg2

from vpsha.rest import patroni_yml, request, rest_auth

NUDGE_SECONDS = 0.2
# Patroni's hand-over takes loop_wait and a loop or two; past this, something else holds it.
SETTLE_SECONDS = 15
# Removing a key nobody sets: Patroni's PATCH compares, finds nothing changed and writes nothing.
NO_CHANGE = {"vps_ha_wake": None}


def log(msg):
    print("vps-ha-after-promote: %s" % msg, flush=True)


def commits_wait(standby_names, streaming):
    """True when fewer of the standbys named in synchronous_standby_names stream than it asks for."""
    text = standby_names.strip()
    if not text:
        return False
    m = re.match(r"^(?:(?:ANY|FIRST)\s+)?(\d+)\s*\((.*)\)$", text, re.IGNORECASE | re.DOTALL)
    wanted, listed = (int(m.group(1)), m.group(2)) if m else (1, text)
    names = [n.strip().strip('"').lower() for n in listed.split(",") if n.strip()]
    live = {s.lower() for s in streaming}
    have = len(live) if "*" in names else len([n for n in names if n in live])
    return have < wanted


STATE_SQL = (
    "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names'),"
    " ARRAY(SELECT application_name FROM pg_stat_replication WHERE state = 'streaming')"
)


def main(argv):
    if len(argv) != 5 or argv[0] != "--patroni-config":
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    config_file, action, role = argv[1], argv[2], argv[3]
    if action != "on_role_change" or role != "primary":
        return 0
    config = patroni_yml(config_file)
    auth = rest_auth(config)
    url = "http://%s/config" % config["restapi"]["connect_address"]
    socket_dir = config["postgresql"]["parameters"]["unix_socket_directories"]
    started = time.monotonic()
    nudges = 0
    conn = None
    said = set()

    def once(what, msg):
        # A failure repeats every NUDGE_SECONDS: the log gets it the first time.
        if what not in said:
            said.add(what)
            log(msg)

    while time.monotonic() - started < SETTLE_SECONDS:
        try:
            if conn is None:
                conn = psycopg2.connect(host=socket_dir, dbname="postgres", user="postgres", connect_timeout=2)
                conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(STATE_SQL)
                in_recovery, standby_names, streaming = cur.fetchone()
        except psycopg2.Error as e:
            once("postgresql", "PostgreSQL did not answer: %s" % str(e).strip())
            conn = None
            time.sleep(NUDGE_SECONDS)
            continue
        # Still in recovery: the promotion is finishing (a demotion would have ended this hook).
        if not in_recovery:
            if not commits_wait(standby_names, streaming):
                if nudges:
                    log("commits go on (synchronous_standby_names: %r) after %d wake-ups in %.1f s"
                        % (standby_names, nudges, time.monotonic() - started))
                return 0
            status, body = request(url, "PATCH", NO_CHANGE, auth, timeout=2)
            if status != 200:
                once("patroni", "Patroni's REST API answered %s: %s" % (status, body[:200]))
            nudges += 1
        time.sleep(NUDGE_SECONDS)
    log("stopped after %d s (%d wake-ups) with commits still waiting; Patroni goes on at its own pace"
        % (SETTLE_SECONDS, nudges))
    return 0

