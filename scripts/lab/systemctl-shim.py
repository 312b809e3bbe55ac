#!/usr/bin/python3
"""systemctl (and journalctl) for a vps-ha lab node, where no systemd runs.

The lab installs this file in each node's overlay as /usr/local/sbin/systemctl (and over
/usr/bin/systemctl when a package shipped the real one), so the nodes' cloud-configs and
maintainer scripts run unchanged. It reads the same unit files systemd would and runs each
service under a small detached supervisor process.

Why these choices:
- One supervisor per running service (a python process that is its own setsid leader) starts the
  ExecStartPre/ExecStart/ExecStartPost commands, waits for readiness (Type=notify through a
  real NOTIFY_SOCKET, Type=forking through PIDFile), restarts per Restart=/RestartSec= within
  StartLimitBurst/StartLimitIntervalSec and an absolute cap, and on SIGTERM runs ExecStop,
  signals the unit's processes and runs ExecStopPost.
- A unit's processes (systemd's cgroup) are found by the LAB_SYSTEMD_UNIT variable every
  command of the unit inherits, plus the setsid group (sid) of each command it started: that follows
  daemons that fork away (wireguard-go does).
- State lives in /run/lab-systemctl/<unit>.json (a tmpfs the lab mounts, cleared on a lab
  reboot of the node); the lab reads the PIDs there. Logs go to /var/log/lab/<unit>.log,
  which the lab binds to the node's state directory on the host.
- Dependencies (Requires=, After=, Wants=) are not followed: a start starts the named units
  only, in the order given. Timers are recorded (enabled/active) but never fire.
Every wait here is bounded; "infinity" timeouts are capped at INFINITY_CAP seconds.
"""
import collections
import glob
import json
import os
import pwd
import grp
import resource
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid

STATE_DIR = "/run/lab-systemctl"
NOTIFY_DIR = STATE_DIR + "/notify"
ENABLED_FILE = "/var/lib/lab-systemctl/enabled.json"
LOG_DIR = "/var/log/lab"
UNIT_DIRS = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
]
TMPFILES_DIRS = ["/usr/lib/tmpfiles.d", "/lib/tmpfiles.d", "/run/tmpfiles.d", "/etc/tmpfiles.d"]
SUFFIXES = ("service", "timer", "target", "socket", "path", "mount", "slice", "scope", "device", "swap", "automount")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INFINITY_CAP = 300.0  # seconds: the lab never waits forever
MAX_RESTARTS = 100  # absolute cap on automatic restarts of one supervisor
CLEAN_SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE}
TAG = "LAB_SYSTEMD_UNIT"
ACTIVE_STATES = ("active", "activating", "deactivating", "reloading")


class UnitError(Exception):
    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code


def log(msg):
    """Supervisor messages go to the unit log (the supervisor's stdout)."""
    sys.stdout.write("[lab-systemctl %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


# ---------------------------------------------------------------- unit files

def canonical(name):
    base = name.rsplit("/", 1)[-1]
    if "." in base and base.rsplit(".", 1)[1] in SUFFIXES:
        return base
    return base + ".service"


def unescape(s):
    s = s.replace("-", "/")
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def find_unit_file(name):
    candidates = [name]
    m = re.match(r"^(.+@)([^.]+)\.(\w+)$", name)
    if m:
        candidates.append("%s.%s" % (m.group(1), m.group(3)))
    for cand in candidates:
        for d in UNIT_DIRS:
            p = os.path.join(d, cand)
            if os.path.lexists(p):
                if os.path.realpath(p) == "/dev/null":
                    raise UnitError("Unit %s is masked." % name)
                return p, cand
    raise UnitError("Unit %s not found." % name, 5)


def dropins(name, template):
    """Drop-in files: later unit dirs lose to earlier ones for the same file name."""
    found = {}
    for d in reversed(UNIT_DIRS):
        for n in ([template] if template != name else []) + [name]:
            for p in glob.glob(os.path.join(d, n + ".d", "*.conf")):
                found[os.path.basename(p)] = p
    return [found[k] for k in sorted(found)]


def parse_ini(path, sections):
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    cur = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = sections.setdefault(line[1:-1], [])
            continue
        if cur is None or "=" not in line:
            continue
        k, v = line.split("=", 1)
        cur.append((k.strip(), v.strip()))


def parse_duration(v, default):
    v = (v or "").strip()
    if not v:
        return default
    if v == "infinity":
        return INFINITY_CAP
    units = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1, "second": 1, "seconds": 1,
             "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
             "d": 86400, "day": 86400, "days": 86400}
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)\s*([a-z]*)", v):
        total += float(num) * units.get(unit or "s", 1)
    return min(total, INFINITY_CAP)


class Unit:
    def __init__(self, name):
        self.name = canonical(name)
        self.path, self.file_name = find_unit_file(self.name)
        self.kind = self.name.rsplit(".", 1)[1]
        self.sections = {}
        parse_ini(self.path, self.sections)
        for p in dropins(self.name, self.file_name):
            parse_ini(p, self.sections)
        base = self.name.rsplit(".", 1)[0]
        prefix, _, inst = base.partition("@")
        try:
            host = socket.gethostname()
        except OSError:
            host = "localhost"
        self.spec = {"n": self.name, "N": base, "p": prefix, "P": unescape(prefix), "i": inst, "I": unescape(inst),
                     "f": "/" + unescape(inst or prefix), "t": "/run", "S": "/var/lib", "C": "/var/cache",
                     "L": "/var/log", "E": "/etc", "T": "/tmp", "V": "/var/tmp", "H": host,
                     "l": host.split(".")[0], "h": "/root", "u": "root", "U": "0", "%": "%"}
        user = self.get("Service", "User")
        if user:
            try:
                pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
                self.spec.update({"h": pw.pw_dir, "u": pw.pw_name, "U": str(pw.pw_uid)})
            except KeyError:
                pass

    def expand(self, v):
        return re.sub(r"%(.)", lambda m: self.spec.get(m.group(1), m.group(0)), v)

    def values(self, section, key):
        """All values in order; an empty assignment resets the list, as in systemd."""
        out = []
        for k, v in self.sections.get(section, []):
            if k == key:
                if v == "":
                    out = []
                else:
                    out.append(self.expand(v))
        return out

    def get(self, section, key, default=None):
        vals = [v for k, v in self.sections.get(section, []) if k == key]
        return self.expand(vals[-1]) if vals else default

    def bool(self, section, key, default=False):
        v = self.get(section, key)
        if v is None:
            return default
        return v.lower() in ("1", "yes", "true", "on")

    def description(self):
        return self.get("Unit", "Description", self.name)


class Command:
    def __init__(self, line):
        self.ignore_failure = False
        self.privileged = False
        self.no_env = False
        while line and line[0] in "-@+!:":
            c = line[0]
            line = line[1:]
            if c == "-":
                self.ignore_failure = True
            elif c == "+":
                self.privileged = True
            elif c == ":":
                self.no_env = True
        self.line = line

    def argv(self, env):
        words = shlex.split(self.line)
        if self.no_env:
            return words
        out = []
        for w in words:
            m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
            if m:
                out.extend(env.get(m.group(1), "").split())
            else:
                out.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda mm: env.get(mm.group(1), ""), w))
        return out


def parse_env_assignments(v):
    out = {}
    for word in shlex.split(v):
        if "=" in word:
            k, val = word.split("=", 1)
            out[k] = val
    return out


def read_env_file(path):
    out = {}
    with open(path) as f:
        text = re.sub(r"\\\n", "", f.read())
    for line in text.split("\n"):
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        k = k.strip()
        if k.startswith("export "):
            k = k[7:].strip()
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        out[k] = v
    return out


class Service:
    """The [Service] settings the lab honours."""

    def __init__(self, unit):
        u = unit
        self.unit = u
        self.type = u.get("Service", "Type", "simple")
        if self.type not in ("simple", "exec", "notify", "notify-reload", "forking", "oneshot", "idle", "dbus"):
            raise UnitError("%s: Type=%s is not supported by the lab" % (u.name, self.type))
        self.remain = u.bool("Service", "RemainAfterExit")
        self.pre = [Command(v) for v in u.values("Service", "ExecStartPre")]
        self.start = [Command(v) for v in u.values("Service", "ExecStart")]
        self.post = [Command(v) for v in u.values("Service", "ExecStartPost")]
        self.stop = [Command(v) for v in u.values("Service", "ExecStop")]
        self.stop_post = [Command(v) for v in u.values("Service", "ExecStopPost")]
        self.reload = [Command(v) for v in u.values("Service", "ExecReload")]
        if not self.start and self.type != "oneshot":
            raise UnitError("%s has no ExecStart=" % u.name)
        self.user = u.get("Service", "User")
        self.group = u.get("Service", "Group")
        self.supplementary = " ".join(u.values("Service", "SupplementaryGroups")).split()
        self.workdir = u.get("Service", "WorkingDirectory")
        self.restart = u.get("Service", "Restart", "no")
        self.restart_sec = parse_duration(u.get("Service", "RestartSec"), 0.1)
        both = u.get("Service", "TimeoutSec")
        default_start = INFINITY_CAP if self.type == "oneshot" else 90.0
        self.timeout_start = parse_duration(u.get("Service", "TimeoutStartSec", both), default_start)
        self.timeout_stop = parse_duration(u.get("Service", "TimeoutStopSec", both), 90.0)
        self.kill_signal = parse_signal(u.get("Service", "KillSignal", "SIGTERM"))
        self.permissions_start_only = u.bool("Service", "PermissionsStartOnly")
        nofile = u.get("Service", "LimitNOFILE")
        self.limit_nofile = None
        if nofile:
            soft, _, hard = nofile.partition(":")
            to_int = lambda x: resource.RLIM_INFINITY if x == "infinity" else int(x)
            self.limit_nofile = (to_int(soft), to_int(hard or soft))
        self.kill_mode = u.get("Service", "KillMode", "control-group")
        self.pidfile = u.get("Service", "PIDFile")
        self.burst = int(u.get("Unit", "StartLimitBurst", u.get("Service", "StartLimitBurst", "5")))
        self.interval = parse_duration(u.get("Unit", "StartLimitIntervalSec", u.get("Service", "StartLimitInterval")), 10.0)
        self.success_status = set(" ".join(u.values("Service", "SuccessExitStatus")).split())
        umask = u.get("Service", "UMask")
        self.umask = int(umask, 8) if umask else 0o022
        self.environment = {}
        for v in u.values("Service", "Environment"):
            self.environment.update(parse_env_assignments(v))
        self.env_files = u.values("Service", "EnvironmentFile")
        self.dirs = []
        for key, root in (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib"), ("CacheDirectory", "/var/cache"),
                          ("LogsDirectory", "/var/log"), ("ConfigurationDirectory", "/etc")):
            mode = int(u.get("Service", key + "Mode", "0755"), 8)
            for d in " ".join(u.values("Service", key)).split():
                self.dirs.append((os.path.join(root, d), mode))
        self.conditions = [(k, v) for k, v in u.sections.get("Unit", [])
                           if k.startswith("Condition") or k.startswith("Assert")]

    def identity(self):
        """(uid, gid, extra groups, passwd entry) for User=/Group=, or None for root."""
        if not self.user:
            return None
        try:
            pw = pwd.getpwnam(self.user) if not self.user.isdigit() else pwd.getpwuid(int(self.user))
        except KeyError:
            raise UnitError("%s: User=%s does not exist" % (self.unit.name, self.user))
        gid = pw.pw_gid
        if self.group:
            gid = grp.getgrnam(self.group).gr_gid if not self.group.isdigit() else int(self.group)
        groups = os.getgrouplist(pw.pw_name, gid)
        for g in self.supplementary:
            groups.append(grp.getgrnam(g).gr_gid)
        return pw.pw_uid, gid, groups, pw

    def env(self, extra=None):
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", TAG: self.unit.name}
        ident = self.identity()
        if ident:
            pw = ident[3]
            env.update({"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name, "SHELL": pw.pw_shell})
        env.update(self.environment)
        for f in self.env_files:
            optional = f.startswith("-")
            f = f.lstrip("-")
            for path in sorted(glob.glob(f)) or [f]:
                if os.path.exists(path):
                    env.update(read_env_file(path))
                elif not optional:
                    raise UnitError("%s: EnvironmentFile %s does not exist" % (self.unit.name, path))
        env.update(extra or {})
        return env

    def check_conditions(self):
        """Returns a reason string when a Condition fails (the unit is then skipped)."""
        for k, v in self.conditions:
            neg = v.startswith("!")
            p = v.lstrip("!|")
            if k.endswith("PathExists"):
                ok = os.path.exists(p)
            elif k.endswith("PathIsDirectory"):
                ok = os.path.isdir(p)
            elif k.endswith("FileNotEmpty"):
                ok = os.path.isfile(p) and os.path.getsize(p) > 0
            elif k.endswith("DirectoryNotEmpty"):
                ok = os.path.isdir(p) and bool(os.listdir(p))
            else:
                continue  # conditions about virtualization, kernel, etc.: assume met
            if ok == neg:
                if k.startswith("Assert"):
                    raise UnitError("%s: %s=%s failed" % (self.unit.name, k, v))
                return "%s=%s not met" % (k, v)
        return None

    def make_dirs(self):
        ident = self.identity()
        for path, mode in self.dirs:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
            if ident:
                os.chown(path, ident[0], ident[1])

    def popen(self, cmd, extra_env=None, main=False):
        privileged = cmd.privileged or (self.permissions_start_only and not main)
        ident = None if privileged else self.identity()
        env = self.env(extra_env)
        argv = cmd.argv(env)
        cwd = "/"
        if self.workdir:
            wd = self.workdir.lstrip("-")
            if wd == "~":
                wd = ident[3].pw_dir if ident else "/root"
            if os.path.isdir(wd):
                cwd = wd
            elif not self.workdir.startswith("-"):
                raise UnitError("%s: WorkingDirectory %s does not exist" % (self.unit.name, wd))
        kwargs = {}
        if ident:
            kwargs.update({"user": ident[0], "group": ident[1], "extra_groups": ident[2]})
        log("run: %s" % " ".join(shlex.quote(a) for a in argv))
        # LimitNOFILE: the child inherits our limit; raise it around the spawn (we are root and
        # single-threaded; after the uid change the child could not raise it itself).
        saved = resource.getrlimit(resource.RLIMIT_NOFILE)
        if self.limit_nofile:
            # Clamped to our own hard limit: the lab may lack CAP_SYS_RESOURCE to go higher.
            cap = lambda v: saved[1] if saved[1] != resource.RLIM_INFINITY and (v == resource.RLIM_INFINITY or v > saved[1]) else v
            resource.setrlimit(resource.RLIMIT_NOFILE, (cap(self.limit_nofile[0]), cap(self.limit_nofile[1])))
        try:
            return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, preexec_fn=os.setsid,
                                    umask=self.umask, close_fds=True, **kwargs)
        finally:
            if self.limit_nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, saved)


# ---------------------------------------------------------------- state

def state_path(name):
    return os.path.join(STATE_DIR, name + ".json")


def read_state(name):
    try:
        with open(state_path(name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_state(name, **kw):
    os.makedirs(STATE_DIR, exist_ok=True)
    st = read_state(name)
    st.update(kw)
    st["unit"] = name
    st["updated"] = time.time()
    tmp = state_path(name) + ".%d.tmp" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.rename(tmp, state_path(name))
    return st


def alive(pid):
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2] != "Z"
    except (OSError, ValueError):
        return False


def proc_info(pid):
    """(sid, environ bytes) of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        if fields[0] == "Z":
            return None
        sid = int(fields[3])
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read()
        except OSError:
            environ = b""
        return sid, environ
    except (OSError, ValueError, IndexError):
        return None


def net_namespace(pid="self"):
    try:
        return os.stat("/proc/%s/ns/net" % pid).st_ino
    except OSError:
        return None


def unit_pids(name, leaders=()):
    """The unit's processes: tagged with its name, or with a sid one of its commands leads.

    Every lab node sees every node's processes in /proc (they share the host's PID namespace),
    and the same unit runs on several nodes: a tagged process counts only when it is in this
    node's network namespace, which each node has to itself. Without that, stopping etcd on one
    node stopped it on all of them.
    """
    tag = ("%s=%s" % (TAG, name)).encode()
    me = os.getpid()
    here = net_namespace()
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == me:
            continue
        info = proc_info(int(e))
        if not info:
            continue
        sid, environ = info
        if sid in leaders or (tag in environ.split(b"\0") and net_namespace(e) == here):
            out.append(int(e))
    return out


def effective_state(name):
    st = read_state(name)
    s = st.get("state", "inactive")
    if s in ACTIVE_STATES and st.get("supervisor") and not alive(st["supervisor"]):
        return "failed", st  # supervisor killed (e.g. the lab's node-kill drill)
    return s, st


def load_enabled():
    try:
        with open(ENABLED_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def save_enabled(lst):
    os.makedirs(os.path.dirname(ENABLED_FILE), exist_ok=True)
    with open(ENABLED_FILE + ".tmp", "w") as f:
        json.dump(lst, f)
    os.rename(ENABLED_FILE + ".tmp", ENABLED_FILE)


# ---------------------------------------------------------------- supervisor

class Supervisor:
    def __init__(self, name, token):
        self.name = name
        self.token = token
        self.stop_requested = False
        self.leaders = set()
        self.main = None  # Popen of the main process when it is our child
        self.main_pid = None
        self.notify = None
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def on_term(self, *_):
        self.stop_requested = True

    def set(self, **kw):
        fields = {"token": self.token, "supervisor": os.getpid()}
        fields.update(kw)
        write_state(self.name, **fields)

    def run_sync(self, svc, cmds, label, timeout, extra_env=None):
        """Run commands one after another; False when one fails (unless prefixed with '-')."""
        for cmd in cmds:
            p = svc.popen(cmd, extra_env, main=(label == "ExecStart"))
            self.leaders.add(p.pid)
            deadline = time.time() + timeout
            while p.poll() is None:
                if time.time() > deadline:
                    log("%s timed out after %.0f s: %s" % (label, timeout, cmd.line))
                    kill_group(p.pid, signal.SIGKILL)
                    p.wait(5)
                    return False
                time.sleep(0.05)
            if p.returncode != 0 and not cmd.ignore_failure:
                log("%s failed (%s): %s" % (label, describe_rc(p.returncode), cmd.line))
                return False
        return True

    def open_notify(self):
        os.makedirs(NOTIFY_DIR, exist_ok=True)
        path = os.path.join(NOTIFY_DIR, self.name + ".sock")
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        os.chmod(path, 0o666)  # services running as their own user must be able to send
        s.setblocking(False)
        self.notify = s
        return path

    def read_notify(self):
        msgs = {}
        while self.notify:
            try:
                data = self.notify.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            for line in data.decode(errors="replace").split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    msgs[k] = v
        if "MAINPID" in msgs and msgs["MAINPID"].isdigit():
            self.main_pid = int(msgs["MAINPID"])
            self.set(main=self.main_pid)
        return msgs

    def main_alive(self):
        if self.main is not None and self.main_pid == self.main.pid:
            return self.main.poll() is None
        if self.main_pid:
            if self.main is not None:
                self.main.poll()  # reap our own child if the main PID moved elsewhere
            return alive(self.main_pid)
        return bool(unit_pids(self.name, self.leaders))

    def exit_kind(self):
        """How the main process ended, in the terms Restart= uses."""
        if self.main is None or self.main.returncode is None:
            return "signal", "unknown"
        rc = self.main.returncode
        if rc == 0 or str(rc) in self.svc.success_status:
            return "success", "exit 0"
        if rc < 0:
            sig = signal.Signals(-rc)
            return ("success" if sig in CLEAN_SIGNALS else "signal"), sig.name
        return "failure", "exit %d" % rc

    def start_once(self, svc):
        """Run the start sequence. Returns True when the service is up (or a oneshot finished)."""
        self.leaders = set()
        self.main = None
        self.main_pid = None
        svc.make_dirs()
        self.set(state="activating", sub="start-pre", main=None)
        if not self.run_sync(svc, svc.pre, "ExecStartPre", svc.timeout_start):
            return False
        if svc.type == "oneshot":
            self.set(sub="start")
            if not self.run_sync(svc, svc.start, "ExecStart", svc.timeout_start):
                return False
        elif svc.type == "forking":
            self.set(sub="start")
            if not self.run_sync(svc, svc.start[:1], "ExecStart", svc.timeout_start):
                return False
            if svc.pidfile:
                deadline = time.time() + 10
                while not os.path.exists(svc.pidfile) and time.time() < deadline:
                    time.sleep(0.1)
                try:
                    with open(svc.pidfile) as f:
                        self.main_pid = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    log("PIDFile %s not readable after start" % svc.pidfile)
                    return False
        else:
            extra = {}
            if svc.type in ("notify", "notify-reload"):
                extra["NOTIFY_SOCKET"] = self.open_notify()
            self.main = svc.popen(svc.start[0], extra, main=True)
            self.main_pid = self.main.pid
            self.leaders.add(self.main.pid)
            self.set(sub="start", main=self.main_pid)
            if "NOTIFY_SOCKET" in extra:
                deadline = time.time() + svc.timeout_start
                while True:
                    if self.read_notify().get("READY") == "1":
                        break
                    if self.main.poll() is not None:
                        log("main process exited before it reported READY=1 (%s)" % describe_rc(self.main.returncode))
                        return False
                    if self.stop_requested:
                        return False
                    if time.time() > deadline:
                        log("no READY=1 within TimeoutStartSec=%.0f s" % svc.timeout_start)
                        self.kill_all(svc, signal.SIGKILL)
                        return False
                    time.sleep(0.05)
        if not self.run_sync(svc, svc.post, "ExecStartPost", svc.timeout_start, {"MAINPID": str(self.main_pid or "")}):
            return False
        return True

    def kill_all(self, svc, sig):
        pids = unit_pids(self.name, self.leaders)
        if self.main_pid and self.main_pid not in pids and alive(self.main_pid):
            pids.append(self.main_pid)
        for p in pids:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        return pids

    def stop_sequence(self, svc, main_exited):
        """ExecStop, then signal what is left, then ExecStopPost (systemd's order)."""
        self.set(state="deactivating", sub="stop")
        if svc.stop:
            self.run_sync(svc, svc.stop, "ExecStop", svc.timeout_stop, {"MAINPID": str(self.main_pid or "")})
        if svc.kill_mode == "process" or svc.kill_mode == "mixed":
            if self.main_pid and alive(self.main_pid):
                os.kill(self.main_pid, svc.kill_signal)
        if svc.kill_mode != "process" and svc.kill_mode != "none":
            if svc.kill_mode == "control-group":
                self.kill_all(svc, svc.kill_signal)
            deadline = time.time() + svc.timeout_stop
            while unit_pids(self.name, self.leaders) and time.time() < deadline:
                if self.main is not None:
                    self.main.poll()
                time.sleep(0.1)
            left = self.kill_all(svc, signal.SIGKILL)
            if left:
                log("sent SIGKILL to %s after TimeoutStopSec" % " ".join(map(str, left)))
        if self.main is not None:
            try:
                self.main.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.set(sub="stop-post")
        self.run_sync(svc, svc.stop_post, "ExecStopPost", svc.timeout_stop)

    def should_restart(self, svc, kind):
        policy = svc.restart
        if policy == "always":
            return True
        if policy == "on-success":
            return kind == "success"
        if policy == "on-failure":
            return kind != "success"
        if policy == "on-abnormal":
            return kind in ("signal", "timeout")
        if policy == "on-abort":
            return kind == "signal"
        return False

    def run(self):
        try:
            svc = Service(Unit(self.name))
        except UnitError as e:
            log(str(e))
            self.set(state="failed", sub="failed", result="resources")
            return 1
        self.svc = svc
        reason = svc.check_conditions()
        if reason:
            log("skipped: %s" % reason)
            self.set(state="inactive", sub="dead", result="condition")
            return 0
        starts = collections.deque()
        restarts = 0
        while True:
            now = time.time()
            starts.append(now)
            while starts and now - starts[0] > svc.interval:
                starts.popleft()
            if svc.interval > 0 and svc.burst > 0 and len(starts) > svc.burst:
                log("start request repeated too quickly (StartLimitBurst=%d in %.0f s): failed" % (svc.burst, svc.interval))
                self.set(state="failed", sub="failed", result="start-limit-hit")
                return 1
            ok = self.start_once(svc)
            if ok and svc.type == "oneshot":
                if svc.remain:
                    log("finished; active (RemainAfterExit)")
                    self.set(state="active", sub="exited", result="success", supervisor=None)
                else:
                    self.set(state="inactive", sub="dead", result="success", supervisor=None)
                return 0
            if ok:
                log("started %s (main PID %s)" % (self.name, self.main_pid))
                self.set(state="active", sub="running", main=self.main_pid, restarts=restarts)
                while not self.stop_requested and self.main_alive():
                    self.read_notify()
                    time.sleep(0.25)
            if self.stop_requested:
                self.stop_sequence(svc, False)
                self.set(state="inactive", sub="dead", result="success", main=None, supervisor=None)
                log("stopped")
                return 0
            kind, how = self.exit_kind() if ok else ("failure", "start failed")
            log("main process ended: %s" % how)
            self.stop_sequence(svc, True)
            if not self.should_restart(svc, kind):
                final = "inactive" if kind == "success" else "failed"
                self.set(state=final, sub="dead" if final == "inactive" else "failed", result=how, main=None, supervisor=None)
                return 0 if final == "inactive" else 1
            restarts += 1
            if restarts > MAX_RESTARTS:
                log("lab: giving up after %d automatic restarts" % MAX_RESTARTS)
                self.set(state="failed", sub="failed", result="restart-cap", main=None)
                return 1
            self.set(state="activating", sub="auto-restart", main=None, restarts=restarts)
            log("restarting in %.1f s (Restart=%s, restart %d)" % (svc.restart_sec, svc.restart, restarts))
            deadline = time.time() + svc.restart_sec
            while time.time() < deadline and not self.stop_requested:
                time.sleep(0.05)
            if self.stop_requested:
                self.set(state="inactive", sub="dead", result="success", main=None, supervisor=None)
                return 0


def kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def describe_rc(rc):
    if rc is None:
        return "running"
    if rc < 0:
        return "signal %s" % signal.Signals(-rc).name
    return "exit %d" % rc


# ---------------------------------------------------------------- commands

def open_log(name):
    os.makedirs(LOG_DIR, exist_ok=True)
    return open(os.path.join(LOG_DIR, name + ".log"), "ab", buffering=0)


def spawn_detached(args, name):
    """A helper that is its own setsid leader, output to the unit's log, detached from our caller."""
    with open_log(name) as out:
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__)] + args, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=out, preexec_fn=os.setsid, close_fds=True,
                             env={"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}, cwd="/")
    return p


def print_log_tail(name, n=20, stream=None):
    stream = stream or sys.stderr
    try:
        with open(os.path.join(LOG_DIR, name + ".log"), errors="replace") as f:
            lines = f.read().splitlines()[-n:]
    except OSError:
        lines = []
    for l in lines:
        stream.write("  %s\n" % l)


def wait_token(name, token, timeout, done_states, proc):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = read_state(name)
        if st.get("token") == token and st.get("state") in done_states:
            return st
        if proc is not None and proc.poll() is not None:
            st = read_state(name)
            if st.get("token") == token and st.get("state") in done_states:
                return st
            return dict(st, state="failed", result="helper exited (%s)" % describe_rc(proc.returncode))
        time.sleep(0.05)
    return dict(read_state(name), state="timeout")


def start_unit(name, no_block):
    unit = Unit(name)
    name = unit.name
    if unit.kind != "service":
        # Timers never fire in the lab; targets, sockets, paths: nothing to run.
        note = "recorded; the lab does not run timers" if unit.kind == "timer" else "no-op in the lab"
        write_state(name, state="active", sub=note, supervisor=None, token=None)
        return 0
    svc = Service(unit)  # parse now so errors show up in the caller's output
    state, st = effective_state(name)
    if state in ACTIVE_STATES:
        return 0
    token = uuid.uuid4().hex
    write_state(name, state="activating", sub="queued", token=token, supervisor=None, main=None)
    proc = spawn_detached(["__supervise", name, token], name)
    if no_block:
        return 0
    budget = svc.timeout_start * (3 if svc.type != "oneshot" else 1) + len(svc.pre + svc.post) * svc.timeout_start + 10
    st = wait_token(name, token, min(budget, INFINITY_CAP * 2), ("active", "failed", "inactive"), proc)
    if st.get("state") == "active" or (st.get("state") == "inactive" and st.get("result") in ("success", None, "condition")):
        return 0
    sys.stderr.write("Job for %s failed (%s). Log: %s\n" % (name, st.get("result") or st.get("state"), os.path.join(LOG_DIR, name + ".log")))
    print_log_tail(name)
    return 1


def stop_unit(name):
    unit = Unit(name)
    name = unit.name
    state, st = effective_state(name)
    sup = st.get("supervisor")
    if unit.kind != "service":
        write_state(name, state="inactive", sub="dead")
        return 0
    svc = Service(unit)
    if sup and alive(sup):
        os.kill(sup, signal.SIGTERM)
        deadline = time.time() + 2 * svc.timeout_stop + len(svc.stop + svc.stop_post) * svc.timeout_stop + 10
        while alive(sup) and time.time() < deadline:
            time.sleep(0.05)
        if alive(sup):
            sys.stderr.write("lab: gave up waiting for %s to stop (supervisor %d)\n" % (name, sup))
            return 1
        return 0
    if state == "active" and svc.type == "oneshot":
        token = uuid.uuid4().hex
        write_state(name, token=token)
        proc = spawn_detached(["__stopper", name, token], name)
        st = wait_token(name, token, 2 * svc.timeout_stop + 10, ("inactive", "failed"), proc)
        return 0 if st.get("state") == "inactive" else 1
    if state in ACTIVE_STATES or state == "failed":
        # Supervisor gone (killed): clean up what is left of the unit.
        for p in unit_pids(name):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        write_state(name, state="inactive", sub="dead", supervisor=None, main=None)
    return 0


def stopper(name, token):
    """Stop sequence of a oneshot RemainAfterExit unit (its supervisor exited after start)."""
    svc = Service(Unit(name))
    s = Supervisor(name, token)
    s.svc = svc
    s.stop_sequence(svc, True)
    write_state(name, token=token, state="inactive", sub="dead", supervisor=None, main=None)
    log("stopped")
    return 0


def kill_unit(name, sig, whom):
    state, st = effective_state(canonical(name))
    main = st.get("main")
    if whom == "main":
        pids = [main] if main and alive(main) else []
    else:
        pids = unit_pids(canonical(name))
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass
    return 0


def reload_unit(name):
    unit = Unit(name)
    svc = Service(unit)
    state, st = effective_state(unit.name)
    if state != "active":
        sys.stderr.write("Failed to reload %s: unit is not active.\n" % unit.name)
        return 1
    if not svc.reload:
        sys.stderr.write("Failed to reload %s: Job type reload is not applicable for unit %s.\n" % (unit.name, unit.name))
        return 1
    with open_log(unit.name) as out:
        for cmd in svc.reload:
            env_extra = {"MAINPID": str(st.get("main") or "")}
            p = subprocess.Popen(cmd.argv(svc.env(env_extra)), env=svc.env(env_extra), stdout=out, stderr=out,
                                 stdin=subprocess.DEVNULL, preexec_fn=os.setsid)
            try:
                rc = p.wait(svc.timeout_start)
            except subprocess.TimeoutExpired:
                kill_group(p.pid, signal.SIGKILL)
                rc = -9
            if rc != 0 and not cmd.ignore_failure:
                sys.stderr.write("Failed to reload %s (%s)\n" % (unit.name, describe_rc(rc)))
                return 1
    return 0


def tmpfiles():
    """Create the directories, files and links tmpfiles.d asks for at boot (d D v q Q f L)."""
    files = {}
    for d in TMPFILES_DIRS:
        for p in glob.glob(os.path.join(d, "*.conf")):
            files[os.path.basename(p)] = p
    spec = {"t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "T": "/tmp", "V": "/var/tmp", "%": "%"}
    for key in sorted(files):
        with open(files[key]) as f:
            lines = f.read().split("\n")
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 6) + ["-"] * 7
            typ, path, mode, user, group = parts[0].rstrip("!-=~^"), parts[1], parts[2], parts[3], parts[4]
            arg = parts[6] if len(line.split(None, 6)) > 6 else ""
            path = re.sub(r"%(.)", lambda m: spec.get(m.group(1), m.group(0)), path)
            if path.startswith(("/dev", "/proc", "/sys")) or "%" in path:
                continue
            try:
                uid = pwd.getpwnam(user).pw_uid if user not in ("-", "") else 0
                gid = grp.getgrnam(group).gr_gid if group not in ("-", "") else 0
            except KeyError:
                continue
            m = int(mode.lstrip("~:"), 8) if mode not in ("-", "") else None
            try:
                if typ in ("d", "D", "v", "q", "Q"):
                    os.makedirs(path, exist_ok=True)
                    os.chmod(path, m if m is not None else 0o755)
                    os.chown(path, uid, gid)
                elif typ in ("f", "F") and not os.path.exists(path):
                    with open(path, "w") as out:
                        out.write(arg.replace("\\n", "\n"))
                    os.chmod(path, m if m is not None else 0o644)
                    os.chown(path, uid, gid)
                elif typ.startswith("L") and not os.path.lexists(path) and arg:
                    os.symlink(arg, path)
            except OSError as e:
                sys.stderr.write("lab tmpfiles: %s: %s\n" % (path, e))
    return 0


def boot():
    """What the lab runs when a node (re)boots: tmpfiles, then every enabled unit."""
    os.makedirs("/run/systemd/system", exist_ok=True)  # scripts test this to detect systemd
    tmpfiles()
    rc = 0
    for name in load_enabled():
        try:
            rc |= start_unit(name, False)
        except UnitError as e:
            sys.stderr.write("%s\n" % e)
            rc = 1
    return rc


def status(name):
    try:
        unit = Unit(name)
    except UnitError as e:
        sys.stderr.write("%s\n" % e)
        return 4
    state, st = effective_state(unit.name)
    print("* %s - %s" % (unit.name, unit.description()))
    print("     Loaded: loaded (%s; %s)" % (unit.path, "enabled" if unit.name in load_enabled() else "disabled"))
    print("     Active: %s (%s) since %s" % (state, st.get("sub", "dead"), time.ctime(st.get("updated", 0))))
    if st.get("main"):
        print("   Main PID: %s" % st["main"])
    print_log_tail(unit.name, 10, sys.stdout)
    return 0 if state == "active" else 3


def show(names, props, value_only):
    for name in names:
        state, st = effective_state(canonical(name))
        values = {"Id": canonical(name), "ActiveState": state, "SubState": st.get("sub", "dead"),
                  "MainPID": str(st.get("main") or 0), "NRestarts": str(st.get("restarts", 0)),
                  "Result": str(st.get("result", "success")),
                  "UnitFileState": "enabled" if canonical(name) in load_enabled() else "disabled"}
        for p in props or sorted(values):
            print(values.get(p, "") if value_only else "%s=%s" % (p, values.get(p, "")))
    return 0


def journalctl(argv):
    units, n = [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-u", "--unit"):
            units.append(canonical(argv[i + 1]))
            i += 1
        elif a.startswith("--unit="):
            units.append(canonical(a.split("=", 1)[1]))
        elif a in ("-n", "--lines"):
            n = int(argv[i + 1])
            i += 1
        elif a.startswith("--lines="):
            n = int(a.split("=", 1)[1])
        i += 1
    if not units:
        units = sorted(f[:-4] for f in os.listdir(LOG_DIR) if f.endswith(".log")) if os.path.isdir(LOG_DIR) else []
    for u in units:
        try:
            with open(os.path.join(LOG_DIR, u + ".log"), errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        for l in (lines[-n:] if n else lines):
            print(l)
    return 0


MUTATING = {"start", "stop", "restart", "try-restart", "reload", "reload-or-restart", "enable", "disable", "kill",
            "mask", "unmask", "daemon-reload", "reset-failed", "__boot", "__tmpfiles"}


def main(argv):
    prog = os.path.basename(argv[0])
    if prog == "journalctl":
        return journalctl(argv[1:])
    args = argv[1:]
    if args[:1] == ["__supervise"]:
        return Supervisor(args[1], args[2]).run()
    if args[:1] == ["__stopper"]:
        return stopper(args[1], args[2])
    opts = {"now": False, "no_block": False, "quiet": False, "signal": signal.SIGTERM, "whom": "all",
            "props": [], "value": False}
    words = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--now":
            opts["now"] = True
        elif a == "--no-block":
            opts["no_block"] = True
        elif a in ("-q", "--quiet"):
            opts["quiet"] = True
        elif a in ("-s", "--signal"):
            opts["signal"] = parse_signal(args[i + 1])
            i += 1
        elif a.startswith("--signal="):
            opts["signal"] = parse_signal(a.split("=", 1)[1])
        elif a.startswith("--kill-whom=") or a.startswith("--kill-who="):
            opts["whom"] = a.split("=", 1)[1]
        elif a in ("-p", "--property"):
            opts["props"] += args[i + 1].split(",")
            i += 1
        elif a.startswith("--property="):
            opts["props"] += a.split("=", 1)[1].split(",")
        elif a == "--value":
            opts["value"] = True
        elif a == "--version":
            print("systemd 257 (vps-ha lab stand-in)")
            return 0
        elif a.startswith("-"):
            pass  # --no-pager, --system, --force, -l, --full: no effect here
        else:
            words.append(a)
        i += 1
    if not words:
        sys.stderr.write("lab systemctl: no command given\n")
        return 1
    verb, names = words[0], words[1:]
    if verb in MUTATING and os.geteuid() != 0:
        sys.stderr.write("Failed to %s: Access denied (lab systemctl runs as root only)\n" % verb)
        return 1
    try:
        return dispatch(verb, names, opts)
    except UnitError as e:
        sys.stderr.write("Failed to %s %s: %s\n" % (verb, " ".join(names), e))
        return e.code


def parse_signal(s):
    s = s.upper()
    if s.isdigit():
        return signal.Signals(int(s))
    return getattr(signal, s if s.startswith("SIG") else "SIG" + s)


def dispatch(verb, names, opts):
    if verb in ("daemon-reload", "daemon-reexec", "reset-failed"):
        return 0
    if verb == "is-system-running":
        print("running")
        return 0
    if verb == "__boot":
        return boot()
    if verb == "__tmpfiles":
        return tmpfiles()
    if verb == "start":
        rc = 0
        for n in names:
            rc |= start_unit(n, opts["no_block"])
        return rc
    if verb == "stop":
        rc = 0
        for n in names:
            rc |= stop_unit(n)
        return rc
    if verb in ("restart", "try-restart", "reload-or-restart", "condrestart"):
        rc = 0
        for n in names:
            state, _ = effective_state(canonical(n))
            if verb == "try-restart" and state != "active":
                continue
            if verb == "reload-or-restart" and state == "active" and Service(Unit(n)).reload:
                rc |= reload_unit(n)
                continue
            rc |= stop_unit(n)
            rc |= start_unit(n, opts["no_block"])
        return rc
    if verb == "reload":
        rc = 0
        for n in names:
            rc |= reload_unit(n)
        return rc
    if verb == "enable":
        enabled = load_enabled()
        for n in names:
            Unit(n)  # must exist
            if canonical(n) not in enabled:
                enabled.append(canonical(n))
        save_enabled(enabled)
        if opts["now"]:
            rc = 0
            for n in names:
                rc |= start_unit(n, opts["no_block"])
            return rc
        return 0
    if verb == "disable":
        save_enabled([u for u in load_enabled() if u not in [canonical(n) for n in names]])
        if opts["now"]:
            rc = 0
            for n in names:
                rc |= stop_unit(n)
            return rc
        return 0
    if verb in ("mask", "unmask"):
        for n in names:
            p = os.path.join("/etc/systemd/system", canonical(n))
            if verb == "mask":
                if os.path.lexists(p):
                    os.unlink(p)
                os.symlink("/dev/null", p)
            elif os.path.islink(p) and os.path.realpath(p) == "/dev/null":
                os.unlink(p)
        return 0
    if verb == "is-active":
        rc = 0
        for n in names:
            state, _ = effective_state(canonical(n))
            if not opts["quiet"]:
                print(state)
            if state != "active":
                rc = 3
        return rc
    if verb == "is-failed":
        rc = 1
        for n in names:
            state, _ = effective_state(canonical(n))
            if not opts["quiet"]:
                print(state)
            if state == "failed":
                rc = 0
        return rc
    if verb == "is-enabled":
        rc = 0
        enabled = load_enabled()
        for n in names:
            on = canonical(n) in enabled
            if not opts["quiet"]:
                print("enabled" if on else "disabled")
            if not on:
                rc = 1
        return rc
    if verb == "kill":
        rc = 0
        for n in names:
            rc |= kill_unit(n, opts["signal"], opts["whom"])
        return rc
    if verb == "status":
        rc = 0
        for n in names:
            rc = max(rc, status(n))
        return rc
    if verb == "show":
        return show(names, opts["props"], opts["value"])
    if verb in ("list-units", "list-unit-files"):
        for f in sorted(os.listdir(STATE_DIR)) if os.path.isdir(STATE_DIR) else []:
            if f.endswith(".json"):
                state, st = effective_state(f[:-5])
                print("%-40s %-10s %s" % (f[:-5], state, st.get("sub", "")))
        return 0
    sys.stderr.write("lab systemctl: '%s' is not supported in the lab\n" % verb)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
