# vpsha.upgrades: which upgradable packages unattended-upgrades would install and which wait for a
# release (its Origins-Pattern and Package-Blacklist as Debian 13's unattended-upgrades 2.12 reads
# them), apt.systemd.daily's stamps, and the file signals.py writes from them. Reading apt itself
# (python3-apt) runs against a real unattended-upgrade in test/upgrades-daemons.test.ts.
import json
import os

import pytest

from vpsha import signals, upgrades

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
SECURITY = "origin=Debian,codename=${distro_codename}-security,label=Debian-Security"
HELD = ["haproxy$", "pgbouncer$", "patroni$", "etcd-server$", "postgresql-[0-9]+$"]


def origin(label="Debian-Security", codename="trixie-security", archive="stable-security"):
    return {"origin": "Debian", "label": label, "archive": archive, "codename": codename,
            "component": "main", "site": "security.debian.org"}


def test_pattern_fills_the_codename_and_refuses_a_key_it_does_not_know():
    assert upgrades.parse_pattern(SECURITY, "trixie") == {
        "origin": "Debian", "codename": "trixie-security", "label": "Debian-Security"}
    assert upgrades.parse_pattern("o=Debian,a=stable,l=Debian\\,x", "trixie") == {
        "origin": "Debian", "archive": "stable", "label": "Debian,x"}
    with pytest.raises(upgrades.Bad, match=r"'colour=blue' is not one of"):
        upgrades.parse_pattern("origin=Debian,colour=blue", "trixie")


def test_held_is_a_regex_anchored_at_the_name_start():
    assert upgrades.held("postgresql-17", HELD)
    assert not upgrades.held("postgresql-client-17", HELD)
    assert not upgrades.held("postgresql-common", HELD)
    assert upgrades.held("haproxy", HELD)
    assert not upgrades.held("python3-etcd", HELD)
    assert not upgrades.held("libhaproxy", HELD)


def test_pending_counts_security_upgrades_by_what_they_wait_for():
    candidates = [
        ("openssl", [origin()]),
        ("libssl3t64", [origin()]),
        ("postgresql-17", [origin()]),
        ("haproxy", [origin()]),
        # A point release from the main archive: not a security upgrade, not counted.
        ("curl", [origin(label="Debian", codename="trixie", archive="stable")]),
        # Offered by both archives: the security one counts.
        ("tzdata", [origin(label="Debian", codename="trixie", archive="stable"), origin()]),
    ]
    assert upgrades.pending(candidates, [SECURITY], HELD, "trixie") == (3, 2)
    assert upgrades.pending(candidates, [SECURITY], HELD, "forky") == (0, 0)
    assert upgrades.pending([], [SECURITY], HELD, "trixie") == (0, 0)


def test_last_success_is_the_older_stamp_and_none_before_both_exist():
    assert upgrades.last_success(200, 100) == 100
    assert upgrades.last_success(100, 200) == 100
    assert upgrades.last_success(None, 200) is None
    assert upgrades.last_success(100, None) is None


@pytest.fixture
def table(tmp_path):
    with open(os.path.join(FIXTURES, "signals-table.json")) as f:
        t = json.load(f)
    t["textfileDir"] = str(tmp_path / "textfile")
    return t


def paths(tmp_path):
    return {k: str(tmp_path / os.path.basename(v)) for k, v in upgrades.DEFAULTS.items()}


def test_samples_from_apt_the_stamps_and_the_reboot_flag(tmp_path):
    p = paths(tmp_path)
    for name, when in (("updateStamp", 1_800_000_500), ("upgradeStamp", 1_800_000_000)):
        open(p[name], "w").close()
        os.utime(p[name], (when, when))

    def read():
        return [("openssl", [origin()]), ("patroni", [origin()])], [SECURITY], HELD, "trixie"

    assert upgrades.samples({"upgrades": p}, read) == [
        ("upgradesPending", {"waits_for": "unattended-upgrades"}, 1),
        ("upgradesPending", {"waits_for": "release"}, 1),
        ("rebootRequired", {}, 0),
        ("upgradesLastSuccess", {}, 1_800_000_000),
    ]
    open(p["rebootRequired"], "w").close()
    os.unlink(p["upgradeStamp"])
    assert upgrades.samples({"upgrades": p}, read) == [
        ("upgradesPending", {"waits_for": "unattended-upgrades"}, 1),
        ("upgradesPending", {"waits_for": "release"}, 1),
        ("rebootRequired", {}, 1),
    ]


def test_no_origins_pattern_is_a_failure():
    with pytest.raises(upgrades.Bad, match="no Unattended-Upgrade::Origins-Pattern"):
        upgrades.samples({"upgrades": {}}, lambda: ([], [], [], "trixie"))


def test_the_upgrades_collector_writes_its_file(tmp_path, table, monkeypatch):
    p = paths(tmp_path)
    open(p["rebootRequired"], "w").close()
    monkeypatch.setattr(upgrades, "read_apt", lambda: ([("haproxy", [origin()])], [SECURITY], HELD, "trixie"))
    assert signals.run({"upgrades": p}, table, ["upgrades"]) == []
    with open(os.path.join(table["textfileDir"], "vpsha-upgrades.prom")) as f:
        text = f.read()
    assert 'vpsha_upgrades_pending{waits_for="unattended-upgrades"} 0\n' in text
    assert 'vpsha_upgrades_pending{waits_for="release"} 1\n' in text
    assert "vpsha_reboot_required 1\n" in text
    assert "vpsha_unattended_upgrades_last_success_timestamp_seconds" not in text


def test_the_upgrades_collector_names_what_apt_refused(tmp_path, table, monkeypatch):
    def broken():
        raise upgrades.Bad("apt's cache: E:Could not open lock file")

    monkeypatch.setattr(upgrades, "read_apt", broken)
    assert signals.run({"upgrades": {}}, table, ["upgrades"]) == ["upgrades: apt's cache: E:Could not open lock file"]
