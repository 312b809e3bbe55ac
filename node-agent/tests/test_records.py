import base64
import json
import os
import re

import pytest
from conftest import DOMAIN, FIXTURES, INDEX, MESH, RELEASE, ROLES
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vpsha.records import Bad, cached_members, newest_index, parse_record

IMAGE = "ghcr.io/example/app:1.4.2"


def parse(owner, text, key):
    return parse_record(owner, text, key, ROLES, MESH)


def resign(signer, owner, text, body_change):
    """`text` with its body changed and signed again (a well-signed record that is otherwise wrong)."""
    body = text.rpartition(" sig=")[0]
    return signer.sign(owner, body_change(body))


class TestVerification:
    def test_a_node_record(self, signer):
        owner, text = signer.node("db-1", role="db", mesh="10.77.0.5")
        rec = parse(owner, text, signer.public)
        assert rec["kind"] == "node"
        assert (rec["name"], rec["role"], rec["mesh"], rec["dns"]) == ("db-1", "db", "10.77.0.5", "db-1." + DOMAIN)

    def test_only_under_the_name_it_was_signed_for(self, signer):
        _, text = signer.node("db-1")
        with pytest.raises(Bad, match="bad signature"):
            parse("_mesh.db-2." + DOMAIN, text, signer.public)

    def test_only_with_the_stacks_key(self, signer):
        owner, text = signer.node("db-1")
        other = Ed25519PrivateKey.generate().public_key()
        with pytest.raises(Bad, match="bad signature"):
            parse(owner, text, other)

    def test_a_changed_body_fails(self, signer):
        owner, text = signer.node("db-1", mesh="10.77.0.5")
        with pytest.raises(Bad, match="bad signature"):
            parse(owner, text.replace("mesh=10.77.0.5", "mesh=10.77.0.6"), signer.public)

    @pytest.mark.parametrize("sig, why", [
        (None, "no signature"),
        ("not base64!", "malformed signature"),
        (base64.b64encode(b"x" * 63).decode(), "malformed signature"),
    ])
    def test_signatures_that_are_missing_or_malformed(self, signer, sig, why):
        owner, text = signer.node("db-1")
        body = text.rpartition(" sig=")[0]
        with pytest.raises(Bad, match=why):
            parse(owner, body if sig is None else "%s sig=%s" % (body, sig), signer.public)

    def test_a_signature_in_non_canonical_base64(self, signer):
        owner, text = signer.node("db-1")
        body, _, sig = text.rpartition(" sig=")
        # 64 bytes end in one byte over two characters and "==": the second character's low
        # four bits carry nothing, so another value there decodes to the same signature.
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        flipped = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + sig[-2:]
        assert base64.b64decode(flipped) == base64.b64decode(sig)
        with pytest.raises(Bad, match="malformed signature"):
            parse(owner, "%s sig=%s" % (body, flipped), signer.public)


class TestFields:
    def test_unknown_version(self, signer):
        owner, text = signer.node("db-1")
        text = resign(signer, owner, text, lambda b: b.replace("v=vh1", "v=vh2"))
        with pytest.raises(Bad, match="unknown version 'vh2'"):
            parse(owner, text, signer.public)

    def test_fields_out_of_order(self, signer):
        owner, text = signer.node("db-1")
        text = resign(signer, owner, text, lambda b: b.replace("name=db-1 role=db", "role=db name=db-1"))
        with pytest.raises(Bad, match="unexpected fields v kind role name"):
            parse(owner, text, signer.public)

    def test_a_field_without_a_value_sign(self, signer):
        owner, text = signer.node("db-1")
        text = resign(signer, owner, text, lambda b: b + " extra")
        with pytest.raises(Bad, match="malformed field 'extra'"):
            parse(owner, text, signer.public)

    @pytest.mark.parametrize("change, why", [
        (lambda b: b.replace("mesh=10.77.0.5", "mesh=10.78.0.5"), "mesh address outside 10.77.0.0/24"),
        (lambda b: b.replace("mesh=10.77.0.5", "mesh=10.77.0.05"), "malformed mesh address or key"),
        (lambda b: b.replace("role=db", "role=cache"), "malformed name, role or DNS name"),
        (lambda b: b.replace("name=db-1", "name=DB_1"), "malformed name, role or DNS name"),
    ])
    def test_node_records_that_are_signed_but_wrong(self, signer, change, why):
        owner, text = signer.node("db-1", mesh="10.77.0.5")
        with pytest.raises(Bad, match=why):
            parse(owner, resign(signer, owner, text, change), signer.public)

    def test_a_wireguard_key_of_the_wrong_length(self, signer):
        owner, text = signer.node("db-1", wg=base64.b64encode(b"k" * 31).decode())
        with pytest.raises(Bad, match="malformed key"):
            parse(owner, text, signer.public)


class TestRelease:
    def test_active_only(self, signer):
        rec = parse(RELEASE, signer.release(IMAGE, 8921), signer.public)
        assert rec == {"kind": "release", "active": IMAGE, "aport": 8921, "candidate": None, "cport": None}

    def test_with_a_candidate(self, signer):
        rec = parse(RELEASE, signer.release(IMAGE, 8921, "ghcr.io/example/app:1.5.0", 8140), signer.public)
        assert (rec["candidate"], rec["cport"]) == ("ghcr.io/example/app:1.5.0", 8140)

    @pytest.mark.parametrize("args, why", [
        ((IMAGE, 8921, IMAGE, 8921), "the candidate's port is the active image's"),
        ((IMAGE, 0), "malformed port '0'"),
        ((IMAGE, 65536), "malformed port '65536'"),
        (("ghcr.io/example/app", 8921), "malformed active image"),
        ((IMAGE, 8921, "-", 8140), "malformed candidate image"),
        ((IMAGE, 8921, IMAGE, "-"), "malformed port '-'"),
    ])
    def test_refused(self, signer, args, why):
        with pytest.raises(Bad, match=why):
            parse(RELEASE, signer.release(*args), signer.public)


class TestIndex:
    def test_one_part(self, signer):
        (text,) = signer.index(["app-1", "db-1"], gen=1767225600000)
        rec = parse(INDEX, text, signer.public)
        assert (rec["part"], rec["parts"], rec["members"]) == (1, 1, ["app-1", "db-1"])
        assert (rec["generation"], rec["deliberate"]) == (1767225600000, False)
        (text,) = signer.index(["app-1"], gen=2, deliberate=True)
        assert parse(INDEX, text, signer.public)["deliberate"] is True

    def test_the_format_before_generations_is_generation_0(self, signer):
        (text,) = signer.index(["app-1", "db-1"], legacy=True)
        rec = parse(INDEX, text, signer.public)
        assert (rec["generation"], rec["deliberate"], rec["members"]) == (0, False, ["app-1", "db-1"])

    @pytest.mark.parametrize("change", [
        lambda b: b.replace("part=1/1", "part=2/1"),
        lambda b: b.replace("part=1/1", "part=0/1"),
        lambda b: b.replace("members=app-1,db-1", "members=app-1,,db-1"),
        lambda b: re.sub(r"set=\S+", "set=xyz", b),
        lambda b: b.replace("gen=1 ", "gen=01 "),
        lambda b: b.replace("gen=1 ", "gen=x "),
        lambda b: b.replace("gen=1 ", "gen=12345678901234567 "),
        lambda b: b.replace("removal=bounded", "removal=yes"),
    ])
    def test_malformed_parts(self, signer, change):
        (text,) = signer.index(["app-1", "db-1"])
        with pytest.raises(Bad, match="malformed index part"):
            parse(INDEX, resign(signer, INDEX, text, change), signer.public)

    def found(self, signer, texts):
        return [(parse(INDEX, t, signer.public), t) for t in texts]

    def test_the_member_list_from_its_parts_in_order(self, signer):
        names = ["app-1", "app-2", "db-1"]
        texts = signer.index(names, parts=[["app-1"], ["app-2", "db-1"]], gen=5, deliberate=True)
        newest, older = newest_index(self.found(signer, list(reversed(texts))))
        assert newest == {"generation": 5, "deliberate": True, "names": names, "texts": texts}
        assert older == []

    def test_a_missing_part_gives_no_index(self, signer):
        texts = signer.index(["app-1", "db-1"], parts=[["app-1"], ["db-1"]])
        with pytest.raises(Bad, match="no complete index"):
            newest_index(self.found(signer, texts[:1]))

    def test_an_update_under_way_keeps_the_complete_set(self, signer):
        old = signer.index(["app-1", "db-1"], gen=1)
        new = signer.index(["app-1", "db-1", "db-2"], parts=[["app-1"], ["db-1", "db-2"]], gen=2)
        newest, _ = newest_index(self.found(signer, old + new[:1]))
        assert newest["names"] == ["app-1", "db-1"]

    def test_parts_of_two_generations_of_one_member_list_do_not_mix(self, signer):
        one = signer.index(["app-1", "db-1"], parts=[["app-1"], ["db-1"]], gen=1)
        two = signer.index(["app-1", "db-1"], parts=[["app-1"], ["db-1"]], gen=2, deliberate=True)
        with pytest.raises(Bad, match="no complete index"):
            newest_index(self.found(signer, [one[0], two[1]]))

    def test_of_two_complete_indexes_the_newest_counts(self, signer):
        texts = signer.index(["app-1", "db-1", "app-2"], gen=9) + signer.index(["app-1", "db-1"], gen=7)
        found = self.found(signer, texts)
        newest, older = newest_index(found)
        assert (newest["generation"], newest["names"], older) == (9, ["app-1", "db-1", "app-2"], [7])
        # Whatever order DNS answers in.
        assert newest_index(list(reversed(found)))[0]["generation"] == 9

    def test_two_complete_indexes_of_one_generation_are_refused(self, signer):
        found = self.found(signer, signer.index(["app-1"], gen=3) + signer.index(["app-1", "db-1"], gen=3))
        with pytest.raises(Bad, match="more than one complete index of generation 3"):
            newest_index(found)

    def test_a_set_whose_digest_does_not_match_its_members(self, signer):
        texts = signer.index(["app-1", "db-1"], digest="0123456789abcdef")
        with pytest.raises(Bad, match="no complete index"):
            newest_index(self.found(signer, texts))


class TestCache:
    def test_members_fields_from_the_agents_cache(self, signer, write_json):
        nodes = [("lb-1", "haproxy", "10.77.0.47"), ("db-1", "db", "10.77.0.5")]
        texts = {n: signer.node(n, role=r, mesh=m)[1] for n, r, m in nodes}
        members = cached_members(write_json("cache.json", {"index": [], "members": texts, "release": None}))
        assert sorted(members) == ["db-1", "lb-1"]
        assert (members["lb-1"]["role"], members["lb-1"]["mesh"]) == ("haproxy", "10.77.0.47")
        assert "sig" not in members["lb-1"]

    def test_a_text_that_does_not_parse_is_left_out(self, signer, write_json):
        texts = {"db-1": signer.node("db-1")[1], "db-2": "v=vh1 kind=node name=db-2"}
        assert sorted(cached_members(write_json("cache.json", {"members": texts}))) == ["db-1"]

    @pytest.mark.parametrize("content", ["{", "[]", json.dumps({"index": []})])
    def test_an_unreadable_cache_is_none(self, tmp_path, content):
        path = tmp_path / "cache.json"
        path.write_text(content)
        assert cached_members(str(path)) is None
        assert cached_members(str(tmp_path / "missing.json")) is None


def test_records_as_the_program_signs_them():
    """Records components/directory-records.ts made (test/node-agent.test.ts keeps the file in step)."""
    with open(os.path.join(FIXTURES, "records.json")) as f:
        fixture = json.load(f)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(fixture["publicKey"]))
    parsed = [parse_record(r["owner"], r["text"], key, ROLES, MESH) for r in fixture["records"]]
    assert [p["kind"] for p in parsed] == [r["kind"] for r in fixture["records"]]
    for p, r in zip(parsed, fixture["records"], strict=True):
        assert {k: p[k] for k in r["expect"]} == r["expect"]
    index = [(p, r["text"]) for p, r in zip(parsed, fixture["records"], strict=True) if p["kind"] == "index"]
    newest, older = newest_index(index)
    assert len(newest["texts"]) > 1 and newest["names"] == [n for p, _ in index for n in p["members"]] and older == []
    # The same texts under another owner, or with another key, do not verify.
    other = Ed25519PrivateKey.generate().public_key()
    for r in fixture["records"]:
        with pytest.raises(Bad, match="bad signature"):
            parse_record(r["owner"] + ".other", r["text"], key, ROLES, MESH)
        with pytest.raises(Bad, match="bad signature"):
            parse_record(r["owner"], r["text"], other, ROLES, MESH)
