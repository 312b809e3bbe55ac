"""vps-ha directory agent: keeps this node's view of the stack equal to the signed directory in DNS.

Each round (every few seconds, and once whenever the WireGuard interface comes up) it reads the
index TXT record and every member's record, verifies each signature with the stack's public key
from this node's own config, and converges:
  - WireGuard peers: key, allowed IP (the mesh address), keepalive, endpoint from the peer's DNS
    name (looked up again while no recent handshake proves the current one); peers no longer
    listed are removed;
  - the host firewall's named sets of mesh addresses, one per role (nftables);
  - on HAProxy nodes, the backend server lines (a checked config, then a seamless reload that
    carries every server's health state over): app nodes at the active image's port in `app`,
    at the candidate's in `app-candidate`, from the signed release record;
  - on app nodes, one web container per image the release record names (each on its own port),
    and the worker on the active image; an image the record no longer names is stopped once
    every HAProxy node has had time to stop sending to it.
Anything unsigned, malformed or inconsistent is logged and ignored. When the directory cannot
be read (DNS down, the index missing or invalid), the agent converges to the last directory it
verified, kept on disk and verified again when read: a DNS outage never empties the mesh, and a
node that reboots during one still gets its peers back.

Of several complete indexes in DNS the one of the highest generation counts; one below the
generation last applied is refused (a replay, or a stale answer). An index that removes more than
a third of a role's members at once (rounded down, one always allowed) is refused unless it is
marked deliberate. A refused index changes nothing; the status file and the log say why.

usage: vps-ha-directory [--once] [--config FILE]   (FILE.d/*.json add role-specific settings)
"""
import base64
import fcntl
import glob
import ipaddress
import json
import os
import re
import socket
import subprocess
import time

import dns.exception
import dns.resolver
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vpsha.records import Bad, newest_index, parse_record, read_cache

COMMAND_TIMEOUT = 15
# Stopping a container may take its whole stop timeout.
APP_COMMAND_TIMEOUT = 60
LOCK_WAIT_SECONDS = 60


def log(msg):
    print(msg, flush=True)


class Refused(Bad):
    """A valid directory this node does not apply (older than the applied one, or removing too many at once)."""


def run(argv, stdin=None, timeout=COMMAND_TIMEOUT):
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)


def load_config(path):
    with open(path) as f:
        cfg = json.load(f)
    for extra in sorted(glob.glob(os.path.splitext(path)[0] + ".d/*.json")):
        with open(extra) as f:
            cfg.update(json.load(f))
    return cfg


def write_atomically(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# ---------------------------------------------------------------- records

def read_release(cfg, key, fetch, fallback):
    """The release record (and its text), or the last verified one `fallback` while DNS has none valid."""
    owner = cfg["release"]
    valid = {}
    for text in fetch(owner) or []:
        try:
            rec = parse_record(owner, text, key, cfg["roles"], ipaddress.IPv4Network(cfg["meshCidr"]))
            if rec["kind"] != "release":
                raise Bad("not a release record")
            valid[text] = rec
        except Bad as e:
            log("ignoring a record at %s: %s" % (owner, e))
    if len(valid) == 1:
        (text, rec), = valid.items()
        return rec, text
    if fallback:
        why = "conflicting records" if valid else "no valid record"
        log("release: %s in DNS; keeping the last verified one" % why)
        return fallback
    return None, None


def read_directory(cfg, key, fetch, fallback, release_fallback=None):
    """
    The directory through `fetch(name)` (a list of TXT texts, or None when the lookup failed):
    {"members": {name: record}, "release": record or None, "texts": {...}, "generation",
    "deliberate", "names" (the index's list), "older" (generations of older complete indexes beside
    it)}. A member listed without a valid record of its own keeps its `fallback` record (the last
    verified one), else is left out; so does the release record. Raises Bad when the index itself
    cannot be read.
    """
    roles, mesh = cfg["roles"], ipaddress.IPv4Network(cfg["meshCidr"])
    index = cfg["index"]
    found = fetch(index)
    if not found:
        raise Bad("no index at %s (%s)" % (index, "lookup failed" if found is None else "no TXT record"))
    parts = []
    for text in found:
        try:
            rec = parse_record(index, text, key, roles, mesh)
            if rec["kind"] != "index":
                raise Bad("not an index record")
            parts.append((rec, text))
        except Bad as e:
            log("ignoring a record at %s: %s" % (index, e))
    index_found, older = newest_index(parts)
    names, index_texts = index_found["names"], index_found["texts"]
    for g in older:
        log("ignoring the index of generation %d: generation %d is newer" % (g, index_found["generation"]))
    members, texts = {}, {}
    for name in names:
        owner = "_mesh.%s.%s" % (name, cfg["nodesDomain"])
        valid = {}
        for text in fetch(owner) or []:
            try:
                rec = parse_record(owner, text, key, roles, mesh)
                if rec["kind"] != "node" or rec["name"] != name:
                    raise Bad("a record for another node")
                valid[text] = rec
            except Bad as e:
                log("ignoring a record at %s: %s" % (owner, e))
        if len(valid) == 1:
            (texts[name], members[name]), = valid.items()
        elif name in fallback:
            why = "conflicting records" if valid else "no valid record"
            log("%s: %s in DNS; keeping its last verified record" % (name, why))
            texts[name], members[name] = fallback[name]["text"], fallback[name]["record"]
        else:
            log("%s is listed but has no valid record yet; left out for now" % name)
    for field in ("mesh", "wg"):
        values = [m[field] for m in members.values()]
        if len(values) != len(set(values)):
            raise Bad("two members share a %s value" % field)
    release, release_text = read_release(cfg, key, fetch, release_fallback) if "release" in cfg else (None, None)
    texts = {"index": index_texts, "members": texts, "release": release_text}
    return {"members": members, "release": release, "texts": texts, "generation": index_found["generation"],
            "deliberate": index_found["deliberate"], "names": names, "older": older}


def removal_bound(before):
    """How many of a role's `before` members one publication may remove: a third, rounded down; always one."""
    return max(1, before // 3)


def check_publication(new, applied):
    """
    Raises Refused when the directory `new` (read from DNS) must not replace `applied` (the last
    one applied; None: none yet, anything goes): it is older, another index of the same
    generation, or it removes more than removal_bound of a role's members without being deliberate.
    """
    if applied is None:
        return
    if new["generation"] < applied["generation"]:
        raise Refused("the index in DNS is of generation %d, older than the applied %d: ignored"
                      " (a stale answer or a replay)" % (new["generation"], applied["generation"]))
    if new["generation"] == applied["generation"] > 0 and new["texts"]["index"] != applied["texts"]["index"]:
        raise Refused("the index in DNS differs from the applied one of the same generation %d: ignored"
                      % new["generation"])
    if new["deliberate"]:
        return
    listed = set(new["names"])
    too_many = []
    for role in sorted({m["role"] for m in applied["members"].values()}):
        before = sorted(n for n, m in applied["members"].items() if m["role"] == role)
        gone = [n for n in before if n not in listed]
        if len(gone) > removal_bound(len(before)):
            too_many.append("%s: %d -> %d members (%s would go)"
                            % (role, len(before), len(before) - len(gone), ", ".join(gone)))
    if too_many:
        raise Refused("refusing the index of generation %d: it removes more than a third of a role's members at once"
                      " and is not marked deliberate; %s" % (new["generation"], "; ".join(too_many)))


def dns_fetch(resolver):
    def fetch(name):
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            log("DNS lookup of %s failed: %s" % (name, e))
            return None
        return [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    return fetch


def load_cache(cfg, key):
    """The last verified directory, verified again (the file is only a copy of DNS answers)."""
    try:
        texts = read_cache(cfg["cache"])
        by_name = {cfg["index"]: texts["index"]}
        by_name.update({"_mesh.%s.%s" % (n, cfg["nodesDomain"]): [t] for n, t in texts["members"].items()})
        if texts.get("release") and "release" in cfg:
            by_name[cfg["release"]] = [texts["release"]]
        return read_directory(cfg, key, lambda name: by_name.get(name, []), {})
    except FileNotFoundError:
        return None
    except (Bad, ValueError, KeyError, TypeError) as e:
        log("ignoring the cached directory: %s" % e)
        return None


# ---------------------------------------------------------------- convergence

def resolve_ipv4(resolver, name):
    try:
        return str(resolver.resolve(name, "A", search=False)[0])
    except dns.exception.DNSException as e:
        log("no address for %s yet: %s" % (name, e))
        return None


def converge_wireguard(cfg, members, resolver, problems):
    """`resolver` None: DNS is down this round; peers keep the endpoints they have."""
    w = cfg["wireguard"]
    iface = w["interface"]
    shown = run(["wg", "show", iface, "dump"])
    if shown.returncode != 0:
        problems.append("%s is not up" % iface)
        return
    lines = shown.stdout.strip().split("\n")
    own_key = lines[0].split("\t")[1]
    peers = {}
    for line in lines[1:]:
        f = line.split("\t")
        peers[f[0]] = {"endpoint": f[2], "allowed": f[3], "handshake": int(f[4]), "keepalive": f[7]}
    want = {m["wg"]: m for m in members.values() if m["name"] != cfg["self"] and m["wg"] != own_key}
    now = time.time()
    for key, m in sorted(want.items(), key=lambda kv: kv[1]["name"]):
        p = peers.get(key)
        args = []
        if p is None or p["allowed"] != m["mesh"] + "/32" or p["keepalive"] != str(w["keepalive"]):
            args += ["allowed-ips", m["mesh"] + "/32", "persistent-keepalive", str(w["keepalive"])]
        if resolver and (p is None or p["handshake"] == 0 or now - p["handshake"] >= w["staleHandshakeSeconds"]):
            address = resolve_ipv4(resolver, m["dns"])
            endpoint = "%s:%d" % (address, w["port"]) if address else None
            if endpoint and (p is None or p["endpoint"] != endpoint):
                args += ["endpoint", endpoint]
        if args:
            r = run(["wg", "set", iface, "peer", key] + args)
            if r.returncode != 0:
                problems.append("wg set for %s: %s" % (m["name"], r.stderr.strip()))
            else:
                done = "added" if p is None else "updated"
                log("mesh: peer %s (%s) %s: %s" % (m["name"], m["mesh"], done, " ".join(args)))
    for key in sorted(set(peers) - set(want)):
        r = run(["wg", "set", iface, "peer", key, "remove"])
        if r.returncode != 0:
            problems.append("removing peer %s: %s" % (key, r.stderr.strip()))
        else:
            log("mesh: peer %s (%s) removed: no longer in the directory" % (key, peers[key]["allowed"]))


def set_elements(listing):
    for item in json.loads(listing).get("nftables", []):
        if "set" in item:
            return sorted(str(e) for e in item["set"].get("elem", []))
    return []


def converge_nftables(cfg, members, problems):
    n = cfg["nftables"]
    family, table = n["family"], n["table"]
    script = []
    for role, name in sorted(n["sets"].items()):
        want = sorted({m["mesh"] for m in members.values() if m["role"] == role}, key=ipaddress.IPv4Address)
        listed = run(["nft", "-j", "list", "set", family, table, name])
        if listed.returncode != 0:
            problems.append("firewall set %s is not loaded yet" % name)
            continue
        if set_elements(listed.stdout) == sorted(want):
            continue
        # One transaction: the set is never seen empty in between.
        script.append("flush set %s %s %s" % (family, table, name))
        if want:
            script.append("add element %s %s %s { %s }" % (family, table, name, ", ".join(want)))
        log("firewall: %s now admits %s" % (name, ", ".join(want) or "nothing"))
    if script:
        r = run(["nft", "-f", "-"], "\n".join(script) + "\n")
        if r.returncode != 0:
            problems.append("nft: %s" % r.stderr.strip())


def replace_block(text, begin, end, lines):
    a = text.find(begin + "\n")
    b = text.find(end + "\n", a)
    if a < 0 or b < 0:
        raise Bad("markers %r / %r not found" % (begin, end))
    return text[: a + len(begin) + 1] + "".join(line + "\n" for line in lines) + text[b:]


def save_server_state(h):
    """HAProxy's current server states, for the reloaded process to start from (no re-check flap)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(h["socket"])
        s.sendall(b"show servers state\n")
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    finally:
        s.close()
    write_atomically(h["stateFile"], b"".join(chunks).decode())


def prometheus_targets(members, job):
    """Prometheus' file_sd groups for `job` ({name, port, roles}): each member of those roles, named and by role."""
    return [{"targets": ["%s:%d" % (m["mesh"], job["port"])], "labels": {"instance": m["name"], "role": m["role"]}}
            for m in sorted(members.values(), key=lambda m: m["name"]) if m["role"] in job["roles"]]


def converge_prometheus(cfg, members, problems):
    """Prometheus' scrape targets follow the directory: it rereads a changed file by itself."""
    p = cfg["prometheus"]
    for job in p["jobs"]:
        path = os.path.join(p["dir"], "%s.json" % job["name"])
        text = json.dumps(prometheus_targets(members, job), indent=1, sort_keys=True) + "\n"
        try:
            with open(path) as f:
                if f.read() == text:
                    continue
        except FileNotFoundError:
            pass
        write_atomically(path, text)


def converge_haproxy(cfg, members, release, problems):
    """`release` None: none verified yet; the release's lines stay as they are (never emptied for want of a record)."""
    h = cfg["haproxy"]
    with open(h["config"]) as f:
        text = f.read()
    new = text
    summary = []
    for b in h["blocks"]:
        port = ""
        if b.get("release"):
            if release is None:
                continue
            port = release["aport"] if b["release"] == "active" else release["cport"]
        servers = []
        if port is not None:
            servers = sorted((m for m in members.values() if m["role"] == b["role"]), key=lambda m: m["name"])
        lines = [b["line"].replace("{name}", m["name"]).replace("{address}", m["mesh"]).replace("{port}", str(port))
                 for m in servers]
        new = replace_block(new, b["begin"], b["end"], lines)
        at = " at %s" % port if port and servers else ""
        summary.append("%s: %s" % (b["id"], ", ".join(m["name"] for m in servers) + at or "none"))
    for b in h.get("releaseBlocks", []):
        if release is None:
            continue
        ports = {"{aport}": str(release["aport"]), "{cport}": str(release["cport"] or "-")}
        lines = []
        for line in b["lines"]:
            for k, v in ports.items():
                line = line.replace(k, v)
            lines.append(line)
        new = replace_block(new, b["begin"], b["end"], lines)
    if new == text:
        return
    candidate = h["config"] + ".directory"
    write_atomically(candidate, new)
    checked = run(h["check"] + [candidate])
    if checked.returncode != 0:
        os.unlink(candidate)
        problems.append("haproxy refuses the new server list: %s" % (checked.stdout + checked.stderr).strip()[-500:])
        return
    active = run(h["isActive"]).returncode == 0
    if active:
        try:
            save_server_state(h)
        except OSError as e:
            log("haproxy: could not save server state (%s); the reloaded process checks every server afresh" % e)
    os.replace(candidate, h["config"])
    if active:
        r = run(h["reload"])
        if r.returncode != 0:
            problems.append("haproxy reload: %s" % (r.stdout + r.stderr).strip())
            return
    log("haproxy: servers %s (%s)" % ("; ".join(summary), "reloaded" if active else "for its next start"))


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def ensure_unit(a, unit, env_file, image, problems):
    """IMAGE=<image> in the unit's env file; the unit enabled and running; restarted only when its image changed."""
    want = "IMAGE=%s\n" % image
    changed = read_text(env_file) != want
    if changed:
        write_atomically(env_file, want)
    enabled = run(a["systemctl"] + ["is-enabled", "--quiet", unit]).returncode == 0
    steps = []
    if changed or not enabled:
        steps.append(["enable", unit])
    # Starts and restarts are queued, not waited for: the agent also runs inside the mesh unit's
    # own start (ExecStartPost), and an app unit ordered after the mesh would wait for that start
    # to end: a deadlock until the command's timeout. The next round sees a unit that did not come up.
    if changed:
        # Starts it if it was stopped.
        steps.append(["--no-block", "restart", unit])
    elif run(a["systemctl"] + ["is-active", "--quiet", unit]).returncode != 0:
        # A unit someone stopped; Restart=always covers crashes.
        steps.append(["--no-block", "start", unit])
    for step in steps:
        r = run(a["systemctl"] + step, timeout=APP_COMMAND_TIMEOUT)
        if r.returncode != 0:
            problems.append("systemctl %s: %s" % (" ".join(step), (r.stdout + r.stderr).strip()))
            return
    if changed:
        log("app: %s runs %s" % (unit, image))


def converge_app(cfg, release, problems):
    """
    One web unit instance per image the release names, on that image's port. An instance the
    release no longer names keeps running for `retireAfterSeconds` (a TTL and a few rounds: every
    HAProxy node has moved off it by then), then is stopped and disabled: a swap and a cleanup in
    one step still fails no request.
    """
    a = cfg["app"]
    if release is None:
        log("app: no release verified yet; starting nothing")
        return
    want = {release["aport"]: release["active"]}
    if release["candidate"]:
        want[release["cport"]] = release["candidate"]
    present = {}
    for path in glob.glob(a["releaseEnvGlob"]):
        m = re.fullmatch(r".*release-([0-9]+)\.env", path)
        if m:
            present[int(m.group(1))] = path
    try:
        with open(a["retiredState"]) as f:
            retired = {int(k): v for k, v in json.load(f).items()}
    except (FileNotFoundError, ValueError):
        retired = {}
    now = time.time()
    retired = {p: retired.get(p, now) for p in present if p not in want}
    for port, since in sorted(retired.items()):
        unit = a["webUnit"].replace("{port}", str(port))
        if now - since < a["retireAfterSeconds"]:
            if since == now:
                log("app: %s left the release; stopping it in %d s" % (unit, a["retireAfterSeconds"]))
            continue
        r = run(a["systemctl"] + ["disable", "--now", unit], timeout=APP_COMMAND_TIMEOUT)
        if r.returncode != 0:
            problems.append("stopping %s: %s" % (unit, (r.stdout + r.stderr).strip()))
            continue
        os.unlink(present[port])
        del retired[port]
        log("app: %s stopped and disabled: its image left the release" % unit)
    write_atomically(a["retiredState"], json.dumps({str(k): v for k, v in retired.items()}))
    for port, image in sorted(want.items()):
        unit, env_file = a["webUnit"].replace("{port}", str(port)), a["releaseEnvFile"].replace("{port}", str(port))
        ensure_unit(a, unit, env_file, image, problems)
    if a.get("worker"):
        ensure_unit(a, a["worker"]["unit"], a["worker"]["envFile"], release["active"], problems)


# ---------------------------------------------------------------- rounds

def select_directory(cfg, key, fetch, cached):
    """
    What this round converges to: (directory, source, refused). source "dns": the directory just
    read, now the applied one (written to the cache); "cache": `cached`, the last applied one,
    while DNS cannot be read or its index is refused (`refused` says why; the release record,
    not the index's, still follows DNS). Raises Bad when DNS cannot be read and `cached` is None.
    """
    fallback, release_fallback = {}, None
    if cached:
        fallback = {n: {"record": r, "text": cached["texts"]["members"][n]} for n, r in cached["members"].items()}
        if cached.get("release"):
            release_fallback = (cached["release"], cached["texts"]["release"])
    try:
        directory = read_directory(cfg, key, fetch, fallback, release_fallback)
        check_publication(directory, cached)
    except Refused as e:
        log("directory: %s; keeping generation %d (%d members)" % (e, cached["generation"], len(cached["members"])))
        kept = dict(cached, release=directory["release"], older=directory["older"] + [directory["generation"]])
        return kept, "cache", str(e)
    except Bad as e:
        if cached is None:
            raise
        log("directory unreadable (%s): keeping the last verified one (%d members)" % (e, len(cached["members"])))
        return cached, "cache", None
    if cached is None or directory["texts"] != cached["texts"]:
        write_atomically(cfg["cache"], json.dumps(directory["texts"], indent=1, sort_keys=True))
    return directory, "dns", None


def one_round(cfg, key):
    resolver = dns.resolver.Resolver()
    resolver.timeout, resolver.lifetime = 2, 4
    try:
        directory, source, refused = select_directory(cfg, key, dns_fetch(resolver), load_cache(cfg, key))
    except Bad as e:
        log("directory unreadable (%s) and none verified before: changing nothing" % e)
        status = {"at": time.time(), "source": None, "members": [], "problems": [str(e)]}
        write_atomically(cfg["status"], json.dumps(status))
        return
    dns_up = source == "dns" or refused is not None
    members, release = directory["members"], directory.get("release")
    problems = []
    for step in (lambda: converge_wireguard(cfg, members, resolver if dns_up else None, problems),
                 lambda: converge_nftables(cfg, members, problems),
                 lambda: cfg.get("haproxy") and converge_haproxy(cfg, members, release, problems),
                 lambda: cfg.get("prometheus") and converge_prometheus(cfg, members, problems),
                 lambda: cfg.get("app") and converge_app(cfg, release, problems)):
        try:
            step()
        except (OSError, subprocess.SubprocessError, ValueError, Bad) as e:
            problems.append(str(e))
    for p in problems:
        log("problem: %s" % p)
    if refused:
        problems.insert(0, refused)
    status = {"at": time.time(), "source": source, "generation": directory["generation"], "members": sorted(members),
              "release": release, "refused": refused, "ignoredGenerations": sorted(set(directory.get("older", []))),
              "problems": problems}
    write_atomically(cfg["status"], json.dumps(status))


def locked(path):
    """The agent's lock (the timer-less loop and the run after the interface comes up share it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = open(path, "w")
    deadline = time.time() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.time() > deadline:
                f.close()
                raise TimeoutError("another round held %s for %d s" % (path, LOCK_WAIT_SECONDS)) from None
            time.sleep(0.2)


def main(argv):
    once = "--once" in argv
    path = argv[argv.index("--config") + 1] if "--config" in argv else "/etc/vps-ha/directory.json"
    cfg = load_config(path)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(cfg["publicKey"]))
    while True:
        try:
            with locked(cfg["lock"]):
                one_round(cfg, key)
        # One bad round must not end the loop; the next one tries again
        except Exception as e:
            log("round failed: %s: %s" % (type(e).__name__, e))
        if once:
            return 0
        time.sleep(cfg["everySeconds"])

