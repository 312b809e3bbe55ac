"""A secrets version's login roles: made on the primary before any member uses them (ensure), and the
version before's retired once the last rollout group reports the new credentials (retire). First
against a fake PostgreSQL and fake status servers (the config's checks, the passwords' order,
asking again, the bounds), then against a real PostgreSQL (pg_server: initdb, on loopback)."""
import psycopg2
import psycopg2.errors
import pytest
from pg_server import run_postgres
from psycopg2 import sql

from vpsha import db_roles
from vpsha.db_roles import Env

REWINDER_GRANTS = list(db_roles.GRANTS)


def config(**over):
    c = {
        "members": ["10.20.0.11", "10.20.0.12"], "port": 5432, "database": "postgres", "superuser": "postgres",
        "superuserPasswords": ["NEW", "OLD"],
        "roles": [
            {"name": "app_v2", "password": "app-2", "options": ["LOGIN"], "memberOf": ["app"], "setRole": "app"},
            {"name": "replicator_v2", "password": "rep-2", "options": ["LOGIN", "REPLICATION"]},
            {"name": "rewinder_v2", "password": "rew-2", "options": ["LOGIN"], "grants": REWINDER_GRANTS},
        ],
        "retire": ["app", "replicator", "rewinder"],
        "after": {"nodes": [{"name": "app-1", "meshAddress": "10.20.0.31"},
                            {"name": "app-2", "meshAddress": "10.20.0.32"}], "statusPort": 2382, "credentials": 2},
        "waitSeconds": 60,
    }
    c.update(over)
    return c


def text(q):
    """A statement as text, without a connection (psycopg2.sql renders only over one)."""
    if isinstance(q, str):
        return q
    if isinstance(q, sql.Composed):
        return "".join(text(p) for p in q.seq)
    if isinstance(q, sql.SQL):
        return q.string
    if isinstance(q, sql.Identifier):
        return ".".join('"%s"' % s for s in q.strings)
    if isinstance(q, sql.Literal):
        return "'%s'" % q.wrapped
    raise TypeError(q)


def refused(user="postgres"):
    return psycopg2.OperationalError('connection to server at "10.20.0.11", port 5432 failed: FATAL:  password '
                                     'authentication failed for user "%s"' % user)


def no_primary():
    return psycopg2.OperationalError('connection to server at "10.20.0.11", port 5432 failed: server is in hot '
                                     'standby mode\nconnection to server at "10.20.0.12", port 5432 failed: '
                                     'Connection refused')


class FakePostgres:
    """A primary as far as the tool sees it: the superuser's password, which roles exist and can log in."""

    def __init__(self, clock, password="OLD", roles=("app", "replicator", "rewinder"), sessions=2):
        self.clock, self.password = clock, password
        self.roles = dict.fromkeys(roles, True)
        self.sessions = sessions
        self.connects, self.events = [], []
        # Errors the next connects raise, in turn (then the password decides).
        self.connect_errors = []
        # statement prefix -> an error its next execution raises (once)
        self.execute_errors = {}

    def connect(self, **kw):
        self.connects.append(kw)
        if self.connect_errors:
            raise self.connect_errors.pop(0)
        if kw["password"] != self.password:
            raise refused()
        return FakeConnection(self)


class FakeConnection:
    def __init__(self, db):
        self.db, self.pending, self.closed = db, [], False
        self.info = type("Info", (), {"host": "10.20.0.12"})()

    def cursor(self):
        return FakeCursor(self)

    def commit(self):
        for change in self.pending:
            change()
        self.pending = []
        self.db.events.append("COMMIT")

    def close(self):
        self.closed = True


class FakeCursor:
    def __init__(self, conn):
        self.conn, self.db, self.rows = conn, conn.db, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, query, params=None):
        q = text(query)
        self.db.events.append((q, params))
        for prefix, err in list(self.db.execute_errors.items()):
            if q.startswith(prefix):
                del self.db.execute_errors[prefix]
                raise err
        db, pending = self.db, self.conn.pending
        if q == "SHOW password_encryption":
            self.rows = [("scram-sha-256",)]
        elif q.startswith('ALTER ROLE "postgres" PASSWORD'):
            pending.append(lambda: setattr(db, "password", params[0].split(":", 2)[2]))
        elif q.startswith("SELECT 1 FROM pg_catalog.pg_roles"):
            self.rows = [(1,)] if params[0] in db.roles else []
        elif q.startswith("CREATE ROLE"):
            pending.append(lambda: db.roles.setdefault(q.split('"')[1], False))
        elif " WITH LOGIN " in q:
            pending.append(lambda: db.roles.__setitem__(q.split('"')[1], True))
        elif q.startswith("SELECT rolname FROM pg_catalog.pg_roles"):
            self.rows = [(n,) for n in sorted(db.roles) if n in params[0] and db.roles[n]]
        elif q.endswith("NOLOGIN PASSWORD NULL"):
            pending.append(lambda: db.roles.__setitem__(q.split('"')[1], False))
        elif "pg_terminate_backend" in q:
            self.rows = [(True,)] * db.sessions
            db.sessions = 0

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return list(self.rows)


def fake_encrypt(password, role, conn, algorithm):
    return "%s:%s:%s" % (algorithm, role, password)


class Peers:
    """Status servers as read_peer answers: address -> a list of answers, one a round (the last one stays)."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def __call__(self, address, port, timeout):
        self.asked.append((address, port))
        seq = self.answers[address]
        return seq.pop(0) if len(seq) > 1 else seq[0]


def healthy(credentials=2):
    return {"rolloutId": "r-7", "rolloutState": "healthy", "credentials": credentials}


@pytest.fixture
def db(clock):
    return FakePostgres(clock)


def env_of(db, clock, peers=None):
    def unread(*a):
        raise AssertionError("no status server is asked")
    return Env(connect=db.connect, read_peer=peers or unread, encrypt=fake_encrypt, monotonic=clock,
               sleep=clock.sleep, poll=1.0, peer_poll=1.0, peer_timeout=1.0)


def run(write_json, command, c, env):
    return db_roles.main([command, write_json("db-roles.json", c)], env=env)


def statements(db):
    return [e[0] for e in db.events if e != "COMMIT"]


# ---------------------------------------------------------------- the config

def without(key):
    c = config()
    del c[key]
    return c


def role_with(i, **kw):
    c = config()
    c["roles"][i].update(kw)
    return c


def after_with(**kw):
    c = config()
    c["after"].update(kw)
    return c


BAD = [
    (without("members"), "CONFIG: missing key members"),
    (config(members=[]), "members:"),
    (config(members=["10.20.0.11,10.20.0.12"]), "members:"),
    (config(members=[11]), "members:"),
    (config(port="5432"), "port:"),
    (config(port=0), "port:"),
    (config(database=""), "database:"),
    (config(superuser="Postgres"), "superuser:"),
    (config(superuserPasswords=[]), "superuserPasswords:"),
    (config(superuserPasswords=["a", "b", "c"]), "superuserPasswords:"),
    (config(superuserPasswords=["NEW", ""]), "superuserPasswords:"),
    (config(roles={}), "roles: not a list"),
    (role_with(0, name="App_V2"), "roles[0].name:"),
    (role_with(0, name="a" * 64), "roles[0].name:"),
    (role_with(0, name='app"; DROP ROLE x; --'), "roles[0].name:"),
    (role_with(1, password=""), "roles[1].password:"),
    (role_with(1, password=7), "roles[1].password:"),
    (role_with(1, options=["LOGIN", "SUPERUSER"]), 'roles[1].options: "SUPERUSER"'),
    (role_with(1, options="LOGIN"), "roles[1].options: not a list"),
    (role_with(0, memberOf=["app admin"]), "roles[0].memberOf:"),
    (role_with(0, setRole="app; RESET ALL"), "roles[0].setRole:"),
    (role_with(0, setRole="pg_monitor"), "roles[0].setRole: pg_monitor is not in its memberOf"),
    (role_with(2, grants=["ALL ON DATABASE postgres"]), 'roles[2].grants: "ALL ON DATABASE postgres"'),
    (role_with(2, grants=["EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text)"]), "roles[2].grants:"),
    (role_with(0, memberof=["app"]), "roles[0]: unknown key memberof"),
    (role_with(1, name="app_v2"), "roles[1].name: app_v2 is named twice"),
    (role_with(0, name="postgres"), "roles[0].name: postgres is the superuser"),
    (config(retire=["postgres"]), "retire: postgres is the superuser"),
    (config(retire=["app", "app_v2"]), "retire: app_v2 is one of this version's roles"),
    (config(retire=["App"]), "retire:"),
    (config(retire="app"), "retire: not a list"),
    (after_with(nodes=[]), "after.nodes:"),
    (after_with(nodes=[{"name": "app-1"}]), "after.nodes[0]: missing key meshAddress"),
    (after_with(credentials="2"), "after.credentials:"),
    (after_with(statusPort=70000), "after.statusPort:"),
    (config(waitSeconds=0), "waitSeconds:"),
    (config(waitSeconds="600"), "waitSeconds:"),
    (config(retireWaitSeconds=-1), "retireWaitSeconds:"),
    (config(extra=1), "CONFIG: unknown key extra"),
]


@pytest.mark.parametrize("c,said", BAD, ids=[s for _, s in BAD])
def test_a_bad_config_exits_2_naming_the_key_and_asks_nothing(c, said, db, clock, write_json, capsys):
    for command in ("ensure", "retire"):
        assert run(write_json, command, c, env_of(db, clock)) == 2
        assert said in capsys.readouterr().out
    assert db.connects == []


def test_a_key_starting_with_an_underscore_is_a_note(db, clock, write_json):
    # The drills stamp every JSON file with "_revision" (components/drill-knobs.ts).
    assert run(write_json, "ensure", config(_revision="upgrade-1"), env_of(db, clock)) == 0


def test_retire_needs_after_only_when_it_retires_something(db, clock, write_json, capsys):
    c = without("after")
    assert run(write_json, "retire", c, env_of(db, clock)) == 2
    assert "after: missing" in capsys.readouterr().out
    assert run(write_json, "ensure", c, env_of(db, clock)) == 0
    assert run(write_json, "retire", {**c, "retire": []}, env_of(db, clock)) == 0


def test_an_unreadable_or_malformed_config_and_a_bad_command_exit_2(db, clock, tmp_path, capsys):
    assert db_roles.main(["ensure", str(tmp_path / "none.json")], env=env_of(db, clock)) == 2
    assert "cannot read it" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert db_roles.main(["ensure", str(tmp_path / "bad.json")], env=env_of(db, clock)) == 2
    assert "not JSON" in capsys.readouterr().out
    (tmp_path / "list.json").write_text("[]")
    assert db_roles.main(["ensure", str(tmp_path / "list.json")], env=env_of(db, clock)) == 2
    assert "CONFIG: not an object" in capsys.readouterr().out
    for argv in ([], ["ensure"], ["drop", str(tmp_path / "bad.json")], ["ensure", "a", "b"]):
        assert db_roles.main(argv, env=env_of(db, clock)) == 2
        assert capsys.readouterr().err.strip() == "usage: vps-ha-db-roles (ensure | retire) CONFIG"
    assert db.connects == []


# ---------------------------------------------------------------- ensure

def test_ensure_connects_to_the_primary_over_every_member_and_makes_the_roles(db, clock, write_json, capsys):
    assert run(write_json, "ensure", config(), env_of(db, clock)) == 0
    first = db.connects[0]
    assert first == {"host": "10.20.0.11,10.20.0.12", "port": "5432,5432", "dbname": "postgres", "user": "postgres",
                     "password": "NEW", "connect_timeout": 3, "target_session_attrs": "read-write",
                     "application_name": "vps-ha-db-roles"}
    assert statements(db) == [
        "SHOW password_encryption",
        'ALTER ROLE "postgres" PASSWORD %s',
        "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s",
        'CREATE ROLE "app_v2"',
        'ALTER ROLE "app_v2" WITH LOGIN NOREPLICATION PASSWORD %s',
        'GRANT "app" TO "app_v2"',
        """ALTER ROLE "app_v2" SET role = 'app'""",
        "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s",
        'CREATE ROLE "replicator_v2"',
        'ALTER ROLE "replicator_v2" WITH LOGIN REPLICATION PASSWORD %s',
        "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s",
        'CREATE ROLE "rewinder_v2"',
        'ALTER ROLE "rewinder_v2" WITH LOGIN NOREPLICATION PASSWORD %s',
    ] + ['GRANT %s TO "rewinder_v2"' % g for g in REWINDER_GRANTS]
    # One transaction; passwords only as parameters, hashed by libpq with the server's algorithm.
    assert db.events.count("COMMIT") == 1 and db.events[-1] == "COMMIT"
    params = [e[1] for e in db.events if e != "COMMIT" and "PASSWORD" in e[0]]
    assert params == [("scram-sha-256:postgres:NEW",), ("scram-sha-256:app_v2:app-2",),
                      ("scram-sha-256:replicator_v2:rep-2",), ("scram-sha-256:rewinder_v2:rew-2",)]
    out = capsys.readouterr().out
    assert "superuserPasswords[0] was refused; connected with superuserPasswords[1]" in out
    assert "created app_v2, replicator_v2, rewinder_v2" in out
    for secret in ("NEW", "OLD", "app-2", "rep-2", "rew-2"):
        assert secret not in out


def test_ensure_tries_the_passwords_in_order_and_sets_the_first(db, clock, write_json):
    # The first member's turn: the superuser still has the old password; the new one is set.
    assert run(write_json, "ensure", config(), env_of(db, clock)) == 0
    assert [c["password"] for c in db.connects] == ["NEW", "OLD"]
    assert db.password == "NEW"
    # The next member's: the new one is taken at once; the roles are there, nothing is created.
    db.connects, db.events = [], []
    assert run(write_json, "ensure", config(), env_of(db, clock)) == 0
    assert [c["password"] for c in db.connects] == ["NEW"]
    assert not [s for s in statements(db) if s.startswith("CREATE ROLE")]
    assert not [s for s in statements(db) if "NOLOGIN" in s or "DROP" in s]


def test_ensure_asks_again_while_there_is_no_primary(db, clock, write_json, capsys):
    db.connect_errors = [no_primary(), no_primary(), no_primary()]
    assert run(write_json, "ensure", config(), env_of(db, clock)) == 0
    assert clock.now == 3.0
    assert [c["password"] for c in db.connects] == ["NEW", "NEW", "NEW", "NEW", "OLD"]
    assert db.password == "NEW"
    # Logged once, not on every ask.
    assert capsys.readouterr().out.count("asking again") == 1


def test_ensure_asks_again_when_the_primary_goes_away_mid_transaction(db, clock, write_json):
    db.password = "NEW"
    db.execute_errors = {'CREATE ROLE "replicator_v2"': psycopg2.errors.ReadOnlySqlTransaction(
        "cannot execute CREATE ROLE in a read-only transaction")}
    assert run(write_json, "ensure", config(), env_of(db, clock)) == 0
    assert len(db.connects) == 2 and clock.now == 1.0
    assert db.events.count("COMMIT") == 1
    assert {n for n, login in db.roles.items() if login} >= {"app_v2", "replicator_v2", "rewinder_v2"}


def test_ensure_fails_at_once_on_an_error_asking_again_would_not_mend(db, clock, write_json, capsys):
    db.password = "NEW"
    db.execute_errors = {"GRANT EXECUTE": psycopg2.errors.UndefinedFunction(
        "function pg_catalog.pg_ls_dir(text, boolean, boolean) does not exist")}
    assert run(write_json, "ensure", config(), env_of(db, clock)) == 1
    assert len(db.connects) == 1 and "COMMIT" not in db.events
    assert "FAILED: on the primary 10.20.0.12: function pg_catalog.pg_ls_dir" in capsys.readouterr().out


def test_ensure_fails_at_once_when_libpq_refuses_the_connection_string(db, clock, write_json, capsys):
    db.connect_errors = [psycopg2.ProgrammingError('invalid connection option "target_session_attrs"')]
    assert run(write_json, "ensure", config(), env_of(db, clock)) == 1
    assert len(db.connects) == 1 and clock.now == 0
    assert "FAILED: cannot connect: invalid connection option" in capsys.readouterr().out


def test_ensure_gives_up_after_wait_seconds(db, clock, write_json, capsys):
    db.connect_errors = [no_primary()] * 1000
    assert run(write_json, "ensure", config(waitSeconds=30), env_of(db, clock)) == 1
    assert clock.now == 30.0
    out = capsys.readouterr().out
    assert "FAILED: no read-write member among 10.20.0.11,10.20.0.12 took a connection in 30 s" in out
    assert "Connection refused" in out
    assert out.count("asking again") == 3


def test_ensure_keeps_asking_while_every_password_is_refused_then_gives_up(db, clock, write_json, capsys):
    db.password = "SOMETHING ELSE"
    assert run(write_json, "ensure", config(waitSeconds=5), env_of(db, clock)) == 1
    assert [c["password"] for c in db.connects] == ["NEW", "OLD"] * 6
    assert "every superuser password was refused" in capsys.readouterr().out


# ---------------------------------------------------------------- retire

def test_retire_with_nothing_to_retire_exits_at_once(clock, write_json, capsys):
    def never(**kw):
        raise AssertionError("no connection")
    env = env_of(FakePostgres(clock), clock)
    env.connect = never
    assert run(write_json, "retire", config(retire=[]), env) == 0
    assert clock.now == 0
    assert "no login role to retire" in capsys.readouterr().out


def test_retire_waits_until_every_node_reports_the_new_credentials_healthy(db, clock, write_json, capsys):
    db.password, db.roles = "NEW", {**db.roles, "app_v2": True, "replicator_v2": True, "rewinder_v2": True}
    peers = Peers({
        # Unreachable, then applying the new credentials' rollout, then healthy with them.
        "10.20.0.31": [None, None, {**healthy(2), "rolloutState": "applying"}, healthy(2)],
        # Healthy with the old credentials for a while, then with the new ones.
        "10.20.0.32": [healthy(1)] * 5 + [healthy(2)],
    })
    connects = []
    env = env_of(db, clock, peers)
    env.connect = lambda **kw: connects.append(clock.now) or db.connect(**kw)
    # The status servers are asked every 5 s by default, not every second (Env.peer_poll says why).
    env.peer_poll = db_roles.Env().peer_poll
    assert env.peer_poll == 5.0
    assert run(write_json, "retire", config(), env) == 0
    # Asked on every poll until both report; the primary only after that.
    assert clock.now == 25.0 and connects == [25.0]
    assert len(peers.asked) == 12 and peers.asked[0] == ("10.20.0.31", 2382)
    out = capsys.readouterr().out
    assert "waiting on app-1 (unreachable); app-2 (credentials 1, not yet 2)" in out
    # Said at most every 10 s (at 0, 10 and 20 s), not on every ask.
    assert out.count("waiting on") == 3
    assert "disabled app, replicator, rewinder (no login, no password); ended 2 sessions" in out
    assert db.roles == {"app": False, "replicator": False, "rewinder": False,
                        "app_v2": True, "replicator_v2": True, "rewinder_v2": True}


def test_retire_commits_the_lost_logins_before_it_ends_the_sessions(db, clock, write_json):
    db.password, db.roles = "NEW", {"app": True, "replicator": False, "app_v2": True, "replicator_v2": True,
                                    "rewinder_v2": True}
    peers = Peers({"10.20.0.31": [healthy(2)], "10.20.0.32": [healthy(3)]})
    assert run(write_json, "retire", config(), env_of(db, clock, peers)) == 0
    events = [e if e == "COMMIT" else e[0] for e in db.events]
    alter = events.index('ALTER ROLE "app" NOLOGIN PASSWORD NULL')
    terminate = next(i for i, e in enumerate(events) if "pg_terminate_backend" in e)
    assert alter < events.index("COMMIT") < terminate < len(events) - 1 and events[-1] == "COMMIT"
    # Only a role that exists and can log in is altered; every name's sessions are ended.
    assert [e for e in events if "NOLOGIN" in e] == ['ALTER ROLE "app" NOLOGIN PASSWORD NULL']
    assert db.events[terminate][1] == (["app", "replicator", "rewinder"],)


def test_retire_gives_up_naming_the_nodes_that_do_not_report(db, clock, write_json, capsys):
    peers = Peers({"10.20.0.31": [healthy(2)], "10.20.0.32": [healthy(1)]})
    # Its own bound: ensure's would be too short for the groups that roll out before it.
    assert run(write_json, "retire", config(waitSeconds=5, retireWaitSeconds=25), env_of(db, clock, peers)) == 1
    assert db.connects == [] and clock.now == 25.0
    out = capsys.readouterr().out
    assert ("FAILED: not retiring app, replicator, rewinder: in 25 s, app-2 did not report credentials 2 applied"
            " and healthy: app-2 (credentials 1, not yet 2)") in out
    assert out.count("waiting on") == 3


def test_retire_counts_only_a_whole_number_of_credentials(db, clock, write_json):
    peers = Peers({"10.20.0.31": [healthy(2)], "10.20.0.32": [{**healthy(), "credentials": "2"}]})
    assert run(write_json, "retire", config(waitSeconds=3), env_of(db, clock, peers)) == 1
    assert db.connects == []


def test_retire_disables_nothing_while_this_versions_roles_cannot_log_in(db, clock, write_json, capsys):
    db.password, db.roles = "NEW", {**db.roles, "app_v2": True}
    peers = Peers({"10.20.0.31": [healthy(2)], "10.20.0.32": [healthy(2)]})
    assert run(write_json, "retire", config(), env_of(db, clock, peers)) == 1
    assert not [s for s in statements(db) if "NOLOGIN" in s or "terminate" in s]
    assert "replicator_v2, rewinder_v2 cannot log in on the primary" in capsys.readouterr().out
    assert db.roles["app"] and db.roles["replicator"]


# ---------------------------------------------------------------- a real PostgreSQL

@pytest.fixture(scope="module")
def postgres():
    yield from run_postgres()


def real_config(pg, p, superuser_passwords, members=("127.0.0.1",), retire=True):
    """Version 2 of the roles named with the prefix p (each test its own, and its own superuser)."""
    return {
        "members": list(members), "port": pg.port, "database": "postgres", "superuser": p + "su",
        "superuserPasswords": superuser_passwords,
        "roles": [
            {"name": p + "app_v2", "password": "app two", "options": ["LOGIN"], "memberOf": [p + "app"],
             "setRole": p + "app"},
            {"name": p + "replicator_v2", "password": "replicator two", "options": ["LOGIN", "REPLICATION"]},
            {"name": p + "rewinder_v2", "password": "rewinder two", "options": ["LOGIN"], "grants": REWINDER_GRANTS},
        ],
        "retire": [p + "app", p + "replicator", p + "rewinder"] if retire else [],
        "after": {"nodes": [{"name": "app-1", "meshAddress": "10.20.0.31"}], "statusPort": 2382, "credentials": 2},
        "waitSeconds": 20,
    }


def version_1(pg, p):
    """What the cluster's bootstrap made: version 1's roles, and a superuser whose password is "old"."""
    pg.sql('CREATE ROLE "%ssu" SUPERUSER LOGIN PASSWORD %%s' % p, ("old",))
    pg.sql('CREATE ROLE "%sapp" LOGIN PASSWORD %%s' % p, ("app one",))
    pg.sql('CREATE ROLE "%sreplicator" LOGIN REPLICATION PASSWORD %%s' % p, ("replicator one",))
    pg.sql('CREATE ROLE "%srewinder" LOGIN PASSWORD %%s' % p, ("rewinder one",))
    pg.sql('CREATE SCHEMA "%sschema" AUTHORIZATION "%sapp"' % (p, p))


def login_fails(pg, user, password):
    with pytest.raises(psycopg2.OperationalError) as err:
        pg.connect(user, password).close()
    return str(err.value)


def real_env(peers=None):
    return Env(read_peer=peers or (lambda *a: healthy(2)), poll=0.1, peer_timeout=1.0)


@pytest.mark.daemons
def test_ensure_on_a_real_postgresql_through_a_member_list_whose_first_has_none(postgres, write_json, capsys):
    pg, p = postgres, "e_"
    version_1(pg, p)
    # 127.0.0.2 answers nothing on the port: libpq goes on to the next member.
    c = real_config(pg, p, ["new su", "old"], members=["127.0.0.2", "127.0.0.1"])
    assert run(write_json, "ensure", c, real_env()) == 0
    assert "connected with superuserPasswords[1]" in capsys.readouterr().out
    # The superuser's new password works and its old one no longer does.
    pg.connect(p + "su", "new su").close()
    assert "password authentication failed" in login_fails(pg, p + "su", "old")
    roles = dict((r[0], r[1:]) for r in pg.sql(
        "SELECT rolname, rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname LIKE %s", (p + "%",)))
    assert roles[p + "app_v2"] == (True, False, False)
    assert roles[p + "replicator_v2"] == (True, True, False)
    assert roles[p + "rewinder_v2"] == (True, False, False)
    # Stored hashed (scram-sha-256), as libpq made it.
    assert all(h.startswith("SCRAM-SHA-256$") for (h,) in pg.sql(
        "SELECT rolpassword FROM pg_authid WHERE rolname LIKE %s", (p + "%_v2",)))
    # The app's new role is app at login: what it creates is app's.
    conn = pg.connect(p + "app_v2", "app two")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, session_user")
        assert cur.fetchone() == (p + "app", p + "app_v2")
        cur.execute('CREATE TABLE "%sschema".orders (id int)' % p)
    conn.close()
    assert pg.sql("SELECT tableowner FROM pg_tables WHERE schemaname = %s", (p + "schema",)) == [(p + "app",)]
    # The rewinder's functions; a replication connection as the new replicator.
    for g in REWINDER_GRANTS:
        fn = g.removeprefix("EXECUTE ON FUNCTION ")
        assert pg.sql("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (p + "rewinder_v2", fn)) == [(True,)]
    conn = pg.connect(p + "rewinder_v2", "rewinder two")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) > 0 FROM pg_catalog.pg_ls_dir('.', true, false)")
        assert cur.fetchone() == (True,)
    conn.close()
    repl = psycopg2.connect(host="127.0.0.1", port=pg.port, user=p + "replicator_v2", password="replicator two",
                            dbname="postgres", replication="database", connect_timeout=3)
    repl.close()
    # The old roles still log in: the members not yet restarted use them.
    pg.connect(p + "app", "app one").close()
    # Again (a member's turn after the first's): the new superuser password first; nothing changes.
    assert run(write_json, "ensure", c, real_env()) == 0
    out = capsys.readouterr().out
    assert "no role to create" in out and "superuserPasswords[1]" not in out
    pg.connect(p + "app_v2", "app two").close()


@pytest.mark.daemons
def test_retire_on_a_real_postgresql_ends_the_old_roles_logins_and_sessions(postgres, write_json, capsys):
    pg, p = postgres, "r_"
    version_1(pg, p)
    c = real_config(pg, p, ["new su", "old"])
    assert run(write_json, "ensure", c, real_env()) == 0
    old = pg.connect(p + "app", "app one")
    # Not yet: the last group does not report the new credentials; then it does.
    reports = iter([healthy(1), healthy(1), healthy(2)])
    assert run(write_json, "retire", c, real_env(lambda *a: next(reports))) == 0
    out = capsys.readouterr().out
    assert "disabled %sapp, %sreplicator, %srewinder (no login, no password); ended 1 session " % (p, p, p) in out
    # The old roles log in no more (no password: refused before their NOLOGIN is even looked at).
    for user, password in (("app", "app one"), ("replicator", "replicator one"), ("rewinder", "rewinder one")):
        said = login_fails(pg, p + user, password)
        assert "password authentication failed" in said or "not permitted to log in" in said
    # Its open session was ended.
    with pytest.raises((psycopg2.OperationalError, psycopg2.InterfaceError)):
        with old.cursor() as cur:
            cur.execute("SELECT 1")
    old.close()
    # The new ones work, the old ones stay (NOLOGIN, no password): app still owns what it owns.
    pg.connect(p + "app_v2", "app two").close()
    assert pg.sql("SELECT rolname, rolcanlogin, rolpassword IS NULL FROM pg_authid WHERE rolname = ANY(%s)"
                  " ORDER BY 1", ([p + "app", p + "replicator"],)) == [(p + "app", False, True),
                                                                       (p + "replicator", False, True)]
    # Again: nothing left to disable, no session to end.
    assert run(write_json, "retire", c, real_env()) == 0
    assert "could already not log in; ended 0 sessions" in capsys.readouterr().out
    # A later ensure (a member's retry) never gives them back their login.
    assert run(write_json, "ensure", c, real_env()) == 0
    assert pg.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (p + "app",)) == [(False,)]

