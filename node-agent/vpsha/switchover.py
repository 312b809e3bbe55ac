"""vps-ha switchover: move the PostgreSQL primary to another member with no failed transaction.

For planned work (a rolling OS upgrade, a resize, a move): run it on any database member, as
root. It pauses the pgbouncer on every HAProxy node (in-flight transactions finish, new ones
wait), asks Patroni to switch over, waits until each HAProxy node routes writes to the new
primary, makes the poolers drop their server connections to the old one, and resumes them.
Clients of the pooled URL see a pause of a few seconds and no error. If anything fails before
the switch, the poolers are resumed and nothing changed. The tool holds an admin session on each
pooler from before the pause until after the resume; the pooler guard on each HAProxy node
(vpsha/pooler_guard.py) resumes a pause nobody holds, so a SIGKILL or the OOM killer leaves no
pooler paused.

Run on the primary's own node, the pause starts later: Patroni checks the members and
checkpoints first, with clients still writing, and the poolers are paused by Patroni's
before_stop hook (this program with --before-stop, as postgres) just before PostgreSQL stops.
The tool hands the hook what it needs through HANDOFF; a stop nobody asked for pauses nothing.

Without --candidate the streaming replicas race for the leader key as in a failover, and the most
up-to-date one wins. Named, every other member first waits 2 s to let the candidate win
(Patroni's rule for a switchover to a given member), which holds the first commit after the
switch until one of them follows the new primary.

With --if-leader (the hand-over unit's stop, when the member's server shuts down) it switches over
only when this member is the primary and a streaming replica can take over; otherwise, or when
Patroni does not answer, it exits 0 at once: nothing to hand over holds no shutdown up.

usage: vps-ha-switchover [--candidate MEMBER] [--config FILE] [--if-leader] | --before-stop
"""
import json
import os
import pwd
import sys
import threading
import time
import urllib.error
import urllib.request

import psycopg2

from vpsha.records import cached_members
from vpsha.rest import request

CONFIG = "/etc/vps-ha/switchover.json"
# request.json (the tool's ask) -> claimed.json (the hook took it) -> paused.json (the hook's answer)
HANDOFF = "/run/vps-ha/switchover"
# The pooler guard (vpsha/pooler_guard.py) knows this tool's admin sessions by this name.
TOOL_NAME = "vps-ha-switchover"


def log(msg):
    print("vps-ha-switchover: %s" % msg, flush=True)


def patroni(cfg, url, method="GET", body=None, timeout=5):
    return request(url, method, body, (cfg["restUser"], cfg["restPassword"]), timeout)


def poolers(cfg):
    """Mesh addresses of the HAProxy nodes, from the directory the agent last verified."""
    members = cached_members(cfg["directoryCache"]) or {}
    return {name: f["mesh"] for name, f in members.items() if f.get("role") == "haproxy" and f.get("mesh")}


def session(cfg, host, connect=None):
    """
    An admin console session on the pgbouncer at `host` (psycopg2: Patroni's own driver). During
    a secrets rotation a pooler may not have the new admin password yet: the version before's next.
    """
    connect = connect or psycopg2.connect
    passwords = [cfg["poolerAdminPassword"]] + ([cfg["previousPoolerAdminPassword"]]
                                                if cfg.get("previousPoolerAdminPassword") else [])
    for i, password in enumerate(passwords):
        try:
            conn = connect(host=host, port=cfg["poolerPort"], user=cfg["poolerAdminUser"], password=password,
                           dbname="pgbouncer", connect_timeout=3, application_name=TOOL_NAME)
            break
        except psycopg2.OperationalError as err:
            if i + 1 == len(passwords) or "password authentication failed" not in str(err):
                raise
    # The admin console knows no transactions
    conn.autocommit = True
    return conn


def admin(cfg, host, commands, conn=None):
    """Admin console commands in one session: an open one (`conn`, kept) or a new one."""
    try:
        own = conn is None
        conn = conn or session(cfg, host)
        with conn.cursor() as cur:
            for c in commands:
                cur.execute(c)
        if own:
            conn.close()
        return True, ""
    except psycopg2.Error as e:
        return False, str(e).strip()


def on_every_pooler(cfg, pools, commands, timeout, sessions=None):
    """The same admin commands on every pooler at once: {name: (ok, output)}."""
    results = {}
    def one(name, host):
        results[name] = admin(cfg, host, commands, (sessions or {}).get(name))
    threads = [threading.Thread(target=one, args=(n, h), daemon=True) for n, h in pools.items()]
    for t in threads:
        t.start()
    stop = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, stop - time.monotonic()))
    return {n: results.get(n, (False, "no answer in %d s" % timeout)) for n in pools}


def pause_every_pooler(cfg, pools, db, timeout, sessions=None):
    """
    PAUSE on every pooler at once: {name: error} of those that failed, {} when all paused. On any
    failure every pooler is resumed, over new sessions: a PAUSE that timed out may still take
    hold, and its own session is still waiting for it.
    """
    results = on_every_pooler(cfg, pools, ["PAUSE %s" % db], timeout, sessions)
    failed = {n: out for n, (ok, out) in results.items() if not ok}
    if failed:
        why = "; ".join("%s: %s" % kv for kv in sorted(failed.items()))
        log("could not pause the pooler on %s; resuming them all" % why)
        on_every_pooler(cfg, pools, ["RESUME %s" % db], 10)
    return failed


def write_json(path, value, owner=None):
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(value, f)
    if owner is not None:
        os.chown(tmp, owner, -1)
    os.rename(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Someone else's (the tool runs as root, the hook as postgres)
        pass
    return True


def before_stop(handoff):
    """Patroni's before_stop hook: pause the poolers if a switchover on this node asked for it."""
    claimed = os.path.join(handoff, "claimed.json")
    try:
        os.rename(os.path.join(handoff, "request.json"), claimed)
    except OSError:
        # A stop nobody asked to pause for
        return 0
    ask = read_json(claimed)
    if not ask or not alive(ask["pid"]) or time.time() > ask["deadline"]:
        log("a switchover's request is stale (its tool has gone or it is too late): pausing nothing")
        return 0
    started = time.monotonic()
    # PostgreSQL stops whatever this hook says: on a failure, better no pause than some clients held.
    failed = pause_every_pooler(ask, ask["pools"], ask["database"], ask["pauseTimeoutSeconds"])
    paused = [] if failed else sorted(ask["pools"])
    if paused:
        log("poolers on %s paused in %.1f s, before PostgreSQL stops" % (", ".join(paused), time.monotonic() - started))
    write_json(os.path.join(handoff, "paused.json"), {"paused": paused, "failed": failed, "at": time.time()})
    return 0


def pause_at_stop(cfg, pools, answer, deadline):
    """
    Asks the hook (through the handoff directory) to pause the poolers when Patroni stops the
    primary: {name: host} of the paused ones, or None when Patroni refused before stopping.
    """
    handoff = cfg.get("handoffDir", HANDOFF)
    postgres = pwd.getpwnam("postgres").pw_uid
    os.makedirs(handoff, mode=0o700, exist_ok=True)
    os.chown(handoff, postgres, -1)
    for name in ("request.json", "claimed.json", "paused.json"):
        if os.path.exists(os.path.join(handoff, name)):
            os.remove(os.path.join(handoff, name))
    keys = ("poolerPort", "poolerAdminUser", "poolerAdminPassword", "previousPoolerAdminPassword", "database",
            "pauseTimeoutSeconds")
    deadline_at = time.time() + cfg["switchTimeoutSeconds"]
    ask = {**{k: cfg[k] for k in keys if k in cfg}, "pools": pools, "pid": os.getpid(), "deadline": deadline_at}
    write_json(os.path.join(handoff, "request.json"), ask, postgres)
    while time.monotonic() < deadline:
        done = read_json(os.path.join(handoff, "paused.json"))
        if done is not None:
            if done["failed"]:
                log("the hook could not pause the pooler on %s: the switch goes on without a pause"
                    % ", ".join(sorted(done["failed"])))
            return {n: pools[n] for n in done["paused"]}
        if "status" in answer and answer["status"] != 200:
            try:
                os.rename(os.path.join(handoff, "request.json"), os.path.join(handoff, "called-off.json"))
                # The hook never took it: Patroni stopped nothing
                return None
            except OSError:
                # The hook has it: its answer follows
                pass
        time.sleep(0.02)
    log("no answer from Patroni's before_stop hook in time")
    return {}


def writable(cfg, member):
    """
    Is `member` a primary that takes writes? Asked of Patroni's status, and only believed when it
    comes from PostgreSQL itself (pg_is_in_recovery, with the WAL location): while a promotion is
    still under way and its query fails, Patroni reports the role it is heading for, and its
    /primary answers 200 a moment before PostgreSQL takes a write.
    """
    status, body = patroni(cfg, member["api_url"], timeout=1)
    try:
        answer = json.loads(body) if status == 200 else {}
    except ValueError:
        return False
    return answer.get("role") == "primary" and "location" in answer.get("xlog", {})


def servers_up(rows, listen):
    """The servers HAProxy's stats (CSV rows) show up in `listen`."""
    fields = (row.split(",") for row in rows)
    return [f[1] for f in fields
            if len(f) > 17 and f[0] == listen and f[1] not in ("FRONTEND", "BACKEND") and f[17].startswith("UP")]


def routes_to(cfg, host, member):
    """Does this HAProxy node send its primary port to `member` alone? (its stats, as CSV)"""
    url = "http://%s:%d/stats;csv" % (host, cfg["haproxyStatsPort"])
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            rows = r.read().decode().splitlines()
    except (urllib.error.URLError, OSError):
        return False
    return servers_up(rows, cfg["haproxyPrimaryListen"]) == [member]


def choose(members, candidate):
    """
    From Patroni's /cluster members: (the leader, the streaming replicas, who may come out
    primary: the named candidate, else any member Patroni would promote). Leader None: no primary.
    """
    leader = next((m for m in members if m["role"] in ("leader", "primary")), None)
    if not leader:
        return None, [], []
    ready = [m for m in members if m["name"] != leader["name"] and m.get("state") == "streaming"]
    synced = [m for m in ready if m["role"] in ("sync_standby", "quorum_standby")]
    pick = [m for m in ready if m["name"] == candidate] if candidate else (synced or ready)
    return leader, ready, pick


def serves_here(cfg, member):
    """Is `member` (from Patroni's /cluster) this node's own Patroni?"""
    return member["api_url"].rsplit("/", 1)[0] == cfg["patroniUrl"].rstrip("/")


def main(argv):
    config, candidate, if_leader = CONFIG, None, False
    if argv == ["--before-stop"]:
        return before_stop(HANDOFF)
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--config" and args:
            config = args.pop(0)
        elif a == "--candidate" and args:
            candidate = args.pop(0)
        elif a == "--if-leader":
            if_leader = True
        else:
            print(__doc__.strip().splitlines()[-1], file=sys.stderr)
            return 2
    with open(config) as f:
        cfg = json.load(f)

    status, body = patroni(cfg, cfg["patroniUrl"] + "/cluster")
    if status != 200:
        log("Patroni did not answer /cluster: %s %s%s" % (status, body, "; nothing to hand over" if if_leader else ""))
        return 0 if if_leader else 1
    members = json.loads(body)["members"]
    leader, ready, pick = choose(members, candidate)
    here = leader is not None and serves_here(cfg, leader)
    if if_leader and not here:
        log("this member is not the primary (%s is); nothing to hand over"
            % (leader["name"] if leader else "no member"))
        return 0
    if not leader:
        log("no primary now; nothing to switch over")
        return 1
    if not pick:
        log("no streaming replica%s to switch over to%s" % (" named %s" % candidate if candidate else "",
                                                           "; Patroni's own stop follows" if if_leader else ""))
        return 0 if if_leader else 1
    pools = poolers(cfg)
    if not pools:
        log("no HAProxy node in the directory cache %s" % cfg["directoryCache"])
        return 1
    names = " or ".join(m["name"] for m in pick)
    # On the primary's node the pause waits for Patroni's before_stop hook; elsewhere it comes first.
    log("switching over %s -> %s; %s the poolers on %s" % (
        leader["name"], names, "PostgreSQL's stop will pause" if here else "pausing", ", ".join(sorted(pools))))

    # Sessions opened now answer at once when the poolers are to resume (a new one takes a while
    # on a busy node, and clients wait meanwhile).
    sessions = {}
    for name, host in sorted(pools.items()):
        try:
            sessions[name] = session(cfg, host)
        except psycopg2.Error as e:
            log("cannot reach the pooler on %s: %s; nothing changed" % (name, str(e).strip()))
            return 1
    # Held by these sessions: if they go (this tool killed), each node's guard resumes its pooler.
    started = time.monotonic()
    db = cfg["database"]
    paused = {}
    if not here:
        if pause_every_pooler(cfg, pools, db, cfg["pauseTimeoutSeconds"], sessions):
            log("nothing changed")
            return 1
        paused = dict(pools)
        log("poolers paused in %.1f s" % (time.monotonic() - started))

    # Patroni answers the request only once it has seen the switchover through, and polls for
    # that: ask it in the background and watch the candidate and HAProxy directly meanwhile.
    answer = {}
    request_body = {"leader": leader["name"], **({"candidate": candidate} if candidate else {})}
    switchover_url = leader["api_url"].rsplit("/", 1)[0] + "/switchover"
    asking = threading.Thread(target=lambda: answer.update(zip(("status", "body"), patroni(
        cfg, switchover_url, "POST", request_body, timeout=cfg["switchTimeoutSeconds"]), strict=True)))
    asking.start()
    deadline = time.monotonic() + cfg["switchTimeoutSeconds"]
    if here:
        paused = pause_at_stop(cfg, pools, answer, deadline)
        if paused is None:
            asking.join(cfg["switchTimeoutSeconds"])
            log("Patroni refused the switchover (%s: %s); nothing paused, nothing changed"
                % (answer.get("status"), str(answer.get("body", "")).strip()[:200]))
            return 1
    paused_at = time.monotonic()
    # Patroni promotes the named member, or the one it finds most up to date: watch them all,
    # the streaming ones first (a member that does not answer costs a second per look).
    watch = pick if candidate else ready + [m for m in members if m["name"] != leader["name"] and m not in ready]
    target = None
    pending = dict(pools)
    while pending and time.monotonic() < deadline:
        if target is None:
            target = next((m for m in watch if writable(cfg, m)), None)
            if target:
                log("%s is primary after %.1f s" % (target["name"], time.monotonic() - paused_at))
        if target:
            for name, host in list(pending.items()):
                if routes_to(cfg, host, target["name"]):
                    del pending[name]
        elif "status" in answer and answer["status"] != 200:
            # Refused: nothing will be promoted
            break
        if pending:
            time.sleep(0.05)
    switched = target is not None
    log("HAProxy routes to %s after %.1f s" % (target["name"] if target else "nobody new",
                                                time.monotonic() - paused_at))
    if switched and pending:
        log("HAProxy on %s does not route to %s yet; resuming anyway" % (", ".join(sorted(pending)), target["name"]))
    # Server connections still point at the old primary (now a replica): drop them as they are
    # released, so the next transaction opens one to the new primary. Then let clients go on.
    reconnect = ["RECONNECT %s" % db] if switched else []
    results = on_every_pooler(cfg, paused, reconnect + ["RESUME %s" % db], 10, sessions)
    if reconnect:
        unpaused = {n: h for n, h in pools.items() if n not in paused}
        results.update(on_every_pooler(cfg, unpaused, reconnect, 10, sessions))
    for conn in sessions.values():
        conn.close()
    for name, (ok, out) in sorted(results.items()):
        if not ok:
            log("could not resume the pooler on %s: %s" % (name, out))
    resumed_at = time.monotonic()
    asking.join(cfg["switchTimeoutSeconds"])
    log("Patroni answered %s: %s" % (answer.get("status"), str(answer.get("body", "")).strip()[:200]))
    outcome = "primary is now %s" % target["name"] if switched else "nothing switched"
    pause = resumed_at - paused_at if paused else 0
    log("%s; poolers paused %.1f s (%.1f s in all)" % (outcome, pause, resumed_at - started))
    return 0 if switched and not pending and paused else 1

