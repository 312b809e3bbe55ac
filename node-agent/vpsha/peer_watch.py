"""vps-ha peer watch: TCP to a mesh peer that stopped answering is refused at once.

Pings every peer in the directory agent's last verified directory each probeEverySeconds; a peer
silent for goneAfterSeconds goes into an nftables set whose TCP gets a reset from this node, so
callers stop waiting out their own timeouts on a dead server (render/peer-watch.ts says why).
ICMP is left alone: the first answer takes the peer out again. A watch that itself stood still
gives every peer a new grace period rather than shutting them all out.

usage: vps-ha-peer-watch [--config FILE]
"""
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

from vpsha.records import cached_members

CONFIG = "/etc/vps-ha/peer-watch.json"
ECHO_REQUEST, ECHO_REPLY = 8, 0


def log(msg):
    print("vps-ha-peer-watch: %s" % msg, flush=True)


# RFC 1071
def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident, seq):
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    payload = b"vps-ha-peer-watch"
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(header + payload), ident, seq) + payload


def echo_reply_source(packet, ident):
    """The sender's address if `packet` (IPv4 header included) is a reply to our pings."""
    if len(packet) < 20:
        return None
    start = (packet[0] & 0x0F) * 4
    if len(packet) < start + 8:
        return None
    kind, _code, _sum, reply_ident, _seq = struct.unpack("!BBHHH", packet[start:start + 8])
    if kind != ECHO_REPLY or reply_ident != ident:
        return None
    return socket.inet_ntoa(packet[12:16])


def directory_peers(cfg):
    """{mesh address: name} of every other member, from the directory agent's last verified copy."""
    members = cached_members(cfg["directoryCache"])
    if members is None:
        return None
    return {f["mesh"]: name for name, f in members.items() if name != cfg["self"] and f.get("mesh")}


class Watch:
    """Who answered when."""

    def __init__(self, gone_after, stall_after):
        self.gone_after = gone_after
        self.stall_after = stall_after
        self.last_answer = {}
        self.last_tick = None

    def peers(self, addresses, now):
        # A new peer starts with a full grace period; a peer that left the directory is forgotten.
        self.last_answer = {a: self.last_answer.get(a, now) for a in addresses}

    def answered(self, address, now):
        if address in self.last_answer:
            self.last_answer[address] = now

    def tick(self, now):
        """Returns True if this watch stood still since the last tick (every peer's grace restarts)."""
        stalled = self.last_tick is not None and now - self.last_tick > self.stall_after
        self.last_tick = now
        if stalled:
            self.last_answer = {a: now for a in self.last_answer}
        return stalled

    def gone(self, now):
        return {a for a, t in self.last_answer.items() if now - t > self.gone_after}


def apply(cfg, gone):
    """Makes the nftables set hold exactly `gone` (one transaction)."""
    n = cfg["nftables"]
    target = "%s %s %s" % (n["family"], n["table"], n["set"])
    script = "flush set %s\n" % target
    if gone:
        script += "add element %s { %s }\n" % (target, ", ".join(sorted(gone)))
    r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=10)
    return r.returncode == 0, r.stderr.strip()


def main(argv):
    path = CONFIG
    if argv[:1] == ["--config"] and len(argv) == 2:
        path = argv[1]
    elif argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(path) as f:
        cfg = json.load(f)
    every = float(cfg["probeEverySeconds"])
    watch = Watch(float(cfg["goneAfterSeconds"]), 2 * every)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    names, applied, applied_at, seq, last_error = {}, None, 0.0, 0, None
    next_probe = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_probe:
            found = directory_peers(cfg)
            if found is not None:
                names = found
                watch.peers(names, now)
            if watch.tick(now):
                log("this watch stood still for a while; every peer gets %.0f s to answer again" % watch.gone_after)
            seq = (seq + 1) & 0xFFFF
            for address in names:
                try:
                    sock.sendto(echo_request(ident, seq), (address, 0))
                except OSError:
                    # No route yet (the mesh is coming up): the peer just does not answer
                    pass
            gone = watch.gone(now)
            if gone != applied or now - applied_at > cfg["reapplySeconds"]:
                ok, error = apply(cfg, gone)
                if ok:
                    for a in sorted(gone - (applied or set())):
                        log("%s (%s) has not answered for %.0f s: connections to it are refused"
                            % (a, names.get(a, "?"), watch.gone_after))
                    for a in sorted((applied or set()) - gone):
                        log("%s (%s) answers again" % (a, names.get(a, "gone from the directory")))
                    applied, applied_at, last_error = gone, now, None
                elif error != last_error:
                    log("could not update the firewall set (trying again): %s" % error)
                    last_error = error
            next_probe = now + every
        ready, _, _ = select.select([sock], [], [], max(0.0, next_probe - time.monotonic()))
        if ready:
            source = echo_reply_source(sock.recv(2048), ident)
            if source:
                watch.answered(source, time.monotonic())

