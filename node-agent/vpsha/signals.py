"""vps-ha's own health signals, for node_exporter's textfile collector.

What no exporter knows, read from the tools that know it and written as Prometheus text files
into node_exporter's textfile directory, each file whole and then renamed into place (the
collector never reads half a file). The signal table (names, types, help, labels, which file)
is components/render/signals.ts's, shipped as JSON; this module refuses a sample it does not
allow, as the TypeScript side does.

Collectors (each writes its own file; one failing leaves the others' files and its own last one):
  backup        the newest backup per type and the newest archived WAL segment of the stanza,
                from `pgbackrest info` and `pgbackrest repo-ls` (JSON), run as postgres; every
                member reports the same repository, the rules take the newest
  desired       the desired-state generation applied and the last successful check, from
                vpsha.desired's status file
  directory     the last round that read the mesh directory from DNS, from the directory
                agent's status file (a round that fell back to its cache keeps the time before),
                the index generation applied, and whether the newest index in DNS is refused
  pooler        whether pgbouncer holds the app's database paused (SHOW DATABASES on its
                admin console)
  certificates  each named certificate's notAfter
  upgrades      security upgrades pending (for unattended-upgrades, or held for a release), the
                last run that left security updates current, whether a reboot is required
                (vpsha.upgrades: what apt and unattended-upgrades record)

Exit: 0 every collector asked for wrote its file; 1 one or more failed (each named on stderr).

usage: python3 -m vpsha.signals [--config FILE] COLLECTOR...
"""

import json
import math
import os
import re
import subprocess
import sys

from vpsha import upgrades

DEFAULT_CONFIG = "/etc/vps-ha/signals.json"
COLLECTORS = ("backup", "desired", "directory", "pooler", "certificates", "upgrades")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._/:@-]{1,200}$")
SEGMENT = re.compile(r"^[0-9A-F]{24}$")
PGBACKREST_TIMEOUT = 120
POOLER_TIMEOUT = 5


class Bad(Exception):
    """A collector's input is missing or not what it should be; the message says which."""


class NotYet(Bad):
    """The agent a collector reads has not written its first status (a node still booting): no signal, no failure."""


def render(table, samples):
    """Prometheus text (0.0.4) for `samples` [(signal key, {label: value}, value)]: HELP and TYPE once per metric."""
    signals = table["signals"]
    by_key = {}
    for key, labels, value in samples:
        by_key.setdefault(key, []).append((labels, value))
    out = []
    for key, items in by_key.items():
        if key not in signals:
            raise ValueError("%s is not a vps-ha signal" % key)
        d = signals[key]
        out += ["# HELP %s %s" % (d["name"], d["help"]), "# TYPE %s %s" % (d["name"], d["type"])]
        for labels, value in items:
            if sorted(labels) != sorted(d["labels"]):
                raise ValueError("%s: labels must be exactly [%s]; got [%s]"
                                 % (d["name"], ", ".join(d["labels"]), ", ".join(labels)))
            for name, v in labels.items():
                allowed = (d.get("labelValues") or {}).get(name)
                if allowed and v not in allowed:
                    raise ValueError('%s: label %s="%s" is not one of %s' % (d["name"], name, v, ", ".join(allowed)))
                if not LABEL_VALUE.match(v):
                    raise ValueError('%s: label %s="%s" must be 1-200 of A-Z a-z 0-9 . _ / : @ -'
                                     % (d["name"], name, v))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError("%s: value %r is not a finite number" % (d["name"], value))
            text = ",".join('%s="%s"' % (n, labels[n]) for n in d["labels"])
            shown = repr(value) if isinstance(value, float) else value
            out.append("%s%s %s" % (d["name"], "{%s}" % text if text else "", shown))
    return "\n".join(out) + "\n"


def files_of(table, samples):
    """{file name: its samples}: one writer per file, every signal in its table's file."""
    files = {}
    for s in samples:
        files.setdefault(table["signals"][s[0]]["file"], []).append(s)
    return files


def write_textfile(directory, name, text):
    """Whole, then renamed: the collector reads *.prom only, so the temporary file is never read."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_textfile_value(directory, name, metric):
    """A metric's value in a file this module wrote before, or None (for signals that keep their last value)."""
    try:
        with open(os.path.join(directory, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == metric:
                    return float(parts[1])
    except (OSError, ValueError):
        pass
    return None


# ---------------------------------------------------------------- backup

def stanza_entry(stanza, info):
    """The stanza's entry in `pgbackrest info --output=json`."""
    entry = next((s for s in info if isinstance(s, dict) and s.get("name") == stanza), None)
    if entry is None:
        raise Bad("pgbackrest info knows no stanza %s" % stanza)
    return entry


def finished_backups(entry):
    """A stanza entry's finished backups, as (type, stop time)."""
    done = []
    for b in entry.get("backup") or []:
        stop = (b.get("timestamp") or {}).get("stop")
        if b.get("error") is not True and b.get("type") in ("full", "diff", "incr") and isinstance(stop, int):
            done.append((b["type"], stop))
    return done


def backup_samples(stanza, info, archive_listing):
    """From `pgbackrest info --output=json` and `repo-ls --output=json` of the newest WAL's directory."""
    entry = stanza_entry(stanza, info)
    samples = []
    newest = {}
    for kind, stop in finished_backups(entry):
        newest[kind] = max(newest.get(kind, 0), stop)
    for kind, stop in sorted(newest.items()):
        samples.append(("backupLastSuccess", {"stanza": stanza, "type": kind}, stop))
    segment = newest_segment(entry)
    if segment and archive_listing is not None:
        times = [v.get("time") for k, v in archive_listing.items()
                 if os.path.basename(k).startswith(segment + "-") and isinstance(v, dict) and v.get("type") == "file"]
        times = [t for t in times if isinstance(t, int)]
        if times:
            samples.append(("walArchiveLastSuccess", {"stanza": stanza}, max(times)))
    return samples


def newest_segment(entry):
    """The newest WAL segment in the archive of the stanza's current database, and that archive's id."""
    archives = [a for a in entry.get("archive") or [] if isinstance(a, dict) and SEGMENT.match(str(a.get("max")))]
    if not archives:
        return None
    current = max((d.get("id", 0) for d in entry.get("db") or [] if isinstance(d, dict)), default=None)
    mine = [a for a in archives if (a.get("database") or {}).get("id") == current] or archives
    return max(a["max"] for a in mine)


def archive_dir(stanza, entry):
    """The repository path (relative to repo1-path) of the newest segment's directory."""
    archives = [a for a in entry.get("archive") or [] if isinstance(a, dict) and SEGMENT.match(str(a.get("max")))]
    a = max(archives, key=lambda x: x["max"])
    return "archive/%s/%s/%s" % (stanza, a["id"], a["max"][:16])


def pgbackrest(cfg, args):
    return pgbackrest_json(cfg["stanza"], args, cfg.get("pgbackrestUser"))


def pgbackrest_json(stanza, args, owner):
    """pgBackRest's JSON answer, run as its owner (postgres) when root: its locks and logs stay postgres'."""
    user = owner if os.geteuid() == 0 else None
    argv = ["pgbackrest", "--stanza=%s" % stanza, "--output=json", "--log-level-console=error"] + args
    r = subprocess.run(argv, capture_output=True, text=True, timeout=PGBACKREST_TIMEOUT, user=user)
    if r.returncode != 0:
        raise Bad("pgbackrest %s: exit %d: %s" % (args[0], r.returncode, (r.stderr or r.stdout).strip()[-400:]))
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise Bad("pgbackrest %s printed no JSON" % args[0]) from None


def collect_backup(cfg, run=pgbackrest):
    if not cfg.get("stanza"):
        raise Bad("no stanza in the config: this node takes no backups")
    info = run(cfg, ["info"])
    entry = stanza_entry(cfg["stanza"], info)
    listing = None
    if newest_segment(entry):
        listing = run(cfg, ["repo-ls", "--recurse", archive_dir(cfg["stanza"], entry)])
    return backup_samples(cfg["stanza"], info, listing)


# ---------------------------------------------------------------- desired state, directory

def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise NotYet("%s has no status yet (%s)" % (what, path)) from None
    except (OSError, ValueError) as e:
        raise Bad("%s status %s unreadable: %s" % (what, path, e)) from None


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def desired_samples(status):
    """
    The generation applied, the one published for this node (each node's own: nodes a change does
    not touch keep theirs), and when a check last succeeded (applied now, or the kept one's last check).
    """
    samples = []
    if number(status.get("generation")):
        samples.append(("desiredStateGeneration", {}, status["generation"]))
    if number(status.get("published")):
        samples.append(("desiredStatePublished", {}, status["published"]))
    at = status.get("at")
    if number(at):
        if status.get("applied") is True:
            samples.append(("desiredStateLastSuccess", {}, at))
        elif number(status.get("staleSeconds")):
            samples.append(("desiredStateLastSuccess", {}, round(at - status["staleSeconds"], 1)))
    return samples


def collect_desired(cfg):
    return desired_samples(read_json(cfg["desiredStatus"], "the desired-state agent"))


def directory_samples(status, before):
    """
    A round that read DNS is a success, even one that refused what it read (its own signal says
    so); one that fell back to its cache keeps the time `before`. With them, the generation
    applied and whether the newest index in DNS is refused.
    """
    at = status.get("at")
    samples = []
    if (status.get("source") == "dns" or status.get("refused")) and number(at):
        samples.append(("directoryLastSuccess", {}, at))
    elif before is not None:
        samples.append(("directoryLastSuccess", {}, before))
    if number(status.get("generation")):
        samples.append(("directorySerial", {}, status["generation"]))
    if number(at):
        samples.append(("directoryRefused", {}, 1 if status.get("refused") else 0))
    return samples


def collect_directory(cfg, table):
    name = table["signals"]["directoryLastSuccess"]
    before = read_textfile_value(table["textfileDir"], name["file"], name["name"])
    return directory_samples(read_json(cfg["directoryStatus"], "the directory agent"), before)


# ---------------------------------------------------------------- pooler

def pooler_paused(columns, rows, database):
    """1 when SHOW DATABASES says `database` is paused, else 0; the database must be there."""
    try:
        name, paused = columns.index("name"), columns.index("paused")
    except ValueError:
        raise Bad("SHOW DATABASES has no name or paused column: %s" % ", ".join(columns)) from None
    for row in rows:
        if row[name] == database:
            return 1 if int(row[paused]) else 0
    raise Bad("pgbouncer has no database %s" % database)


def show_databases(pooler):
    import psycopg2

    conn = psycopg2.connect(host=pooler["host"], port=pooler["port"], user=pooler["user"], password=pooler["password"],
                            dbname="pgbouncer", connect_timeout=POOLER_TIMEOUT)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return [c[0] for c in cur.description], cur.fetchall()
    finally:
        conn.close()


def collect_pooler(cfg, show=show_databases):
    pooler = cfg["pooler"]
    try:
        columns, rows = show(pooler)
    except Bad:
        raise
    except Exception as e:  # psycopg2's errors, and the socket's
        raise Bad("pgbouncer's admin console at %s:%s: %s" % (pooler["host"], pooler["port"], str(e).strip())) from None
    return [("poolerPaused", {}, pooler_paused(columns, rows, pooler["database"]))]


# ---------------------------------------------------------------- certificates

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def not_after(pem):
    """The first certificate's notAfter (Unix time) in a PEM that may also hold a key or a chain."""
    from cryptography import x509

    m = PEM_CERT.search(pem)
    if not m:
        raise Bad("no certificate in it")
    cert = x509.load_pem_x509_certificate(m.group(0).encode())
    when = getattr(cert, "not_valid_after_utc", None)
    if when is None:  # cryptography before 42: a naive datetime in UTC
        import calendar

        return calendar.timegm(cert.not_valid_after.timetuple())
    return int(when.timestamp())


def collect_certificates(cfg):
    samples, problems = [], []
    for label, path in sorted(cfg["certificates"].items()):
        try:
            with open(path) as f:
                samples.append(("certificateExpiry", {"certificate": label}, not_after(f.read())))
        except (OSError, ValueError, Bad) as e:
            problems.append("%s (%s): %s" % (label, path, e))
    if problems:
        raise Bad("; ".join(problems))
    return samples


# ---------------------------------------------------------------- main

def collect(cfg, table, name):
    if name == "backup":
        return collect_backup(cfg)
    if name == "desired":
        return collect_desired(cfg)
    if name == "directory":
        return collect_directory(cfg, table)
    if name == "pooler":
        return collect_pooler(cfg)
    if name == "upgrades":
        try:
            return upgrades.samples(cfg)
        except upgrades.Bad as e:
            raise Bad(str(e)) from None
    return collect_certificates(cfg)


# The signals each collector writes: it owns their files, and rewrites them whole each run.
WRITES = {
    "backup": ["backupLastSuccess", "walArchiveLastSuccess"],
    "desired": ["desiredStateGeneration", "desiredStatePublished", "desiredStateLastSuccess"],
    "directory": ["directoryLastSuccess", "directorySerial", "directoryRefused"],
    "pooler": ["poolerPaused"],
    "certificates": ["certificateExpiry"],
    "upgrades": ["upgradesPending", "upgradesLastSuccess", "rebootRequired"],
}
REQUIRED = {"backup": "stanza", "desired": "desiredStatus", "directory": "directoryStatus", "pooler": "pooler",
            "certificates": "certificates", "upgrades": "upgrades"}


def read_config(path):
    """A tool's JSON config and the signal table it names; exits naming the file when either is unreadable."""
    try:
        with open(path) as f:
            cfg = json.load(f)
        with open(cfg["signalTable"]) as f:
            return cfg, json.load(f)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit("%s: %s" % (path, e)) from None


def load_config(path):
    cfg, table = read_config(path)
    if not isinstance(table.get("signals"), dict) or not isinstance(table.get("textfileDir"), str):
        raise SystemExit("%s: expected {textfileDir, signals}" % cfg["signalTable"])
    return cfg, table


def run(cfg, table, names):
    """Each collector writes its files; returns the problems of those that failed."""
    problems = []
    for name in names:
        if cfg.get(REQUIRED[name]) is None:
            problems.append("%s: this node's config has no %s" % (name, REQUIRED[name]))
            continue
        try:
            try:
                samples = collect(cfg, table, name)
            except NotYet as e:
                # Written empty: the rules see no sample (the staleness alerts cover a status that never comes).
                print("signals: %s: %s" % (name, e), file=sys.stderr)
                samples = []
            by_file = files_of(table, samples)
            # A file whose signals are gone now is written empty, so no stale value stays.
            for file in sorted({table["signals"][k]["file"] for k in WRITES[name]} | set(by_file)):
                write_textfile(table["textfileDir"], file, render(table, by_file.get(file, [])))
        except (Bad, ValueError, OSError, subprocess.SubprocessError) as e:
            problems.append("%s: %s" % (name, e))
    return problems


def main(argv):
    args = list(argv)
    path = DEFAULT_CONFIG
    if args[:1] == ["--config"] and len(args) >= 2:
        path, args = args[1], args[2:]
    unknown = [a for a in args if a not in COLLECTORS]
    if not args or unknown:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        print("collectors: %s" % ", ".join(COLLECTORS), file=sys.stderr)
        return 2
    cfg, table = load_config(path)
    problems = run(cfg, table, args)
    for p in problems:
        print("signals: %s" % p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

