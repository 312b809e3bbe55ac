"""The desired-state applier on documents as the reader hands them over: a node's first document
(files, packages, the files their users own, setup once), later ones (only what changed since the
last applied document, restarts or reloads of exactly their units, daemon-reload first for unit
files, the files the new document dropped removed and their units stopped), and the rollout gate's
apply and rollback."""

import getpass
import grp
import gzip
import json
import os
import subprocess
import sys

import pytest

from vpsha import desired, rollout, update

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
    written, ok = update.apply_update(cfg, 2, second, first, problems, {})
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
    update.apply_update(cfg, 2, second, first, [], {})
    assert calls(cfg)[before:] == ["systemctl daemon-reload", "systemctl restart a.service"]


def test_a_file_an_agent_edits_is_not_taken_back_while_its_text_is_unchanged(cfg):
    first = doc(cfg, [file("/etc/haproxy.cfg", "base\n"), file("/etc/x", "1")],
                restarts=[{"unit": "haproxy.service", "paths": ["/etc/haproxy.cfg"]}])
    desired.apply_first(cfg, first, [])
    with open(cfg["root"] + "/etc/haproxy.cfg", "a") as f:
        f.write("server app-1 10.0.0.1:80\n")  # the directory agent's lines
    second = {**first, "files": [file("/etc/haproxy.cfg", "base\n"), file("/etc/x", "2")]}
    before = len(calls(cfg))
    written, _ = update.apply_update(cfg, 2, second, first, [], {})
    assert written == ["/etc/x"] and calls(cfg)[before:] == []
    assert read(cfg, "/etc/haproxy.cfg") == "base\nserver app-1 10.0.0.1:80\n"


def test_packages_a_later_document_adds_are_installed(cfg):
    first = doc(cfg, [file("/etc/a", "1")])
    desired.apply_first(cfg, first, [])
    second = {**first, "packages": ["etcd-server"]}
    update.apply_update(cfg, 2, second, first, [], {})
    assert calls(cfg)[-1].endswith("install etcd-server")


def test_the_rollout_gate_gets_the_spec_and_can_roll_back(cfg, monkeypatch):
    spec = {"group": "db", "id": "x", "order": [], "statusPort": 1, "health": [], "healthTimeoutSeconds": 1,
            "handoverUnits": []}
    first = doc(cfg, [file("/etc/a.conf", "a")], restarts=[{"unit": "a.service", "paths": ["/etc/a.conf"]}])
    desired.apply_first(cfg, first, [])
    second = {**first, "files": [file("/etc/a.conf", "a2"), file("/etc/new.conf", "n")], "rollout": spec}
    seen = {}

    def gated(s, node, apply, rollback, status, units=None, env=None):
        seen.update(spec=s, node=node, units=units)
        apply()
        assert read(cfg, "/etc/a.conf") == "a2"
        rollback()
        status["rollout"] = {"state": "halted"}
        return False

    monkeypatch.setattr(rollout, "apply_gated", gated)
    before = len(calls(cfg))
    status = {}
    _, ok = update.apply_update(cfg, 2, second, first, [], status)
    assert not ok and seen == {"spec": spec, "node": "db-1", "units": ["a.service"]}
    assert status["rollout"] == {"state": "halted"}
    assert read(cfg, "/etc/a.conf") == "a" and not os.path.exists(cfg["root"] + "/etc/new.conf")
    assert calls(cfg)[before:] == ["systemctl restart a.service", "systemctl restart a.service"]
    assert update.pending_restarts(cfg, 2) == []


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


def shared_records(key, stack, generation, files, chunk=200):
    """A shared document's records as the program cuts them (components/desired-state-records.ts)."""
    import base64
    import hashlib
    packed = gzip.compress(json.dumps({"v": 1, "stack": stack, "generation": generation, "files": files}).encode())
    data = base64.b64encode(packed).decode()
    parts = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    digest = hashlib.sha256(packed).hexdigest()
    sig = base64.b64encode(key.sign(("vhs1\n%s\n%d\n%d\n%s" % (stack, generation, len(parts), digest)).encode()))
    head = "v=vhs1 gen=%d chunks=%d digest=%s sig=%s" % (generation, len(parts), digest, sig.decode())
    return head, ["v=vhs1 gen=%d part=%d/%d data=%s" % (generation, k, len(parts), p) for k, p in enumerate(parts, 1)]


def test_shared_files_are_taken_by_path_and_sha256_from_the_signed_shared_document():
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    lib = file("/usr/local/lib/vps-ha/python/vpsha/records.py", "print(1)\n", owner="root:root")
    head, chunks = shared_records(key, "prod", 7, [lib])
    cfg = {"stack": "prod", "node": "db-1", "dnsName": "db-1.prod.nodes.example.com"}
    assert desired.shared_head_name(cfg) == "_desired-shared.prod.nodes.example.com"
    files = desired.verify_shared(cfg, key.public_key(), head, chunks)
    ref = {"path": lib["path"], "sha256": hashlib.sha256(lib["content"].encode()).hexdigest()}
    doc = desired.resolve_shared({"files": [file("/etc/a", "1")], "shared": [ref]}, files)
    assert [f["path"] for f in doc["files"]] == ["/etc/a", lib["path"]]
    with pytest.raises(desired.Bad, match="does not hold"):
        desired.resolve_shared({"files": [], "shared": [{**ref, "sha256": "0" * 64}]}, files)
    with pytest.raises(desired.Bad, match="bad signature on the shared head"):
        desired.verify_shared({**cfg, "stack": "staging"}, key.public_key(), head, chunks)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(desired.Bad, match="bad signature"):
        desired.verify_shared(cfg, other.public_key(), head, chunks)
    _, newer = shared_records(key, "prod", 8, [{**lib, "content": "print(2)\n"}])
    with pytest.raises(desired.Bad, match="another generation"):
        desired.verify_shared(cfg, key.public_key(), head, newer)


def node_records(key, wg, cfg, generation, document, chunk=200):
    """A node's records as the program makes them (components/desired-state-records.ts): signed, sealed to `wg`."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    raw = lambda k: k.public_bytes(Encoding.Raw, PublicFormat.Raw)  # noqa: E731
    packed = gzip.compress(json.dumps({"v": 1, "stack": cfg["stack"], "node": cfg["node"], "generation": generation,
                                       **document}).encode())
    eph = X25519PrivateKey.generate()
    e = raw(eph.public_key())
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=e + raw(wg.public_key()), info=desired.SEAL_INFO
               ).derive(eph.exchange(wg.public_key()))
    sealed = e + ChaCha20Poly1305(okm[:32]).encrypt(okm[32:], packed, desired.header(cfg, generation).encode())
    data = base64.b64encode(sealed).decode()
    parts = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    digest = hashlib.sha256(sealed).hexdigest()
    payload = "%s\n%d\n%s" % (desired.header(cfg, generation), len(parts), digest)
    sig = base64.b64encode(key.sign(payload.encode())).decode()
    records = {desired.head_name(cfg): ["v=vhd1 node=%s gen=%d chunks=%d digest=%s sig=%s"
                                        % (cfg["node"], generation, len(parts), digest, sig)]}
    for k, p in enumerate(parts, 1):
        records[desired.chunk_name(cfg, k)] = ["v=vhd1 gen=%d part=%d/%d data=%s" % (generation, k, len(parts), p)]
    return records


def test_the_agent_restarts_into_new_code_only_once_the_generation_carrying_it_is_applied(cfg, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from status_server import StatusServer
    key, wg = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    cfg = {**cfg, "stack": "prod", "dnsName": "db-1.prod.nodes.example.com", "status": str(tmp_path / "status.json")}
    lib = "/usr/local/lib/vps-ha/python/vpsha"
    code_dir = cfg["root"] + lib
    agent = lambda text: [file(lib + "/desired.py", text), file(lib + "/rollout.py", "gate\n")]  # noqa: E731
    peer = StatusServer("127.0.0.1")
    try:
        # db-0 goes first; until it reports this rollout healthy, db-1 is held back.
        spec = {"group": "haproxy", "id": "r2", "statusPort": peer.port, "health": [["true"]],
                "healthTimeoutSeconds": 5, "handoverUnits": [],
                "order": [{"name": "db-0", "meshAddress": "127.0.0.1"}, {"name": "db-1", "meshAddress": "127.0.0.1"}]}
        zone = {}
        fetch = lambda name: zone.get(name, [])  # noqa: E731
        rounds = []

        def round_once():
            rounds.append(1)
            return desired.one_round(cfg, key.public_key(), wg, fetch)[0]

        zone.update(node_records(key, wg, cfg, 1, {"files": agent("old\n")}))
        assert round_once() == desired.EXIT_APPLIED and read(cfg, lib + "/desired.py") == "old\n"
        zone.update(node_records(key, wg, cfg, 2, {"files": agent("new\n"), "rollout": spec}))
        # The gate is loaded during the round, as in a fresh agent process.
        monkeypatch.delitem(__import__("sys").modules, "vpsha.rollout", raising=False)
        assert desired.run_rounds(cfg, round_once, code_dir, sleep=lambda s: None, limit=4) is None
        assert len(rounds) == 5 and read(cfg, lib + "/desired.py") == "old\n"
        assert json.load(open(cfg["status"]))["lastError"] == "generation 2 is held back by the rollout gate"

        peer.status = {"rolloutId": "r2", "rolloutState": "healthy"}
        del rounds[:]
        assert desired.run_rounds(cfg, round_once, code_dir, sleep=lambda s: None, limit=4) == desired.EXIT_APPLIED
        assert len(rounds) == 1 and read(cfg, lib + "/desired.py") == "new\n"
        # Started again on the new code: it stays.
        assert desired.run_rounds(cfg, round_once, code_dir, sleep=lambda s: None, limit=3) is None
    finally:
        peer.close()


def test_a_change_rolled_back_leaves_the_code_as_it_started(cfg):
    lib = "/usr/local/lib/vps-ha/python/vpsha"
    first = doc(cfg, [file(lib + "/desired.py", "old\n")])
    desired.apply_first(cfg, first, [])
    before = desired.own_code(cfg["root"] + lib)
    assert before == {**before, "update": None, "rollout": None, "rest": None} and before["desired"]
    saved = {}
    desired.write_files(cfg, [file(lib + "/desired.py", "new\n")], [], saved)
    assert desired.own_code(cfg["root"] + lib) != before
    update.restore_files(cfg, saved, [])
    assert desired.own_code(cfg["root"] + lib) == before


def failing_systemctl(cfg, tmp_path, unit):
    """A systemctl that fails to restart `unit` while /etc/<name>.conf says "bad" (a daemon the change
    broke), and a one-node rollout gate for it."""
    name = unit.split(".")[0]
    failing = tmp_path / "systemctl-failing"
    failing.write_text('#!/bin/sh\necho "systemctl $@" >> %s\n[ "$1" = restart ] && [ "$2" = %s ]'
                       ' && grep -qx bad %s/etc/%s.conf && exit 1\nexit 0\n' % (cfg["log"], unit, cfg["root"], name))
    failing.chmod(0o755)
    spec = {"group": "haproxy", "id": "bad", "order": [{"name": "db-1", "meshAddress": "127.0.0.1"}], "statusPort": 1,
            "health": [["true"]], "healthTimeoutSeconds": 1, "handoverUnits": []}
    return {**cfg, "systemctl": [str(failing)]}, spec


def test_a_unit_that_fails_to_restart_halts_the_real_gate_and_rolls_back(cfg, tmp_path):
    # systemctl fails to restart a.service while its file says "bad" (a daemon the change broke).
    cfg, spec = failing_systemctl(cfg, tmp_path, "a.service")
    first = doc(cfg, [file("/etc/a.conf", "good")], restarts=[{"unit": "a.service", "paths": ["/etc/a.conf"]}])
    desired.apply_first(cfg, first, [])
    problems, status = [], {}
    _, ok = update.apply_update(cfg, 2, {**first, "files": [file("/etc/a.conf", "bad")], "rollout": spec},
                                 first, problems, status)
    assert not ok and status["rolloutState"] == "halted" and "a.service" in status["haltedReason"]
    assert read(cfg, "/etc/a.conf") == "good"
    assert calls(cfg)[-2:] == ["systemctl restart a.service", "systemctl restart a.service"]
    state = json.load(open(os.path.join(cfg["stateDir"], "rollout.json")))
    assert state["rolloutId"] == "bad" and state["rolloutState"] == "halted"
    # A fixed state (a new id) goes through.
    fixed = {**first, "files": [file("/etc/a.conf", "fixed")], "rollout": {**spec, "id": "fixed"}}
    _, ok = update.apply_update(cfg, 3, fixed, first, [], status)
    assert ok and status["rolloutState"] == "healthy" and read(cfg, "/etc/a.conf") == "fixed"


def test_a_gated_change_stops_at_the_first_unit_that_fails_and_rolls_back_only_what_it_restarted(cfg, tmp_path):
    # b.service fails to restart while its file says "bad"; c.service would wait on it (as the
    # Patroni config unit waits on Patroni), so it must not be restarted at all.
    cfg, spec = failing_systemctl(cfg, tmp_path, "b.service")
    units = [{"unit": u + ".service", "paths": ["/etc/%s.conf" % u]} for u in ("a", "b", "c")]
    first = doc(cfg, [file("/etc/%s.conf" % u, "good") for u in ("a", "b", "c")], restarts=units)
    desired.apply_first(cfg, first, [])
    before = len(calls(cfg))
    problems, status = [], {}
    bad = {**first, "files": [file("/etc/a.conf", "new"), file("/etc/b.conf", "bad"), file("/etc/c.conf", "new")],
           "rollout": spec}
    _, ok = update.apply_update(cfg, 2, bad, first, problems, status)
    assert not ok and status["rolloutState"] == "halted"
    assert "b.service" in status["haltedReason"] and "c.service" not in status["haltedReason"]
    # a and b restarted with the change, then back with the old files; c never touched.
    assert calls(cfg)[before:] == ["systemctl restart a.service", "systemctl restart b.service",
                                   "systemctl restart a.service", "systemctl restart b.service"]
    assert [read(cfg, "/etc/%s.conf" % u) for u in ("a", "b", "c")] == ["good", "good", "good"]
    assert update.pending_restarts(cfg, 2) == []


def test_an_ungated_change_still_restarts_every_unit_when_one_fails(cfg, tmp_path):
    # Without a rollout nothing rolls back: every unit gets its new files, the failed one is tried next round.
    failing = tmp_path / "systemctl-failing"
    failing.write_text('#!/bin/sh\necho "systemctl $@" >> %s\n[ "$2" = a.service ] && exit 1\nexit 0\n' % cfg["log"])
    failing.chmod(0o755)
    cfg = {**cfg, "systemctl": [str(failing)]}
    units = [{"unit": u + ".service", "paths": ["/etc/%s.conf" % u]} for u in ("a", "b")]
    first = doc(cfg, [file("/etc/a.conf", "1"), file("/etc/b.conf", "1")], restarts=units)
    desired.apply_first(cfg, first, [])
    before = len(calls(cfg))
    problems = []
    second = {**first, "files": [file("/etc/a.conf", "2"), file("/etc/b.conf", "2")]}
    update.apply_update(cfg, 2, second, first, problems, {})
    assert calls(cfg)[before:] == ["systemctl restart a.service", "systemctl restart b.service"]
    assert len(problems) == 1 and update.pending_restarts(cfg, 2) == ["a.service"]


def test_new_code_runs_in_the_same_process(tmp_path):
    # The agent's unit must stay active while it moves to new code: exec keeps the PID systemd watches.
    script = tmp_path / "agent"
    script.write_text(
        "import os, sys\n"
        "sys.path.insert(0, %r)\n"
        "from vpsha import desired\n"
        "print('%%s pid=%%d' %% (sys.argv[1], os.getpid()), flush=True)\n"
        "if sys.argv[1] == 'old':\n"
        "    desired.restart_into_new_code(['new'])\n" % os.path.dirname(os.path.dirname(desired.__file__)))
    run = subprocess.run([sys.executable, str(script), "old"], capture_output=True, text=True, timeout=30, check=True)
    out = run.stdout.split()
    assert [w for w in out if not w.startswith("pid=")] == ["old", "new"]
    assert out[1] == out[3], out


def test_a_file_gone_from_the_document_is_removed_and_its_unit_stopped_first(cfg):
    unit, timer = "/etc/systemd/system/old.service", "/etc/systemd/system/old.timer"
    dropin = "/etc/systemd/system/keep.service.d/extra.conf"
    first = doc(cfg, [file("/etc/keep.conf", "k"), file("/etc/old.conf", "o"), file(unit, "[Service]\n"),
                      file(timer, "[Timer]\n"), file(dropin, "[Service]\n")],
                restarts=[{"unit": "keep.service", "paths": ["/etc/keep.conf"]}])
    desired.apply_first(cfg, first, [])
    second = {**first, "files": [file("/etc/keep.conf", "k")]}
    before = len(calls(cfg))
    problems = []
    written, ok = update.apply_update(cfg, 2, second, first, problems, {})
    assert ok and problems == []
    assert sorted(written) == sorted(["/etc/old.conf", unit, timer, dropin])
    assert not any(os.path.lexists(cfg["root"] + p) for p in written)
    assert read(cfg, "/etc/keep.conf") == "k"
    # Asked how each retired unit runs (for a rollback), stopped and disabled while its file is
    # there, then systemd reloaded; the drop-in's unit stays, and nothing else restarts.
    assert [c for c in calls(cfg)[before:] if " is-" not in c] == [
        "systemctl disable --now --no-reload old.service", "systemctl disable --now --no-reload old.timer",
        "systemctl daemon-reload"]
    # The next document that lacks them has nothing left to remove.
    before = len(calls(cfg))
    assert update.apply_update(cfg, 3, second, second, [], {}) == ([], True)
    assert calls(cfg)[before:] == []


def test_a_rolled_back_change_puts_removed_files_back_and_runs_their_units_as_before(cfg, tmp_path):
    # old.timer is active and enabled before; the change drops it, and the node is unhealthy after.
    stub = tmp_path / "systemctl-stub"
    stub.write_text('#!/bin/sh\necho "systemctl $@" >> %s\n'
                    'case "$1" in is-active) echo active;; is-enabled) echo enabled;; esac\nexit 0\n' % cfg["log"])
    stub.chmod(0o755)
    cfg = {**cfg, "systemctl": [str(stub)]}
    spec = {"group": "haproxy", "id": "bad", "order": [{"name": "db-1", "meshAddress": "127.0.0.1"}], "statusPort": 1,
            "health": [["false"]], "healthTimeoutSeconds": 1, "handoverUnits": []}
    timer = "/etc/systemd/system/old.timer"
    first = doc(cfg, [file("/etc/keep.conf", "good"), file(timer, "[Timer]\n")],
                restarts=[{"unit": "keep.service", "paths": ["/etc/keep.conf"]}])
    desired.apply_first(cfg, first, [])
    before = len(calls(cfg))
    status = {}
    bad = {**first, "files": [file("/etc/keep.conf", "new")], "rollout": spec}
    _, ok = update.apply_update(cfg, 2, bad, first, [], status)
    assert not ok and status["rolloutState"] == "halted"
    assert read(cfg, "/etc/keep.conf") == "good" and read(cfg, timer) == "[Timer]\n"
    # The restarts first, the removal last; then back: files, restarts, the timer as it ran.
    assert [c for c in calls(cfg)[before:] if " is-" not in c] == [
        "systemctl restart keep.service", "systemctl disable --now --no-reload old.timer", "systemctl daemon-reload",
        "systemctl daemon-reload", "systemctl restart keep.service",
        "systemctl enable --no-reload old.timer", "systemctl start old.timer"]


def test_a_change_that_fails_before_its_removals_leaves_the_dropped_units_alone(cfg, tmp_path):
    cfg, spec = failing_systemctl(cfg, tmp_path, "keep.service")
    timer = "/etc/systemd/system/old.timer"
    first = doc(cfg, [file("/etc/keep.conf", "good"), file(timer, "[Timer]\n")],
                restarts=[{"unit": "keep.service", "paths": ["/etc/keep.conf"]}])
    desired.apply_first(cfg, first, [])
    before = len(calls(cfg))
    bad = {**first, "files": [file("/etc/keep.conf", "bad")], "rollout": spec}
    _, ok = update.apply_update(cfg, 2, bad, first, [], {})
    assert not ok and read(cfg, timer) == "[Timer]\n"
    assert [c for c in calls(cfg)[before:] if " is-" not in c] == ["systemctl restart keep.service"] * 2


def test_a_member_that_stops_voting_takes_the_lock_with_the_certificate_it_has(cfg, monkeypatch):
    member = {"cacert": "/etc/tls/ca.crt", "cert": "/etc/tls/member.crt", "key": "/etc/tls/member.key"}
    client = {"cacert": "/etc/tls/ca.crt", "cert": "/etc/tls/client.crt", "key": "/etc/tls/client.key"}
    spec = {"group": "db", "id": "a", "order": [], "statusPort": 1, "health": [], "healthTimeoutSeconds": 1,
            "handoverUnits": []}
    first = doc(cfg, [file(member["key"], "k"), file("/etc/a.conf", "a")], rollout={**spec, "etcdTls": member})
    desired.apply_first(cfg, first, [])
    seen = []

    def gated(s, node, apply, rollback, status, units=None, env=None):
        seen.append(s["etcdTls"])
        apply()
        return True
    monkeypatch.setattr(rollout, "apply_gated", gated)
    # The change writes its client key and drops the member key: the lock is taken with the member key.
    second = doc(cfg, [file(client["key"], "c"), file("/etc/a.conf", "a2")],
                 rollout={**spec, "id": "b", "etcdTls": client})
    assert update.apply_update(cfg, 2, second, first, [], {})[1]
    # Once the client key is there, with it.
    third = {**second, "files": [file(client["key"], "c"), file("/etc/a.conf", "a3")],
             "rollout": {**spec, "id": "c", "etcdTls": client}}
    assert update.apply_update(cfg, 3, third, second, [], {})[1]
    assert seen == [member, client]
    assert not os.path.exists(cfg["root"] + member["key"]) and read(cfg, client["key"]) == "c"


def test_a_unit_new_in_a_later_document_is_enabled_when_it_belongs_to_a_target(cfg):
    # A member that votes in etcd again: etcd's unit comes back, beside a oneshot run only as a restart.
    etcd, prune = "/etc/systemd/system/vps-ha-etcd.service", "/etc/systemd/system/vps-ha-etcd-prune.service"
    first = doc(cfg, [file("/etc/a.conf", "a")])
    desired.apply_first(cfg, first, [])
    unit = "[Service]\nExecStart=/usr/bin/etcd\n[Install]\nWantedBy=multi-user.target\n"
    second = {**first, "files": [file("/etc/a.conf", "a"), file(etcd, unit),
                                 file(prune, "[Service]\nType=oneshot\nExecStart=/bin/true\n")],
              "restarts": [{"unit": "vps-ha-etcd.service", "paths": [etcd]},
                           {"unit": "vps-ha-etcd-prune.service", "paths": [prune]}]}
    before = len(calls(cfg))
    problems = []
    _, ok = update.apply_update(cfg, 2, second, first, problems, {})
    assert ok and problems == []
    assert calls(cfg)[before:] == ["systemctl enable --no-reload vps-ha-etcd.service", "systemctl daemon-reload",
                                   "systemctl restart vps-ha-etcd.service",
                                   "systemctl restart vps-ha-etcd-prune.service"]
    # Once applied, the unit is not new any more: a later change does not enable it again.
    third = {**second, "files": [*second["files"][:2], file(prune, "[Service]\nType=oneshot\nExecStart=/bin/false\n")]}
    before = len(calls(cfg))
    update.apply_update(cfg, 3, third, second, [], {})
    assert not any(" enable " in c for c in calls(cfg)[before:])


def test_a_rolled_back_change_stops_and_disables_the_unit_it_brought(cfg, tmp_path):
    cfg, spec = failing_systemctl(cfg, tmp_path, "vps-ha-etcd.service")
    etcd = "/etc/systemd/system/vps-ha-etcd.service"
    first = doc(cfg, [file("/etc/a.conf", "a")])
    desired.apply_first(cfg, first, [])
    # Its restart fails (the stand-in fails while /etc/vps-ha-etcd.conf says "bad"): the change rolls back.
    bad = {**first, "files": [file("/etc/a.conf", "a"), file("/etc/vps-ha-etcd.conf", "bad"),
                              file(etcd, "[Install]\nWantedBy=multi-user.target\n")],
           "restarts": [{"unit": "vps-ha-etcd.service", "paths": [etcd]}], "rollout": spec}
    before = len(calls(cfg))
    _, ok = update.apply_update(cfg, 2, bad, first, [], {})
    assert not ok and not os.path.exists(cfg["root"] + etcd)
    ran = [c for c in calls(cfg)[before:] if " is-" not in c]
    # Enabled, restarted (failing), then stopped and disabled before its file goes; not restarted again.
    assert ran == ["systemctl enable --no-reload vps-ha-etcd.service", "systemctl daemon-reload",
                   "systemctl restart vps-ha-etcd.service", "systemctl disable --now --no-reload vps-ha-etcd.service",
                   "systemctl daemon-reload"]
