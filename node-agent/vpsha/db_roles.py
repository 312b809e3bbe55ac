"""vps-ha database roles: a secrets version's PostgreSQL login roles, made before use and retired after.

Each vps-ha:database.secretsVersion N has login roles of its own (N=1: app, replicator, rewinder;
from 2 on: app_vN, replicator_vN, rewinder_vN); only the superuser keeps its name, and its
password changes. Apart from the superuser's, a rotation from N-1 to N changes no password a
running node still uses: the new roles work beside the old ones until every node uses them.
  - ensure: every database member runs it once in its rollout turn, before its own Patroni
    reloads with the new credentials, so the roles exist on the primary before any member uses
    them. In one transaction it gives the superuser its new password (the members after it
    connect with that one), creates each of this version's roles that does not exist yet and sets
    its options, password, memberships, role at login (app_vN is a member of app and becomes app
    when it logs in, so what the app creates stays app's whatever version made it) and grants
    (the functions pg_rewind needs). Run again, it changes nothing; it never disables or drops.
  - retire: runs beside the rollout and waits until every node of the last rollout group reports
    the new credentials applied and healthy (its rollout status server, vpsha.rollout); then it
    takes login and password from the previous version's login roles (one transaction, committed
    first, so no new session of theirs starts) and ends their sessions on the primary. The roles
    stay: app owns the app's objects, and a role that cannot log in needs no dropping.
Both find the primary with libpq's multi-host form over every member (target_session_attrs
read-write) and try the superuser's passwords in order: the new one, then the one before (the
first member's ensure still needs that). A failed authentication tries the next password; no
primary (a switchover) or a primary gone mid-transaction asks again every second; all within
waitSeconds. Passwords reach PostgreSQL hashed by libpq with the server's password_encryption
(scram-sha-256), never in clear text in its log or pg_stat_activity; this tool logs none.

CONFIG (JSON; root-only: it holds passwords): members, port, database, superuser,
superuserPasswords (1 or 2, the new first), roles ([{name, password, options (LOGIN, REPLICATION),
memberOf, setRole, grants}]), retire (names; may be empty), after ({nodes: [{name, meshAddress}],
statusPort, credentials}; retire needs it), waitSeconds, retireWaitSeconds (retire's bound: the
other groups roll out first; waitSeconds when absent).

Exit: 0 done, or nothing to retire; 1 failed, or not done within the bound; 2 usage or a bad CONFIG.

usage: vps-ha-db-roles (ensure | retire) CONFIG
"""
import json
import re
import sys
import time

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import encrypt_password

from vpsha.rollout import has_credentials, read_peer

TOOL_NAME = "vps-ha-db-roles"
# PostgreSQL's identifiers unquoted, as the program names roles (NAMEDATALEN 64: 63 bytes at most).
NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The role options a version's roles take: an allow-list, each written as it or its NO form.
OPTIONS = ("LOGIN", "REPLICATION")
# What pg_rewind needs of its role (Patroni's rewind user), composed as GRANT <grant> TO <role>:
# only these exact strings.
GRANTS = (
    "EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean)",
    "EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text)",
    "EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)
KEYS = {"members", "port", "database", "superuser", "superuserPasswords", "roles", "retire", "after", "waitSeconds",
        "retireWaitSeconds"}
ROLE_KEYS = {"name", "password", "options", "memberOf", "setRole", "grants"}
AFTER_KEYS = {"nodes", "statusPort", "credentials"}
# Errors after which asking again (on a new connection) may succeed: the connection or the server
# went away (a switchover, a restart), the member became a replica mid-transaction, a conflict.
TRANSIENT = (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.errors.ReadOnlySqlTransaction,
             psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected,
             psycopg2.errors.DuplicateObject, psycopg2.errors.UniqueViolation)


def log(msg):
    print("vps-ha-db-roles: %s" % msg, flush=True)


class BadConfig(ValueError):
    pass


class Failed(Exception):
    pass


class Env:
    """How the tool reaches PostgreSQL and the status servers, and its clock; the tests bring fakes."""

    def __init__(self, connect=psycopg2.connect, read_peer=read_peer, encrypt=None, monotonic=time.monotonic,
                 sleep=time.sleep, poll=1.0, peer_poll=5.0, peer_timeout=3.0, log_every=10.0):
        self.connect = connect
        self.read_peer = read_peer
        # (password, role, connection, algorithm) -> what ALTER ROLE ... PASSWORD takes.
        self.encrypt = encrypt or (lambda password, role, conn, algorithm: encrypt_password(
            password, role, conn, algorithm))
        self.monotonic = monotonic
        self.sleep = sleep
        self.poll = poll
        # Each ask starts a process on every node asked (a socket-activated status server): every
        # member asking every app node each second loaded small machines while the primary handed over.
        self.peer_poll = peer_poll
        self.peer_timeout = peer_timeout
        # Waiting is logged at most this often, not on every ask.
        self.log_every = log_every


class Every:
    """True on the first call, then at most once per env.log_every seconds."""

    def __init__(self, env):
        self.env, self.last = env, None

    def __call__(self):
        now = self.env.monotonic()
        if self.last is None or now - self.last >= self.env.log_every:
            self.last = now
            return True
        return False


# ---------------------------------------------------------------- the config

def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _text(v):
    return isinstance(v, str) and v != "" and "\0" not in v


def _name(v, key):
    if not isinstance(v, str) or not NAME.fullmatch(v):
        raise BadConfig("%s: %s is not a role name (%s)" % (key, json.dumps(v), NAME.pattern))
    return v


def _list(v, key):
    if not isinstance(v, list):
        raise BadConfig("%s: not a list" % key)
    return v


def _keys(d, allowed, required, key):
    if not isinstance(d, dict):
        raise BadConfig("%s: not an object" % key)
    # A key starting with "_" is a note, as in the other tools' JSON (the drills stamp "_revision").
    unknown = sorted(k for k in set(d) - allowed if not k.startswith("_"))
    if unknown:
        raise BadConfig("%s: unknown key %s" % (key, ", ".join(unknown)))
    missing = [k for k in required if k not in d]
    if missing:
        raise BadConfig("%s: missing key %s" % (key, ", ".join(missing)))


def _port(v, key):
    if not _integer(v) or not 0 < v < 65536:
        raise BadConfig("%s: %s is not a port" % (key, json.dumps(v)))
    return v


def role_of(r, key):
    _keys(r, ROLE_KEYS, ("name", "password", "options"), key)
    name = _name(r["name"], key + ".name")
    if not _text(r["password"]):
        raise BadConfig("%s.password: not a non-empty string" % key)
    options = _list(r["options"], key + ".options")
    for o in options:
        if o not in OPTIONS:
            raise BadConfig("%s.options: %s is not one of %s" % (key, json.dumps(o), ", ".join(OPTIONS)))
    member_of = [_name(g, key + ".memberOf") for g in _list(r.get("memberOf", []), key + ".memberOf")]
    set_role = r.get("setRole")
    if set_role is not None:
        _name(set_role, key + ".setRole")
        if set_role not in member_of:
            raise BadConfig("%s.setRole: %s is not in its memberOf (it could not become it)" % (key, set_role))
    grants = _list(r.get("grants", []), key + ".grants")
    for g in grants:
        if g not in GRANTS:
            raise BadConfig("%s.grants: %s is not one of %s" % (key, json.dumps(g), "; ".join(GRANTS)))
    return {"name": name, "password": r["password"], "options": options, "memberOf": member_of,
            "setRole": set_role, "grants": grants}


def after_of(a):
    _keys(a, AFTER_KEYS, sorted(AFTER_KEYS), "after")
    nodes = _list(a["nodes"], "after.nodes")
    if not nodes:
        raise BadConfig("after.nodes: empty (retire would wait on no node)")
    for i, n in enumerate(nodes):
        _keys(n, {"name", "meshAddress"}, ("name", "meshAddress"), "after.nodes[%d]" % i)
        if not _text(n["name"]) or not _text(n["meshAddress"]):
            raise BadConfig("after.nodes[%d]: name and meshAddress must be non-empty strings" % i)
    if not _integer(a["credentials"]) or a["credentials"] < 1:
        raise BadConfig("after.credentials: %s is not a version (a whole number from 1)" % json.dumps(a["credentials"]))
    return {"nodes": nodes, "statusPort": _port(a["statusPort"], "after.statusPort"), "credentials": a["credentials"]}


def validate(c, command):
    """The config, checked whole before anything is asked (BadConfig names the key)."""
    _keys(c, KEYS, sorted(KEYS - {"after", "retireWaitSeconds"}), "CONFIG")
    members = _list(c["members"], "members")
    if not members or not all(_text(m) and "," not in m and not re.search(r"\s", m) for m in members):
        raise BadConfig("members: not a non-empty list of addresses")
    superuser = _name(c["superuser"], "superuser")
    passwords = _list(c["superuserPasswords"], "superuserPasswords")
    if not 1 <= len(passwords) <= 2 or not all(_text(p) for p in passwords):
        raise BadConfig("superuserPasswords: not one or two non-empty strings (the new first)")
    if not _text(c["database"]):
        raise BadConfig("database: not a non-empty string")
    roles = [role_of(r, "roles[%d]" % i) for i, r in enumerate(_list(c["roles"], "roles"))]
    names = [r["name"] for r in roles]
    for i, n in enumerate(names):
        if n == superuser:
            raise BadConfig("roles[%d].name: %s is the superuser" % (i, n))
        if n in names[:i]:
            raise BadConfig("roles[%d].name: %s is named twice" % (i, n))
    retire = [_name(n, "retire") for n in _list(c["retire"], "retire")]
    for n in retire:
        if n == superuser or n in names:
            what = "the superuser" if n == superuser else "one of this version's roles"
            raise BadConfig("retire: %s is %s" % (n, what))
    after = None
    if c.get("after") is not None:
        after = after_of(c["after"])
    elif command == "retire" and retire:
        raise BadConfig("after: missing (retire waits on its nodes)")
    for key in ("waitSeconds", "retireWaitSeconds"):
        if key in c and (not _number(c[key]) or c[key] <= 0):
            raise BadConfig("%s: %s is not a positive number" % (key, json.dumps(c[key])))
    return {"members": members, "port": _port(c["port"], "port"), "database": c["database"], "superuser": superuser,
            "superuserPasswords": passwords, "roles": roles, "retire": list(dict.fromkeys(retire)), "after": after,
            "waitSeconds": c["waitSeconds"], "retireWaitSeconds": c.get("retireWaitSeconds", c["waitSeconds"])}


def load(path, command):
    try:
        with open(path) as f:
            c = json.load(f)
    except OSError as err:
        raise BadConfig("cannot read it: %s" % (err.strerror or err)) from err
    except ValueError as err:
        raise BadConfig("not JSON: %s" % err) from err
    return validate(c, command)


# ---------------------------------------------------------------- the primary

def one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


def auth_failed(err):
    """libpq's message for a password the server refused (with several hosts, the hosts' messages in turn)."""
    return "authentication failed" in str(err)


def connect_args(cfg, password):
    # libpq takes one port for all hosts or one for each; this gives one for each.
    return {"host": ",".join(cfg["members"]), "port": ",".join([str(cfg["port"])] * len(cfg["members"])),
            "dbname": cfg["database"], "user": cfg["superuser"], "password": password, "connect_timeout": 3,
            "target_session_attrs": "read-write", "application_name": TOOL_NAME}


def primary(cfg, env, deadline, every):
    """
    A connection to the read-write member as the superuser, with the first of its passwords it
    takes; asks again until the deadline (Failed then) while no member is read-write, and while
    every password is refused (a replica that has not replayed the new password yet answers for
    the primary in libpq's order: libpq tries no other host after a refused password).
    """
    while True:
        why = None
        for i, password in enumerate(cfg["superuserPasswords"]):
            try:
                conn = env.connect(**connect_args(cfg, password))
            except psycopg2.OperationalError as err:
                why = one_line(err)
                if auth_failed(err):
                    continue
                break
            except psycopg2.Error as err:
                raise Failed("cannot connect: %s" % one_line(err)) from err
            if i:
                log("superuserPasswords[0] was refused; connected with superuserPasswords[%d]" % i)
            return conn
        else:
            why = "every superuser password was refused (%s)" % why
        if env.monotonic() >= deadline:
            raise Failed("no read-write member among %s took a connection in %s s: %s"
                         % (",".join(cfg["members"]), cfg["waitSeconds"], why))
        if every():
            log("asking again: %s" % why)
        env.sleep(env.poll)


def host_of(conn):
    try:
        return conn.info.host
    except (AttributeError, psycopg2.Error):
        return "?"


def on_primary(cfg, env, deadline, act):
    """act(connection) on the primary; on an error that may pass, again on a new connection, until the deadline."""
    every = Every(env)
    while True:
        conn = primary(cfg, env, deadline, every)
        try:
            return act(conn)
        except TRANSIENT as err:
            why = one_line(err)
        except psycopg2.Error as err:
            raise Failed("on the primary %s: %s" % (host_of(conn), one_line(err))) from err
        finally:
            try:
                conn.close()
            except psycopg2.Error:
                pass
        if env.monotonic() >= deadline:
            raise Failed("not done on the primary in %s s: %s" % (cfg["waitSeconds"], why))
        if every():
            log("the primary did not finish (%s); asking again" % why)
        env.sleep(env.poll)


# ---------------------------------------------------------------- ensure

def ensure_roles(cfg, env, conn):
    """One transaction: the superuser's new password, then each role as this version wants it. The roles created."""
    su = cfg["superuser"]
    created = []
    with conn.cursor() as cur:
        cur.execute("SHOW password_encryption")
        algorithm = cur.fetchone()[0]
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(su)),
                    (env.encrypt(cfg["superuserPasswords"][0], su, conn, algorithm),))
        for role in cfg["roles"]:
            name = sql.Identifier(role["name"])
            cur.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role["name"],))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {}").format(name))
                created.append(role["name"])
            options = " ".join(o if o in role["options"] else "NO" + o for o in OPTIONS)
            cur.execute(sql.SQL("ALTER ROLE {} WITH {} PASSWORD %s").format(name, sql.SQL(options)),
                        (env.encrypt(role["password"], role["name"], conn, algorithm),))
            # Granted again, a membership it has is a NOTICE, not an error (PostgreSQL 15 to 17).
            for group in role["memberOf"]:
                cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), name))
            if role["setRole"] is not None:
                cur.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(name, sql.Literal(role["setRole"])))
            for grant in role["grants"]:
                cur.execute(sql.SQL("GRANT {} TO {}").format(sql.SQL(grant), name))
    conn.commit()
    return created


def ensure(cfg, env):
    deadline = env.monotonic() + cfg["waitSeconds"]
    host = []

    def act(conn):
        host.append(host_of(conn))
        return ensure_roles(cfg, env, conn)

    created = on_primary(cfg, env, deadline, act)
    names = [r["name"] for r in cfg["roles"]]
    log("on the primary %s: the superuser %s has its new password; %s; %s as this version wants them"
        % (host[-1], cfg["superuser"], "created %s" % ", ".join(created) if created else "no role to create",
           ", ".join(names) or "no role"))


# ---------------------------------------------------------------- retire

def not_ready(after, env):
    """[(node, why)] of the nodes of `after` that do not yet report its credentials applied and healthy."""
    pending = []
    for node in after["nodes"]:
        st = env.read_peer(node["meshAddress"], after["statusPort"], env.peer_timeout)
        if st is None:
            pending.append((node["name"], "unreachable"))
            continue
        if has_credentials(st, after["credentials"]):
            continue
        credentials = st.get("credentials")
        if not _integer(credentials) or credentials < after["credentials"]:
            why = "credentials %s, not yet %d" % (json.dumps(credentials), after["credentials"])
            pending.append((node["name"], why))
        else:
            pending.append((node["name"], "rollout %s" % st.get("rolloutState")))
    return pending


def wait_for_after(cfg, env, deadline):
    after, every = cfg["after"], Every(env)
    while True:
        pending = not_ready(after, env)
        if not pending:
            log("the last rollout group (%s) reports credentials %d applied and healthy"
                % (", ".join(n["name"] for n in after["nodes"]), after["credentials"]))
            return
        said = "; ".join("%s (%s)" % p for p in pending)
        if env.monotonic() >= deadline:
            raise Failed("not retiring %s: in %s s, %s did not report credentials %d applied and healthy: %s"
                         % (", ".join(cfg["retire"]), cfg["retireWaitSeconds"], ", ".join(n for n, _ in pending),
                            after["credentials"], said))
        if every():
            log("waiting on %s" % said)
        env.sleep(env.peer_poll)


def retire_roles(cfg, conn):
    """The retired roles' login and password gone (committed), then their sessions ended: (disabled, ended)."""
    names = [r["name"] for r in cfg["roles"]]
    with conn.cursor() as cur:
        # Never the old ones' login while this version's roles cannot log in: ensure has not run.
        cur.execute("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s) AND rolcanlogin", (names,))
        can = {r[0] for r in cur.fetchall()}
        missing = [n for n in names if n not in can]
        if missing:
            raise Failed("%s cannot log in on the primary %s (did every member's ensure run?); %s keep their login"
                         % (", ".join(missing), host_of(conn), ", ".join(cfg["retire"])))
        cur.execute("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s) AND rolcanlogin ORDER BY rolname",
                    (cfg["retire"],))
        disabled = [r[0] for r in cur.fetchall()]
        for name in disabled:
            cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(name)))
    # Committed first: from here on no new session of theirs starts, so none outlives what follows.
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
                    " WHERE usename = ANY(%s) AND pid <> pg_catalog.pg_backend_pid()", (cfg["retire"],))
        ended = sum(1 for r in cur.fetchall() if r[0])
    conn.commit()
    return disabled, ended


def retire(cfg, env):
    if not cfg["retire"]:
        log("no login role to retire")
        return
    deadline = env.monotonic() + cfg["retireWaitSeconds"]
    wait_for_after(cfg, env, deadline)
    host = []

    def act(conn):
        host.append(host_of(conn))
        return retire_roles(cfg, conn)

    disabled, ended = on_primary(cfg, env, deadline, act)
    log("on the primary %s: %s; ended %d session%s of %s"
        % (host[-1], "disabled %s (no login, no password)" % ", ".join(disabled) if disabled
           else "%s could already not log in" % ", ".join(cfg["retire"]),
           ended, "" if ended == 1 else "s", ", ".join(cfg["retire"])))


def main(argv, env=None):
    usage = __doc__.strip().splitlines()[-1]
    if len(argv) != 2 or argv[0] not in ("ensure", "retire"):
        print(usage, file=sys.stderr)
        return 2
    command, path = argv
    try:
        cfg = load(path, command)
    except BadConfig as err:
        log("%s: %s" % (path, err))
        return 2
    try:
        (ensure if command == "ensure" else retire)(cfg, env or Env())
    except Failed as err:
        log("FAILED: %s" % err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
