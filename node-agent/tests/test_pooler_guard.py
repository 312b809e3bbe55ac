import pytest

from vpsha import pooler_guard
from vpsha.pooler_guard import GUARD_NAME, Guard, holders, paused_databases
from vpsha.switchover import TOOL_NAME


def test_the_paused_databases_from_show_databases():
    databases = [{"name": "app", "paused": 1}, {"name": "pgbouncer", "paused": 0}, {"name": "other", "paused": "0"}]
    assert paused_databases(databases) == ["app"]


def test_only_the_switchover_tools_admin_sessions_hold_a_pause():
    clients = [
        {"database": "pgbouncer", "application_name": TOOL_NAME},
        {"database": "pgbouncer", "application_name": GUARD_NAME},
        {"database": "app", "application_name": TOOL_NAME},
        {"database": "pgbouncer", "application_name": ""},
    ]
    assert holders(clients) == 1


class TestGuard:
    def test_a_held_pause_lasts_until_the_bound(self):
        g = Guard(max_pause=55, grace=2)
        assert g.look(0.0, ["app"], 1) == []
        assert g.look(54.9, ["app"], 1) == []
        [(db, why)] = g.look(55.0, ["app"], 1)
        assert db == "app" and "bound is 55 s" in why

    def test_a_pause_nobody_holds_is_resumed_after_the_grace(self):
        g = Guard(max_pause=55, grace=2)
        assert g.look(0.0, ["app"], 1) == []
        # The tool is killed: its sessions close with it
        assert g.look(1.0, ["app"], 0) == []
        assert g.look(2.9, ["app"], 0) == []
        [(db, why)] = g.look(3.0, ["app"], 0)
        assert db == "app" and "no switchover holds it" in why

    def test_an_orphaned_pause_waits_for_haproxy_to_route_to_one_primary(self):
        g = Guard(max_pause=55, grace=2)
        g.look(0.0, ["app"], 0, routed=False)
        # Patroni's switchover goes on without the tool: no primary behind HAProxy for a moment
        assert g.look(3.0, ["app"], 0, routed=False) == []
        assert [d for d, _ in g.look(3.5, ["app"], 0, routed=True)] == ["app"]

    def test_the_bound_holds_even_without_a_primary(self):
        g = Guard(max_pause=55, grace=2)
        g.look(0.0, ["app"], 0, routed=False)
        assert [d for d, _ in g.look(55.0, ["app"], 0, routed=False)] == ["app"]

    def test_the_grace_starts_again_when_a_holder_returns(self):
        g = Guard(max_pause=55, grace=2)
        g.look(0.0, ["app"], 0)
        g.look(1.5, ["app"], 1)
        assert g.look(3.0, ["app"], 0) == []
        assert [d for d, _ in g.look(5.0, ["app"], 0)] == ["app"]

    def test_a_resume_by_the_tool_forgets_the_pause(self):
        g = Guard(max_pause=55, grace=2)
        g.look(0.0, ["app"], 1)
        assert g.look(10.0, [], 0) == []
        # A new pause counts from when it is first seen
        assert g.look(60.0, ["app"], 1) == []
        assert g.paused_since == {"app": 60.0}

    def test_what_it_resumed_is_forgotten(self):
        g = Guard(max_pause=55, grace=2)
        g.look(0.0, ["app"], 0)
        assert g.look(2.0, ["app"], 0)
        g.resumed("app")
        assert g.paused_since == {} and g.unheld_since is None


class FakeCursor:
    """pgbouncer's admin console as the guard sees it: a paused `app` and who is connected."""

    def __init__(self, console):
        self.console = console
        self.description = None
        self.result = []

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def execute(self, command):
        self.console.commands.append(command)
        if command == "SHOW DATABASES":
            self.description = [("name",), ("paused",)]
            self.result = [("app", 1 if self.console.paused else 0), ("pgbouncer", 0)]
        elif command == "SHOW CLIENTS":
            self.description = [("database",), ("application_name",)]
            self.result = [("pgbouncer", GUARD_NAME)] + [("pgbouncer", TOOL_NAME)] * self.console.tool_sessions
        elif command == "RECONNECT app":
            self.result = []
        elif command == "RESUME app":
            self.console.paused = False
            self.result = []
        else:
            raise AssertionError(command)

    def fetchall(self):
        return self.result


class FakeConsole:
    def __init__(self):
        self.paused = True
        self.tool_sessions = 0
        self.commands = []

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        pass


def test_run_resumes_an_orphaned_pause_on_the_console(monkeypatch):
    console = FakeConsole()
    monkeypatch.setattr(pooler_guard, "connect", lambda cfg: console)
    monkeypatch.setattr(pooler_guard, "routed", lambda cfg: True)
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(pooler_guard.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(pooler_guard.time, "sleep", lambda s: None)
    cfg = {"maxPauseSeconds": 55, "graceSeconds": 2, "everySeconds": 0.5}
    assert pooler_guard.run(cfg, rounds=4) == 0
    assert console.commands.index("RECONNECT app") == console.commands.index("RESUME app") - 1
    assert not console.paused


def test_usage_on_bad_arguments(capsys):
    assert pooler_guard.main(["--nope"]) == 2
    assert "usage: vps-ha-pooler-guard" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--config"], ["--config", "a", "b"]])
def test_usage_on_a_config_flag_without_one_file(argv):
    assert pooler_guard.main(argv) == 2


def test_routed_asks_haproxys_stats_for_one_primary(monkeypatch):
    def stats(listen_rows):
        class Answer:
            def __enter__(self):
                return self

            def __exit__(self, *a):
                return False

            def read(self):
                return "\n".join(listen_rows).encode()
        return lambda url, timeout: Answer()

    row = lambda server, status: ",".join(["db-primary", server] + [""] * 15 + [status] + [""] * 5)  # noqa: E731
    cfg = {"haproxyStats": "10.77.0.47", "haproxyStatsPort": 8404, "haproxyPrimaryListen": "db-primary"}
    monkeypatch.setattr(pooler_guard.urllib.request, "urlopen", stats([row("db-1", "UP"), row("db-2", "DOWN")]))
    assert pooler_guard.routed(cfg)
    monkeypatch.setattr(pooler_guard.urllib.request, "urlopen", stats([row("db-1", "UP"), row("db-2", "UP")]))
    assert not pooler_guard.routed(cfg)

    def refused(url, timeout):
        raise pooler_guard.urllib.error.URLError("refused")
    monkeypatch.setattr(pooler_guard.urllib.request, "urlopen", refused)
    assert not pooler_guard.routed(cfg)
