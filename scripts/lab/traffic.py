#!/usr/bin/env python3
"""The lab's traffic.

  traffic.py legit --server IP --rate N --duration S --out FILE.jsonl
      HTTP GETs (a new connection each) and UDP echo exchanges toward the
      server, N a second in all; one JSON line per exchange: at, kind, ok, ms.

  traffic.py count --iface IF --out FILE.jsonl
      The interface's received packets every 50 ms (for what reaches the
      server): one JSON line each: at, rx.

  traffic.py attack --kind KIND[,KIND...] --pps N --duration S --iface IF
                    --dst-mac MAC --target IP [--sources N|spoofed]
      Raw frames at N packets a second from an AF_PACKET socket; the frames
      are attack-capture.py's (udp syn synack ack rst icmp frag gre dns ntp
      memcached ssdp cldap chargen snmp wsd ard carpet-udp ...). Prints one
      JSON object: when the first and last frames left, and how many.
"""
import argparse
import json
import os
import random
import socket
import sys
import time
import urllib.request

import labkit


def legit(a):
    out = open(a.out, "a", buffering=1)
    period = 1.0 / a.rate
    end = time.time() + a.duration
    n = 0
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(1.0)
    next_at = time.time()
    while time.time() < end:
        now = time.time()
        if now < next_at:
            time.sleep(next_at - now)
        next_at += period
        n += 1
        started = time.time()
        if n % 2:
            kind = "http"
            try:
                with urllib.request.urlopen("http://%s:8080/" % a.server, timeout=1.0) as r:
                    ok = r.status == 200 and r.read() == b"levee lab: ok\n"
            except Exception:
                ok = False
        else:
            kind = "udp"
            token = os.urandom(8)
            try:
                udp.sendto(token, (a.server, 9000))
                data = b""
                while data != token:
                    data, _ = udp.recvfrom(2048)
                ok = True
            except Exception:
                ok = False
        out.write(json.dumps({"at": started, "kind": kind, "ok": ok, "ms": (time.time() - started) * 1000}) + "\n")


def count(a):
    out = open(a.out, "a", buffering=1)
    path = "/sys/class/net/%s/statistics/rx_packets" % a.iface
    while True:
        with open(path) as f:
            out.write(json.dumps({"at": time.time(), "rx": int(f.read())}) + "\n")
        time.sleep(0.05)


def frames(a):
    capture = labkit.attack_capture()
    pool = labkit.FramePool()
    rng = random.Random(a.seed)
    kinds = a.kind.split(",")
    # Enough distinct frames that spoofed sources do not repeat soon.
    per_kind = max(2000, min(200000, int(a.pps * 2))) // len(kinds)
    for kind in kinds:
        capture.attack(pool, rng, kind, 0.0, 1.0, per_kind, a.target, a.sources)
    rng.shuffle(pool.frames)
    dst = bytes.fromhex(a.dst_mac.replace(":", ""))
    src = bytes.fromhex(open("/sys/class/net/%s/address" % a.iface).read().strip().replace(":", ""))
    return [dst + src + f[12:] for f in pool.frames]


def attack(a):
    pool = frames(a)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    sent = 0
    first = None
    start = time.time()
    end = start + a.duration
    i = 0
    while True:
        now = time.time()
        if now >= end:
            break
        due = int((now - start) * a.pps) + 1 - sent
        for _ in range(min(due, 256)):
            if first is None:
                first = time.time()
            try:
                s.send(pool[i])
                sent += 1
            except OSError:
                pass  # a full queue: the frame is lost, as on a wire
            i = (i + 1) % len(pool)
        if due <= 0:
            time.sleep(0.0005)
    print(json.dumps({"kind": a.kind, "first_sent_at": first, "last_sent_at": time.time(), "sent": sent, "pps": a.pps}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("legit")
    l.add_argument("--server", required=True)
    l.add_argument("--rate", type=float, default=50)
    l.add_argument("--duration", type=float, required=True)
    l.add_argument("--out", required=True)
    c = sub.add_parser("count")
    c.add_argument("--iface", required=True)
    c.add_argument("--out", required=True)
    t = sub.add_parser("attack")
    t.add_argument("--kind", required=True)
    t.add_argument("--pps", type=float, required=True)
    t.add_argument("--duration", type=float, required=True)
    t.add_argument("--iface", required=True)
    t.add_argument("--dst-mac", required=True)
    t.add_argument("--target", required=True)
    t.add_argument("--sources", default="spoofed")
    t.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.cmd == "legit":
        legit(a)
    elif a.cmd == "count":
        count(a)
    else:
        attack(a)


if __name__ == "__main__":
    sys.exit(main())
