import json
import subprocess

import pytest

from vpsha import db_restore


def info(status=0, repo=(0,), backups=0, message="ok", stanza="prod"):
    return json.dumps([{
        "name": stanza,
        "status": {"code": status, "message": message},
        "repo": [{"key": i + 1, "status": {"code": c}} for i, c in enumerate(repo)],
        "backup": [{"label": "20261202-000000F-%d" % i} for i in range(backups)],
    }])


@pytest.fixture
def answer(monkeypatch):
    def set_answer(stdout, returncode=0, stderr=""):
        def fake_run(argv, **kwargs):
            assert argv[:2] == ["pgbackrest", "--stanza=prod"]
            return subprocess.CompletedProcess(argv, returncode, stdout, stderr)
        monkeypatch.setattr(db_restore.sp, "run", fake_run)
    return set_answer


def test_a_backup_in_the_repository_is_restored_newest_first(answer):
    answer(info(backups=2))
    assert db_restore.newest_backup("prod")["label"].endswith("-1")


@pytest.mark.parametrize("status, repo", [(1, (1,)), (2, (2,)), (2, (1, 2))])
def test_provably_no_backup_allows_initdb(answer, status, repo):
    answer(info(status=status, repo=repo))
    assert db_restore.newest_backup("prod") is None


@pytest.mark.parametrize("stdout, returncode", [
    (info(status=99, repo=(99,)), 0),  # an unreadable repository
    (info(status=3, repo=(3,)), 0),  # stanza data missing: proves nothing
    (info(status=2, repo=(2, 99)), 0),  # one repository of two does not answer
    (info(status=2, repo=(2,), backups=1), 0),  # "no valid backups" yet one is listed
    (info(status=1, repo=(1,)), 1),  # pgbackrest itself failed
    ("", 1),  # no answer at all
    ("not json", 0),
    (info(stanza="other"), 0),  # another stack's stanza
])
def test_anything_unclear_bootstraps_nothing(answer, stdout, returncode):
    answer(stdout, returncode)
    with pytest.raises(ValueError):
        db_restore.newest_backup("prod")


def test_a_call_without_patronis_settings_prints_the_usage_line(capsys):
    assert db_restore.main(["--scope=prod"]) == 2
    assert capsys.readouterr().err.startswith("usage: db-restore ")
