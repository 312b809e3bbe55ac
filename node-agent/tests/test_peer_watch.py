import socket
import struct

from vpsha import peer_watch
from vpsha.peer_watch import Watch, checksum, echo_reply_source, echo_request


def test_checksum_as_rfc_1071_computes_it():
    # RFC 1071's worked example: 0001 f203 f4f5 f6f7 sums to ddf2, complemented 220d.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    # An odd length is padded with a zero byte.
    assert checksum(b"\x01") == checksum(b"\x01\x00")


def test_an_echo_request_checks_out():
    packet = echo_request(0x1234, 7)
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code, ident, seq) == (8, 0, 0x1234, 7)
    # A packet with its checksum in place sums to zero.
    assert checksum(packet) == 0


def ipv4(source, payload, header_words=5):
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | header_words, 0, 20 + len(payload), 0, 0, 64, 1, 0,
                         socket.inet_aton(source), socket.inet_aton("10.77.0.47"))
    return header + b"\0" * (4 * header_words - 20) + payload


def reply(ident, kind=0):
    return struct.pack("!BBHHH", kind, 0, 0, ident, 1) + b"vps-ha-peer-watch"


def test_the_source_of_a_reply_to_our_pings():
    assert echo_reply_source(ipv4("10.77.0.5", reply(0x1234)), 0x1234) == "10.77.0.5"
    # IP options move the ICMP header.
    assert echo_reply_source(ipv4("10.77.0.6", reply(0x1234), header_words=6), 0x1234) == "10.77.0.6"


def test_anything_else_is_not_a_reply():
    assert echo_reply_source(ipv4("10.77.0.5", reply(0x9999)), 0x1234) is None
    assert echo_reply_source(ipv4("10.77.0.5", reply(0x1234, kind=8)), 0x1234) is None
    assert echo_reply_source(b"\x45" * 10, 0x1234) is None
    assert echo_reply_source(ipv4("10.77.0.5", b"\0\0"), 0x1234) is None


def test_a_peer_is_gone_after_its_silence_and_back_with_its_answer():
    w = Watch(gone_after=4, stall_after=2)
    w.peers(["10.77.0.5", "10.77.0.6"], 100)
    for t in range(101, 106):
        w.tick(t)
        w.answered("10.77.0.6", t)
    assert w.gone(104) == set()
    assert w.gone(105) == {"10.77.0.5"}
    w.answered("10.77.0.5", 105)
    assert w.gone(105) == set()


def test_a_new_peer_gets_its_grace_and_one_that_left_is_forgotten():
    w = Watch(gone_after=4, stall_after=2)
    w.peers(["10.77.0.5"], 100)
    w.peers(["10.77.0.6"], 110)
    assert w.gone(110) == set()
    assert set(w.last_answer) == {"10.77.0.6"}
    # An answer from someone not in the directory changes nothing.
    w.answered("10.77.0.9", 111)
    assert set(w.last_answer) == {"10.77.0.6"}


def test_a_watch_that_stood_still_restarts_every_grace():
    w = Watch(gone_after=4, stall_after=2)
    w.peers(["10.77.0.5"], 100)
    assert w.tick(100) is False
    assert w.tick(101) is False
    # Ten seconds without a tick: this watch stood still, not the peers.
    assert w.tick(111) is True
    assert w.gone(111) == set()
    assert w.gone(116) == {"10.77.0.5"}


def test_peers_from_the_directory_cache_without_this_node(signer, write_json):
    texts = {n: signer.node(n, mesh=m)[1] for n, m in [("lb-1", "10.77.0.47"), ("db-1", "10.77.0.5")]}
    cache = write_json("cache.json", {"index": [], "members": texts, "release": None})
    assert peer_watch.directory_peers({"self": "lb-1", "directoryCache": cache}) == {"10.77.0.5": "db-1"}
    assert peer_watch.directory_peers({"self": "lb-1", "directoryCache": cache + ".missing"}) is None


def test_a_bad_argument_prints_the_usage_line(capsys):
    assert peer_watch.main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("usage: vps-ha-peer-watch ")
