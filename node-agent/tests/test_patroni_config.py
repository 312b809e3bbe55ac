from vpsha import patroni_config
from vpsha.patroni_config import difference, merge, removals, same, still_needed


def test_same_takes_numbers_given_as_strings_but_not_booleans():
    assert same(10, "10") and same("3s", "3s")
    assert not same(None, "None")
    assert not same(True, "true") and not same(1, True) and same(False, False)


def test_the_smallest_patch_that_sets_every_wanted_value():
    current = {"ttl": 30, "postgresql": {"parameters": {"max_connections": "100", "wal_level": "replica"}}}
    parameters = {"max_connections": 100, "wal_sender_timeout": "3s"}
    wanted = {"ttl": 30, "loop_wait": 1, "postgresql": {"parameters": parameters}}
    assert difference(current, wanted) == {"loop_wait": 1, "postgresql": {"parameters": {"wal_sender_timeout": "3s"}}}
    assert difference(wanted, wanted) == {}


def test_removals_null_only_the_keys_that_are_there():
    current = {"synchronous_mode": "quorum", "postgresql": {"parameters": {"wal_sender_timeout": "3s"}}}
    paths = [["synchronous_mode"], ["synchronous_node_count"], ["postgresql", "parameters", "wal_sender_timeout"]]
    patch = {"synchronous_mode": None, "postgresql": {"parameters": {"wal_sender_timeout": None}}}
    assert removals(current, paths) == patch
    assert removals({}, paths) == {}


def test_still_needed_sets_and_removes_in_one_patch():
    current = {"synchronous_node_count": 1, "synchronous_mode_strict": True, "postgresql": {"parameters": {"x": 1}}}
    absent = [["synchronous_mode_strict"], ["postgresql", "parameters", "x"]]
    settings = {"desired": {"synchronous_node_count": 2}, "absent": absent}
    assert still_needed(current, settings) == {
        "synchronous_node_count": 2, "synchronous_mode_strict": None, "postgresql": {"parameters": {"x": None}}}
    assert merge({"a": {"b": 1}}, {"a": {"c": 2}, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}


def test_a_bad_argument_prints_the_usage_line(capsys):
    assert patroni_config.main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("usage: vps-ha-patroni-config ")
