"""vps-ha: the signed directory's TXT records (vh1: node, index, release) and the agent's cache of them.

The one reader of both formats on a node (components/directory-records.ts writes the records):
the directory agent verifies what DNS answers and keeps the verified texts in its cache; the
peer watch and the switchover tool read that cache through cached_members.
"""
import base64
import hashlib
import ipaddress
import json
import re

from cryptography.exceptions import InvalidSignature

VERSION = "vh1"
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
NODE_FIELDS = ["v", "kind", "name", "role", "mesh", "wg", "dns"]
INDEX_FIELDS = ["v", "kind", "gen", "part", "set", "removal", "members"]
# The index before it carried a generation: read as generation 0 (below any the program publishes
# now), so a node upgraded with such a cache keeps it until the first new index arrives.
LEGACY_INDEX_FIELDS = ["v", "kind", "part", "set", "members"]
RELEASE_FIELDS = ["v", "kind", "active", "aport", "candidate", "cport"]
IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$")


class Bad(Exception):
    """A record (or a set of them) that must be ignored, and why."""


def split_signature(text):
    """(body, signature) of a record's text; raises Bad when it has no signature."""
    body, sep, sig = text.rpartition(" sig=")
    if not sep or not body:
        raise Bad("no signature")
    return body, sig


def body_fields(body):
    """The `key=value` fields of a record's body, in order; raises Bad on a malformed one."""
    fields = []
    for f in body.split(" "):
        k, eq, v = f.partition("=")
        if not eq or not k:
            raise Bad("malformed field %r" % f)
        fields.append((k, v))
    return fields


def parse_record(owner, text, key, roles, mesh):
    """One verified record found at DNS name `owner`, as a dict; raises Bad saying why not."""
    body, sig = split_signature(text)
    try:
        raw = base64.b64decode(sig, validate=True)
    except ValueError:
        raise Bad("malformed signature") from None
    if len(raw) != 64 or base64.b64encode(raw).decode() != sig:
        raise Bad("malformed signature")
    try:
        key.verify(raw, ("%s\n%s\n%s" % (VERSION, owner, body)).encode())
    except InvalidSignature:
        raise Bad("bad signature") from None
    fields = body_fields(body)
    keys = [k for k, _ in fields]
    v = dict(fields)
    if v.get("v") != VERSION:
        raise Bad("unknown version %r" % v.get("v"))
    if v.get("kind") == "node" and keys == NODE_FIELDS:
        try:
            address = ipaddress.IPv4Address(v["mesh"])
            wg = base64.b64decode(v["wg"], validate=True)
        except ValueError:
            raise Bad("malformed mesh address or key") from None
        if not NAME.match(v["name"]) or v["role"] not in roles or not DNS_NAME.match(v["dns"]):
            raise Bad("malformed name, role or DNS name")
        if str(address) != v["mesh"] or address not in mesh or len(wg) != 32:
            raise Bad("mesh address outside %s or a malformed key" % mesh)
        return {"kind": "node", "name": v["name"], "role": v["role"], "mesh": v["mesh"], "wg": v["wg"], "dns": v["dns"]}
    if v.get("kind") == "index" and keys in (INDEX_FIELDS, LEGACY_INDEX_FIELDS):
        legacy = keys == LEGACY_INDEX_FIELDS
        m = re.fullmatch(r"([1-9][0-9]{0,2})/([1-9][0-9]{0,2})", v["part"])
        members = v["members"].split(",")
        if (not m or int(m.group(1)) > int(m.group(2)) or not re.fullmatch(r"[0-9a-f]{16}", v["set"])
                or not all(NAME.match(n) for n in members)
                or not legacy and (not re.fullmatch(r"[1-9][0-9]{0,15}", v["gen"])
                                   or v["removal"] not in ("bounded", "deliberate"))):
            raise Bad("malformed index part")
        return {"kind": "index", "generation": 0 if legacy else int(v["gen"]),
                "deliberate": not legacy and v["removal"] == "deliberate",
                "part": int(m.group(1)), "parts": int(m.group(2)), "set": v["set"], "members": members}
    if v.get("kind") == "release" and keys == RELEASE_FIELDS:
        def port(p):
            if not re.fullmatch(r"[1-9][0-9]{0,4}", p) or int(p) > 65535:
                raise Bad("malformed port %r" % p)
            return int(p)
        if not IMAGE.match(v["active"]):
            raise Bad("malformed active image")
        rec = {"kind": "release", "active": v["active"], "aport": port(v["aport"]), "candidate": None, "cport": None}
        if v["candidate"] != "-" or v["cport"] != "-":
            if not IMAGE.match(v["candidate"]):
                raise Bad("malformed candidate image")
            rec.update(candidate=v["candidate"], cport=port(v["cport"]))
            if rec["cport"] == rec["aport"]:
                raise Bad("the candidate's port is the active image's")
        return rec
    raise Bad("unexpected fields %s" % " ".join(keys))


def complete_indexes(parts_found):
    """
    Every complete index among the parts `[(record, text)]` found, newest first:
    [{"generation", "deliberate", "names", "texts"}]. Parts group by generation and member digest;
    a group with a part missing (an update under way) or parts that disagree is no index.
    """
    complete = []
    for generation, digest in sorted({(p["generation"], p["set"]) for p, _ in parts_found}):
        parts = {p["part"]: (p, t) for p, t in parts_found if (p["generation"], p["set"]) == (generation, digest)}
        counts = {p["parts"] for p, _ in parts.values()}
        marks = {p["deliberate"] for p, _ in parts.values()}
        if len(counts) != 1 or len(marks) != 1 or sorted(parts) != list(range(1, counts.pop() + 1)):
            continue
        names = [n for i in sorted(parts) for n in parts[i][0]["members"]]
        if hashlib.sha256(",".join(names).encode()).hexdigest()[:16] != digest:
            continue
        complete.append({"generation": generation, "deliberate": marks.pop(), "names": names,
                         "texts": [parts[i][1] for i in sorted(parts)]})
    return sorted(complete, key=lambda c: -c["generation"])


def newest_index(parts_found):
    """
    The newest complete index, and the generations of the older complete ones beside it. Raises
    Bad when there is none, or two of the newest generation (the program never signs two).
    """
    complete = complete_indexes(parts_found)
    if not complete:
        raise Bad("no complete index")
    newest = complete[0]
    if len(complete) > 1 and complete[1]["generation"] == newest["generation"]:
        raise Bad("more than one complete index of generation %d" % newest["generation"])
    return newest, [c["generation"] for c in complete[1:]]


def read_cache(path):
    """The agent's cache as it wrote it: {"index": [texts], "members": {name: text}, "release": text or None}."""
    with open(path) as f:
        return json.load(f)


def cached_members(path):
    """
    {name: {field: value}} of every member in the agent's cache, or None when it cannot be read.
    Not verified again: the agent keeps only texts it verified. A text that does not parse is
    left out.
    """
    try:
        texts = read_cache(path)["members"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    members = {}
    for name, text in texts.items():
        try:
            members[name] = dict(body_fields(split_signature(text)[0]))
        except Bad:
            continue
    return members
