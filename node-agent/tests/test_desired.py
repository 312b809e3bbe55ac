"""The desired-state reader on records the program built (fixtures/desired.json, made and kept
current by test/desired-state.test.ts): what it accepts, what it refuses, and what it keeps."""

import base64
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vpsha import desired

with open(os.path.join(os.path.dirname(__file__), "fixtures", "desired.json")) as _f:
    FIX = json.load(_f)
GEN = FIX["generations"]
KEY = Ed25519PublicKey.from_public_bytes(base64.b64decode(FIX["publicKey"]))
OWN = X25519PrivateKey.from_private_bytes(base64.b64decode(FIX["wireguardPrivateKey"]))


@pytest.fixture
def cfg(tmp_path):
    log = tmp_path / "restarts.log"
    systemctl = tmp_path / "systemctl"
    # Stands in for systemctl: records what the reader asks to restart.
    systemctl.write_text('#!/bin/sh\necho "$@" >> %s\n' % log)
    systemctl.chmod(0o755)
    return {
        "stack": FIX["stack"], "node": FIX["node"], "dnsName": FIX["dnsName"], "publicKey": FIX["publicKey"],
        "stateDir": str(tmp_path / "state"), "status": str(tmp_path / "run" / "status.json"),
        "root": str(tmp_path / "root"), "systemctl": [str(systemctl)],
    }


def zone(cfg, gen):
    """fetch(name) over the records of one fixture generation."""
    records = {desired.head_name(cfg): [gen["head"]]}
    records.update({desired.chunk_name(cfg, k): [t] for k, t in enumerate(gen["chunks"], 1)})
    return lambda name: records.get(name, [])


def down(name):
    raise desired.Unavailable("DNS lookup of %s failed: The DNS operation timed out." % name)


def on_node(cfg, path):
    with open(cfg["root"] + path) as f:
        return f.read()


def test_verifies_and_opens_what_the_program_built(cfg):
    for which in ("first", "second"):
        g = GEN[which]
        generation, doc = desired.verify_records(cfg, KEY, OWN, g["head"], g["chunks"])
        assert generation == g["generation"]
        assert doc["files"] == g["content"]["files"]
        assert doc["restarts"] == g["content"].get("restarts", [])
    assert len(GEN["second"]["chunks"]) > 1


@pytest.mark.parametrize("which,why", [
    ("signedByOther", "bad signature on the head"),
    ("sealedToOther", "does not open with this node's key"),
    ("otherNode", "the head is for node db-2"),
])
def test_refuses_what_is_not_signed_for_or_sealed_to_this_node(cfg, which, why):
    g = GEN[which]
    with pytest.raises(desired.Bad, match=why):
        desired.verify_records(cfg, KEY, OWN, g["head"], g["chunks"])


def test_another_stack_or_key_does_not_verify(cfg):
    g = GEN["first"]
    with pytest.raises(desired.Bad, match="bad signature"):
        desired.verify_records({**cfg, "stack": "staging"}, KEY, OWN, g["head"], g["chunks"])
    other = Ed25519PublicKey.from_public_bytes(base64.b64decode(FIX["otherPublicKey"]))
    with pytest.raises(desired.Bad, match="bad signature"):
        desired.verify_records(cfg, other, OWN, g["head"], g["chunks"])


def test_never_mixes_generations_or_takes_tampered_chunks(cfg):
    first, second = GEN["first"], GEN["second"]
    mixed = [first["chunks"][0]] + second["chunks"][1:]
    with pytest.raises(desired.Bad, match=r"chunk 1 is of generation \d+, the head's is \d+"):
        desired.verify_records(cfg, KEY, OWN, second["head"], mixed)
    with pytest.raises(desired.Bad, match="chunks found, the head names"):
        desired.verify_records(cfg, KEY, OWN, second["head"], second["chunks"][:-1])
    last = second["chunks"][-1]
    flipped = last[:-2] + ("A" if last[-2] != "A" else "B") + last[-1]
    with pytest.raises(desired.Bad, match="digest"):
        desired.verify_records(cfg, KEY, OWN, second["head"], second["chunks"][:-1] + [flipped])


def test_applies_then_an_equal_generation_is_nothing_to_do(cfg):
    code, status = desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["first"]), now=1000)
    assert code == desired.EXIT_APPLIED
    assert status["generation"] == GEN["first"]["generation"] and status["applied"] and status["lastError"] is None
    assert status["changed"] == ["/root/.ssh/authorized_keys"]
    path = cfg["root"] + "/root/.ssh/authorized_keys"
    assert on_node(cfg, "/root/.ssh/authorized_keys") == GEN["first"]["content"]["files"][0]["content"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    code, status = desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["first"]), now=1010)
    assert (code, status["changed"]) == (desired.EXIT_APPLIED, [])
    with open(cfg["status"]) as f:
        assert json.load(f)["generation"] == GEN["first"]["generation"]


def test_newer_generation_restarts_units_whose_files_changed_and_older_is_refused(cfg):
    desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["first"]), now=1000)
    code, status = desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["second"]), now=1100)
    assert code == desired.EXIT_APPLIED
    assert status["changed"] == ["/etc/vps-ha/example.conf", "/root/.ssh/authorized_keys"]
    with open(os.path.join(os.path.dirname(cfg["systemctl"][0]), "restarts.log")) as f:
        assert f.read() == "restart example.service\n"
    code, status = desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["first"]), now=1200)
    assert code == desired.EXIT_STALE
    assert "older than the applied" in status["lastError"]
    assert status["generation"] == GEN["second"]["generation"] and status["published"] == GEN["first"]["generation"]
    assert status["staleSeconds"] == 100
    assert on_node(cfg, "/root/.ssh/authorized_keys") == GEN["second"]["content"]["files"][1]["content"]


def test_dns_down_keeps_the_applied_state_and_reports_staleness(cfg):
    code, status = desired.one_round(cfg, KEY, OWN, down, now=500)
    assert code == desired.EXIT_NOTHING and status["generation"] is None
    desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["first"]), now=1000)
    code, status = desired.one_round(cfg, KEY, OWN, down, now=1090)
    assert code == desired.EXIT_STALE
    assert status["generation"] == GEN["first"]["generation"] and not status["applied"]
    assert status["staleSeconds"] == 90 and "timed out" in status["lastError"]
    assert on_node(cfg, "/root/.ssh/authorized_keys") == GEN["first"]["content"]["files"][0]["content"]


def test_a_tampered_state_file_is_not_trusted(cfg):
    desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["second"]), now=1000)
    path = os.path.join(cfg["stateDir"], "applied.json")
    with open(path) as f:
        state = json.load(f)
    state["generation"] += 1
    with open(path, "w") as f:
        json.dump(state, f)
    assert desired.load_applied(cfg, KEY, OWN) is None


def test_reads_the_private_key_from_the_wireguard_config(tmp_path):
    conf = tmp_path / "wg0.conf"
    conf.write_text("[Interface]\nAddress = 10.77.0.9/16\nPrivateKey = %s\n" % FIX["wireguardPrivateKey"])
    raw = (Encoding.Raw, PublicFormat.Raw)
    read = desired.wireguard_private_key(str(conf))
    assert read.public_key().public_bytes(*raw) == OWN.public_key().public_bytes(*raw)
    conf.write_text("[Interface]\nPrivateKey = not-base64!\n")
    with pytest.raises(desired.Bad, match="not 32 bytes"):
        desired.wireguard_private_key(str(conf))


def test_a_failed_restart_is_tried_again_until_it_succeeds(cfg, tmp_path):
    desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["first"]), now=1000)
    log = tmp_path / "restarts.log"
    # The unit fails to restart once, then restarts.
    flag = tmp_path / "fail-once"
    flag.write_text("")
    with open(cfg["systemctl"][0], "w") as f:
        f.write('#!/bin/sh\necho "$@" >> %s\n' % log)
        f.write("if [ -e %s ]; then rm %s; echo failed >&2; exit 1; fi\n" % (flag, flag))
    code, status = desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["second"]), now=1100)
    assert code == desired.EXIT_STALE and "restarting example.service: failed" in status["lastError"]
    assert status["generation"] == GEN["first"]["generation"], "not applied while a restart failed"
    code, status = desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["second"]), now=1110)
    assert code == desired.EXIT_APPLIED and status["changed"] == []
    assert log.read_text() == "restart example.service\nrestart example.service\n"
    code, status = desired.one_round(cfg, KEY, OWN, zone(cfg, GEN["second"]), now=1120)
    assert log.read_text().count("restart") == 2, "nothing pending once it succeeded"


def test_a_bad_config_is_named_not_a_traceback(cfg, tmp_path):
    path = tmp_path / "desired.json"
    path.write_text(json.dumps({**cfg, "wireguardConfig": "/w", "publicKey": "abc"}))
    with pytest.raises(SystemExit, match="publicKey is 'abc'; expected a raw Ed25519 public key"):
        desired.load_config(str(path))
    path.write_text(json.dumps({**cfg, "wireguardConfig": "/w", "node": "DB 1"}))
    with pytest.raises(SystemExit, match="node is 'DB 1'; expected a lower-case DNS label"):
        desired.load_config(str(path))
    path.write_text(json.dumps({**cfg, "wireguardConfig": "/w"}))
    loaded, _ = desired.load_config(str(path))
    assert loaded["node"] == "db-1"
