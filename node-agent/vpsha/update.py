"""vps-ha desired state: a node's later documents, applied on top of the one it applied before.

desired.py loads it for a generation after the first (the bootstrap holds desired.py alone; this
module comes with the desired state, and a node runs it only once the document that brought it is
applied). It writes only the files whose entry changed since the applied document, enables the
units it brings that belong to a target, runs `systemctl daemon-reload` when a unit file changed,
restarts or reloads exactly the units of the changed files in the document's order, and last
removes the files that document had and this one has not (a unit whose own unit file goes is
stopped and disabled first); through the rollout gate (vpsha.rollout, which comes with it) when
the document has one, which can roll all of it back.
"""
import json
import os
import re
import subprocess

from vpsha import rollout
from vpsha.desired import (
    COMMAND_TIMEOUT,
    UNIT,
    install_packages,
    is_unit_file,
    log,
    on_disk,
    pending_path,
    rollout_env,
    run,
    write_atomically,
    write_files,
)


def to_write(cfg, doc, previous):
    """
    The document's files that must be written. With an earlier document applied, only those whose
    entry changed since (or that are gone from disk): a file an agent edits after we write it
    (HAProxy's server lines) is not taken back while the program's text for it is the same.
    """
    root = cfg.get("root", "")
    before = {f["path"]: f for f in previous["files"]} if previous else {}
    out = []
    for f in doc["files"]:
        if previous and before.get(f["path"]) == f and os.path.exists(root + f["path"]):
            continue
        out.append(f)
    return out


def units_for(doc, changed, pending=()):
    """The document's restarts whose files changed, or that are still pending, in document order."""
    return [r for r in doc["restarts"] if any(p in changed for p in r["paths"]) or r["unit"] in pending]


def restart_units(cfg, restarts, changed, problems, on_done=None, on_try=None, stop_at_failure=False):
    """
    daemon-reload when a unit file changed, then each restart (or reload) in order; the units that
    failed. `stop_at_failure`: none after the first that fails (a gated change rolls back at once,
    rather than wait on units that depend on the broken one).
    """
    systemctl = cfg.get("systemctl", ["systemctl"])
    if any(is_unit_file(p) for p in changed):
        run(cfg, systemctl + ["daemon-reload"], problems, "systemctl daemon-reload")
    failed = []
    for r in restarts:
        if on_try:
            on_try(r)
        # A reload of a unit that is not running (sshd switched off) is nothing to do, not a failure.
        verb, what = ("try-reload-or-restart", "reload") if r.get("reload") else ("restart", "restart")
        if run(cfg, systemctl + [verb, r["unit"]], problems, "%sing %s" % (what.rstrip("e"), r["unit"])):
            log("desired: %sed %s" % (what.rstrip("e"), r["unit"]))
            if on_done:
                on_done(r["unit"])
        else:
            failed.append(r["unit"])
            if stop_at_failure:
                left = len(restarts) - restarts.index(r) - 1
                if left:
                    log("desired: %s failed; not restarting the %d unit(s) after it" % (r["unit"], left))
                break
    return failed


def restore_files(cfg, saved, problems):
    """Puts back what `write_files` replaced (and removes what it created)."""
    root = cfg.get("root", "")
    for p, old in saved.items():
        try:
            if old is None:
                os.unlink(root + p)
            else:
                write_atomically(root + p, old[0], old[1], old[2], old[3])
            log("desired: restored %s" % p)
        except OSError as err:
            problems.append("restoring %s: %s" % (p, err))


def pending_restarts(cfg, generation):
    """Units not yet restarted for `generation` (their files are already written)."""
    try:
        with open(pending_path(cfg)) as f:
            pending = json.load(f)
        return pending["units"] if pending["generation"] == generation else []
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return []


def to_remove(cfg, doc, previous):
    """The applied document's files that this document no longer has (and that are still on disk)."""
    if not previous:
        return []
    root = cfg.get("root", "")
    keep = {f["path"] for f in doc["files"]}
    return [f["path"] for f in previous["files"] if f["path"] not in keep and os.path.lexists(root + f["path"])]


def units_of(paths):
    """The units whose own unit file is among `paths` (a drop-in only changes its unit)."""
    out = []
    for p in paths:
        name = os.path.basename(p)
        if is_unit_file(p) and not os.path.dirname(p).endswith(".d") and UNIT.match(name):
            out.append(name)
    return out


def unit_states(cfg, units):
    """{unit: (active, enabled)} as systemd says now: what a rollback puts back."""
    systemctl = cfg.get("systemctl", ["systemctl"])
    out = {}
    for u in units:
        said = []
        for verb in ("is-active", "is-enabled"):
            try:
                r = subprocess.run(systemctl + [verb, u], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
                said.append(r.stdout.strip())
            except (OSError, subprocess.SubprocessError):
                said.append("")
        out[u] = (said[0] == "active", said[1] == "enabled")
    return out


def remove_files(cfg, paths, problems, saved, stopped):
    """
    Stops and disables the units whose unit file goes (`stopped` gets them), then removes `paths`
    (`saved` gets each one's content, for a rollback) and reloads systemd when a unit file went.
    Returns the paths removed.
    """
    root = cfg.get("root", "")
    systemctl = cfg.get("systemctl", ["systemctl"])
    for u in units_of(paths):
        stopped.append(u)
        if run(cfg, systemctl + ["disable", "--now", "--no-reload", u], problems, "disabling %s" % u):
            log("desired: stopped and disabled %s (its unit file is gone from the document)" % u)
    removed = []
    for p in paths:
        try:
            old = on_disk(root + p)
            if old is not None:
                saved.setdefault(p, old)
            os.unlink(root + p)
            removed.append(p)
            log("desired: removed %s" % p)
        except FileNotFoundError:
            pass
        except OSError as err:
            problems.append("removing %s: %s" % (p, err))
    if any(is_unit_file(p) for p in removed):
        run(cfg, systemctl + ["daemon-reload"], problems, "systemctl daemon-reload")
    return removed


def removals(cfg, doc, previous):
    """(the files to remove, {retired unit: (active, enabled)} before the change)."""
    paths = to_remove(cfg, doc, previous)
    return paths, unit_states(cfg, units_of(paths))


def new_units(doc, previous):
    """
    The units whose own unit file this document brings and the applied one had not, and that say
    where they belong ([Install] WantedBy=): a first document's setup enables those; here, the
    applier does (a member that votes in etcd again gets etcd's unit back).
    """
    before = {f["path"] for f in (previous or {}).get("files", [])}
    return units_of([f["path"] for f in doc["files"]
                     if f["path"] not in before and re.search(r"^WantedBy=", f["content"], re.M)])


def enable_units(cfg, units, problems):
    """Enables `units` (links only: their restarts start them)."""
    systemctl = cfg.get("systemctl", ["systemctl"])
    for u in units:
        if run(cfg, systemctl + ["enable", "--no-reload", u], problems, "enabling %s" % u):
            log("desired: enabled %s (its unit file is new in this document)" % u)


def created_units(saved):
    """The units whose own unit file the change created (`saved` holds None for a file that was not there)."""
    return units_of([p for p, old in saved.items() if old is None])


def undo_created_units(cfg, units, problems):
    """A rollback, before their files go: the units the change brought stopped and disabled."""
    systemctl = cfg.get("systemctl", ["systemctl"])
    for u in units:
        run(cfg, systemctl + ["disable", "--now", "--no-reload", u], problems, "stopping and disabling %s" % u)


def restore_units(cfg, states, stopped, problems):
    """After a rollback put their files back: the units it stopped enabled and running as they were."""
    systemctl = cfg.get("systemctl", ["systemctl"])
    for u, (active, enabled) in states.items():
        if u not in stopped:
            continue
        if enabled:
            run(cfg, systemctl + ["enable", "--no-reload", u], problems, "enabling %s again" % u)
        if active:
            run(cfg, systemctl + ["start", u], problems, "starting %s again" % u)


def lock_spec(cfg, spec, previous):
    """
    The rollout spec with the etcd certificate files the lock can be taken with now: a change that
    moves them (a member that stops or starts voting) writes its new ones itself, so until then the
    applied document's are the node's.
    """
    files, before = spec.get("etcdTls"), ((previous or {}).get("rollout") or {}).get("etcdTls")
    root = cfg.get("root", "")
    if files and before and not os.path.exists(root + files["key"]) and os.path.exists(root + before["key"]):
        log("desired: the rollout lock with the applied document's etcd certificate (this change writes the new one)")
        return {**spec, "etcdTls": before}
    return spec


def apply_update(cfg, generation, doc, previous, problems, status):
    """
    A later document: packages, then the changed files and their units' restarts, then the dropped
    files' removal, through the rollout gate when the document has one. Returns (paths written and
    removed, True when applied).
    """
    if not install_packages(cfg, doc.get("packages", []), problems):
        return [], False
    files = to_write(cfg, doc, previous)
    dropped, retired = removals(cfg, doc, previous)
    changed = {f["path"] for f in files}
    pending = pending_restarts(cfg, generation)
    restarts = units_for(doc, changed, pending)
    saved, written = {}, []

    def set_pending(units):
        if units:
            write_atomically(pending_path(cfg), json.dumps({"generation": generation, "units": units}), 0o600)
        elif os.path.exists(pending_path(cfg)):
            os.unlink(pending_path(cfg))

    # The restarts tried so far: a rollback restarts these alone (the others never ran the new files).
    tried = []

    # The units a removal stopped: a rollback runs these again.
    stopped = []

    def apply(stop_at_failure=False):
        before = len(problems)
        written.extend(write_files(cfg, files, problems, saved))
        if stop_at_failure and len(problems) > before:
            return
        enable_units(cfg, new_units(doc, previous), problems)
        if stop_at_failure and len(problems) > before:
            return
        left = [r["unit"] for r in restarts]
        set_pending(left)

        def done(unit):
            left.remove(unit)
            set_pending(left)
        restart_units(cfg, restarts, changed, problems, done, tried.append, stop_at_failure)
        if stop_at_failure and len(problems) > before:
            return
        # Last: a daemon that goes may be needed until the restarts are through (a member's etcd,
        # until its leave has run).
        written.extend(remove_files(cfg, dropped, problems, saved, stopped))

    def rollback():
        # A unit the change brought goes with its file; the others run their old files again.
        created = created_units(saved)
        undo_created_units(cfg, created, problems)
        restore_files(cfg, saved, problems)
        restart_units(cfg, [r for r in tried if r["unit"] not in created], set(saved), problems)
        restore_units(cfg, retired, stopped, problems)
        set_pending([])

    def apply_checked():
        # For the gate, a file not written or a unit that did not restart is a failed change: it
        # stops there and rolls back.
        before = len(problems)
        apply(stop_at_failure=True)
        if len(problems) > before:
            raise RuntimeError("; ".join(problems[before:]))

    if "rollout" in doc and (files or restarts or dropped):
        # Only a restart can stop PostgreSQL on the primary (a reload keeps it): the handover's cue.
        ok = rollout.apply_gated(lock_spec(cfg, doc["rollout"], previous), cfg["node"], apply_checked, rollback,
                                 status, units=[r["unit"] for r in restarts if not r.get("reload")],
                                 env=rollout_env(rollout, cfg))
    else:
        apply()
        ok = True
    return written, ok
