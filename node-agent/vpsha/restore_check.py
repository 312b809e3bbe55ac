"""vps-ha restore check: proves the newest backup restores, and reports it as a signal.

Restores the stanza's newest backup, and every archived WAL segment after it, into an empty scratch
directory on this member (pgBackRest, archiving off so the copy never writes into the live
repository); starts PostgreSQL there on its own socket and port, with no network listener; waits
until recovery has replayed the archive and the copy is promoted; checks that the expected database
answers a query; stops it and removes the directory, whatever happened. The result goes to
node_exporter's textfile directory (vpsha.signals' table): the time of this run, whether it passed,
and the time of the last run that passed.

A repository with no backup yet (a new stack, before its first backup) is not a failure: the run
says so and reports nothing. With `patroniUrl` set, only one member runs it: the last healthy
replica by name in Patroni's view (the backups take the first), so the primary is never loaded.
When no member would, it fails.

Exit: 0 passed, no backup yet, or another member's turn; 1 failed (the signal says 0); 2 usage or config.

usage: python3 -m vpsha.restore_check [--config FILE]
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
import urllib.request

from vpsha import signals

DEFAULT_CONFIG = "/etc/vps-ha/restore-check.json"
RESTORE_TIMEOUT = 6 * 3600
START_TIMEOUT = 3600
QUERY_TIMEOUT = 30
READY_ROLES = ("replica", "sync_standby", "quorum_standby")


class Failed(Exception):
    """The check failed; the message says at which step."""


def log(message):
    print("restore-check: %s" % message, file=sys.stderr, flush=True)


def chosen(cluster):
    """The member that runs the check: the last healthy replica by name, or None."""
    ready = [m["name"] for m in cluster.get("members", [])
             if m.get("role") in READY_ROLES and m.get("state") in ("streaming", "running")]
    return max(ready) if ready else None


def my_turn(cfg):
    with urllib.request.urlopen(cfg["patroniUrl"] + "/cluster", timeout=5) as r:
        name = chosen(json.load(r))
    if name is None:
        raise Failed("the cluster has no healthy replica: no member runs the restore check")
    return name == cfg["node"]


def as_user(cfg):
    """Run as root (it writes node_exporter's directory), PostgreSQL and pgBackRest run as their owner."""
    return cfg.get("user") if os.geteuid() == 0 else None


def run(argv, timeout, what, user=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, user=user)
    if r.returncode != 0:
        raise Failed("%s: exit %d: %s" % (what, r.returncode, (r.stderr or r.stdout).strip()[-600:]))
    return r.stdout


def repository_backups(cfg):
    """The stanza's finished backups in the repository (an empty repository is a new stack's)."""
    try:
        info = signals.pgbackrest_json(cfg["stanza"], ["info"], cfg.get("user"))
        return signals.finished_backups(signals.stanza_entry(cfg["stanza"], info))
    except signals.Bad as e:
        raise Failed(str(e)) from None


def restore_and_check(cfg):
    scratch, socket = cfg["scratch"], cfg["scratch"] + ".socket"
    for d in (scratch, socket):
        shutil.rmtree(d, ignore_errors=True)
    user = as_user(cfg)
    for d in (scratch, socket):
        os.makedirs(d, mode=0o700)
        if user:
            owner = pwd.getpwnam(user)
            os.chown(d, owner.pw_uid, owner.pw_gid)
    pg_ctl = os.path.join(cfg["pgBin"], "pg_ctl")
    started = False
    try:
        # The default type replays every archived segment: the most recent point the archive holds.
        run(["pgbackrest", "--stanza=%s" % cfg["stanza"], "--pg1-path=%s" % scratch, "--archive-mode=off",
             "--log-level-console=warn", "restore"], RESTORE_TIMEOUT, "pgbackrest restore", user)
        options = ("-p %d -c listen_addresses='' -c unix_socket_directories=%s -c archive_mode=off "
                   "-c synchronous_standby_names='' -c hot_standby=on" % (cfg["port"], socket))
        started = True
        run([pg_ctl, "-D", scratch, "-w", "-t", str(START_TIMEOUT), "-l", scratch + ".log", "-o", options, "start"],
            START_TIMEOUT + 60, "PostgreSQL on the restored copy", user)
        psql = [os.path.join(cfg["pgBin"], "psql"), "-h", socket, "-p", str(cfg["port"]), "-XtA", "-d", "postgres",
                "-c"]
        deadline = time.time() + START_TIMEOUT
        while run(psql + ["SELECT pg_is_in_recovery()"], QUERY_TIMEOUT, "the restored copy", user).strip() != "f":
            if time.time() > deadline:
                raise Failed("the restored copy was still recovering after %d s" % START_TIMEOUT)
            time.sleep(2)
        found = run(psql + ["SELECT count(*) FROM pg_database WHERE datname = '%s'" % cfg["database"]], QUERY_TIMEOUT,
                    "the restored copy's databases", user).strip()
        if found != "1":
            raise Failed("the restored copy has no database %s" % cfg["database"])
    finally:
        if started:
            subprocess.run([pg_ctl, "-D", scratch, "-w", "-t", "120", "-m", "immediate", "stop"], capture_output=True,
                           timeout=180, user=user)
        for d in (scratch, socket):
            shutil.rmtree(d, ignore_errors=True)
        try:
            os.unlink(scratch + ".log")
        except FileNotFoundError:
            pass


def report(table, stanza, passed, now):
    """The run's signals; the last passing run's time is kept from the file when this one failed."""
    last = table["signals"]["restoreCheckLastSuccess"]
    before = None
    try:
        with open(os.path.join(table["textfileDir"], last["file"])) as f:
            for line in f:
                if line.startswith('%s{stanza="%s"} ' % (last["name"], stanza)):
                    before = float(line.split()[1])
    except (OSError, ValueError):
        pass
    samples = [("restoreCheckLastRun", {"stanza": stanza}, now),
               ("restoreCheckSuccess", {"stanza": stanza}, 1 if passed else 0)]
    if passed or before is not None:
        samples.append(("restoreCheckLastSuccess", {"stanza": stanza}, now if passed else before))
    signals.write_textfile(table["textfileDir"], last["file"], signals.render(table, samples))


def load_config(path):
    cfg, table = signals.read_config(path)
    for k in ("stanza", "pgBin", "scratch", "database"):
        if not isinstance(cfg.get(k), str) or not cfg[k]:
            raise SystemExit("%s: %s is %r; expected a name or an absolute path" % (path, k, cfg.get(k)))
    if not isinstance(cfg.get("port"), int):
        raise SystemExit("%s: port is %r; expected a port number" % (path, cfg.get("port")))
    return cfg, table


def main(argv):
    if argv not in ([], ["--config", argv[-1]]) or (argv and argv[-1] == "--config"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    cfg, table = load_config(argv[1] if argv else DEFAULT_CONFIG)
    try:
        if cfg.get("patroniUrl") and not my_turn(cfg):
            log("another replica runs the check")
            return 0
    except (OSError, ValueError, Failed) as e:
        log("cannot tell who runs the check: %s" % e)
        return 1
    started = time.time()
    try:
        # Nothing to prove yet, and nothing failed: the backups' own alert says when one is overdue.
        if not repository_backups(cfg):
            log("the repository holds no backup yet: nothing to check")
            return 0
        restore_and_check(cfg)
        passed = True
        log("passed in %.0f s" % (time.time() - started))
    except (Failed, OSError, subprocess.SubprocessError) as e:
        passed = False
        log("FAILED: %s" % e)
    report(table, cfg["stanza"], passed, round(time.time()))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
