#!/usr/bin/env python3
"""Scores what `levee replay --dropped` did to a labelled capture (scenarios.py):
prints one JSON object with the share of the attack dropped from 1 s after the
onset, the share of legitimate traffic to the target delivered, legitimate
packets lost before the onset, and the time from the onset until every later
100 ms of the attack is at least 99% dropped. No dependencies.

  score.py CAPTURE.pcap DROPPED.pcap [CHALLENGED.pcap]

With the SYNs levee would have answered with a SYN authentication challenge
(`levee replay --challenged`), a legitimate client's challenged SYN counts as
delivered: a real TCP stack answers the challenge and its retransmitted SYN
goes through (shown live by scripts/lab-spoofed-tcp.sh), at the cost of one
retransmission. A spoofed source cannot answer, so the attack's challenged
SYNs stay dropped.
"""
import ipaddress
import json
import struct
import sys


def packets(path):
    """(timestamp, src, dst) of each IPv4 packet of a pcap (microsecond or ns)."""
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _ = struct.unpack("<IIII", rec)
            frame = f.read(incl)
            off = 14
            ethertype = struct.unpack("!H", frame[12:14])[0]
            while ethertype in (0x8100, 0x88A8):
                ethertype = struct.unpack("!H", frame[off + 2:off + 4])[0]
                off += 4
            if ethertype != 0x0800 or len(frame) < off + 20:
                continue
            yield sec + frac * scale, frame[off + 12:off + 16], frame[off + 16:off + 20]


def main():
    capture, dropped = sys.argv[1], sys.argv[2]
    challenged = sys.argv[3] if len(sys.argv) > 3 else None
    with open(capture + ".json") as f:
        meta = json.load(f)
    target = ipaddress.IPv4Address(meta["target"]).packed
    legit_nets = [ipaddress.ip_network(n) for n in meta["legit"]]
    onset, end = meta["onset"], meta["end"]

    def legit(src):
        a = ipaddress.IPv4Address(src)
        return any(a in n for n in legit_nets)

    def tally(path):
        t = {"attack": 0, "attack_late": 0, "legit": 0, "legit_early": 0, "bins": {}}
        for ts, src, dst in packets(path):
            if dst != target:
                continue
            if legit(src):
                t["legit"] += 1
                t["legit_early"] += ts < onset
            else:
                t["attack"] += 1
                t["attack_late"] += ts >= onset + 1.0
                b = int((ts - onset) * 10)
                t["bins"][b] = t["bins"].get(b, 0) + 1
        return t

    sent, gone = tally(capture), tally(dropped)
    asked = tally(challenged) if challenged else {"legit": 0, "attack": 0}
    # Time to 99%: the first 100 ms bin from which every later bin of the attack
    # is at least 99% dropped.
    last_bad = -1
    for b in sorted(sent["bins"]):
        if gone["bins"].get(b, 0) < 0.99 * sent["bins"][b]:
            last_bad = b
    bins = sorted(sent["bins"])
    to_99 = None if not bins or last_bad == bins[-1] else (last_bad + 1) * 100
    share = lambda a, b: round(a / b, 5) if b else None
    print(json.dumps({
        "scenario": meta["scenario"],
        "attack_packets": sent["attack"],
        "attack_dropped_after_1s": share(gone["attack_late"], sent["attack_late"]),
        "legit_packets": sent["legit"],
        "legit_delivered": share(sent["legit"] - gone["legit"] + asked["legit"], sent["legit"]),
        "legit_challenged": share(asked["legit"], sent["legit"]),
        "attack_challenged": share(asked["attack"], sent["attack"]),
        "legit_lost_before_onset": gone["legit_early"],
        "ms_to_99pct_dropped": to_99,
    }))


if __name__ == "__main__":
    main()
