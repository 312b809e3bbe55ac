"""vps-ha: keep Patroni's dynamic configuration as the stack file says.

Patroni reads bootstrap.dcs once, when the cluster is created; afterwards the cluster's
configuration lives in etcd and a new patroni.yml does not change it. A stack that gains a
witness (more standbys per commit), turns strictness off or changes timing gets new members
with new user-data, but the cluster they join would keep the old values. Every member runs this
at boot: it waits (bounded) until the cluster's configuration can be read, then PATCHes
Patroni's REST API with exactly the values that differ from the stack's, and the keys the stack
no longer sets removed. Idempotent: when all members agree, nothing is written.

usage: vps-ha-patroni-config [--settings FILE]
"""
import json
import sys
import time

from vpsha.rest import patroni_yml, request, rest_auth

SETTINGS = "/etc/vps-ha/patroni-dynamic.json"


def log(msg):
    print("vps-ha-patroni-config: %s" % msg, flush=True)


def same(current, wanted):
    # Patroni keeps what it was given; PostgreSQL settings may come back as numbers or strings.
    if isinstance(current, bool) or isinstance(wanted, bool):
        return current is wanted
    return current == wanted or (current is not None and str(current) == str(wanted))


def difference(current, wanted):
    """The smallest patch that gives `current` every value of `wanted`."""
    patch = {}
    for key, value in wanted.items():
        have = current.get(key) if isinstance(current, dict) else None
        if isinstance(value, dict):
            sub = difference(have if isinstance(have, dict) else {}, value)
            if sub:
                patch[key] = sub
        elif not same(have, value):
            patch[key] = value
    return patch


def removals(current, paths):
    """null for every key path present in `current` (Patroni's PATCH deletes a key set to null)."""
    patch = {}
    for path in paths:
        node = current
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            continue
        at = patch
        for key in path[:-1]:
            at = at.setdefault(key, {})
        at[path[-1]] = None
    return patch


def merge(a, b):
    out = dict(a)
    for key, value in b.items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def still_needed(current, settings):
    """What `current` lacks of the stack file's configuration: values to set, keys to remove."""
    return merge(difference(current, settings["desired"]), removals(current, settings["absent"]))


def main(argv):
    settings = SETTINGS
    if len(argv) == 2 and argv[0] == "--settings":
        settings = argv[1]
    elif argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(settings) as f:
        s = json.load(f)
    config_url = s["patroniUrl"] + "/config"
    deadline = time.monotonic() + s.get("waitSeconds", 600)
    while True:
        # 200 once the cluster exists and this member's Patroni reads it from etcd.
        status, body = request(config_url)
        if status == 200:
            break
        if time.monotonic() > deadline:
            log("gave up: %s answered %s %s" % (config_url, status, body[:200]))
            return 1
        time.sleep(s.get("retrySeconds", 2))
    current = json.loads(body)
    patch = still_needed(current, s)
    if not patch:
        log("the cluster's configuration is as the stack file says")
        return 0
    log("bringing the cluster's configuration in line with the stack file: %s" % json.dumps(patch, sort_keys=True))
    status, body = request(config_url, "PATCH", patch, rest_auth(patroni_yml(s["patroniConfig"])))
    if status != 200:
        log("Patroni refused: %s %s" % (status, body[:300]))
        return 1
    left = still_needed(json.loads(body), s)
    if left:
        log("still differs after the change: %s" % json.dumps(left, sort_keys=True))
        return 1
    log("done")
    return 0

