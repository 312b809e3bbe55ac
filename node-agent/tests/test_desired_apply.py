"""The desired-state applier on documents as the reader hands them over: a node's first document
(files, packages, the files their users own, setup once), later ones (only what changed since the
last applied document, restarts or reloads of exactly their units, daemon-reload first for unit
files), and the rollout gate's apply and rollback."""

import getpass
import grp
import gzip
import json
import os

import pytest

from vpsha import desired, rollout

ME = "%s:%s" % (getpass.getuser(), grp.getgrgid(os.getgid()).gr_name)


@pytest.fixture
def cfg(tmp_path):
    log = tmp_path / "calls.log"
    tools = {}
    for name in ("systemctl", "apt-get", "setup"):
        t = tmp_path / name
        # Each stands in for the real command: records how it was called.
        t.write_text('#!/bin/sh\necho "%s $@" >> %s\n' % (name, log))
        t.chmod(0o755)
        tools[name] = str(t)
    dpkg = tmp_path / "dpkg-query"
    # Knows the packages listed in installed.txt.
    dpkg.write_text('#!/bin/sh\nshift 2\nfor p; do grep -qx "$p" %s && echo "$p installed"; done\nexit 0\n'
                    % (tmp_path / "installed.txt"))
    dpkg.chmod(0o755)
    (tmp_path / "installed.txt").write_text("python3\n")
    return {"node": "db-1", "stateDir": str(tmp_path / "state"), "root": str(tmp_path / "root"),
            "systemctl": [tools["systemctl"]], "aptGet": [tools["apt-get"]], "dpkgQuery": [str(dpkg)],
            "setupTool": tools["setup"], "log": str(log)}


def calls(cfg):
    try:
        with open(cfg["log"]) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def file(path, content, owner=ME, mode="0644"):
    return {"path": path, "mode": mode, "owner": owner, "content": content}


def doc(cfg, files, restarts=(), packages=(), setup=(), **more):
    return {"files": files, "restarts": list(restarts), "packages": list(packages),
            "setup": [[cfg["setupTool"]] + c for c in setup], **more}


def read(cfg, path):
    with open(cfg["root"] + path) as f:
        return f.read()


def test_first_document_writes_installs_then_runs_setup_once(cfg):
    d = doc(cfg, [file("/etc/a.conf", "a"), file("/etc/systemd/system/a.service", "[Service]\n")],
            restarts=[{"unit": "a.service", "paths": ["/etc/a.conf"]}],
            packages=["python3", "haproxy"], setup=[["one"], ["two"]])
    problems = []
    written = desired.apply_first(cfg, d, problems)
    assert problems == []
    assert sorted(written) == ["/etc/a.conf", "/etc/systemd/system/a.service"]
    got = calls(cfg)
    assert got[0] == "apt-get -q update"
    assert got[1].startswith("apt-get -q -y -o Dpkg::Options::=--force-confold") and got[1].endswith("install haproxy")
    # A unit file was written: daemon-reload before the setup commands; no restarts on a first document.
    assert got[2:] == ["systemctl daemon-reload", "setup one", "setup two"]
    # The same document again (a round after a failure elsewhere) runs no setup command twice.
    desired.apply_first(cfg, d, problems)
    assert [c for c in calls(cfg) if c.startswith("setup")] == ["setup one", "setup two"]


def test_a_file_whose_owner_a_package_creates_waits_for_the_packages(cfg, tmp_path):
    d = doc(cfg, [file("/etc/pg.conf", "x", owner="nosuchuser:nosuchgroup")], packages=["postgresql-17"])
    problems = []
    desired.apply_first(cfg, d, problems)
    # The stand-in apt-get creates no user: the file is refused after the install, naming the owner.
    assert calls(cfg)[:1] == ["apt-get -q update"]
    assert problems == ["writing /etc/pg.conf: no such user or group nosuchuser:nosuchgroup"]


def test_a_failed_setup_command_is_retried_from_where_it_stopped(cfg, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("")
    failing = tmp_path / "failing"
    failing.write_text('#!/bin/sh\necho "failing" >> %s\nif [ -e %s ]; then rm %s; exit 1; fi\n'
                       % (cfg["log"], flag, flag))
    failing.chmod(0o755)
    d = doc(cfg, [file("/etc/a.conf", "a")], setup=[["one"]])
    d["setup"].append([str(failing)])
    d["setup"].append([cfg["setupTool"], "three"])
    problems = []
    desired.apply_first(cfg, d, problems)
    assert len(problems) == 1 and "setup" in problems[0]
    desired.apply_first(cfg, d, [])
    ran = [c for c in calls(cfg) if c.startswith(("setup", "failing"))]
    assert ran == ["setup one", "failing", "failing", "setup three"]


def test_a_later_document_restarts_exactly_the_units_whose_files_changed(cfg):
    first = doc(cfg, [file("/etc/a.conf", "a"), file("/etc/b.conf", "b"), file("/etc/c.conf", "c")],
                restarts=[{"unit": "a.service", "paths": ["/etc/a.conf"]},
                          {"unit": "b.service", "paths": ["/etc/b.conf"], "reload": True},
                          {"unit": "c.service", "paths": ["/etc/c.conf"]}],
                setup=[["once"]])
    desired.apply_first(cfg, first, [])
    second = {**first, "files": [file("/etc/a.conf", "a"), file("/etc/b.conf", "b2"), file("/etc/c.conf", "c2")]}
    before = len(calls(cfg))
    problems = []
    written, ok = desired.apply_update(cfg, 2, second, first, problems, {})
    assert ok and problems == [] and written == ["/etc/b.conf", "/etc/c.conf"]
    # Setup never runs again; b reloads, c restarts, a is untouched.
    assert calls(cfg)[before:] == ["systemctl try-reload-or-restart b.service", "systemctl restart c.service"]
    assert read(cfg, "/etc/b.conf") == "b2"


def test_a_changed_unit_file_reloads_systemd_first(cfg):
    unit = "/etc/systemd/system/a.service"
    first = doc(cfg, [file(unit, "[Service]\n")], restarts=[{"unit": "a.service", "paths": [unit]}])
    desired.apply_first(cfg, first, [])
    before = len(calls(cfg))
    second = {**first, "files": [file(unit, "[Service]\nRestart=always\n")]}
    desired.apply_update(cfg, 2, second, first, [], {})
    assert calls(cfg)[before:] == ["systemctl daemon-reload", "systemctl restart a.service"]


def test_a_file_an_agent_edits_is_not_taken_back_while_its_text_is_unchanged(cfg):
    first = doc(cfg, [file("/etc/haproxy.cfg", "base\n"), file("/etc/x", "1")],
                restarts=[{"unit": "haproxy.service", "paths": ["/etc/haproxy.cfg"]}])
    desired.apply_first(cfg, first, [])
    with open(cfg["root"] + "/etc/haproxy.cfg", "a") as f:
        f.write("server app-1 10.0.0.1:80\n")  # the directory agent's lines
    second = {**first, "files": [file("/etc/haproxy.cfg", "base\n"), file("/etc/x", "2")]}
    before = len(calls(cfg))
    written, _ = desired.apply_update(cfg, 2, second, first, [], {})
    assert written == ["/etc/x"] and calls(cfg)[before:] == []
    assert read(cfg, "/etc/haproxy.cfg") == "base\nserver app-1 10.0.0.1:80\n"


def test_packages_a_later_document_adds_are_installed(cfg):
    first = doc(cfg, [file("/etc/a", "1")])
    desired.apply_first(cfg, first, [])
    second = {**first, "packages": ["etcd-server"]}
    desired.apply_update(cfg, 2, second, first, [], {})
    assert calls(cfg)[-1].endswith("install etcd-server")


def test_the_rollout_gate_gets_the_spec_and_can_roll_back(cfg, monkeypatch):
    spec = {"group": "db", "id": "x", "order": [], "statusPort": 1, "health": [], "healthTimeoutSeconds": 1,
            "handoverUnits": []}
    first = doc(cfg, [file("/etc/a.conf", "a")], restarts=[{"unit": "a.service", "paths": ["/etc/a.conf"]}])
    desired.apply_first(cfg, first, [])
    second = {**first, "files": [file("/etc/a.conf", "a2"), file("/etc/new.conf", "n")], "rollout": spec}
    seen = {}

    def gated(s, node, apply, rollback, status):
        seen.update(spec=s, node=node)
        apply()
        assert read(cfg, "/etc/a.conf") == "a2"
        rollback()
        status["rollout"] = {"state": "halted"}
        return False

    monkeypatch.setattr(rollout, "apply_gated", gated)
    before = len(calls(cfg))
    status = {}
    _, ok = desired.apply_update(cfg, 2, second, first, [], status)
    assert not ok and seen == {"spec": spec, "node": "db-1"} and status["rollout"] == {"state": "halted"}
    assert read(cfg, "/etc/a.conf") == "a" and not os.path.exists(cfg["root"] + "/etc/new.conf")
    assert calls(cfg)[before:] == ["systemctl restart a.service", "systemctl restart a.service"]
    assert desired.pending_restarts(cfg, 2) == []


def test_the_minimal_gate_applies_at_once(cfg):
    done = []
    assert rollout.apply_gated({}, "db-1", lambda: done.append(1), lambda: done.append(2), {}) is True
    assert done == [1]


def test_a_document_with_the_new_fields_is_checked(cfg):
    base = {"v": 1, "stack": "prod", "node": "db-1", "generation": 5, "files": [file("/etc/a", "1")]}
    c = {"stack": "prod", "node": "db-1"}
    ok = desired.parse_document(c, 5, gzip.compress(json.dumps(
        {**base, "packages": ["haproxy"], "setup": [["true"]], "rollout": {"group": "db"},
         "restarts": [{"unit": "a.service", "paths": ["/etc/a"], "reload": True}]}).encode()))
    assert ok["packages"] == ["haproxy"] and ok["setup"] == [["true"]] and ok["rollout"] == {"group": "db"}
    bads = (({"packages": ["Bad Name"]}, "packages"), ({"setup": [[]]}, "setup"), ({"rollout": []}, "rollout"))
    for bad, why in bads:
        with pytest.raises(desired.Bad, match=why):
            desired.parse_document(c, 5, gzip.compress(json.dumps({**base, **bad}).encode()))
