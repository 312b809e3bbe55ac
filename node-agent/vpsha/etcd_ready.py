"""vps-ha: wait, before Patroni starts, until this member's etcd reports its cluster's version.

Patroni's etcd3 client, told to use this member's etcd alone (use_proxies), picks its API path
once, from the cluster version etcd reports when it first answers. A cluster still forming
reports 3.0 (or none): Patroni then asks /v3alpha, which etcd 3.5 no longer serves, and gets
"404 page not found" until it is restarted (patroni/patroni#3279). Patroni cannot start without
its etcd anyway (it waits "on etcd" before anything else), so waiting here costs nothing.

Exits 0 once the cluster version is 3.4 or later, 1 when the bound runs out (systemd starts
Patroni again after its RestartSec, and this waits again).

usage: vps-ha-etcd-ready --etcd URL --cacert FILE --cert FILE --key FILE --wait SECONDS
"""
import json
import sys
import time
import urllib.request

from vpsha import etcd_tls

# The first cluster version whose gRPC gateway Patroni reaches at /v3, which etcd 3.5 serves.
LEAST = (3, 4)


def cluster_version(answer):
    """The cluster version in etcd's /version answer, as a tuple; None while it is not decided."""
    try:
        return tuple(int(x) for x in answer["etcdcluster"].split("."))
    except (KeyError, AttributeError, TypeError, ValueError):
        return None


def read_version(url, timeout=2, tls=None):
    """etcd's /version answer, or None when etcd does not answer with one. tls: an SSL context (etcd_tls)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/version", timeout=timeout, context=tls) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def wait(url, seconds, read=read_version, clock=time.monotonic, sleep=time.sleep):
    """True once etcd at `url` reports a cluster version Patroni reads at /v3, False after `seconds`."""
    deadline = clock() + seconds
    last = None
    while True:
        answer = read(url)
        version = cluster_version(answer) if answer is not None else None
        if version is not None and version >= LEAST:
            print("etcd at %s: cluster version %s" % (url, answer["etcdcluster"]), flush=True)
            return True
        seen = "no answer" if answer is None else "cluster version %s" % answer.get("etcdcluster")
        if seen != last:
            print("waiting for etcd at %s: %s" % (url, seen), flush=True)
            last = seen
        if clock() >= deadline:
            return False
        sleep(1)


def main(argv):
    try:
        argv, files = etcd_tls.split_args(argv)
    except ValueError:
        argv = []
    if len(argv) != 4 or argv[0::2] != ["--etcd", "--wait"] or not argv[3].isdigit():
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        tls = etcd_tls.context(files)
    except (OSError, ValueError) as e:
        print("etcd's TLS files %s: %s" % (", ".join(files), e), file=sys.stderr)
        return 1
    if wait(argv[1], int(argv[3]), read=lambda url: read_version(url, tls=tls)):
        return 0
    print("etcd at %s did not report a cluster version of %d.%d or later within %s s"
          % (argv[1], LEAST[0], LEAST[1], argv[3]), file=sys.stderr)
    return 1
