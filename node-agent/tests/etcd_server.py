"""A real etcd on loopback with client certificates required, as the program configures it (Debian's
etcd-server, installed when missing); stopped by its PID. Used through conftest's fixtures."""
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from pki import make_pki

from vpsha import etcd_tls


def tls_of(files):
    """The SSL context of the PKI's member certificate."""
    return etcd_tls.context((files["cacert"], files["cert"], files["key"]))


def pki(directory):
    """A CA and a member certificate (openssl), as the spec's etcdTls names them."""
    return make_pki(directory)


def free_ports(n):
    ports = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    return ports


def run_etcd(data, files):
    """Starts a one-member cluster "t"; yields (client URL, peer URL), then stops it by its PID."""
    if not shutil.which("etcd"):
        if os.geteuid() != 0:
            pytest.fail("etcd is not installed: apt-get install etcd-server")
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "etcd-server"], check=True,
                       capture_output=True, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    client, peer = ("https://127.0.0.1:%d" % p for p in free_ports(2))
    tls = ["--client-cert-auth", "--trusted-ca-file", files["cacert"], "--cert-file", files["cert"],
           "--key-file", files["key"], "--peer-client-cert-auth", "--peer-trusted-ca-file", files["cacert"],
           "--peer-cert-file", files["cert"], "--peer-key-file", files["key"]]
    proc = subprocess.Popen(["etcd", "--name", "t", "--data-dir", str(data / "d"), "--listen-client-urls", client,
                             "--advertise-client-urls", client, "--listen-peer-urls", peer,
                             "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=" + peer, *tls],
                            stdout=open(data / "log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(client + "/health", timeout=2, context=tls_of(files)) as r:
                    if b'"true"' in r.read():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "etcd not healthy in 30 s: " + (data / "log").read_text()[-500:]
            time.sleep(0.2)
        yield client, peer
    finally:
        proc.terminate()
        proc.wait(timeout=15)
