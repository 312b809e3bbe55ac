# vpsha.restore_check's decisions: whose turn it is in Patroni's view, and what a run reports
# (the restore itself runs for real in test/restore-check.test.ts).
import json
import os

import pytest

from vpsha import restore_check

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def member(name, role, state):
    return {"name": name, "role": role, "state": state}


def test_the_last_healthy_replica_by_name_runs_it_and_none_when_there_is_none():
    cluster = {"members": [member("db-1", "leader", "running"), member("db-2", "sync_standby", "streaming"),
                           member("db-3", "replica", "streaming")]}
    assert restore_check.chosen(cluster) == "db-3"
    cluster["members"][2]["state"] = "starting"
    assert restore_check.chosen(cluster) == "db-2"
    assert restore_check.chosen({"members": [member("db-1", "leader", "running")]}) is None


@pytest.fixture
def table(tmp_path):
    with open(os.path.join(FIXTURES, "signals-table.json")) as f:
        t = json.load(f)
    t["textfileDir"] = str(tmp_path)
    return t


def values(table):
    with open(os.path.join(table["textfileDir"], "vpsha-restore-check.prom")) as f:
        return {line.split()[0]: float(line.split()[1]) for line in f if not line.startswith("#") and line.strip()}


def test_a_failed_run_keeps_the_last_passing_time_and_a_first_failure_has_none(table):
    restore_check.report(table, "prod", False, 100)
    assert values(table) == {'vpsha_restore_check_last_run_timestamp_seconds{stanza="prod"}': 100,
                             'vpsha_restore_check_success{stanza="prod"}': 0}
    restore_check.report(table, "prod", True, 200)
    restore_check.report(table, "prod", False, 300)
    assert values(table) == {'vpsha_restore_check_last_run_timestamp_seconds{stanza="prod"}': 300,
                             'vpsha_restore_check_success{stanza="prod"}': 0,
                             'vpsha_restore_check_last_success_timestamp_seconds{stanza="prod"}': 200}


def test_no_healthy_replica_fails_the_run(tmp_path, table, monkeypatch):
    monkeypatch.setattr(restore_check, "my_turn", lambda cfg: (_ for _ in ()).throw(restore_check.Failed("no replica")))
    (tmp_path / "t.json").write_text(json.dumps(table))
    cfg = {"stanza": "prod", "node": "db-1", "patroniUrl": "http://127.0.0.1:1", "pgBin": "/x", "scratch": "/x/s",
           "port": 5499, "database": "app", "signalTable": str(tmp_path / "t.json")}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert restore_check.main(["--config", str(tmp_path / "c.json")]) == 1
    assert restore_check.main(["--nope"]) == 2


def test_finished_backups_are_read_from_pgbackrest_info_and_failed_or_running_ones_are_not():
    info = [{"name": "prod", "backup": [
        {"type": "full", "timestamp": {"start": 1, "stop": 2}},
        {"type": "incr", "timestamp": {"start": 3, "stop": 4}, "error": True},
        {"type": "incr", "timestamp": {"start": 5}},
    ]}]
    signals = restore_check.signals
    assert signals.finished_backups(signals.stanza_entry("prod", info)) == [("full", 2)]
    assert signals.finished_backups(signals.stanza_entry("prod", [{"name": "prod", "backup": []}])) == []
    with pytest.raises(signals.Bad):
        signals.stanza_entry("prod", [{"name": "other"}])


def test_a_repository_with_no_backup_yet_passes_the_run_and_reports_nothing(tmp_path, table, monkeypatch):
    monkeypatch.setattr(restore_check, "my_turn", lambda cfg: True)
    monkeypatch.setattr(restore_check, "repository_backups", lambda cfg: [])
    restored = []
    monkeypatch.setattr(restore_check, "restore_and_check", restored.append)
    (tmp_path / "t.json").write_text(json.dumps(table))
    cfg = {"stanza": "prod", "node": "db-3", "patroniUrl": "http://127.0.0.1:1", "pgBin": "/x", "scratch": "/x/s",
           "port": 5499, "database": "app", "signalTable": str(tmp_path / "t.json")}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert restore_check.main(["--config", str(tmp_path / "c.json")]) == 0
    assert restored == []
    assert not os.path.exists(os.path.join(table["textfileDir"], "vpsha-restore-check.prom"))
    monkeypatch.setattr(restore_check, "repository_backups", lambda cfg: [("full", 2)])
    assert restore_check.main(["--config", str(tmp_path / "c.json")]) == 0
    assert len(restored) == 1 and values(table)['vpsha_restore_check_success{stanza="prod"}'] == 1
