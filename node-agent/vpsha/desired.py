"""vps-ha desired state: reads this node's document from DNS, verifies, opens and applies it.

`pulumi up` publishes each node's document (components/desired-state-records.ts) as TXT records
beside the node's name: a head `_desired.<name>` signed with the stack's key, and chunks
`_desired-<k>.<name>` holding the document sealed to this node's WireGuard key. Each round:
  - reads the head and its chunks (dnspython; UDP, TCP when an answer is truncated); a chunk of
    another generation or a digest that does not match means an update is under way: try later;
  - verifies the head's signature for this stack and node with the public key from the bootstrap;
  - refuses a generation below the one applied; an equal one is nothing to do;
  - opens the seal with this node's WireGuard private key, checks the document names this stack,
    node and generation; a first document: writes its files, installs its packages, runs its setup;
    a later one (vpsha.update, which comes with the desired state): writes the files that differ
    and removes those it dropped, restarts the units whose files changed;
  - keeps the applied document's records under /var/lib/vps-ha (verified again when read), and
    reports in a status file: {generation, applied, lastError, staleSeconds, ...}. While DNS or
    the records cannot be read, the node keeps the state it applied and says how stale it is.

Exit (--once): 0 the published generation is applied; 2 keeping the last applied one (DNS down,
a record invalid or refused, an apply failed); 3 nothing verified yet.

usage: python3 -m vpsha.desired [--once] [--config FILE]
"""

import base64
import grp
import gzip
import hashlib
import importlib
import io
import json
import os
import pwd
import re
import subprocess
import sys
import time

import dns.exception
import dns.resolver
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

VERSION = "vhd1"
DOCUMENT_VERSION = 1
SEAL_INFO = b"vps-ha desired-state seal v1"
DEFAULT_CONFIG = "/etc/vps-ha/desired.json"
# A document this large is not one the program makes (48 chunks); refuse to inflate more.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_CHUNKS = 48
COMMAND_TIMEOUT = 120
# apt over a slow mirror, and one setup command (a package's first start) may take long; still bounded.
APT_TIMEOUT = 1800
SETUP_TIMEOUT = 600
EXIT_APPLIED, EXIT_STALE, EXIT_NOTHING = 0, 2, 3

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PATH = re.compile(r"^(/[A-Za-z0-9._@+-]+)+$")
MODE = re.compile(r"^0[0-7]{3}$")
OWNER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}:[a-z_][a-z0-9_-]{0,31}$")
UNIT = re.compile(r"^[A-Za-z0-9@_.*-]{1,200}\.(service|socket|timer|target|path)$")
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
SHARED_HEAD = re.compile(
    r"^v=vhs1 gen=(?P<gen>[1-9][0-9]{0,15}) chunks=(?P<chunks>[1-9][0-9]{0,2})"
    r" digest=(?P<digest>[0-9a-f]{64}) sig=(?P<sig>[A-Za-z0-9+/]{86}==)$"
)
SHARED_CHUNK = re.compile(
    r"^v=vhs1 gen=(?P<gen>[1-9][0-9]{0,15}) part=(?P<k>[1-9][0-9]{0,2})/(?P<n>[1-9][0-9]{0,2})"
    r" data=(?P<data>[A-Za-z0-9+/=]*)$"
)
HEAD = re.compile(
    r"^v=vhd1 node=(?P<node>[a-z0-9-]+) gen=(?P<gen>[1-9][0-9]{0,15}) chunks=(?P<chunks>[1-9][0-9]{0,2})"
    r" digest=(?P<digest>[0-9a-f]{64}) sig=(?P<sig>[A-Za-z0-9+/]{86}==)$"
)
CHUNK = re.compile(
    r"^v=vhd1 gen=(?P<gen>[1-9][0-9]{0,15}) part=(?P<k>[1-9][0-9]{0,2})/(?P<n>[1-9][0-9]{0,2})"
    r" data=(?P<data>[A-Za-z0-9+/=]*)$"
)


class Bad(Exception):
    """Records that must not be used, and why."""


class Unavailable(Exception):
    """DNS could not be asked."""


class Held(Exception):
    """The rollout gate keeps the new generation back for now (another node's turn, or halted)."""


def log(msg):
    print(msg, flush=True)


def write_atomically(path, data, mode=0o644, uid=None, gid=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    if uid is not None:
        os.chown(tmp, uid, gid)
    os.replace(tmp, path)


def head_name(cfg):
    return "_desired.%s" % cfg["dnsName"]


def chunk_name(cfg, k):
    return "_desired-%d.%s" % (k, cfg["dnsName"])


def header(cfg, generation):
    return "%s\n%s\n%s\n%d" % (VERSION, cfg["stack"], cfg["node"], generation)


# ---------------------------------------------------------------- records

def parse_head(cfg, key, text):
    """The verified head {generation, chunks, digest}; raises Bad saying why not."""
    m = HEAD.match(text)
    if not m:
        raise Bad("malformed head %r" % text[:120])
    if m["node"] != cfg["node"]:
        raise Bad("the head is for node %s, not %s" % (m["node"], cfg["node"]))
    generation, chunks = int(m["gen"]), int(m["chunks"])
    if chunks > MAX_CHUNKS:
        raise Bad("the head names %d chunks, more than %d" % (chunks, MAX_CHUNKS))
    payload = "%s\n%d\n%s" % (header(cfg, generation), chunks, m["digest"])
    try:
        key.verify(base64.b64decode(m["sig"], validate=True), payload.encode())
    except (InvalidSignature, ValueError):
        raise Bad("bad signature on the head (not signed with this stack's key for %s)" % cfg["node"]) from None
    return {"generation": generation, "chunks": chunks, "digest": m["digest"]}


def assemble(cfg, key, head_text, chunk_texts):
    """The head and the sealed bytes its chunks hold; raises Bad on a mixed or tampered set."""
    head = parse_head(cfg, key, head_text)
    if len(chunk_texts) != head["chunks"]:
        raise Bad("%d chunks found, the head names %d" % (len(chunk_texts), head["chunks"]))
    data = []
    for k, text in enumerate(chunk_texts, 1):
        m = CHUNK.match(text or "")
        if not m:
            raise Bad("chunk %d is malformed" % k)
        if int(m["gen"]) != head["generation"]:
            raise Bad("chunk %d is of generation %s, the head's is %d (an update under way)"
                      % (k, m["gen"], head["generation"]))
        if (int(m["k"]), int(m["n"])) != (k, head["chunks"]):
            raise Bad("chunk %d says part %s/%s" % (k, m["k"], m["n"]))
        data.append(m["data"])
    try:
        sealed = base64.b64decode("".join(data), validate=True)
    except ValueError:
        raise Bad("the chunks do not join to base64") from None
    if hashlib.sha256(sealed).hexdigest() != head["digest"]:
        raise Bad("the chunks do not match the head's digest (an update under way, or tampered)")
    return head, sealed


def wireguard_private_key(path):
    """This node's WireGuard private key, from wg-quick's config."""
    with open(path) as f:
        for line in f:
            k, eq, v = line.partition("=")
            if eq and k.strip() == "PrivateKey":
                try:
                    raw = base64.b64decode(v.strip(), validate=True)
                except ValueError:
                    raw = b""
                if len(raw) != 32:
                    raise Bad("the WireGuard private key in %s is not 32 bytes" % path)
                return X25519PrivateKey.from_private_bytes(raw)
    raise Bad("no PrivateKey in %s" % path)


def open_sealed(cfg, private_key, generation, sealed):
    """The document's gzip bytes opened with this node's key; raises Bad when they are not for it."""
    if len(sealed) < 32 + 16:
        raise Bad("sealed document too short")
    e = sealed[:32]
    own = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(e))
    except ValueError as err:
        raise Bad("bad ephemeral key: %s" % err) from None
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=e + own, info=SEAL_INFO).derive(shared)
    try:
        return ChaCha20Poly1305(okm[:32]).decrypt(okm[32:], sealed[32:], header(cfg, generation).encode())
    except InvalidTag:
        raise Bad("the document does not open with this node's key (sealed to another node?)") from None


def parse_document(cfg, generation, packed, shared=False):
    """The document (`shared`: the stack's shared one), checked field by field; raises Bad naming what is wrong."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as z:
            raw = z.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise Bad("the document inflates past %d bytes" % MAX_DOCUMENT_BYTES)
        doc = json.loads(raw)
    except (OSError, EOFError, ValueError) as err:
        raise Bad("the document is not gzip-compressed JSON: %s" % err) from None
    if not isinstance(doc, dict):
        raise Bad("the document is not an object")
    want = {"v": DOCUMENT_VERSION, "stack": cfg["stack"], "generation": generation}
    if not shared:
        want["node"] = cfg["node"]
    elif set(doc) != {"v", "stack", "generation", "files"}:
        raise Bad("the shared document holds other fields than v, stack, generation, files")
    for k, v in want.items():
        if doc.get(k) != v:
            raise Bad("the document's %s is %r, expected %r" % (k, doc.get(k), v))
    extra = set(doc) - {"v", "stack", "node", "generation", "files", "restarts", "packages", "setup", "rollout",
                        "shared"}
    if extra:
        raise Bad("unknown fields %s" % ", ".join(sorted(extra)))
    files = doc.get("files")
    if not isinstance(files, list):
        raise Bad("files is not a list")
    seen = set()
    for i, f in enumerate(files):
        if not isinstance(f, dict) or set(f) != {"path", "mode", "owner", "content"}:
            raise Bad("files[%d] is not {path, mode, owner, content}" % i)
        p = f["path"]
        if not isinstance(p, str) or not PATH.match(p) or any(s in (".", "..") for s in p.split("/")) or p in seen:
            raise Bad("files[%d].path %r is not a plain absolute path (or repeats one)" % (i, p))
        seen.add(p)
        if not isinstance(f["mode"], str) or not MODE.match(f["mode"]):
            raise Bad("files[%d].mode %r is not like 0644" % (i, f["mode"]))
        if not isinstance(f["owner"], str) or not OWNER.match(f["owner"]):
            raise Bad("files[%d].owner %r is not user:group" % (i, f["owner"]))
        if not isinstance(f["content"], str):
            raise Bad("files[%d].content is not text" % i)
    shared = doc.get("shared", [])
    if not isinstance(shared, list):
        raise Bad("shared is not a list")
    for i, r in enumerate(shared):
        if (not isinstance(r, dict) or set(r) != {"path", "sha256"} or not isinstance(r["path"], str)
                or not PATH.match(r["path"]) or r["path"] in seen or not SHA256.match(str(r["sha256"]))):
            raise Bad("shared[%d] is not {path, sha256} of a path not already the node's" % i)
        seen.add(r["path"])
    restarts = doc.get("restarts", [])
    if not isinstance(restarts, list):
        raise Bad("restarts is not a list")
    for i, r in enumerate(restarts):
        if (not isinstance(r, dict) or not {"unit", "paths"} <= set(r) <= {"unit", "paths", "reload"}
                or not UNIT.match(str(r["unit"])) or r.get("reload", False) not in (True, False)):
            raise Bad("restarts[%d] is not {unit, paths, reload?} with a unit name" % i)
        if not isinstance(r["paths"], list) or not r["paths"] or any(p not in seen for p in r["paths"]):
            raise Bad("restarts[%d].paths are not the document's files" % i)
    packages = doc.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) and PACKAGE.match(p) for p in packages):
        raise Bad("packages is not a list of Debian package names")
    setup = doc.get("setup", [])
    if not isinstance(setup, list) or not all(
            isinstance(c, list) and c and all(isinstance(a, str) for a in c) for c in setup):
        raise Bad("setup is not a list of commands (lists of strings)")
    if "rollout" in doc and not isinstance(doc["rollout"], dict):
        raise Bad("rollout is not an object")
    return {**doc, "restarts": restarts, "packages": packages, "setup": setup, "shared": shared}


def verify_records(cfg, key, private_key, head_text, chunk_texts):
    """The document these records hold, verified and opened: (generation, document)."""
    head, sealed = assemble(cfg, key, head_text, chunk_texts)
    generation = head["generation"]
    return generation, parse_document(cfg, generation, open_sealed(cfg, private_key, generation, sealed))


# ---------------------------------------------------------------- the shared document

def shared_domain(cfg):
    """Where the stack's shared document is: the nodes' domain (this node's DNS name less its own label)."""
    return cfg.get("sharedDomain") or cfg["dnsName"].split(".", 1)[1]


def shared_head_name(cfg):
    return "_desired-shared.%s" % shared_domain(cfg)


def shared_chunk_name(cfg, k):
    return "_desired-shared-%d.%s" % (k, shared_domain(cfg))


def verify_shared(cfg, key, head_text, chunk_texts):
    """The shared document's files {path: file}, verified; raises Bad naming what is wrong."""
    m = SHARED_HEAD.match(head_text or "")
    if not m:
        raise Bad("malformed shared head %r" % (head_text or "")[:120])
    generation, n = int(m["gen"]), int(m["chunks"])
    payload = "vhs1\n%s\n%d\n%d\n%s" % (cfg["stack"], generation, n, m["digest"])
    try:
        key.verify(base64.b64decode(m["sig"], validate=True), payload.encode())
    except (InvalidSignature, ValueError):
        raise Bad("bad signature on the shared head (not signed with this stack's key)") from None
    if len(chunk_texts) != n:
        raise Bad("%d shared chunks found, the head names %d" % (len(chunk_texts), n))
    data = []
    for k, text in enumerate(chunk_texts, 1):
        c = SHARED_CHUNK.match(text or "")
        if not c or int(c["gen"]) != generation or (int(c["k"]), int(c["n"])) != (k, n):
            raise Bad("shared chunk %d is malformed or of another generation (an update under way)" % k)
        data.append(c["data"])
    try:
        packed = base64.b64decode("".join(data), validate=True)
    except ValueError:
        raise Bad("the shared chunks do not join to base64") from None
    if hashlib.sha256(packed).hexdigest() != m["digest"]:
        raise Bad("the shared chunks do not match the head's digest (an update under way, or tampered)")
    doc = parse_document({**cfg, "node": None}, generation, packed, shared=True)
    return {f["path"]: f for f in doc["files"]}


def resolve_shared(doc, shared_files):
    """The document with the shared files it names added to its own, each as its sha256 says; raises Bad."""
    files = list(doc["files"])
    for r in doc.get("shared", []):
        f = shared_files.get(r["path"])
        if f is None or hashlib.sha256(f["content"].encode()).hexdigest() != r["sha256"]:
            raise Bad("the shared document does not hold %s as expected (an update under way?)" % r["path"])
        files.append(f)
    return {**doc, "files": sorted(files, key=lambda f: f["path"])}


def fetch_document(cfg, key, private_key, fetch):
    """This node's published document, verified, opened and with its shared files: (generation, doc, texts)."""
    head_text, chunk_texts = read_records(cfg, fetch)
    generation, doc = verify_records(cfg, key, private_key, head_text, chunk_texts)
    texts = {"head": head_text, "chunks": chunk_texts}
    if doc.get("shared"):
        sh_head, sh_chunks = read_shared(cfg, fetch)
        doc = resolve_shared(doc, verify_shared(cfg, key, sh_head, sh_chunks))
        texts.update(sharedHead=sh_head, sharedChunks=sh_chunks)
    return generation, doc, texts


# ---------------------------------------------------------------- DNS

def dns_fetch(cfg):
    """fetch(name) -> the TXT texts there ([] when none); raises Unavailable when DNS cannot answer."""
    resolver = dns.resolver.Resolver(configure="nameservers" not in cfg)
    if "nameservers" in cfg:
        resolver.nameservers = cfg["nameservers"]
        resolver.port = cfg.get("port", 53)
    resolver.timeout, resolver.lifetime = 2, 4

    def fetch(name):
        try:
            # dnspython asks again over TCP when a UDP answer comes back truncated.
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as err:
            raise Unavailable("DNS lookup of %s failed: %s" % (name, err)) from None
        return [b"".join(r.strings).decode("ascii", "replace") for r in answer]

    return fetch


def read_records(cfg, fetch):
    """The head text and its chunk texts from DNS; raises Bad or Unavailable."""
    heads = fetch(head_name(cfg))
    if len(heads) != 1:
        raise Bad("%s holds %d TXT records, expected 1" % (head_name(cfg), len(heads)))
    m = HEAD.match(heads[0])
    n = int(m["chunks"]) if m else 0
    if not 1 <= n <= MAX_CHUNKS:
        raise Bad("malformed head at %s" % head_name(cfg))
    chunks = []
    for k in range(1, n + 1):
        found = fetch(chunk_name(cfg, k))
        if len(found) != 1:
            raise Bad("%s holds %d TXT records, expected 1" % (chunk_name(cfg, k), len(found)))
        chunks.append(found[0])
    return heads[0], chunks


def read_shared(cfg, fetch):
    """The shared head text and its chunk texts from DNS; raises Bad or Unavailable."""
    heads = fetch(shared_head_name(cfg))
    if len(heads) != 1:
        raise Bad("%s holds %d TXT records, expected 1" % (shared_head_name(cfg), len(heads)))
    m = SHARED_HEAD.match(heads[0])
    n = int(m["chunks"]) if m else 0
    if not 1 <= n <= MAX_CHUNKS:
        raise Bad("malformed head at %s" % shared_head_name(cfg))
    chunks = []
    for k in range(1, n + 1):
        found = fetch(shared_chunk_name(cfg, k))
        if len(found) != 1:
            raise Bad("%s holds %d TXT records, expected 1" % (shared_chunk_name(cfg, k), len(found)))
        chunks.append(found[0])
    return heads[0], chunks


# ---------------------------------------------------------------- applying

def ids(owner):
    user, group = owner.split(":")
    try:
        return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise Bad("no such user or group %s" % owner) from None


def run(cfg, argv, problems, what, timeout=COMMAND_TIMEOUT, env=None):
    """Runs argv, bounded; True when it exited 0, else the problem is added naming `what`."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError) as err:
        problems.append("%s: %s" % (what, err))
        return False
    if done.returncode != 0:
        problems.append("%s: %s" % (what, (done.stdout + done.stderr).strip()[-300:] or "exit %d" % done.returncode))
        return False
    return True


def missing_packages(cfg, packages):
    """The packages dpkg does not have installed."""
    if not packages:
        return []
    argv = cfg.get("dpkgQuery", ["dpkg-query"]) + ["-W", "-f=${Package} ${db:Status-Status}\n"] + list(packages)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def install_packages(cfg, packages, problems):
    """Installs the missing ones as cloud-init would (our files kept over a package's); False on failure."""
    missing = missing_packages(cfg, packages)
    if not missing:
        return True
    apt = cfg.get("aptGet", ["apt-get"])
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    opts = ["-q", "-y", "-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-confdef",
            "-o", "DPkg::Lock::Timeout=600"]
    log("desired: installing %s" % " ".join(missing))
    what = "installing " + " ".join(missing)
    return (run(cfg, apt + ["-q", "update"], problems, "apt-get update", APT_TIMEOUT, env)
            and run(cfg, apt + opts + ["install"] + missing, problems, what, APT_TIMEOUT, env))


def on_disk(path):
    """(bytes, mode, uid, gid) of a file, or None when there is none."""
    try:
        st = os.stat(path)
        with open(path, "rb") as h:
            return h.read(), st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        return None


def write_files(cfg, files, problems, saved, owners_known=None):
    """
    Writes those of `files` that differ from disk; `saved` gets each one's earlier state (for a
    rollback). `owners_known`: a list that gets the files whose owner does not exist yet instead
    (written after the packages that create it). Returns the paths written.
    """
    root = cfg.get("root", "")
    written = []
    for f in files:
        path = root + f["path"]
        mode = int(f["mode"], 8)
        try:
            try:
                uid, gid = ids(f["owner"])
            except Bad:
                if owners_known is None:
                    raise
                owners_known.append(f)
                continue
            old = on_disk(path)
            if old == (f["content"].encode(), mode, uid, gid):
                continue
            saved.setdefault(f["path"], old)
            write_atomically(path, f["content"], mode, uid, gid)
            written.append(f["path"])
            log("desired: wrote %s" % f["path"])
        except (OSError, Bad) as err:
            problems.append("writing %s: %s" % (f["path"], err))
    return written


def is_unit_file(path):
    return path.startswith("/etc/systemd/") or path.startswith("/lib/systemd/") or path.startswith("/usr/lib/systemd/")


def run_setup(cfg, doc, problems):
    """The first document's setup commands, in order, each once: progress survives a failed round."""
    setup = doc.get("setup", [])
    digest = hashlib.sha256(json.dumps(setup).encode()).hexdigest()
    path = os.path.join(cfg["stateDir"], "setup.json")
    try:
        with open(path) as f:
            progress = json.load(f)
        done = progress["done"] if progress["digest"] == digest else 0
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        done = 0
    for i in range(done, len(setup)):
        if not run(cfg, setup[i], problems, "setup %s" % " ".join(setup[i]), SETUP_TIMEOUT):
            return False
        write_atomically(path, json.dumps({"digest": digest, "done": i + 1}), 0o600)
    return True


def apply_first(cfg, doc, problems):
    """A node's first document: files, packages, the files their users own, then setup. The paths written."""
    saved, later = {}, []
    written = write_files(cfg, doc["files"], problems, saved, later)
    if problems or not install_packages(cfg, doc.get("packages", []), problems):
        return written
    written += write_files(cfg, later, problems, saved)
    if problems:
        return written
    if any(is_unit_file(p) for p in written):
        run(cfg, cfg.get("systemctl", ["systemctl"]) + ["daemon-reload"], problems, "systemctl daemon-reload")
    run_setup(cfg, doc, problems)
    return written


def pending_path(cfg):
    return os.path.join(cfg["stateDir"], "pending.json")


def rollout_env(gate, cfg):
    """The rollout gate's state beside this agent's (the status server reads rollout.STATE)."""
    return gate.Env(state=os.path.join(cfg["stateDir"], "rollout.json"))


# ---------------------------------------------------------------- rounds

def load_applied(cfg, key, private_key):
    """The applied state {generation, head, chunks, checkedAt, doc}, verified again; None when there is none valid."""
    try:
        with open(os.path.join(cfg["stateDir"], "applied.json")) as f:
            state = json.load(f)
        generation, doc = verify_records(cfg, key, private_key, state["head"], state["chunks"])
        if generation != state["generation"]:
            raise Bad("its generation field disagrees with its records")
        if doc.get("shared"):
            doc = resolve_shared(doc, verify_shared(cfg, key, state["sharedHead"], state["sharedChunks"]))
        return {**state, "doc": doc}
    except FileNotFoundError:
        return None
    except (Bad, ValueError, KeyError, TypeError) as err:
        log("ignoring the applied state on disk: %s" % err)
        return None


def save_applied(cfg, state):
    write_atomically(os.path.join(cfg["stateDir"], "applied.json"), json.dumps(state, indent=1), 0o600)


def one_round(cfg, key, private_key, fetch, now=None):
    """One read and apply; writes the status file and returns (exit code, status)."""
    now = time.time() if now is None else now
    applied = load_applied(cfg, key, private_key)
    status = {"at": now, "generation": applied["generation"] if applied else None, "published": None,
              "applied": False, "lastError": None, "staleSeconds": None, "changed": []}
    code = EXIT_STALE
    try:
        generation, doc, texts = fetch_document(cfg, key, private_key, fetch)
        status["published"] = generation
        if applied and generation < applied["generation"]:
            raise Bad("generation %d in DNS is older than the applied %d: refused"
                      % (generation, applied["generation"]))
        problems = []
        ok = True
        if not applied:
            status["changed"] = apply_first(cfg, doc, problems)
        elif generation > applied["generation"]:
            # A later document's code comes with the desired state: the bootstrap holds this module alone.
            update = importlib.import_module("vpsha.update")
            status["changed"], ok = update.apply_update(cfg, generation, doc, applied["doc"], problems, status)
        if problems:
            raise Bad("; ".join(problems))
        if not ok:
            raise Held("generation %d is held back by the rollout gate" % generation)
        if os.path.exists(pending_path(cfg)):
            os.unlink(pending_path(cfg))
        fresh = not applied or generation > applied["generation"]
        if fresh and "rollout" in doc and status.get("rolloutId") != doc["rollout"].get("id"):
            # Applied without the gate (a first document, or nothing of this node's changed): this
            # node is still done with the group's change, and the nodes after it must see so.
            gate = importlib.import_module("vpsha.rollout")
            gate.record_applied(doc["rollout"], cfg["node"], status, env=rollout_env(gate, cfg))
        save_applied(cfg, {"generation": generation, **texts, "checkedAt": now})
        status.update(generation=generation, applied=True, staleSeconds=0)
        code = EXIT_APPLIED
    except (Bad, Unavailable, Held) as err:
        status["lastError"] = str(err)
        if applied:
            status["staleSeconds"] = round(now - applied.get("checkedAt", now), 1)
            log("desired: %s; keeping generation %d (checked %.0f s ago)"
                % (err, applied["generation"], status["staleSeconds"]))
        else:
            code = EXIT_NOTHING
            log("desired: %s; nothing applied yet" % err)
    write_atomically(cfg["status"], json.dumps(status, indent=1))
    return code, status


def load_config(path):
    """The config and the stack's public key; exits naming the key and value when one is wrong."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as err:
        raise SystemExit("%s: %s" % (path, err)) from None
    if not isinstance(cfg, dict):
        raise SystemExit("%s: expected a JSON object" % path)
    for k in ("stack", "node"):
        if not isinstance(cfg.get(k), str) or not NAME.match(cfg[k]):
            raise SystemExit("%s: %s is %r; expected a lower-case DNS label" % (path, k, cfg.get(k)))
    for k in ("dnsName", "wireguardConfig", "stateDir", "status"):
        if not isinstance(cfg.get(k), str) or not cfg[k]:
            raise SystemExit("%s: %s is %r; expected a name or an absolute path" % (path, k, cfg.get(k)))
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(str(cfg.get("publicKey")), validate=True))
    except ValueError:
        raise SystemExit("%s: publicKey is %r; expected a raw Ed25519 public key in base64"
                         % (path, cfg.get("publicKey"))) from None
    return cfg, key


# The modules this agent runs: itself, and what it loads in a round (a later document's applier, the
# rollout gate) with what they import.
OWN_MODULES = ("desired", "update", "rollout", "rest")


def own_code(code_dir=None):
    """{module: sha256 of its file, None when absent} of the agent's modules on disk: a document may upgrade them."""
    code_dir = code_dir or os.path.dirname(os.path.abspath(__file__))
    out = {}
    for name in OWN_MODULES:
        try:
            with open(os.path.join(code_dir, name + ".py"), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            out[name] = None
    return out


def applied_generation(cfg):
    """The generation the applied state names (read, not verified: only compared), or None."""
    try:
        with open(os.path.join(cfg["stateDir"], "applied.json")) as f:
            generation = json.load(f).get("generation")
        return generation if isinstance(generation, int) and not isinstance(generation, bool) else None
    except (OSError, ValueError, AttributeError):
        return None


def run_rounds(cfg, round_once, code_dir=None, sleep=time.sleep, limit=None):
    """
    Rounds every everySeconds. Returns a round's exit code once this agent's code on disk differs
    from the code it started with and a later generation than the one applied at its start has
    been applied: the generation that carries the new code, not one the rollout gate still holds
    back (main then runs the new code in this process). `limit`: at most that many rounds (None after them).
    """
    started, generation = own_code(code_dir), applied_generation(cfg)
    n = 0
    while limit is None or n < limit:
        n += 1
        code = round_once()
        if own_code(code_dir) != started and applied_generation(cfg) not in (None, generation):
            log("desired: generation %d replaced my code; running it" % applied_generation(cfg))
            return code
        sleep(cfg.get("everySeconds", 30))
    return None


def main(argv):
    once = "--once" in argv
    cfg, key = load_config(argv[argv.index("--config") + 1] if "--config" in argv else DEFAULT_CONFIG)

    def round_once():
        try:
            return one_round(cfg, key, wireguard_private_key(cfg["wireguardConfig"]), dns_fetch(cfg))[0]
        except (OSError, Bad) as err:  # one bad round must not end the loop; the next one tries again
            log("desired: round failed: %s" % err)
            return EXIT_STALE

    if once:
        return round_once()
    code = run_rounds(cfg, round_once)
    restart_into_new_code(argv)
    return code


def restart_into_new_code(argv, execv=os.execv):
    """Runs this agent's new code in the same process: its unit stays active, where an exit would
    leave it activating for RestartSec (health checks and monitoring then count the node down).
    Every log line is flushed already."""
    execv(sys.executable, [sys.executable, os.path.abspath(sys.argv[0])] + list(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
