import json
import os
import sys

import pytest
from conftest import DOMAIN, INDEX, RELEASE, ROLES

from vpsha import directory
from vpsha.records import Bad

IMAGE = "ghcr.io/example/app:1.4.2"
NODES = [("app-1", "app", "10.77.0.11"), ("lb-1", "haproxy", "10.77.0.47"), ("db-1", "db", "10.77.0.5")]


def config(**extra):
    return {"self": "lb-1", "index": INDEX, "release": RELEASE, "nodesDomain": DOMAIN, "roles": ROLES,
            "meshCidr": "10.77.0.0/24", **extra}


class Dns:
    """TXT answers by name; a name in `failing` fails to resolve (None), one not held has no record ([])."""

    def __init__(self, signer, nodes=NODES):
        self.signer = signer
        self.records = {}
        self.failing = set()
        self.records[INDEX] = signer.index([n for n, _, _ in nodes])
        for name, role, mesh in nodes:
            owner, text = signer.node(name, role=role, mesh=mesh)
            self.records[owner] = [text]
        self.records[RELEASE] = [signer.release(IMAGE, 8921)]

    def fetch(self, name):
        return None if name in self.failing else list(self.records.get(name, []))


def owner(name):
    return "_mesh.%s.%s" % (name, DOMAIN)


def read(dns, fallback=None, release_fallback=None, cfg=None):
    return directory.read_directory(cfg or config(), dns.signer.public, dns.fetch, fallback or {}, release_fallback)


def test_every_member_and_the_release(signer):
    dns = Dns(signer)
    d = read(dns)
    assert sorted(d["members"]) == ["app-1", "db-1", "lb-1"]
    assert d["members"]["lb-1"]["mesh"] == "10.77.0.47"
    assert (d["release"]["active"], d["release"]["aport"]) == (IMAGE, 8921)
    assert d["texts"]["release"] == dns.records[RELEASE][0]
    assert d["texts"]["index"] == dns.records[INDEX]


def test_no_index_says_why(signer):
    dns = Dns(signer)
    dns.failing.add(INDEX)
    with pytest.raises(Bad, match="lookup failed"):
        read(dns)
    dns.failing.clear()
    dns.records[INDEX] = []
    with pytest.raises(Bad, match="no TXT record"):
        read(dns)


def test_an_index_signed_by_another_key_is_no_index(signer):
    from conftest import Signer
    dns = Dns(signer)
    dns.records[INDEX] = Signer().index(["app-1"])
    with pytest.raises(Bad, match="no complete index"):
        read(dns)


def test_a_member_without_a_valid_record_is_left_out_or_kept_from_before(signer):
    dns = Dns(signer)
    before = read(dns)
    dns.records[owner("db-1")] = []
    assert "db-1" not in read(dns)["members"]
    fallback = {n: {"record": r, "text": before["texts"]["members"][n]} for n, r in before["members"].items()}
    kept = read(dns, fallback)
    assert kept["members"]["db-1"] == before["members"]["db-1"]
    # Two valid records at once (a change under way, or a forgery with the key) are no record.
    dns.records[owner("db-1")] = [signer.node("db-1", mesh="10.77.0.5")[1], signer.node("db-1", mesh="10.77.0.6")[1]]
    assert "db-1" not in read(dns)["members"]


def test_a_record_for_another_node_does_not_count(signer):
    dns = Dns(signer)
    # db-1's name, but the record says app-1 (signed for db-1's owner).
    body = dns.records[owner("app-1")][0].rpartition(" sig=")[0]
    dns.records[owner("db-1")] = [signer.sign(owner("db-1"), body)]
    assert "db-1" not in read(dns)["members"]


def test_two_members_with_one_mesh_address_refuse_the_directory(signer):
    dns = Dns(signer, nodes=[("app-1", "app", "10.77.0.11"), ("app-2", "app", "10.77.0.11")])
    with pytest.raises(Bad, match="two members share a mesh value"):
        read(dns)


def test_the_release_kept_from_before_while_dns_has_none_valid(signer):
    dns = Dns(signer)
    before = read(dns)
    dns.records[RELEASE] = [signer.release(IMAGE, 8921), signer.release(IMAGE, 8922)]
    kept = read(dns, release_fallback=(before["release"], before["texts"]["release"]))
    assert kept["release"] == before["release"]
    assert read(dns)["release"] is None


def test_the_cache_is_verified_again_when_read(signer, tmp_path):
    dns = Dns(signer)
    d = read(dns)
    cfg = config(cache=str(tmp_path / "cache.json"))
    (tmp_path / "cache.json").write_text(json.dumps(d["texts"]))
    cached = directory.load_cache(cfg, signer.public)
    assert cached["members"] == d["members"] and cached["release"] == d["release"]
    # A cache someone changed is not believed.
    texts = dict(d["texts"], members=dict(d["texts"]["members"]))
    texts["members"]["db-1"] = texts["members"]["db-1"].replace("10.77.0.5", "10.77.0.6")
    (tmp_path / "cache.json").write_text(json.dumps(texts))
    assert "db-1" not in directory.load_cache(cfg, signer.public)["members"]
    (tmp_path / "cache.json").write_text("{")
    assert directory.load_cache(cfg, signer.public) is None
    assert directory.load_cache(config(cache=str(tmp_path / "none.json")), signer.public) is None


def test_replace_block_keeps_what_is_around_the_markers():
    text = "a\n# begin\nold\n# end\nb\n"
    assert directory.replace_block(text, "# begin", "# end", ["x", "y"]) == "a\n# begin\nx\ny\n# end\nb\n"
    assert directory.replace_block(text, "# begin", "# end", []) == "a\n# begin\n# end\nb\n"
    with pytest.raises(Bad, match="markers"):
        directory.replace_block(text, "# start", "# end", [])


def test_set_elements_from_nft_json():
    elements = ["10.77.0.6", "10.77.0.5"]
    listing = json.dumps({"nftables": [{"metainfo": {}}, {"set": {"name": "mesh_db", "elem": elements}}]})
    assert directory.set_elements(listing) == ["10.77.0.5", "10.77.0.6"]
    assert directory.set_elements(json.dumps({"nftables": [{"set": {"name": "mesh_db"}}]})) == []


RECORDER = """
import json, sys
log, state = sys.argv[1], sys.argv[2]
with open(log, "a") as f:
    f.write(json.dumps(sys.argv[3:]) + "\\n")
with open(state) as f:
    running = json.load(f)
if sys.argv[3] in ("is-enabled", "is-active"):
    sys.exit(0 if sys.argv[-1] in running else 3)
"""


class App:
    """converge_app with systemctl replaced by a recorder: what it asks of systemd, and when."""

    def __init__(self, tmp_path, running=()):
        self.dir = tmp_path
        (tmp_path / "systemctl.py").write_text(RECORDER)
        self.log = tmp_path / "systemctl.log"
        self.state = tmp_path / "running.json"
        self.state.write_text(json.dumps(list(running)))
        self.cfg = {"app": {
            "releaseEnvGlob": str(tmp_path / "release-*.env"),
            "releaseEnvFile": str(tmp_path / "release-{port}.env"),
            "webUnit": "vps-ha-app@{port}.service",
            "systemctl": [sys.executable, str(tmp_path / "systemctl.py"), str(self.log), str(self.state)],
            "retiredState": str(tmp_path / "retired.json"),
            "retireAfterSeconds": 30,
            "worker": {"unit": "vps-ha-worker.service", "envFile": str(tmp_path / "worker.env")},
        }}

    def converge(self, release):
        if self.log.exists():
            self.log.unlink()
        problems = []
        directory.converge_app(self.cfg, release, problems)
        assert problems == []
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


def release(active=IMAGE, aport=8921, candidate=None, cport=None):
    return {"kind": "release", "active": active, "aport": aport, "candidate": candidate, "cport": cport}


def test_app_starts_one_web_instance_per_image_and_the_worker_on_the_active_one(tmp_path):
    app = App(tmp_path)
    calls = app.converge(release(candidate="ghcr.io/example/app:1.5.0", cport=8140))
    # Queued, never waited for: the agent may run inside the mesh unit's own start.
    for unit in ("vps-ha-app@8140.service", "vps-ha-app@8921.service", "vps-ha-worker.service"):
        assert ["--no-block", "restart", unit] in calls
    assert not any(c[0] in ("start", "restart") for c in calls)
    assert (tmp_path / "release-8140.env").read_text() == "IMAGE=ghcr.io/example/app:1.5.0\n"
    assert (tmp_path / "worker.env").read_text() == "IMAGE=%s\n" % IMAGE


def test_app_changes_nothing_that_runs_as_the_release_says(tmp_path):
    app = App(tmp_path, running=["vps-ha-app@8921.service", "vps-ha-worker.service"])
    app.converge(release())
    assert [c[0] for c in app.converge(release())] == ["is-enabled", "is-active", "is-enabled", "is-active"]


def test_app_stops_an_image_that_left_the_release_only_after_the_grace(tmp_path, monkeypatch):
    app = App(tmp_path, running=["vps-ha-app@8921.service", "vps-ha-app@8140.service", "vps-ha-worker.service"])
    now = [1000.0]
    monkeypatch.setattr(directory.time, "time", lambda: now[0])
    app.converge(release(candidate="ghcr.io/example/app:1.5.0", cport=8140))
    # The candidate leaves the release: kept for retireAfterSeconds (HAProxy nodes move off it first).
    assert not any(c[0] == "disable" for c in app.converge(release()))
    now[0] += 29
    assert not any(c[0] == "disable" for c in app.converge(release()))
    now[0] += 2
    assert ["disable", "--now", "vps-ha-app@8140.service"] in app.converge(release())
    assert not (tmp_path / "release-8140.env").exists()
    assert json.loads((tmp_path / "retired.json").read_text()) == {}


def test_app_starts_nothing_without_a_verified_release(tmp_path):
    assert App(tmp_path).converge(None) == []


def test_prometheus_targets_follow_the_directory(tmp_path):
    members = {n: {"name": n, "role": r, "mesh": m} for n, r, m in
               [("db-1", "db", "10.77.0.5"), ("app-2", "app", "10.77.0.9"), ("app-1", "app", "10.77.0.7")]}
    cfg = {"prometheus": {"dir": str(tmp_path), "jobs": [{"name": "node", "port": 9100, "roles": ["app", "db"]},
                                                         {"name": "postgres", "port": 9187, "roles": ["db"]}]}}
    directory.converge_prometheus(cfg, members, [])
    node = json.loads((tmp_path / "node.json").read_text())
    assert node == [{"labels": {"instance": "app-1", "role": "app"}, "targets": ["10.77.0.7:9100"]},
                    {"labels": {"instance": "app-2", "role": "app"}, "targets": ["10.77.0.9:9100"]},
                    {"labels": {"instance": "db-1", "role": "db"}, "targets": ["10.77.0.5:9100"]}]
    assert json.loads((tmp_path / "postgres.json").read_text()) == [
        {"labels": {"instance": "db-1", "role": "db"}, "targets": ["10.77.0.5:9187"]}]
    # A node gone: its target goes; an unchanged set is not rewritten.
    before = os.stat(tmp_path / "postgres.json").st_mtime_ns
    del members["app-2"]
    directory.converge_prometheus(cfg, members, [])
    assert [g["labels"]["instance"] for g in json.loads((tmp_path / "node.json").read_text())] == ["app-1", "db-1"]
    assert os.stat(tmp_path / "postgres.json").st_mtime_ns == before


# ---------------------------------------------------------------- newest wins, and sanity

FLEET = [("app-1", "app", "10.77.0.11"), ("app-2", "app", "10.77.0.12"), ("app-3", "app", "10.77.0.13"),
         ("lb-1", "haproxy", "10.77.0.47"), ("db-1", "db", "10.77.0.5"), ("db-2", "db", "10.77.0.6")]


class Fleet:
    """DNS holding the directory of FLEET (or `nodes`), and this node's cache, as rounds leave them."""

    def __init__(self, signer, tmp_path, nodes=FLEET):
        self.dns = Dns(signer, nodes)
        self.signer = signer
        self.cfg = config(cache=str(tmp_path / "cache.json"))

    def publish(self, names, gen, deliberate=False, extra=()):
        """The index in DNS: one complete index per (names, gen, deliberate) in `extra` too."""
        self.dns.records[INDEX] = self.signer.index(names, gen=gen, deliberate=deliberate)
        for n, g, d in extra:
            self.dns.records[INDEX] += self.signer.index(n, gen=g, deliberate=d)

    def round(self):
        """One round's choice, from the cache the last round left: (directory, source, refused)."""
        cached = directory.load_cache(self.cfg, self.signer.public)
        return directory.select_directory(self.cfg, self.signer.public, self.dns.fetch, cached)


def names(nodes=FLEET, without=()):
    return [n for n, _, _ in nodes if n not in without]


def test_of_two_valid_indexes_the_newest_is_applied(signer, tmp_path):
    fleet = Fleet(signer, tmp_path)
    fleet.publish(names(without=["app-3"]), 5)
    assert sorted(fleet.round()[0]["members"]) == sorted(names(without=["app-3"]))
    # A newcomer's index beside the one before it (both valid, both complete): the newest counts.
    fleet.publish(names(), 6, extra=[(names(without=["app-3"]), 5, False)])
    d, source, refused = fleet.round()
    assert (source, refused, d["generation"], d["older"]) == ("dns", None, 6, [5])
    assert "app-3" in d["members"]
    # Whichever is listed first; and a first round (no cache) takes the newest too.
    fleet.publish(names(without=["app-3"]), 5, extra=[(names(), 6, False)])
    assert fleet.round()[0]["generation"] == 6
    os.unlink(fleet.cfg["cache"])
    assert fleet.round()[0]["generation"] == 6


def test_an_index_older_than_the_applied_one_is_refused(signer, tmp_path):
    fleet = Fleet(signer, tmp_path)
    fleet.publish(names(), 8)
    fleet.round()
    # A replay of an earlier, validly signed index (one node fewer) alone in DNS.
    fleet.publish(names(without=["app-3"]), 7)
    d, source, refused = fleet.round()
    assert (source, d["generation"], d["older"]) == ("cache", 8, [7])
    assert "generation 7, older than the applied 8" in refused
    assert sorted(d["members"]) == sorted(names())
    assert directory.load_cache(fleet.cfg, signer.public)["generation"] == 8
    # Another index claiming the applied generation is no better.
    fleet.publish(names(without=["app-3"]), 8)
    assert "differs from the applied one of the same generation 8" in fleet.round()[2]
    # The same index again is nothing to refuse.
    fleet.publish(names(), 8)
    assert fleet.round()[1:] == ("dns", None)


def test_the_index_before_generations_gives_way_to_the_first_new_one(signer, tmp_path):
    fleet = Fleet(signer, tmp_path)
    fleet.dns.records[INDEX] = signer.index(names(), legacy=True)
    assert fleet.round()[0]["generation"] == 0
    fleet.publish(names(), 1767225600000)
    assert fleet.round()[0]["generation"] == 1767225600000
    fleet.dns.records[INDEX] = signer.index(names(), legacy=True)
    assert "older than the applied" in fleet.round()[2]


@pytest.mark.parametrize("before, bound", [(1, 1), (2, 1), (3, 1), (5, 1), (6, 2), (9, 3), (10, 3)])
def test_a_publication_may_remove_a_third_of_a_role_rounded_down_and_always_one(before, bound):
    assert directory.removal_bound(before) == bound


def test_one_member_of_a_role_may_always_go(signer, tmp_path):
    fleet = Fleet(signer, tmp_path)
    fleet.publish(names(), 1)
    fleet.round()
    # One app node of three, and the only HAProxy node: each within the bound.
    fleet.publish(names(without=["app-3", "lb-1"]), 2)
    d, source, refused = fleet.round()
    assert (source, refused) == ("dns", None)
    assert sorted(d["members"]) == sorted(names(without=["app-3", "lb-1"]))


def test_a_large_removal_is_refused_unless_deliberate(signer, tmp_path, capsys):
    fleet = Fleet(signer, tmp_path)
    fleet.publish(names(), 1)
    fleet.round()
    capsys.readouterr()
    # Two app nodes of three, and both database members: more than a third of each.
    fleet.publish(names(without=["app-1", "app-2", "db-1", "db-2"]), 2)
    d, source, refused = fleet.round()
    assert (source, d["generation"], d["older"]) == ("cache", 1, [2])
    assert sorted(d["members"]) == sorted(names())
    assert "app: 3 -> 1 members (app-1, app-2 would go)" in refused
    assert "db: 2 -> 0 members (db-1, db-2 would go)" in refused
    assert "refusing the index of generation 2" in capsys.readouterr().out
    assert directory.load_cache(fleet.cfg, signer.public)["generation"] == 1
    # Adding nodes in the same publication does not make room for removing more.
    fleet.publish(names(without=["app-1", "app-2"]) + ["app-4"], 3)
    fleet.dns.records[owner("app-4")] = [signer.node("app-4", role="app", mesh="10.77.0.14")[1]]
    assert "app: 3 -> 1 members" in fleet.round()[2]
    # The same removal marked deliberate (the stack file removed them) is applied.
    fleet.publish(names(without=["app-1", "app-2", "db-1", "db-2"]), 4, deliberate=True)
    d, source, refused = fleet.round()
    assert (source, refused, d["generation"]) == ("dns", None, 4)
    assert sorted(d["members"]) == ["app-3", "lb-1"]
    assert directory.load_cache(fleet.cfg, signer.public)["generation"] == 4


def test_the_release_follows_dns_while_the_index_is_refused(signer, tmp_path):
    fleet = Fleet(signer, tmp_path)
    fleet.publish(names(), 1)
    fleet.round()
    fleet.publish(names(without=["app-1", "app-2"]), 2)
    fleet.dns.records[RELEASE] = [signer.release("ghcr.io/example/app:1.5.0", 8140)]
    d, _, refused = fleet.round()
    assert refused and d["release"]["active"] == "ghcr.io/example/app:1.5.0"
