#!/usr/bin/python3
"""vps-ha switchover: move the PostgreSQL primary to another member with no failed transaction.

For planned work (a rolling OS upgrade, a resize, a move): run it on any database member, as
root. It pauses the pgbouncer on every HAProxy node (in-flight transactions finish, new ones
wait), asks Patroni to switch over, waits until each HAProxy node routes writes to the new
primary, makes the poolers drop their server connections to the old one, and resumes them.
Clients of the pooled URL see a pause of a few seconds and no error. If anything fails before
the switch, the poolers are resumed and nothing changed.

Without --candidate the streaming replicas race for the leader key as in a failover, and the most
up-to-date one wins. Named, every other member first waits 2 s to let the candidate win
(Patroni's rule for a switchover to a given member), which holds the first commit after the
switch until one of them follows the new primary.

usage: vps-ha-switchover [--candidate MEMBER] [--config FILE]
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.environ.get("VPS_HA_PYTHON_LIB", "/usr/local/lib/vps-ha/python"))
from vpsha_rest import request  # noqa: E402  (shared with vps-ha-patroni-config)

CONFIG = "/etc/vps-ha/switchover.json"


def log(msg):
    print("vps-ha-switchover: %s" % msg, flush=True)


def patroni(cfg, url, method="GET", body=None, timeout=5):
    return request(url, method, body, (cfg["restUser"], cfg["restPassword"]), timeout)


def poolers(cfg):
    """Mesh addresses of the HAProxy nodes, from the directory the agent last verified."""
    with open(cfg["directoryCache"]) as f:
        texts = json.load(f)["members"]
    out = {}
    for name, text in texts.items():
        fields = dict(w.split("=", 1) for w in text.split() if "=" in w)
        if fields.get("role") == "haproxy" and fields.get("mesh"):
            out[name] = fields["mesh"]
    return out


def psql(cfg, host, port, user, password, database, commands, timeout):
    env = {"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "3", "PATH": "/usr/bin:/bin"}
    conn = "host=%s port=%d user=%s dbname=%s" % (host, port, user, database)
    argv = ["psql", conn, "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for c in commands:
        argv += ["-c", c]
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timed out after %d s" % timeout
    return r.returncode == 0, (r.stdout or r.stderr).strip()


def admin(cfg, host, commands, timeout=10):
    """Admin console commands, in one session."""
    return psql(cfg, host, cfg["poolerPort"], cfg["poolerAdminUser"], cfg["poolerAdminPassword"], "pgbouncer", commands, timeout)


def on_every_pooler(cfg, pools, commands, timeout):
    """The same admin commands on every pooler at once: {name: (ok, output)}."""
    results = {}
    threads = [threading.Thread(target=lambda n=n, h=h: results.__setitem__(n, admin(cfg, h, commands, timeout))) for n, h in pools.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return {n: results.get(n, (False, "no answer")) for n in pools}


def routes_to(cfg, host, member):
    """Does this HAProxy node send its primary port to `member` alone? (its stats, as CSV)"""
    url = "http://%s:%d/stats;csv" % (host, cfg["haproxyStatsPort"])
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            rows = r.read().decode().splitlines()
    except (urllib.error.URLError, OSError):
        return False
    up = [f[1] for f in (row.split(",") for row in rows) if len(f) > 17 and f[0] == cfg["haproxyPrimaryListen"] and f[1] not in ("FRONTEND", "BACKEND") and f[17].startswith("UP")]
    return up == [member]


def main(argv):
    config, candidate = CONFIG, None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--config" and args:
            config = args.pop(0)
        elif a == "--candidate" and args:
            candidate = args.pop(0)
        else:
            print(__doc__.strip().splitlines()[-1], file=sys.stderr)
            return 2
    with open(config) as f:
        cfg = json.load(f)

    status, body = patroni(cfg, cfg["patroniUrl"] + "/cluster")
    if status != 200:
        log("Patroni did not answer /cluster: %s %s" % (status, body))
        return 1
    members = json.loads(body)["members"]
    leader = next((m for m in members if m["role"] in ("leader", "primary")), None)
    if not leader:
        log("no primary now; nothing to switch over")
        return 1
    ready = [m for m in members if m["name"] != leader["name"] and m.get("state") == "streaming"]
    synced = [m for m in ready if m["role"] in ("sync_standby", "quorum_standby")]
    # Who may come out primary: the named candidate, else any member Patroni would promote.
    pick = [m for m in ready if m["name"] == candidate] if candidate else (synced or ready)
    if not pick:
        log("no streaming replica%s to switch over to" % (" named %s" % candidate if candidate else ""))
        return 1
    pools = poolers(cfg)
    if not pools:
        log("no HAProxy node in the directory cache %s" % cfg["directoryCache"])
        return 1
    names = " or ".join(m["name"] for m in pick)
    log("switching over %s -> %s; pausing the poolers on %s" % (leader["name"], names, ", ".join(sorted(pools))))

    started = time.monotonic()
    db = cfg["database"]
    results = on_every_pooler(cfg, pools, ["PAUSE %s" % db], cfg["pauseTimeoutSeconds"])
    failed = {n: out for n, (ok, out) in results.items() if not ok}
    if failed:
        log("could not pause the pooler on %s; resuming, nothing changed" % "; ".join("%s: %s" % kv for kv in sorted(failed.items())))
        on_every_pooler(cfg, pools, ["RESUME %s" % db], 10)
        return 1
    paused = sorted(pools.items())
    paused_at = time.monotonic()
    log("poolers paused in %.1f s" % (paused_at - started))

    # Patroni answers the request only once it has seen the switchover through, and polls for
    # that: ask it in the background and watch the candidate and HAProxy directly meanwhile.
    answer = {}
    request_body = {"leader": leader["name"], **({"candidate": candidate} if candidate else {})}
    asking = threading.Thread(target=lambda: answer.update(zip(("status", "body"), patroni(
        cfg, leader["api_url"].rsplit("/", 1)[0] + "/switchover", "POST",
        request_body, timeout=cfg["switchTimeoutSeconds"]))))
    asking.start()
    deadline = time.monotonic() + cfg["switchTimeoutSeconds"]
    # Patroni promotes the named member, or the one it finds most up to date: watch them all,
    # the streaming ones first (a member that does not answer costs a second per look).
    watch = pick if candidate else ready + [m for m in members if m["name"] != leader["name"] and m not in ready]
    target = None
    pending = dict(paused)
    while pending and time.monotonic() < deadline:
        if target is None:
            target = next((m for m in watch if patroni(cfg, m["api_url"].rsplit("/", 1)[0] + "/primary", timeout=1)[0] == 200), None)
            if target:
                log("%s is primary after %.1f s" % (target["name"], time.monotonic() - paused_at))
        if target:
            for name, host in list(pending.items()):
                if routes_to(cfg, host, target["name"]):
                    del pending[name]
        elif "status" in answer and answer["status"] != 200:
            break  # refused: nothing will be promoted
        if pending:
            time.sleep(0.05)
    switched = target is not None
    log("HAProxy routes to %s after %.1f s" % (target["name"] if target else "nobody new", time.monotonic() - paused_at))
    if switched and pending:
        log("HAProxy on %s does not route to %s yet; resuming anyway" % (", ".join(sorted(pending)), target["name"]))
    # Server connections still point at the old primary (now a replica): drop them as they are
    # released, so the next transaction opens one to the new primary. Then let clients go on.
    commands = (["RECONNECT %s" % db] if switched else []) + ["RESUME %s" % db]
    for name, (ok, out) in sorted(on_every_pooler(cfg, pools, commands, 10).items()):
        if not ok:
            log("could not resume the pooler on %s: %s" % (name, out))
    resumed_at = time.monotonic()
    asking.join(cfg["switchTimeoutSeconds"])
    log("Patroni answered %s: %s" % (answer.get("status"), str(answer.get("body", "")).strip()[:200]))
    log("%s; poolers paused %.1f s (%.1f s in all)" % (
        "primary is now %s" % target["name"] if switched else "nothing switched", resumed_at - paused_at, resumed_at - started))
    return 0 if switched and not pending else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
