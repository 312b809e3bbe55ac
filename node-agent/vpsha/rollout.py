"""vps-ha rollout gate: a later generation of a node's desired state is applied one node at a time.

desired.py calls apply_gated for a generation after the first whose document has a `rollout` spec
(components/rollout.ts makes it). Every node of the group (the database members and witness;
the HAProxy nodes; the app nodes) gets the same rollout id in one published change. A node
applies when it is its turn:
  - every node before it in the group's order reports this id applied and healthy (read from
    their status servers on the mesh); in the database group the Patroni primary goes last, so a
    rollout hands over at most once;
  - no node of the group reports this id halted (then this node keeps its old state and names
    the node that halted it) or is applying it;
  - in the database group, this node holds a lock all members agree on (an etcd v3 key under a
    lease, taken with a transaction through the local member's JSON gateway, over TLS with this
    node's etcd certificate: the spec's etcdTls names the files), so two members never change at
    once even when they disagree on who the primary is.
Then: hand over first when this node is the Patroni primary and a handover unit restarts (the
planned switchover tool), apply; on a database member whose change restarted the dynamic
configuration's tool, restart PostgreSQL through Patroni when it reports pending_restart (a
parameter such as max_connections; the primary hands over first, and goes last); then wait
(bounded) until every health command exits 0. Not healthy in time (or a restart failed): roll
back, mark this id halted with the reason, and stay halted for this id; a new id (a fixed
published state) starts again.

This node's rollout state lives in STATE (kept across reboots); the status server (a socket
unit, this module with --serve-status) answers each connection on the mesh with it as JSON, the
live Patroni role, and the desired-state agent's generations (applied, and last published) and
last error: the HAProxy nodes' rollout view (rollout_view.py) reads them for `pulumi up`.

usage: vps-ha-rollout --serve-status | health (patroni URL | etcd URL | tcp HOST PORT | app HOST PATH [GLOB])
"""
import base64
import glob
import json
import os
import re
import socket
import subprocess
import sys
import time

from vpsha import etcd_tls
from vpsha.rest import request

# desired.py keeps it in its state directory (components/render/desired-agent.ts: DESIRED_STATE_DIR).
STATE = "/var/lib/vps-ha/desired/rollout.json"
SWITCHOVER = ["/usr/local/sbin/vps-ha-switchover"]
SWITCHOVER_CONFIG = "/etc/vps-ha/switchover.json"
# desired.py's status file (components/render/desired-agent.ts: DESIRED_STATUS).
DESIRED_STATUS = "/run/vps-ha/desired-status.json"
# The directory agent's env file per web instance (components/render/app.ts releaseEnvFile).
APP_RELEASES = "/etc/vps-ha/app/release-*.env"
ETCD_PORT = 2379
ETCD = "https://127.0.0.1:%d" % ETCD_PORT
LOCK_KEY = "/vps-ha/rollout/db"
PRIMARY_ROLES = ("primary", "master", "standby_leader")
# The status JSON is small; a peer that sends more is not one of ours.
MAX_STATUS_BYTES = 65536


def log(msg):
    print("vps-ha-rollout: %s" % msg, flush=True)


class Env:
    """Where the gate reads and writes, and its bounds; the tests point it at their own."""

    def __init__(self, state=STATE, etcd=ETCD, switchover=SWITCHOVER, switchover_config=SWITCHOVER_CONFIG,
                 desired_status=DESIRED_STATUS,
                 peer_timeout=3.0, lock_wait=15.0, max_wait=3600.0, handover_timeout=180.0, restart_timeout=180.0,
                 poll=1.0, now=time.time, monotonic=time.monotonic, sleep=time.sleep):
        self.state = state
        self.etcd = etcd
        self.switchover = switchover
        self.switchover_config = switchover_config
        self.desired_status = desired_status
        self.peer_timeout = peer_timeout
        self.lock_wait = lock_wait
        # A node waiting on its turn longer than this halts (a peer that never reports): bounded, and said.
        self.max_wait = max_wait
        self.handover_timeout = handover_timeout
        # Patroni's POST /restart answers once PostgreSQL is up again (or its restart failed).
        self.restart_timeout = restart_timeout
        self.poll = poll
        self.now = now
        self.monotonic = monotonic
        self.sleep = sleep


# ---------------------------------------------------------------- this node's state

def load_state(env):
    try:
        with open(env.state) as f:
            state = json.load(f)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(env, state, status=None):
    """Writes the state (atomically, readable: it holds no secret) and mirrors it into desired.py's status."""
    state = {**state, "at": env.now()}
    os.makedirs(os.path.dirname(env.state) or ".", exist_ok=True)
    tmp = env.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, env.state)
    if status is not None:
        status.update({
            "rolloutId": state.get("rolloutId"), "rolloutState": state.get("rolloutState"),
            "waitingOn": state.get("waitingOn"), "haltedReason": state.get("haltedReason"),
            "haltedBy": state.get("haltedBy"), "patroniRole": state.get("patroniRole"),
            "credentials": state.get("credentials"),
        })
    return state


def patroni_rest(env):
    """(url, auth) of this member's Patroni REST API, from the switchover tool's config; None without one."""
    try:
        with open(env.switchover_config) as f:
            c = json.load(f)
        url = c["patroniUrl"].rstrip("/")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    user, password = c.get("restUser"), c.get("restPassword")
    return url, (user, password) if isinstance(user, str) and isinstance(password, str) else None


def patroni_member(env):
    """This member's GET /patroni as a dict; None on a node without Patroni or when it does not answer."""
    rest = patroni_rest(env)
    if rest is None:
        return None
    code, body = request(rest[0] + "/patroni", timeout=3)
    try:
        member = json.loads(body) if code == 200 else None
    except ValueError:
        return None
    return member if isinstance(member, dict) else None


def patroni_role(env):
    """This member's Patroni role from its REST API; None on a node without Patroni or when it does not answer."""
    return (patroni_member(env) or {}).get("role")


# ---------------------------------------------------------------- peers

def read_peer(address, port, timeout):
    """A peer's status JSON from its status server; None when it does not answer with one."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            deadline = time.monotonic() + timeout
            while len(data) <= MAX_STATUS_BYTES and time.monotonic() < deadline:
                part = s.recv(4096)
                if not part:
                    break
                data += part
        status = json.loads(data.decode())
        return status if isinstance(status, dict) else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def effective_order(spec, statuses):
    """The spec's order with the nodes that report being the Patroni primary moved last (stable)."""
    names = [o["name"] for o in spec["order"]]
    if spec.get("group") != "db":
        return names
    primary = [n for n in names if (statuses.get(n) or {}).get("patroniRole") in PRIMARY_ROLES]
    return [n for n in names if n not in primary] + primary


def turn(spec, node, statuses):
    """(None, None) when it is this node's turn, else (the node it waits on or that halted it, why)."""
    rid = spec["id"]
    for name, st in statuses.items():
        if name != node and st and st.get("rolloutId") == rid and st.get("rolloutState") == "halted":
            return name, "halted"
    for name, st in statuses.items():
        if name != node and st and st.get("rolloutId") == rid and st.get("rolloutState") == "applying":
            return name, "applying"
    for name in effective_order(spec, statuses):
        if name == node:
            return None, None
        st = statuses.get(name)
        if st is None:
            return name, "unreachable"
        if st.get("rolloutId") != rid or st.get("rolloutState") != "healthy":
            return name, "not yet healthy"
    return None, None


# ---------------------------------------------------------------- the database group's lock (etcd v3)

def _b64(s):
    return base64.b64encode(s.encode()).decode()


def etcd_call(env, path, body, endpoints=None, tls=None):
    """POST to the first of `endpoints` (default: the local member) that answers; any member of the cluster will do.
    tls: the SSL context with this node's etcd certificate (etcd_tls.context)."""
    errors = []
    for url in endpoints or [env.etcd]:
        code, text = request(url.rstrip("/") + path, "POST", body, timeout=5, context=tls)
        if code is None:
            errors.append("%s: %s" % (url, text))
            continue
        if code != 200:
            raise OSError("etcd %s at %s: %s %s" % (path, url, code, text[:200]))
        return json.loads(text)
    raise OSError("no etcd member answered (%s)" % "; ".join(errors))


class Lock:
    """
    An etcd key held under a lease: taken only when nobody holds it; it lapses with the lease if we
    die. `endpoints`: where to ask, the local member first (a member that is no etcd voter has none
    and asks the others). `tls`: the SSL context etcd's client authentication wants.
    """

    def __init__(self, env, node, ttl, endpoints=None, tls=None):
        self.env, self.node, self.ttl, self.lease = env, node, int(ttl), None
        self.endpoints = endpoints or [env.etcd]
        self.tls = tls

    def call(self, path, body):
        return etcd_call(self.env, path, body, self.endpoints, self.tls)

    def holder(self):
        got = self.call("/v3/kv/range", {"key": _b64(LOCK_KEY)})
        kvs = got.get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def acquire(self):
        """True once held; False when another node held it for all of lock_wait (its name in self.held_by)."""
        self.held_by = None
        deadline = self.env.monotonic() + self.env.lock_wait
        self.lease = self.call("/v3/lease/grant", {"TTL": self.ttl})["ID"]
        while True:
            got = self.call("/v3/kv/txn", {
                "compare": [{"key": _b64(LOCK_KEY), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
                "success": [{"requestPut": {"key": _b64(LOCK_KEY), "value": _b64(self.node), "lease": self.lease}}],
                "failure": [{"requestRange": {"key": _b64(LOCK_KEY)}}],
            })
            if got.get("succeeded"):
                return True
            kvs = ((got.get("responses") or [{}])[0].get("response_range") or {}).get("kvs") or []
            self.held_by = base64.b64decode(kvs[0]["value"]).decode() if kvs else None
            if self.held_by == self.node:
                # Ours from a round that died before releasing: take it over under the new lease.
                self.call("/v3/kv/deleterange", {"key": _b64(LOCK_KEY)})
                continue
            if self.env.monotonic() >= deadline:
                self.release()
                return False
            self.env.sleep(self.env.poll)

    def release(self):
        if self.lease is None:
            return
        # The change may have just restarted the local etcd: try again for a while before leaving it to lapse.
        deadline = self.env.monotonic() + self.env.lock_wait
        while True:
            try:
                # Revoking the lease deletes the key it holds.
                self.call("/v3/lease/revoke", {"ID": self.lease})
                break
            except (OSError, ValueError) as err:
                if self.env.monotonic() >= deadline:
                    log("releasing the rollout lock: %s (it lapses in %d s)" % (err, self.ttl))
                    break
                self.env.sleep(self.env.poll)
        self.lease = None


# ---------------------------------------------------------------- health

def run_health(env, commands, timeout):
    """None when every command exits 0 within `timeout` seconds (retried), else the last failure."""
    deadline = env.monotonic() + timeout
    failure = "no health check ran"
    while True:
        failure = None
        for argv in commands:
            left = max(1.0, min(10.0, deadline - env.monotonic()))
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=left)
                if done.returncode != 0:
                    failure = "%s exited %d: %s" % (" ".join(argv), done.returncode,
                                                    (done.stdout + done.stderr).strip()[-200:])
            except (OSError, subprocess.SubprocessError) as err:
                failure = "%s: %s" % (" ".join(argv), err)
            if failure:
                break
        if failure is None:
            return None
        if env.monotonic() >= deadline:
            return failure
        env.sleep(env.poll)


# ---------------------------------------------------------------- the gate

def hand_over(env):
    """The planned switchover away from this member (bounded): None once done, else why it failed."""
    try:
        done = subprocess.run(env.switchover, capture_output=True, text=True, timeout=env.handover_timeout)
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    if done.returncode == 0:
        return None
    return (done.stdout + done.stderr).strip()[-300:] or "exit %d" % done.returncode


def wait_running(env, timeout):
    """This member's /patroni once its state is running, within `timeout` seconds; None if it never is."""
    deadline = env.monotonic() + timeout
    while True:
        member = patroni_member(env)
        if member and member.get("state") == "running":
            return member
        if env.monotonic() >= deadline:
            return None
        env.sleep(env.poll)


def restart_if_pending(env, spec, units):
    """
    After a change that restarted one of the spec's pendingRestart units (the cluster's dynamic
    configuration may have changed a parameter PostgreSQL takes only at a restart): when Patroni
    reports pending_restart here within settleSeconds, restarts this member's PostgreSQL through
    Patroni (POST /restart restarts PostgreSQL alone), the primary handing over first. None when
    done or not needed, else why it failed.
    """
    pending = spec.get("pendingRestart")
    if not pending or (units is not None and not set(pending["units"]) & set(units)):
        return None
    rest = patroni_rest(env)
    if rest is None:
        return "no Patroni REST API configured here (%s)" % env.switchover_config
    deadline = env.monotonic() + pending["settleSeconds"]
    while True:
        # Patroni notices a changed dynamic configuration at its next loop: look for a few of them.
        member = patroni_member(env)
        if member and member.get("pending_restart"):
            break
        if env.monotonic() >= deadline:
            return None
        env.sleep(env.poll)
    if member.get("role") in PRIMARY_ROLES:
        log("PostgreSQL must restart here (pending_restart) and this member is the primary: handing over first")
        failed = hand_over(env)
        if failed:
            return "the handover before restarting PostgreSQL failed: %s" % failed
        # Demoted, PostgreSQL starts again as a replica: it may have taken the new settings already.
        member = wait_running(env, env.handover_timeout)
        if member is None:
            return "Patroni was not running again within %d s of the handover" % env.handover_timeout
        if not member.get("pending_restart"):
            return None
    reason = member.get("pending_restart_reason") or "a setting"
    log("restarting PostgreSQL: Patroni reports pending_restart (%s)" % reason)
    code, body = request(rest[0] + "/restart", "POST", {"restart_pending": True}, rest[1], timeout=env.restart_timeout)
    if code != 200:
        # Patroni refuses a restart_pending restart once nothing is pending: that is done, not failed.
        member = patroni_member(env)
        if member and member.get("state") == "running" and not member.get("pending_restart"):
            return None
        return "Patroni's restart answered %s %s" % (code, (body or "")[:200])
    return None


def spec_problem(spec, node):
    """What is wrong with a rollout spec (the program makes them; a hand-made one may not fit), or None."""
    try:
        if not isinstance(spec.get("id"), str) or not spec["id"]:
            return "id is %r; expected the change's id" % spec.get("id")
        names = [o["name"] for o in spec["order"]]
        if node not in names:
            return "order %r does not name this node %s" % (names, node)
        if any(not isinstance(o["meshAddress"], str) for o in spec["order"]):
            return "order has an entry without a mesh address"
        if not isinstance(spec["statusPort"], int) or not 0 < spec["statusPort"] < 65536:
            return "statusPort is %r; expected a TCP port" % spec["statusPort"]
        if not all(isinstance(c, list) and c and all(isinstance(a, str) for a in c) for c in spec["health"]):
            return "health is not a list of commands (lists of strings)"
        if not isinstance(spec["healthTimeoutSeconds"], (int, float)) or spec["healthTimeoutSeconds"] <= 0:
            return "healthTimeoutSeconds is %r; expected a positive number" % spec["healthTimeoutSeconds"]
        if not isinstance(spec.get("handoverUnits", []), list):
            return "handoverUnits is not a list"
        pending = spec.get("pendingRestart")
        if pending is not None and (not isinstance(pending.get("units"), list)
                                    or not isinstance(pending.get("settleSeconds"), (int, float))
                                    or pending["settleSeconds"] <= 0):
            return "pendingRestart is not {units: a list, settleSeconds: a positive number}"
        if not _count(spec.get("credentials", 1)):
            return ("credentials is %r; expected the stack's secrets version (a whole number from 1)"
                    % spec.get("credentials"))
        after = spec.get("after")
        if after is not None and (not isinstance(after.get("nodes"), list) or not after["nodes"]
                                  or not all(isinstance(o.get("name"), str) and isinstance(o.get("meshAddress"), str)
                                             for o in after["nodes"])
                                  or not _count(after.get("credentials"))):
            return "after is not {nodes: [{name, meshAddress}], credentials: a whole number from 1}"
        files = spec.get("etcdTls")
        if files is not None and not all(isinstance(files.get(k), str) and files[k] for k in ("cacert", "cert", "key")):
            return "etcdTls is %r; expected {cacert, cert, key}: file paths" % (files,)
    except (KeyError, TypeError, AttributeError) as err:
        return "missing or malformed %s" % err
    return None


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def has_credentials(st, credentials):
    """Whether a node's status says it applied a rollout with these secrets (or later ones) and is healthy."""
    return bool(st) and st.get("rolloutState") == "healthy" and _count(st.get("credentials")) \
        and st["credentials"] >= credentials


def waiting_after(spec, env):
    """(node, why) of the first node of the group before (spec's `after`) without the new secrets, or (None, None)."""
    after = spec.get("after")
    if not after:
        return None, None
    for o in after["nodes"]:
        st = read_peer(o["meshAddress"], spec["statusPort"], env.peer_timeout)
        if st is None:
            return o["name"], "unreachable"
        if not has_credentials(st, after["credentials"]):
            return o["name"], "has not applied secrets version %d" % after["credentials"]
    return None, None


def record_applied(spec, node, status, env=None):
    """A document with this rollout applied without a change to gate (a first one, or nothing changed)."""
    env = env or Env()
    save_state(env, {"rolloutId": spec["id"], "rolloutState": "healthy", "node": node,
                     "credentials": spec.get("credentials", 1),
                     "patroniRole": patroni_role(env) if spec.get("group") == "db" else None}, status)


def apply_gated(spec, node, apply, rollback, status, units=None, env=None):
    """
    Applies the change when it is this node's turn and keeps it when healthy: True. False while
    waiting or halted (desired.py keeps the old generation and asks again next round). `units`:
    the units apply() restarts (None: any may), for the handover decision.
    """
    env = env or Env()
    problem = spec_problem(spec, node)
    if problem:
        save_state(env, {"rolloutId": spec.get("id") if isinstance(spec, dict) else None, "node": node,
                         "rolloutState": "halted", "haltedReason": "the rollout spec: %s" % problem}, status)
        log("the rollout spec: %s; keeping the old state" % problem)
        return False
    rid = spec["id"]
    group = spec.get("group")
    old = load_state(env)
    base = {"rolloutId": rid, "node": node, "group": group, "credentials": spec.get("credentials", 1)}
    role = patroni_role(env) if group == "db" else None
    base["patroniRole"] = role
    if old.get("rolloutId") == rid and old.get("rolloutState") == "halted" and not old.get("haltedBy"):
        save_state(env, {**old, "patroniRole": role}, status)
        return False
    if old.get("rolloutId") == rid and old.get("rolloutState") == "healthy":
        save_state(env, {**old, "patroniRole": role}, status)
        return True
    since = old.get("waitingSince") if old.get("rolloutId") == rid and old.get("waitingSince") else env.now()

    statuses = {node: {**base, "rolloutState": "waiting"}}
    for o in spec["order"]:
        if o["name"] != node:
            statuses[o["name"]] = read_peer(o["meshAddress"], spec["statusPort"], env.peer_timeout)
    other, why = turn(spec, node, statuses)
    if other is None:
        # A rotation's groups go in turn: this one presents secrets the group before must accept first.
        other, why = waiting_after(spec, env)
    if why == "halted":
        st = statuses[other]
        reason = "rollout halted at %s: %s" % (st.get("haltedBy") or other, st.get("haltedReason"))
        save_state(env, {**base, "rolloutState": "halted", "haltedBy": st.get("haltedBy") or other,
                         "haltedReason": reason, "waitingOn": None}, status)
        log(reason + "; keeping the old state")
        return False
    if other:
        if env.now() - since > env.max_wait:
            reason = "waited more than %d s on %s (%s)" % (env.max_wait, other, why)
            save_state(env, {**base, "rolloutState": "halted", "haltedReason": reason}, status)
            log(reason + "; halted")
            return False
        save_state(env, {**base, "rolloutState": "waiting", "waitingOn": other, "waitingSince": since,
                         "waitReason": why}, status)
        log("waiting on %s (%s)" % (other, why))
        return False

    lock = None
    if group == "db":
        scheme = env.etcd.split("://")[0]
        members = ["%s://%s:%d" % (scheme, o["meshAddress"], ETCD_PORT) for o in spec["order"] if o["name"] != node]
        # Held through the longest change: a handover, a PostgreSQL restart where Patroni asks, the health wait.
        settle = (spec.get("pendingRestart") or {}).get("settleSeconds", 0)
        ttl = spec["healthTimeoutSeconds"] + env.handover_timeout + settle + env.restart_timeout + 120
        files = spec.get("etcdTls")
        try:
            try:
                tls = etcd_tls.context((files["cacert"], files["cert"], files["key"])) if files else None
            except (OSError, ValueError) as err:
                raise OSError("etcd's TLS files %s: %s" % (files, err)) from err
            lock = Lock(env, node, ttl, [env.etcd] + members, tls)
            if not lock.acquire():
                save_state(env, {**base, "rolloutState": "waiting", "waitingOn": lock.held_by, "waitingSince": since,
                                 "waitReason": "holds the rollout lock"}, status)
                log("waiting on %s (holds the rollout lock)" % lock.held_by)
                return False
        except (OSError, ValueError, KeyError, TypeError) as err:
            save_state(env, {**base, "rolloutState": "waiting", "waitingOn": "etcd", "waitingSince": since,
                             "waitReason": "the rollout lock: %s" % err}, status)
            log("cannot take the rollout lock: %s" % err)
            return False
    try:
        save_state(env, {**base, "rolloutState": "applying"}, status)
        handover = set(spec.get("handoverUnits") or [])
        if role in PRIMARY_ROLES and handover and (units is None or handover & set(units)):
            log("this member is the primary and %s restarts: handing over first" % ", ".join(sorted(handover)))
            failed = hand_over(env)
            if failed:
                return halt(env, base, status, "the handover before the change failed: %s" % failed)
        try:
            apply()
        except Exception as err:  # noqa: BLE001 - whatever apply() raised, the old state goes back
            rollback()
            return halt(env, base, status, "applying failed: %s" % err)
        failure = restart_if_pending(env, spec, units)
        if failure:
            rollback()
            return halt(env, base, status, "restarting PostgreSQL after the change: %s" % failure)
        failure = run_health(env, spec.get("health") or [], spec["healthTimeoutSeconds"])
        if failure:
            rollback()
            return halt(env, base, status, "not healthy within %s s after the change: %s"
                        % (spec["healthTimeoutSeconds"], failure))
        save_state(env, {**base, "rolloutState": "healthy"}, status)
        log("rollout %s applied and healthy" % rid[:12])
        return True
    finally:
        if lock:
            lock.release()


def halt(env, base, status, reason):
    save_state(env, {**base, "rolloutState": "halted", "haltedReason": reason}, status)
    log("halted: %s (rolled back)" % reason)
    return False


# ---------------------------------------------------------------- command line

def desired_generations(env):
    """{generation, published, desiredError} from the desired-state agent's status (None when unknown)."""
    try:
        with open(env.desired_status) as f:
            status = json.load(f)
    except (OSError, ValueError):
        status = None
    if not isinstance(status, dict):
        status = {}
    number = lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None  # noqa: E731
    return {"generation": number(status.get("generation")), "published": number(status.get("published")),
            "desiredError": status.get("lastError") if isinstance(status.get("lastError"), str) else None}


def serve_status(env, out):
    """One status answer (the socket unit's stdout): the state file, the live Patroni role, the generations."""
    state = load_state(env)
    state["patroniRole"] = patroni_role(env)
    state.update(desired_generations(env))
    out.write(json.dumps(state) + "\n")
    out.flush()


def health(kind, args):
    """One health check for the health commands components/rollout.ts puts in the spec; 0 healthy."""
    if kind == "patroni" and len(args) == 1:
        code, body = request(args[0].rstrip("/") + "/patroni", timeout=5)
        try:
            p = json.loads(body) if code == 200 else {}
        except ValueError:
            p = {}
        ok = p.get("state") == "running" and (
            p.get("role") in PRIMARY_ROLES or p.get("replication_state") == "streaming")
        return 0 if ok else "patroni: %s %s" % (code, body[:200])
    if kind == "etcd" and len(args) == 1:
        code, body = request(args[0].rstrip("/") + "/health", timeout=5)
        return 0 if code == 200 and '"true"' in body else "etcd: %s %s" % (code, body[:200])
    if kind == "tcp" and len(args) == 2 and args[1].isdigit():
        try:
            socket.create_connection((args[0], int(args[1])), timeout=5).close()
            return 0
        except OSError as err:
            return "%s:%s: %s" % (args[0], args[1], err)
    if kind == "app" and len(args) in (2, 3):
        # Every web instance the directory agent runs (one per live image: its release-<port>.env) answers.
        ports = sorted(int(m.group(1)) for m in (re.fullmatch(r".*release-([0-9]+)\.env", p)
                                                 for p in glob.glob(args[2] if len(args) == 3 else APP_RELEASES)) if m)
        for port in ports:
            code, body = request("http://%s:%d%s" % (args[0], port, args[1]), timeout=5)
            if code is None or not 200 <= code < 300:
                return "app on port %d: %s %s" % (port, code, body[:200])
        return 0
    return None


def main(argv):
    usage = __doc__.strip().splitlines()[-1]
    if argv == ["--serve-status"]:
        serve_status(Env(), sys.stdout)
        return 0
    if len(argv) >= 2 and argv[0] == "health":
        result = health(argv[1], argv[2:])
        if result is None:
            print(usage, file=sys.stderr)
            return 2
        if result:
            print(result, file=sys.stderr)
            return 1
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
