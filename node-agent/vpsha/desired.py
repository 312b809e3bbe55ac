"""vps-ha desired state: reads this node's document from DNS, verifies, opens and applies it.

`pulumi up` publishes each node's document (components/desired-state-records.ts) as TXT records
beside the node's name: a head `_desired.<name>` signed with the stack's key, and chunks
`_desired-<k>.<name>` holding the document sealed to this node's WireGuard key. Each round:
  - reads the head and its chunks (dnspython; UDP, TCP when an answer is truncated); a chunk of
    another generation or a digest that does not match means an update is under way: try later;
  - verifies the head's signature for this stack and node with the public key from the bootstrap;
  - refuses a generation below the one applied; an equal one is nothing to do;
  - opens the seal with this node's WireGuard private key, checks the document names this stack,
    node and generation, writes the files that differ (atomically, mode and owner), restarts the
    units whose files changed;
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
EXIT_APPLIED, EXIT_STALE, EXIT_NOTHING = 0, 2, 3

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PATH = re.compile(r"^(/[A-Za-z0-9._@+-]+)+$")
MODE = re.compile(r"^0[0-7]{3}$")
OWNER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}:[a-z_][a-z0-9_-]{0,31}$")
UNIT = re.compile(r"^[A-Za-z0-9@_.-]{1,200}\.(service|socket|timer|target|path)$")
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


def parse_document(cfg, generation, packed):
    """The document, checked field by field; raises Bad naming the first thing wrong."""
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
    want = {"v": DOCUMENT_VERSION, "stack": cfg["stack"], "node": cfg["node"], "generation": generation}
    for k, v in want.items():
        if doc.get(k) != v:
            raise Bad("the document's %s is %r, expected %r" % (k, doc.get(k), v))
    extra = set(doc) - {"v", "stack", "node", "generation", "files", "restarts"}
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
    restarts = doc.get("restarts", [])
    if not isinstance(restarts, list):
        raise Bad("restarts is not a list")
    for i, r in enumerate(restarts):
        if not isinstance(r, dict) or set(r) != {"unit", "paths"} or not UNIT.match(str(r["unit"])):
            raise Bad("restarts[%d] is not {unit, paths} with a unit name" % i)
        if not isinstance(r["paths"], list) or not r["paths"] or any(p not in seen for p in r["paths"]):
            raise Bad("restarts[%d].paths are not the document's files" % i)
    return {**doc, "restarts": restarts}


def verify_records(cfg, key, private_key, head_text, chunk_texts):
    """The document these records hold, verified and opened: (generation, document)."""
    head, sealed = assemble(cfg, key, head_text, chunk_texts)
    generation = head["generation"]
    return generation, parse_document(cfg, generation, open_sealed(cfg, private_key, generation, sealed))


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


# ---------------------------------------------------------------- applying

def ids(owner):
    user, group = owner.split(":")
    try:
        return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise Bad("no such user or group %s" % owner) from None


def apply_document(cfg, doc, problems, pending=()):
    """
    Writes each file that differs (content, mode, owner); restarts the units whose files changed,
    and the `pending` ones (a restart that failed in an earlier round of this generation).
    Returns (changed paths, units whose restart failed).
    """
    root = cfg.get("root", "")
    changed = []
    for f in doc["files"]:
        path = root + f["path"]
        mode = int(f["mode"], 8)
        try:
            uid, gid = ids(f["owner"])
            try:
                st = os.stat(path)
                with open(path, "rb") as h:
                    same = h.read() == f["content"].encode()
                same = same and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid)
            except FileNotFoundError:
                same = False
            if not same:
                write_atomically(path, f["content"], mode, uid, gid)
                changed.append(f["path"])
                log("desired: wrote %s" % f["path"])
        except (OSError, Bad) as err:
            problems.append("writing %s: %s" % (f["path"], err))
    failed = []
    for r in doc["restarts"]:
        if any(p in changed for p in r["paths"]) or r["unit"] in pending:
            argv = cfg.get("systemctl", ["systemctl"]) + ["restart", r["unit"]]
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
                if done.returncode != 0:
                    problems.append("restarting %s: %s" % (r["unit"], (done.stdout + done.stderr).strip()[-300:]))
                    failed.append(r["unit"])
                else:
                    log("desired: restarted %s" % r["unit"])
            except (OSError, subprocess.SubprocessError) as err:
                problems.append("restarting %s: %s" % (r["unit"], err))
                failed.append(r["unit"])
    return changed, failed


# ---------------------------------------------------------------- rounds

def load_applied(cfg, key, private_key):
    """The applied state {generation, head, chunks, checkedAt}, verified again; None when there is none valid."""
    try:
        with open(os.path.join(cfg["stateDir"], "applied.json")) as f:
            state = json.load(f)
        generation, _ = verify_records(cfg, key, private_key, state["head"], state["chunks"])
        if generation != state["generation"]:
            raise Bad("its generation field disagrees with its records")
        return state
    except FileNotFoundError:
        return None
    except (Bad, ValueError, KeyError, TypeError) as err:
        log("ignoring the applied state on disk: %s" % err)
        return None


def save_applied(cfg, state):
    write_atomically(os.path.join(cfg["stateDir"], "applied.json"), json.dumps(state, indent=1), 0o600)


def pending_restarts(cfg, generation):
    """Units whose restart failed in an earlier round of `generation` (their files are already written)."""
    try:
        with open(os.path.join(cfg["stateDir"], "pending.json")) as f:
            pending = json.load(f)
        return pending["units"] if pending["generation"] == generation else []
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return []


def one_round(cfg, key, private_key, fetch, now=None):
    """One read and apply; writes the status file and returns (exit code, status)."""
    now = time.time() if now is None else now
    applied = load_applied(cfg, key, private_key)
    status = {"at": now, "generation": applied["generation"] if applied else None, "published": None,
              "applied": False, "lastError": None, "staleSeconds": None, "changed": []}
    code = EXIT_STALE
    try:
        head_text, chunk_texts = read_records(cfg, fetch)
        generation, doc = verify_records(cfg, key, private_key, head_text, chunk_texts)
        status["published"] = generation
        if applied and generation < applied["generation"]:
            raise Bad("generation %d in DNS is older than the applied %d: refused"
                      % (generation, applied["generation"]))
        problems = []
        if not applied or generation > applied["generation"]:
            status["changed"], failed = apply_document(cfg, doc, problems, pending_restarts(cfg, generation))
            pending = os.path.join(cfg["stateDir"], "pending.json")
            if failed:
                write_atomically(pending, json.dumps({"generation": generation, "units": failed}), 0o600)
            elif os.path.exists(pending):
                os.unlink(pending)
        if problems:
            raise Bad("; ".join(problems))
        applied = {"generation": generation, "head": head_text, "chunks": chunk_texts, "checkedAt": now}
        save_applied(cfg, applied)
        status.update(generation=generation, applied=True, staleSeconds=0)
        code = EXIT_APPLIED
    except (Bad, Unavailable) as err:
        status["lastError"] = str(err)
        if applied:
            status["staleSeconds"] = round(now - applied.get("checkedAt", now), 1)
            log("desired: %s; keeping generation %d (checked %.0f s ago)"
                % (err, applied["generation"], status["staleSeconds"]))
        else:
            code = EXIT_NOTHING
            log("desired: %s; nothing verified yet, changing nothing" % err)
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


def main(argv):
    once = "--once" in argv
    cfg, key = load_config(argv[argv.index("--config") + 1] if "--config" in argv else DEFAULT_CONFIG)
    while True:
        try:
            code, _ = one_round(cfg, key, wireguard_private_key(cfg["wireguardConfig"]), dns_fetch(cfg))
        except (OSError, Bad) as err:  # one bad round must not end the loop; the next one tries again
            log("desired: round failed: %s" % err)
            code = EXIT_STALE
        if once:
            return code
        time.sleep(cfg.get("everySeconds", 30))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
