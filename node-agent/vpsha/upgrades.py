"""The unattended-upgrades signals: what apt and unattended-upgrades themselves record.

  pending        upgrades from the archives unattended-upgrades installs from (its
                 Origins-Pattern), by what they wait for: the next unattended-upgrades run, or a
                 vps-ha release (a held package, its Package-Blacklist); read with python3-apt
                 from the package lists apt-daily last fetched
  last success   the older of apt.systemd.daily's stamps for its last successful list update and
                 its last unattended-upgrade run that exited 0: security updates are current as
                 of then (a run on lists that no longer update is not current)
  reboot         whether /run/reboot-required exists (a package installed asks for a reboot)

signals.py's `upgrades` collector calls samples(); its config's `upgrades` object may name other
paths (the tests' root filesystems).
"""

import os
import re

DEFAULTS = {
    "updateStamp": "/var/lib/apt/periodic/update-stamp",
    "upgradeStamp": "/var/lib/apt/periodic/upgrade-stamp",
    "rebootRequired": "/run/reboot-required",
}
# unattended-upgrades' pattern keys and the package file fields they match (its match_whitelist_string).
PATTERN_KEYS = {"origin": "origin", "o": "origin", "label": "label", "l": "label", "archive": "archive",
                "suite": "archive", "a": "archive", "codename": "codename", "n": "codename",
                "component": "component", "c": "component", "site": "site"}


class Bad(Exception):
    """What apt holds cannot be read; the message says which."""


def parse_pattern(pattern, codename):
    """An Origins-Pattern entry as {field: value}, ${distro_codename} filled in; refuses keys it does not know."""
    pattern = pattern.replace("${distro_codename}", codename)
    fields = {}
    # unattended-upgrades splits on commas not escaped with a backslash.
    for token in re.split(r"(?<!\\),", pattern):
        key, sep, value = token.partition("=")
        if not sep or key not in PATTERN_KEYS:
            keys = "/".join(sorted(PATTERN_KEYS))
            raise Bad("Origins-Pattern %r: %r is not one of %s=VALUE" % (pattern, token, keys))
        fields[PATTERN_KEYS[key]] = value.replace("\\,", ",")
    return fields


def origin_matches(fields, origin):
    """Whether a package file's origin ({origin, label, archive, codename, component, site}) fits a parsed pattern."""
    return all((origin.get(k) or "") == v for k, v in fields.items())


def held(name, patterns):
    """Whether unattended-upgrades would hold `name` back: a Package-Blacklist regex matching at its start."""
    return any(re.match(p, name) for p in patterns)


def pending(candidates, patterns, blacklist, codename):
    """
    (waiting for unattended-upgrades, waiting for a release) from [(name, [origin dicts of its
    candidate version])] of the upgradable packages: those whose candidate comes from an allowed
    archive, held or not.
    """
    parsed = [parse_pattern(p, codename) for p in patterns]
    automatic = held_count = 0
    for name, origins in candidates:
        if not any(origin_matches(f, o) for f in parsed for o in origins):
            continue
        if held(name, blacklist):
            held_count += 1
        else:
            automatic += 1
    return automatic, held_count


def stamp_time(path):
    try:
        return int(os.stat(path).st_mtime)
    except FileNotFoundError:
        return None


def last_success(update_stamp, upgrade_stamp):
    """The older of the two stamps; None until both exist (no run yet)."""
    if update_stamp is None or upgrade_stamp is None:
        return None
    return min(update_stamp, upgrade_stamp)


def read_apt():
    """The upgradable packages (names, candidates' origins), patterns, blacklist and codename: python3-apt's."""
    try:
        import apt_pkg
    except ImportError:
        raise Bad("python3-apt is not installed") from None
    apt_pkg.init_config()
    apt_pkg.init_system()
    patterns = apt_pkg.config.value_list("Unattended-Upgrade::Origins-Pattern")
    blacklist = apt_pkg.config.value_list("Unattended-Upgrade::Package-Blacklist")
    try:
        cache = apt_pkg.Cache(progress=None)
    except SystemError as e:
        raise Bad("apt's cache: %s" % str(e).strip()) from None
    depcache = apt_pkg.DepCache(cache)
    candidates = []
    for pkg in cache.packages:
        current = pkg.current_ver
        if current is None:
            continue
        cand = depcache.get_candidate_ver(pkg)
        if cand is None or apt_pkg.version_compare(cand.ver_str, current.ver_str) <= 0:
            continue
        origins = [{"origin": f.origin, "label": f.label, "archive": f.archive, "codename": f.codename,
                    "component": f.component, "site": f.site} for f, _ in cand.file_list]
        candidates.append((pkg.name, origins))
    return candidates, patterns, blacklist, codename_of()


def codename_of():
    """The codename of the installed distribution (lsb_release's, as unattended-upgrades fills ${distro_codename})."""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "VERSION_CODENAME" and value.strip('"'):
                    return value.strip('"')
    except OSError:
        pass
    raise Bad("/etc/os-release names no VERSION_CODENAME")


def samples(cfg, read=None):
    paths = {**DEFAULTS, **(cfg.get("upgrades") or {})}
    candidates, patterns, blacklist, codename = (read or read_apt)()
    if not patterns:
        raise Bad("apt's configuration has no Unattended-Upgrade::Origins-Pattern")
    automatic, held_count = pending(candidates, patterns, blacklist, codename)
    out = [
        ("upgradesPending", {"waits_for": "unattended-upgrades"}, automatic),
        ("upgradesPending", {"waits_for": "release"}, held_count),
        ("rebootRequired", {}, 1 if os.path.exists(paths["rebootRequired"]) else 0),
    ]
    when = last_success(stamp_time(paths["updateStamp"]), stamp_time(paths["upgradeStamp"]))
    if when is not None:
        out.append(("upgradesLastSuccess", {}, when))
    return out
