# Shared fixtures: a directory key and records signed the way components/directory-records.ts
# signs them ("vh1\n<owner>\n<body>", Ed25519), so the tests can also make records it never would.
import base64
import hashlib
import ipaddress
import json
import os

import etcd_server
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROLES = ["app", "haproxy", "db", "witness"]
MESH = ipaddress.IPv4Network("10.77.0.0/24")
DOMAIN = "prod.nodes.example.com"
INDEX = "_mesh." + DOMAIN
RELEASE = "_release." + DOMAIN
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


class Signer:
    def __init__(self):
        self.private = Ed25519PrivateKey.generate()
        self.public = self.private.public_key()

    def sign(self, owner, body):
        sig = base64.b64encode(self.private.sign(("vh1\n%s\n%s" % (owner, body)).encode())).decode()
        return "%s sig=%s" % (body, sig)

    def node(self, name, role="db", mesh="10.77.0.5", wg=None, dns=None):
        wg = wg or base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
        dns = dns or "%s.%s" % (name, DOMAIN)
        owner = "_mesh.%s" % dns
        body = "v=vh1 kind=node name=%s role=%s mesh=%s wg=%s dns=%s" % (name, role, mesh, wg, dns)
        return owner, self.sign(owner, body)

    def index(self, members, parts=None, digest=None, gen=1, deliberate=False, legacy=False):
        """
        The index parts for `members` (split as `parts`, a list of lists), each signed, of
        generation `gen`; `legacy`: in the format before generations.
        """
        parts = parts or [members]
        digest = digest or hashlib.sha256(",".join(members).encode()).hexdigest()[:16]
        removal = "deliberate" if deliberate else "bounded"
        if legacy:
            bodies = ["v=vh1 kind=index part=%d/%d set=%s members=%s" % (i + 1, len(parts), digest, ",".join(p))
                      for i, p in enumerate(parts)]
        else:
            bodies = ["v=vh1 kind=index gen=%d part=%d/%d set=%s removal=%s members=%s"
                      % (gen, i + 1, len(parts), digest, removal, ",".join(p)) for i, p in enumerate(parts)]
        return [self.sign(INDEX, b) for b in bodies]

    def release(self, active, aport, candidate="-", cport="-"):
        body = "v=vh1 kind=release active=%s aport=%s candidate=%s cport=%s" % (active, aport, candidate, cport)
        return self.sign(RELEASE, body)


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def write_json(tmp_path):
    def write(name, value):
        path = tmp_path / name
        path.write_text(json.dumps(value))
        return str(path)
    return write


class Clock:
    """A clock for code that takes `now` and `sleep`: sleeping moves it on, nothing waits."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(scope="module")
def etcd_pki(tmp_path_factory):
    """The spec's etcdTls for the test etcd: files of a CA and a member certificate (openssl)."""
    return etcd_server.pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def etcd_urls(tmp_path_factory, etcd_pki):
    """A real one-member etcd on loopback (etcd_server.run_etcd): its client and peer URLs."""
    yield from etcd_server.run_etcd(tmp_path_factory.mktemp("etcd"), etcd_pki)


@pytest.fixture(scope="module")
def etcd(etcd_urls):
    """The test etcd's client URL."""
    return etcd_urls[0]
