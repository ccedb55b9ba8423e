#!/usr/bin/env python3
"""Captures for the mitigation matrix: legitimate traffic and an attack toward a
protected host, each packet labelled by its source, with a sidecar file that says
which sources are legitimate. No dependencies.

  scenarios.py NAME OUT.pcap      writes OUT.pcap and OUT.pcap.json
  scenarios.py --list             the scenario names

The sidecar holds the target, the attack's onset and end (Unix seconds) and the
legitimate source prefixes; every other source toward the target is the attack's.
Legitimate clients live in 100.64.0.0/10; resolvers' upstreams and a carrier-grade
NAT in 100.100.0.0/16; bots in 198.18.0.0/15; spoofed sources are random outside
those and the protected 10.0.0.0/8.
"""
import importlib.util
import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("capture", os.path.join(HERE, "..", "attack-capture.py"))
cap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cap)

START = 1_760_000_000.0
TARGET = "10.0.0.1"
SERVERS = ["10.0.0.%d" % h for h in range(1, 5)]
LEGIT = ["100.64.0.0/10", "100.100.0.0/16"]
ONSET, ATTACK_S, TAIL_S = 8.0, 6.0, 3.0
DURATION = ONSET + ATTACK_S + TAIL_S


def bots(n):
    return ["198.%d.%d.%d" % (18 + (i >> 16), (i >> 8) & 255, 1 + (i & 255) % 254) for i in range(n)]


def spoofed_source(rng):
    while True:
        a = rng.getrandbits(32)
        first, second = a >> 24, (a >> 16) & 255
        if first in (0, 10, 127) or first >= 224 or (first == 100 and 64 <= second < 128):
            continue
        return struct.pack("!I", a)


def clients(rng, n, prefix="100.64"):
    return ["%s.%d.%d" % (prefix, rng.randrange(0, 256), rng.randrange(1, 255)) for _ in range(n)]


def web_and_dns(w, rng, pps, servers=SERVERS, pool=None):
    """Sessions of the capture's normal traffic (TCP to 443, DNS to 53), both ways."""
    cap.normal_traffic(w, rng, DURATION, lambda t: pps, servers, pool or clients(rng, 600))


def flood(w, rng, sources, total_pps, make, start=ONSET, duration=ATTACK_S):
    """`total_pps` spread over `sources` (addresses, or None: spoofed), each
    source at a steady rate with its own TTL."""
    n = int(total_pps * duration)
    ttls = {}
    for _ in range(n):
        t = start + rng.random() * duration
        if sources is None:
            src, ttl = spoofed_source(rng), rng.randrange(30, 250)
        else:
            a = sources[rng.randrange(len(sources))]
            ttl = ttls.setdefault(a, rng.randrange(40, 120))
            src = cap.ip4(a)
        w.add(t, make(src, ttl))


def udp_flood(rng, size=200):
    def make(src, ttl):
        return cap.udp(src, cap.ip4(TARGET), rng.randrange(1024, 65535), rng.randrange(1, 65535), b"\xaa" * size, ttl)
    return make


def botnet(n, per_source_pps):
    def build(w, rng):
        web_and_dns(w, rng, 1500)
        flood(w, rng, bots(n), n * per_source_pps, udp_flood(rng))
    return build


def syn_flood_real(w, rng):
    web_and_dns(w, rng, 1500)
    def make(src, ttl):
        return cap.tcp(src, cap.ip4(TARGET), rng.randrange(1024, 65535), 443, 0x02, ttl=ttl, seq=rng.getrandbits(32))
    flood(w, rng, bots(1000), 1000 * 40, make)


def reflection_on_resolver(w, rng):
    """The target is a DNS resolver: clients ask it, it asks its upstreams (whose
    answers come from port 53), and 3000 open resolvers reflect DNS answers at it."""
    web_and_dns(w, rng, 600)
    resolver = cap.ip4(TARGET)
    upstreams = ["100.100.1.%d" % i for i in range(1, 9)]
    pool = clients(rng, 800, "100.66")
    t = 0.0
    while t < DURATION:
        t += rng.expovariate(800.0)
        c, sport = cap.ip4(pool[rng.randrange(len(pool))]), rng.randrange(1024, 65000)
        w.add(t, cap.udp(c, resolver, sport, 53, b"q" * 36, 52))
        if rng.random() < 0.4:  # a cache miss: ask an upstream
            u, qport = cap.ip4(upstreams[rng.randrange(len(upstreams))]), rng.randrange(1024, 65000)
            w.add(t + 0.0002, cap.udp(resolver, u, qport, 53, b"q" * 36, 64))
            w.add(t + 0.004, cap.udp(u, resolver, 53, qport, b"r" * rng.randrange(80, 1300), 57))
        w.add(t + 0.005, cap.udp(resolver, c, 53, sport, b"a" * 120, 64))
    reflectors = bots(3000)
    def make(src, ttl):
        return cap.udp(src, resolver, 53, rng.randrange(1024, 65535), b"\xdd" * rng.randrange(1100, 1400), ttl)
    flood(w, rng, reflectors, 60_000, make)


def spoofed_on_udp_service(w, rng):
    """A game server: 300 players exchange UDP with port 27015 at 30 pps each;
    a spoofed flood of packets shaped like theirs hits the same port."""
    web_and_dns(w, rng, 600)
    server = cap.ip4(TARGET)
    players = [(cap.ip4(c), rng.randrange(1024, 65000)) for c in clients(rng, 300, "100.67")]
    for addr, port in players:
        t = rng.random() / 30
        while t < DURATION:
            size = rng.randrange(60, 200)
            w.add(t, cap.udp(addr, server, port, 27015, b"g" * size, 50))
            w.add(t + 0.001, cap.udp(server, addr, 27015, port, b"s" * size, 64))
            t += 1 / 30
    def make(src, ttl):
        return cap.udp(src, server, rng.randrange(1024, 65535), 27015, b"\xaa" * rng.randrange(60, 200), ttl)
    flood(w, rng, None, 80_000, make)


def cgnat_and_botnet(w, rng):
    """A carrier-grade NAT: one address carrying thousands of users' sessions
    (about 3000 pps toward the target), among normal clients, while 300 bots flood UDP."""
    web_and_dns(w, rng, 1000)
    sub = cap.Writer.__new__(cap.Writer)
    sub.packets = []
    cap.normal_traffic(sub, rng, DURATION, lambda t: 6000, [TARGET], ["100.100.9.1"])
    w.packets.extend(sub.packets)
    flood(w, rng, bots(300), 300 * 150, udp_flood(rng))


SCENARIOS = {
    "botnet-20": botnet(20, 2000),
    "botnet-200": botnet(200, 200),
    "botnet-2000": botnet(2000, 25),
    "botnet-20000": botnet(20000, 5),
    "syn-flood-1000": syn_flood_real,
    "reflection-on-resolver": reflection_on_resolver,
    "spoofed-udp-service": spoofed_on_udp_service,
    "cgnat-and-botnet": cgnat_and_botnet,
}


def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(SCENARIOS))
        return
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        sys.exit("usage: scenarios.py NAME OUT.pcap | --list\nnames: " + " ".join(SCENARIOS))
    name, out = sys.argv[1], sys.argv[2]
    rng = random.Random(name)
    w = cap.Writer(out)
    SCENARIOS[name](w, rng)
    w.close(START)
    with open(out + ".json", "w") as f:
        json.dump({"scenario": name, "target": TARGET, "onset": START + ONSET,
                   "end": START + ONSET + ATTACK_S, "legit": LEGIT}, f)
    print("%s: %d packets" % (name, len(w.packets)))


if __name__ == "__main__":
    main()
