"""A real PostgreSQL on loopback (Debian's server binaries, /usr/lib/postgresql/<major>/bin; scripts/
ensure-packages.sh installs them): initdb with scram-sha-256 and a superuser password, listening on
127.0.0.1 only, stopped by its PID. PostgreSQL refuses to run as root: as root it runs as the
postgres user (nobody without one), in a directory of its own under /tmp."""
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2
import pytest

SUPERUSER = "postgres"
PASSWORD = "bootstrap-superuser-password"


def bindir():
    """The newest major's server binaries; None when there are none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/")[4])])
    return os.path.dirname(found[-1]) if found else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """The running server: its port, its major version, connections to it."""

    def __init__(self, port, major):
        self.port, self.major = port, major

    def connect(self, user=SUPERUSER, password=PASSWORD, host="127.0.0.1", dbname="postgres"):
        return psycopg2.connect(host=host, port=self.port, user=user, password=password, dbname=dbname,
                                connect_timeout=3)

    def sql(self, statement, params=None):
        """One statement as the bootstrap superuser, committed; its rows when it returns any."""
        conn = self.connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


def run_postgres():
    """Starts one; yields a Server, then stops it (fast shutdown) by its PID and removes its files."""
    bin_dir = bindir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql;"
                    " scripts/ensure-packages.sh --python does it as root)")
    top = tempfile.mkdtemp(prefix="vps-ha-pg-")
    try:
        yield from _run(bin_dir, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _run(bin_dir, top):
    data, sockets, pwfile, logfile = (os.path.join(top, n) for n in ("data", "sockets", "pw", "log"))
    os.mkdir(sockets, 0o700)
    with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(PASSWORD)
    run_as = {}
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        for path in (top, sockets, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    proc = None
    try:
        subprocess.run([os.path.join(bin_dir, "initdb"), "-D", data, "-U", SUPERUSER, "--pwfile", pwfile,
                        "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C",
                        "--no-sync"], check=True, cwd=top, capture_output=True, timeout=120, **run_as)
        port = free_port()
        with open(logfile, "w") as log:
            proc = subprocess.Popen([os.path.join(bin_dir, "postgres"), "-D", data, "-k", sockets, "-p", str(port),
                                     "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=30",
                                     "-c", "lc_messages=C"], stdout=log, stderr=subprocess.STDOUT, cwd=top, **run_as)
        server = Server(port, int(bin_dir.split("/")[4]))
        deadline = time.monotonic() + 30
        while True:
            try:
                server.connect().close()
                break
            except psycopg2.OperationalError:
                pass
            assert proc.poll() is None, "postgres exited %s: %s" % (proc.returncode, open(logfile).read()[-800:])
            assert time.monotonic() < deadline, "postgres took no connection in 30 s: " + open(logfile).read()[-800:]
            time.sleep(0.1)
        yield server
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
