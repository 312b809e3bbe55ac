# vpsha.signals: each collector's samples from what its tool reports (pgBackRest 2.55's own JSON,
# captured from a real repository; the agents' status files as they write them), the text files
# as node_exporter's textfile collector reads them, written whole, and the table's refusals.
import datetime
import json
import os
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vpsha import signals

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


@pytest.fixture
def table(tmp_path):
    t = fixture("signals-table.json")
    t["textfileDir"] = str(tmp_path / "textfile")
    return t


def config(tmp_path, table, **extra):
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    cfg = {"signalTable": str(path), "pgbackrestUser": "postgres", **extra}
    (tmp_path / "signals.json").write_text(json.dumps(cfg))
    return cfg


def prom(table, name):
    with open(os.path.join(table["textfileDir"], name)) as f:
        return f.read()


# ---------------------------------------------------------------- backup

def test_backup_newest_per_type_and_the_newest_archived_segment():
    info, listing = fixture("pgbackrest-info.json"), fixture("pgbackrest-repo-ls.json")
    samples = signals.backup_samples("demo", info, listing)
    assert samples == [
        ("backupLastSuccess", {"stanza": "demo", "type": "full"}, 1796201514),
        ("backupLastSuccess", {"stanza": "demo", "type": "incr"}, 1796201517),
        # 000000010000000000000004 is the archive's max: its file's time, not the .backup file's
        ("walArchiveLastSuccess", {"stanza": "demo"}, 1796201517),
    ]


def test_backup_skips_failed_backups_and_a_stanza_it_does_not_know():
    info = fixture("pgbackrest-info.json")
    info[0]["backup"][1]["error"] = True
    samples = signals.backup_samples("demo", info, None)
    assert samples == [("backupLastSuccess", {"stanza": "demo", "type": "full"}, 1796201514)]
    with pytest.raises(signals.Bad, match="pgbackrest info knows no stanza prod"):
        signals.backup_samples("prod", info, None)


def test_backup_with_an_empty_stanza_reports_nothing():
    info = fixture("pgbackrest-info.json")
    info[0]["backup"], info[0]["archive"] = [], []
    assert signals.backup_samples("demo", info, None) == []


def test_backup_collector_asks_pgbackrest_for_info_then_the_newest_segments_directory():
    calls = []

    def run(cfg, args):
        calls.append(args)
        return fixture("pgbackrest-info.json") if args[0] == "info" else fixture("pgbackrest-repo-ls.json")

    samples = signals.collect_backup({"stanza": "demo"}, run)
    assert calls == [["info"], ["repo-ls", "--recurse", "archive/demo/17-1/0000000100000000"]]
    assert len(samples) == 3


def test_backup_collector_names_pgbackrests_failure(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    message = "ERROR: [039]: HTTP request failed with 403 (Forbidden)"
    (fake / "pgbackrest").write_text("#!/bin/sh\necho '%s' >&2\nexit 39\n" % message)
    (fake / "pgbackrest").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (fake, os.environ["PATH"]))
    with pytest.raises(signals.Bad, match=r"pgbackrest info: exit 39: ERROR: \[039\]: HTTP request failed with 403"):
        signals.pgbackrest({"stanza": "demo", "pgbackrestUser": None}, ["info"])


# ---------------------------------------------------------------- desired state, directory

def test_desired_applied_now():
    status = {"at": 1796201000.5, "generation": 1796200000123, "published": 1796200000123, "applied": True,
              "lastError": None, "staleSeconds": 0, "changed": []}
    assert signals.desired_samples(status) == [
        ("desiredStateGeneration", {}, 1796200000123),
        ("desiredStatePublished", {}, 1796200000123),
        ("desiredStateLastSuccess", {}, 1796201000.5),
    ]


def test_desired_held_back_reports_the_generation_published_for_it():
    status = {"at": 1796201000.5, "generation": 5, "published": 9, "applied": False,
              "lastError": None, "staleSeconds": 0, "changed": []}
    assert ("desiredStatePublished", {}, 9) in signals.desired_samples(status)


def test_desired_kept_while_dns_is_down_reports_its_last_check():
    status = {"at": 1796201000.5, "generation": 7, "published": None, "applied": False,
              "lastError": "DNS timed out", "staleSeconds": 600.0, "changed": []}
    assert signals.desired_samples(status) == [("desiredStateGeneration", {}, 7),
                                               ("desiredStateLastSuccess", {}, 1796200400.5)]


def test_desired_nothing_verified_yet_reports_nothing():
    status = {"at": 1796201000.5, "generation": None, "published": None, "applied": False,
              "lastError": "no head", "staleSeconds": None, "changed": []}
    assert signals.desired_samples(status) == []


def test_directory_a_round_from_its_cache_keeps_the_last_dns_time():
    refused = ("directoryRefused", {}, 0)
    kept = [("directoryLastSuccess", {}, 100.0), refused]
    assert signals.directory_samples({"at": 100.0, "source": "dns"}, None) == kept
    assert signals.directory_samples({"at": 200.0, "source": "cache"}, 100.0) == kept
    assert signals.directory_samples({"at": 200.0, "source": None}, None) == [refused]


def test_directory_the_generation_applied_and_a_refusal():
    status = {"at": 300.0, "source": "cache", "generation": 1767225600000,
              "refused": "refusing the index of generation 2"}
    # It did read DNS: the round counts as a success; the refusal has its own signal.
    assert signals.directory_samples(status, 100.0) == [
        ("directoryLastSuccess", {}, 300.0), ("directorySerial", {}, 1767225600000), ("directoryRefused", {}, 1)]
    status = {"at": 300.0, "source": "dns", "generation": 1767225600001, "refused": None}
    assert signals.directory_samples(status, 100.0)[1:] == [("directorySerial", {}, 1767225600001),
                                                            ("directoryRefused", {}, 0)]


def test_directory_collector_reads_back_its_own_last_value(tmp_path, table):
    status = tmp_path / "directory-status.json"
    cfg = config(tmp_path, table, directoryStatus=str(status))
    status.write_text(json.dumps({"at": 1796201000.0, "source": "dns", "members": [], "problems": []}))
    assert signals.run(cfg, table, ["directory"]) == []
    status.write_text(json.dumps({"at": 1796201600.0, "source": "cache", "members": [], "problems": ["DNS down"]}))
    assert signals.run(cfg, table, ["directory"]) == []
    assert "vpsha_directory_last_success_timestamp_seconds 1796201000.0\n" in prom(table, "vpsha-directory.prom")
    status.write_text(json.dumps({"at": 1796201700.0, "source": "cache", "generation": 1796200000123, "members": [],
                                  "refused": "refusing the index of generation 1796200000124", "problems": []}))
    assert signals.run(cfg, table, ["directory"]) == []
    text = prom(table, "vpsha-directory.prom")
    assert "vpsha_directory_refused 1\n" in text and "vpsha_directory_serial 1796200000123\n" in text


# ---------------------------------------------------------------- pooler

SHOW_DATABASES = ["name", "host", "port", "database", "force_user", "pool_size", "min_pool_size", "reserve_pool_size",
                  "server_lifetime", "pool_mode", "load_balance_hosts", "max_connections", "current_connections",
                  "max_client_connections", "current_client_connections", "paused", "disabled"]


def row(name, paused):
    values = dict(zip(SHOW_DATABASES, [name, "127.0.0.1", 5000, name, None, 20, 0, 0, 3600, "transaction", None, 0, 1,
                                       0, 0, paused, 0], strict=True))
    return [values[c] for c in SHOW_DATABASES]


def test_pooler_paused_from_show_databases():
    rows = [row("pgbouncer", 0), row("app", 1)]
    assert signals.pooler_paused(SHOW_DATABASES, rows, "app") == 1
    assert signals.pooler_paused(SHOW_DATABASES, [row("app", 0)], "app") == 0
    with pytest.raises(signals.Bad, match="pgbouncer has no database app"):
        signals.pooler_paused(SHOW_DATABASES, [row("pgbouncer", 0)], "app")


def test_pooler_unreachable_is_a_failure_naming_the_console():
    pooler = {"host": "127.0.0.1", "port": 1, "user": "pgbouncer_admin", "password": "x", "database": "app"}

    def refused(_):
        raise OSError("connection refused")

    with pytest.raises(signals.Bad, match=r"pgbouncer's admin console at 127\.0\.0\.1:1: connection refused"):
        signals.collect_pooler({"pooler": pooler}, refused)


# ---------------------------------------------------------------- certificates

def certificate(days, with_key=False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db-1")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    if with_key:
        pem += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return pem, int((start + datetime.timedelta(days=days)).timestamp())


def test_certificates_expiry_also_from_a_pem_holding_the_key(tmp_path, table):
    node, node_end = certificate(3650)
    origin, origin_end = certificate(90, with_key=True)
    (tmp_path / "node.crt").write_text(node)
    (tmp_path / "origin.pem").write_text(origin)
    paths = {"pgbackrest": str(tmp_path / "node.crt"), "origin": str(tmp_path / "origin.pem")}
    cfg = config(tmp_path, table, certificates=paths)
    assert signals.run(cfg, table, ["certificates"]) == []
    text = prom(table, "vpsha-certificates.prom")
    assert 'vpsha_certificate_expiry_timestamp_seconds{certificate="origin"} %d\n' % origin_end in text
    assert 'vpsha_certificate_expiry_timestamp_seconds{certificate="pgbackrest"} %d\n' % node_end in text


def test_certificates_a_missing_or_bad_file_fails_the_run(tmp_path, table):
    (tmp_path / "bad.crt").write_text("not a certificate")
    cfg = config(tmp_path, table, certificates={"a": str(tmp_path / "nope.crt"), "b": str(tmp_path / "bad.crt")})
    problems = signals.run(cfg, table, ["certificates"])
    assert len(problems) == 1
    assert "a (%s): [Errno 2]" % (tmp_path / "nope.crt") in problems[0]
    assert "b (%s): no certificate in it" % (tmp_path / "bad.crt") in problems[0]


# ---------------------------------------------------------------- files and the table

def test_render_is_prometheus_text_with_help_and_type_once():
    t = fixture("signals-table.json")
    text = signals.render(t, [("backupLastSuccess", {"type": "full", "stanza": "prod"}, 10),
                              ("backupLastSuccess", {"stanza": "prod", "type": "incr"}, 20)])
    assert text == (
        "# HELP vpsha_backup_last_success_timestamp_seconds %s\n" % t["signals"]["backupLastSuccess"]["help"]
        + "# TYPE vpsha_backup_last_success_timestamp_seconds gauge\n"
        + 'vpsha_backup_last_success_timestamp_seconds{stanza="prod",type="full"} 10\n'
        + 'vpsha_backup_last_success_timestamp_seconds{stanza="prod",type="incr"} 20\n'
    )


def test_render_refuses_what_the_table_does_not_allow():
    t = fixture("signals-table.json")
    with pytest.raises(ValueError, match=r"labels must be exactly \[stanza, type\]; got \[stanza\]"):
        signals.render(t, [("backupLastSuccess", {"stanza": "prod"}, 1)])
    with pytest.raises(ValueError, match=r'label type="weekly" is not one of full, diff, incr'):
        signals.render(t, [("backupLastSuccess", {"stanza": "prod", "type": "weekly"}, 1)])
    with pytest.raises(ValueError, match=r'must be 1-200 of'):
        signals.render(t, [("certificateExpiry", {"certificate": 'a"} 1\nx{'}, 1)])
    with pytest.raises(ValueError, match=r"value nan is not a finite number"):
        signals.render(t, [("poolerPaused", {}, float("nan"))])
    with pytest.raises(ValueError, match=r"nope is not a vps-ha signal"):
        signals.render(t, [("nope", {}, 1)])


def test_files_are_written_whole_and_a_signal_gone_empties_its_file(tmp_path, table):
    status = tmp_path / "desired-status.json"
    cfg = config(tmp_path, table, desiredStatus=str(status))
    status.write_text(json.dumps({"at": 5.0, "generation": 3, "applied": True, "staleSeconds": 0}))
    assert signals.run(cfg, table, ["desired"]) == []
    assert "vpsha_desired_state_generation 3\n" in prom(table, "vpsha-desired-state.prom")
    assert sorted(os.listdir(table["textfileDir"])) == ["vpsha-desired-state.prom"]
    assert oct(os.stat(os.path.join(table["textfileDir"], "vpsha-desired-state.prom")).st_mode & 0o777) == "0o644"
    status.write_text(json.dumps({"at": 6.0, "generation": None, "applied": False, "staleSeconds": None}))
    assert signals.run(cfg, table, ["desired"]) == []
    assert prom(table, "vpsha-desired-state.prom") == "\n"


def test_one_collector_failing_leaves_the_others_and_its_own_last_file(tmp_path, table):
    status = tmp_path / "desired-status.json"
    status.write_text(json.dumps({"at": 5.0, "generation": 3, "applied": True, "staleSeconds": 0}))
    broken = tmp_path / "directory-status.json"
    broken.write_text("{not json")
    cfg = config(tmp_path, table, desiredStatus=str(status), directoryStatus=str(broken))
    problems = signals.run(cfg, table, ["directory", "desired", "pooler"])
    assert len(problems) == 2
    assert problems[0].startswith("directory: the directory agent status %s unreadable: " % broken)
    assert problems[1] == "pooler: this node's config has no pooler"
    assert "vpsha_desired_state_generation 3" in prom(table, "vpsha-desired-state.prom")


def test_a_status_not_written_yet_is_no_signal_and_no_failure(tmp_path, table):
    # A booting node: the agents have not finished their first round when the timer first fires.
    status = tmp_path / "desired-status.json"
    cfg = config(tmp_path, table, desiredStatus=str(status))
    status.write_text(json.dumps({"at": 5.0, "generation": 3, "applied": True, "staleSeconds": 0}))
    assert signals.run(cfg, table, ["desired"]) == []
    status.unlink()
    assert signals.run(cfg, table, ["desired"]) == []
    assert prom(table, "vpsha-desired-state.prom") == "\n"


def test_main_exits_1_naming_each_failure_and_2_on_usage(tmp_path, table):
    config(tmp_path, table, certificates={"a": str(tmp_path / "nope.crt")})
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(signals.__file__))}
    argv = [sys.executable, "-m", "vpsha.signals", "--config", str(tmp_path / "signals.json")]
    r = subprocess.run(argv + ["certificates"], capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert r.stderr.startswith("signals: certificates: a (")
    r = subprocess.run(argv + ["everything"], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert "usage: python3 -m vpsha.signals [--config FILE] COLLECTOR..." in r.stderr
