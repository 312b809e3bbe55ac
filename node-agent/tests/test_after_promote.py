import pytest

from vpsha import after_promote
from vpsha.after_promote import commits_wait


@pytest.mark.parametrize("names, streaming, waits", [
    ("", [], False),
    ('ANY 2 ("db-2","db-3")', ["db-2"], True),
    ('ANY 2 ("db-2","db-3")', ["DB-2"], True),
    ('ANY 2 ("db-2","db-3")', ["db-2", "db-3"], False),
    ('FIRST 1 ("db-2")', ["db-3"], True),
    ('1 ("db-2")', ["db-2"], False),
    ("db-2, db-3", ["db-3"], False),
    ("ANY 1 (*)", ["anyone"], False),
    ("*", [], True),
    ('any 2 ("db-2", "db-3")', ["db-2", "db-4"], True),
])
def test_commits_wait_when_fewer_named_standbys_stream_than_asked(names, streaming, waits):
    assert commits_wait(names, streaming) is waits


def test_a_bad_call_prints_the_usage_line(capsys):
    assert after_promote.main([]) == 2
    assert capsys.readouterr().err.startswith("usage: vps-ha-after-promote ")


@pytest.mark.parametrize("action, role", [("on_start", "primary"), ("on_role_change", "replica")])
def test_only_a_promotion_wakes_anything(action, role, tmp_path):
    # The config file is not even read: it does not exist.
    assert after_promote.main(["--patroni-config", str(tmp_path / "none.yml"), action, role, "prod"]) == 0
