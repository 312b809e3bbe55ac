#!/usr/bin/python3
"""vps-ha switchover: move the PostgreSQL primary to another member with no failed transaction.

For planned work (a rolling OS upgrade, a resize, a move): run it on any database member, as
root. It pauses the pgbouncer on every HAProxy node (in-flight transactions finish, new ones
wait), asks Patroni to switch over, waits until each HAProxy node routes writes to the new
primary, makes the poolers drop their server connections to the old one, and resumes them.
Clients of the pooled URL see a pause of a few seconds and no error. If anything fails before
the switch, the poolers are resumed and nothing changed.

usage: vps-ha-switchover [--candidate MEMBER] [--config FILE]
"""
import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

CONFIG = "/etc/vps-ha/switchover.json"


def log(msg):
    print("vps-ha-switchover: %s" % msg, flush=True)


def patroni(cfg, url, method="GET", body=None, timeout=5):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    token = base64.b64encode(("%s:%s" % (cfg["restUser"], cfg["restPassword"])).encode()).decode()
    req.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


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


def psql(cfg, host, port, user, password, database, sql, timeout):
    env = {"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "3", "PATH": "/usr/bin:/bin"}
    conn = "host=%s port=%d user=%s dbname=%s" % (host, port, user, database)
    try:
        r = subprocess.run(["psql", conn, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timed out after %d s" % timeout
    return r.returncode == 0, (r.stdout or r.stderr).strip()


def admin(cfg, host, command, timeout=10):
    return psql(cfg, host, cfg["poolerPort"], cfg["poolerAdminUser"], cfg["poolerAdminPassword"], "pgbouncer", command, timeout)


def routes_to(cfg, host, member_address):
    """Does this HAProxy node's primary port reach `member_address`, writable?"""
    ok, out = psql(cfg, host, cfg["haproxyPrimaryPort"], cfg["appUser"], cfg["appPassword"], cfg["database"],
                   "SELECT host(inet_server_addr()) || ' ' || NOT pg_is_in_recovery()", 5)
    return ok and out == "%s true" % member_address


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
    pick = [m for m in ready if m["name"] == candidate] if candidate else (synced or ready)
    if not pick:
        log("no streaming replica%s to switch over to" % (" named %s" % candidate if candidate else ""))
        return 1
    target = pick[0]
    new_address = target["host"]
    pools = poolers(cfg)
    if not pools:
        log("no HAProxy node in the directory cache %s" % cfg["directoryCache"])
        return 1
    log("switching over %s -> %s; pausing the poolers on %s" % (leader["name"], target["name"], ", ".join(sorted(pools))))

    started = time.monotonic()
    paused = []
    for name, host in sorted(pools.items()):
        ok, out = admin(cfg, host, "PAUSE %s" % cfg["database"], timeout=cfg["pauseTimeoutSeconds"])
        if not ok:
            log("could not pause the pooler on %s: %s; resuming the others, nothing changed" % (name, out))
            for _, h in paused:
                admin(cfg, h, "RESUME %s" % cfg["database"])
            return 1
        paused.append((name, host))
    paused_at = time.monotonic()

    status, body = patroni(cfg, leader["api_url"].rsplit("/", 1)[0] + "/switchover", "POST",
                           {"leader": leader["name"], "candidate": target["name"]}, timeout=cfg["switchTimeoutSeconds"])
    switched = status == 200
    if not switched:
        log("Patroni refused the switchover: %s %s" % (status, body.strip()))
    deadline = time.monotonic() + cfg["switchTimeoutSeconds"]
    pending = dict(paused)
    while switched and pending and time.monotonic() < deadline:
        for name, host in list(pending.items()):
            if routes_to(cfg, host, new_address):
                del pending[name]
        if pending:
            time.sleep(0.1)
    if switched and pending:
        log("HAProxy on %s does not route to %s yet; resuming anyway" % (", ".join(sorted(pending)), target["name"]))
    for name, host in paused:
        # Server connections still point at the old primary (now a replica): drop them as they
        # are released, so the next transaction opens one to the new primary.
        if switched:
            admin(cfg, host, "RECONNECT %s" % cfg["database"])
        ok, out = admin(cfg, host, "RESUME %s" % cfg["database"])
        if not ok:
            log("could not resume the pooler on %s: %s" % (name, out))
    resumed_at = time.monotonic()
    log("%s; poolers paused %.1f s (%.1f s in all)" % (
        "primary is now %s" % target["name"] if switched else "nothing switched", resumed_at - paused_at, resumed_at - started))
    return 0 if switched and not pending else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
