"""vps-ha: Patroni's bootstrap method.

The newest backup if there is one, initdb if provably none. Run by Patroni on the member that
creates the cluster (bootstrap.method), it asks the repository whether it holds a backup. A
backup: restore the newest one, replay every archived WAL segment and promote at the end of the
archive, so the new cluster has every commit that was archived. Provably none (no stanza, or a
stanza with no backup): initdb with the options Patroni's own initdb would use. Anything else
(the repository does not answer, or its answer is not understood): exit 1, so Patroni creates
nothing and tries again later; an empty cluster beside a repository full of data is the one
outcome never allowed.

Patroni runs it with --scope, --datadir and the method's own keys (stanza, bin_dir, initdb).

usage: db-restore --stanza= --datadir= --bin_dir= --initdb=
"""
import json
import os
import subprocess as sp
import sys
import time

# A restore and the replay of a day's WAL, with room to spare; past it the member gives up and
# Patroni starts over. pgbackrest info gets as long: on an unreachable bucket it retries for minutes.
TIMEOUT = 86400


def log(msg):
    print("db-restore: " + msg, flush=True)


def run(*argv):
    log(" ".join(argv))
    return sp.run(argv, timeout=TIMEOUT).returncode == 0


def newest_backup(stanza):
    """The newest backup in the repository; None when it provably holds none; ValueError otherwise."""
    argv = ["pgbackrest", "--stanza=" + stanza, "--output=json", "info"]
    r = sp.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    try:
        info = [s for s in json.loads(r.stdout) if s["name"] == stanza][0]
        repos = {repo["status"]["code"] for repo in info["repo"]}
        status = (r.returncode, info["status"]["code"], repos, len(info["backup"]))
    except (ValueError, LookupError, TypeError) as e:
        raise ValueError(r.stderr + r.stdout) from e
    log("%s %s" % (status, info["status"]["message"]))
    # Codes: 0 ok, 1 missing stanza path, 2 no valid backups. Any other (3 missing stanza data,
    # 99 other, which an unreadable repository gives) proves nothing.
    if status[:3] == (0, 0, {0}) and status[3]:
        return info["backup"][-1]
    if status[0] == 0 and status[1] in (1, 2) and status[2] <= {1, 2} and not status[3]:
        return None
    raise ValueError("no clear answer")


def replay_and_promote(bin_dir, data):
    """Runs the restored cluster, closed to clients, until it has replayed the archive and promoted.

    Its log goes to Patroni's.
    """
    pg_ctl = [bin_dir + "/pg_ctl", "-D", data]
    # Its socket in its own directory, where nobody looks; no TCP at all. Nothing commits, so
    # synchronous_standby_names (restored with the rest) holds nothing up.
    run(*pg_ctl, "-o", "-c listen_addresses= -c unix_socket_directories=" + data, "-W", "start")
    # PostgreSQL removes recovery.signal (pgBackRest's) when recovery ends, on the new timeline.
    for _ in range(TIMEOUT // 2):
        time.sleep(2)
        if not os.path.exists(data + "/recovery.signal") or sp.run(pg_ctl + ["status"], stdout=sp.DEVNULL).returncode:
            break
    done = not os.path.exists(data + "/recovery.signal")
    log("promoted: %s" % done)
    # A fast stop archives what is left (the new timeline's history file first) and checkpoints;
    # it fails if PostgreSQL is no longer running.
    return run(*pg_ctl, "-m", "fast", "-w", "-t", "600", "stop") and done


def bootstrap(stanza, data, bin_dir, initdb):
    try:
        backup = newest_backup(stanza)
        os.makedirs(data, 0o700, exist_ok=True)
        if os.listdir(data):
            raise ValueError(data + " is not empty")
    except (ValueError, OSError, sp.TimeoutExpired) as e:
        # Patroni tries again later.
        log("not now: %s" % e)
        return False
    if backup is None:
        return run(bin_dir + "/initdb", "-D", data, *initdb.split())
    log("restoring backup " + backup["label"])
    if run("pgbackrest", "--stanza=" + stanza, "--pg1-path=" + data, "restore") and replay_and_promote(bin_dir, data):
        return True
    # Nothing half-restored stays behind for a later start to take for a cluster (PostgreSQL is stopped).
    run("find", data, "-mindepth", "1", "-delete")
    return False


def main(argv):
    # Patroni passes every setting as --key=value (--scope, --datadir, the method's own keys).
    opt = dict(a[2:].split("=", 1) for a in argv if "=" in a)
    missing = [k for k in ("stanza", "datadir", "bin_dir", "initdb") if k not in opt]
    if missing:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    return 0 if bootstrap(opt["stanza"], opt["datadir"], opt["bin_dir"], opt["initdb"]) else 1

