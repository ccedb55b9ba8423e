#!/usr/bin/env python3
"""Writes a pcap of normal traffic mixed with attacks at given rates and times,
for levee's detection scenarios (`levee replay FILE --json`). No dependencies.

  attack-capture.py OUT.pcap [--duration S] [--normal-pps N] [--servers PREFIX]
      [--ramp FROM:TO] [--flash-crowd START:DURATION:PPS]
      [--attack KIND:START:DURATION:PPS[:TARGET[:SOURCES]]] ...

KIND: udp syn synack ack rst icmp frag gre dns ntp memcached ssdp cldap chargen
      snmp wsd ard (reflection from UDP port 3283), stun (3478) natt (4500): two
      reflections from ports levee's reflector table does not list; carpet-udp (every
      host of the target /24). SOURCES: a number of real sources (fixed TTL each), or
      'spoofed' (a random source and TTL per packet). TARGET defaults to the first
      server. --pulse ON:OFF makes every attack a pulse wave: ON seconds of it, OFF
      seconds of nothing, from its START. udp6: a UDP flood over IPv6 from
      2001:db8:bad::/64 toward 2001:db8::TARGET (TARGET: the host part, e.g. 5).
      --qinq wraps every frame in two VLAN tags (802.1ad outer 100, inner 200).

Normal traffic: clients in 100.64.0.0/16 holding complete TCP sessions (handshake,
data, close) with the servers and DNS queries to them, with the servers' answers.
"""
import argparse
import random
import struct
import sys

REFLECTOR_PORTS = {"dns": 53, "ntp": 123, "memcached": 11211, "ssdp": 1900, "cldap": 389,
                   "chargen": 19, "snmp": 161, "wsd": 3702, "ard": 3283,
                   "stun": 3478, "natt": 4500}
RESPONSE_SIZES = {"dns": 1200, "ntp": 468, "memcached": 1400, "ssdp": 300, "cldap": 1400,
                  "chargen": 1000, "snmp": 1000, "wsd": 700, "ard": 1000,
                  "stun": 540, "natt": 800}
MAC_A = bytes([2, 0, 0, 0, 0, 1])
MAC_B = bytes([2, 0, 0, 0, 0, 2])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def ipv4_frame(src, dst, proto, l4, ttl=64, frag=0):
    total = 20 + len(l4)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0x1234, frag, ttl, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    frame = MAC_B + MAC_A + b"\x08\x00" + hdr + l4
    return frame + b"\0" * max(0, 60 - len(frame))


def udp(src, dst, sport, dport, payload, ttl=64):
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv4_frame(src, dst, 17, l4, ttl)


def tcp(src, dst, sport, dport, flags, payload=b"", ttl=64, seq=1, ack=0):
    l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    return ipv4_frame(src, dst, 6, l4, ttl)


def icmp(src, dst, ttl=64):
    body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"\x42" * 56
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    return ipv4_frame(src, dst, 1, body, ttl)


def ipv6_frame(src, dst, nh, l4, hops=64):
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(l4), nh, hops, src, dst)
    return MAC_B + MAC_A + b"\x86\xdd" + hdr + l4


def udp6(src, dst, sport, dport, payload, hops=64):
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    pseudo = src + dst + struct.pack("!IxxxB", len(l4), 17)
    sum_ = csum(pseudo + l4) or 0xFFFF
    l4 = l4[:6] + struct.pack("!H", sum_) + l4[8:]
    return ipv6_frame(src, dst, 17, l4, hops)


def ip6(host_part):
    """2001:db8::HOST (host part in hex digits), or a full address."""
    import ipaddress
    text = host_part if ":" in host_part else "2001:db8::%s" % host_part
    return ipaddress.IPv6Address(text).packed


def qinq(frame):
    """Two VLAN tags between the MACs and the EtherType."""
    return frame[:12] + struct.pack("!HHHH", 0x88A8, 100, 0x8100, 200) + frame[12:]


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.packets = []
        self.wrap = None

    def add(self, t, frame):
        self.packets.append((t, frame))

    def close(self, start):
        self.packets.sort(key=lambda p: p[0])
        for t, frame in self.packets:
            if getattr(self, "wrap", None):
                frame = self.wrap(frame)
            ts = start + t
            sec = int(ts)
            usec = int(round((ts - sec) * 1e6))
            if usec >= 1000000:
                sec, usec = sec + 1, usec - 1000000
            self.f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        self.f.close()


def times(start, duration, pps, rng):
    n = int(duration * pps)
    return [start + rng.random() * duration for _ in range(n)]


def normal_traffic(w, rng, duration, pps_at, servers, client_pool):
    """TCP sessions (about 12 packets each) and DNS query/answer pairs."""
    t = 0.0
    while t < duration:
        pps = max(pps_at(t), 1.0)
        # One "event" of ~2 packets per 1/(pps/2) s on average.
        t += rng.expovariate(pps / 6.0)
        if t >= duration:
            break
        client = client_pool[rng.randrange(len(client_pool))]
        server = servers[rng.randrange(len(servers))]
        if rng.random() < 0.5:
            sport = rng.randrange(1024, 65000)
            seq = [
                (0.0, client, server, 0x02, b""), (0.002, server, client, 0x12, b""), (0.004, client, server, 0x10, b""),
                (0.005, client, server, 0x18, b"GET / HTTP/1.1\r\n\r\n"), (0.009, server, client, 0x18, b"x" * 900),
                (0.010, server, client, 0x18, b"y" * 600), (0.012, client, server, 0x10, b""),
                (0.020, client, server, 0x11, b""), (0.022, server, client, 0x11, b""), (0.024, client, server, 0x10, b""),
            ]
            for dt, a, b, flags, payload in seq:
                if a == client:
                    w.add(t + dt, tcp(ip4(a), ip4(b), sport, 443, flags, payload, ttl=52))
                else:
                    w.add(t + dt, tcp(ip4(a), ip4(b), 443, sport, flags, payload, ttl=64))
        else:
            sport = rng.randrange(1024, 65000)
            for k in range(3):
                w.add(t + k * 0.001, udp(ip4(client), ip4(server), sport, 53, b"q" * 40, ttl=52))
                w.add(t + k * 0.001 + 0.0005, udp(ip4(server), ip4(client), 53, sport, b"a" * 120, ttl=64))


def attack(w, rng, kind, start, duration, pps, target, sources, pulse=None):
    spoofed = sources == "spoofed"
    fixed = [] if spoofed else [("198.51.%d.%d" % (i // 250, 1 + i % 250), rng.randrange(40, 250)) for i in range(int(sources))]
    if kind.startswith("carpet-"):
        base = target.rsplit(".", 1)[0]
        targets = ["%s.%d" % (base, h) for h in range(1, 255)]
        kind = kind[len("carpet-"):]
    else:
        targets = [target]
    for t in times(start, duration, pps, rng):
        if pulse and (t - start) % (pulse[0] + pulse[1]) >= pulse[0]:
            continue
        if spoofed:
            src = struct.pack("!I", rng.getrandbits(32))
            ttl = rng.randrange(1, 256)
        else:
            a, ttl = fixed[rng.randrange(len(fixed))]
            src = ip4(a)
        dst = ip4(targets[rng.randrange(len(targets))])
        dport = rng.randrange(1024, 65535)
        if kind == "udp":
            f = udp(src, dst, rng.randrange(1024, 65535), rng.randrange(1, 65535), b"\xaa" * 512, ttl)
        elif kind == "syn":
            f = tcp(src, dst, dport, rng.choice([80, 443]), 0x02, ttl=ttl, seq=rng.getrandbits(32))
        elif kind == "synack":
            f = tcp(src, dst, rng.choice([80, 443]), dport, 0x12, ttl=ttl, seq=rng.getrandbits(32), ack=rng.getrandbits(32))
        elif kind == "ack":
            f = tcp(src, dst, dport, rng.choice([80, 443]), 0x10, ttl=ttl, seq=rng.getrandbits(32), ack=rng.getrandbits(32))
        elif kind == "rst":
            f = tcp(src, dst, dport, rng.choice([80, 443]), 0x04, ttl=ttl, seq=rng.getrandbits(32))
        elif kind == "icmp":
            f = icmp(src, dst, ttl)
        elif kind == "frag":
            f = ipv4_frame(src, dst, 17, b"\xbb" * 1000, ttl, frag=(rng.randrange(1, 400)) | 0x2000)
        elif kind == "gre":
            f = ipv4_frame(src, dst, 47, b"\x00\x00\x08\x00" + b"\xcc" * 500, ttl)
        elif kind == "udp6":
            i = rng.randrange(max(len(fixed), 1))
            f = udp6(ip6("2001:db8:bad::%x" % (i + 1)), ip6(target), rng.randrange(1024, 65535),
                     rng.randrange(1, 65535), b"\xaa" * 512, 64 if not fixed else fixed[i][1])
        elif kind in REFLECTOR_PORTS:
            f = udp(src, dst, REFLECTOR_PORTS[kind], dport, b"\xdd" * RESPONSE_SIZES[kind], ttl)
        else:
            sys.exit("unknown attack kind %r" % kind)
        w.add(t, f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--normal-pps", type=float, default=2000.0)
    p.add_argument("--servers", default="10.0.0.0/24", help="the protected /24; servers are .1-.8")
    p.add_argument("--ramp", help="FROM:TO normal pps, linear over the capture")
    p.add_argument("--flash-crowd", help="START:DURATION:PPS of sessions from many new clients")
    p.add_argument("--attack", action="append", default=[])
    p.add_argument("--pulse", help="ON:OFF seconds: every attack as a pulse wave")
    p.add_argument("--qinq", action="store_true", help="every frame with two VLAN tags")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=float, default=1_760_000_000.0, help="capture start, Unix seconds")
    a = p.parse_args()
    rng = random.Random(a.seed)
    base = a.servers.split("/")[0].rsplit(".", 1)[0]
    servers = ["%s.%d" % (base, h) for h in range(1, 9)]
    clients = ["100.64.%d.%d" % (rng.randrange(0, 256), rng.randrange(1, 255)) for _ in range(400)]
    w = Writer(a.out)
    if a.qinq:
        w.wrap = qinq
    if a.ramp:
        lo, hi = (float(x) for x in a.ramp.split(":"))
        pps_at = lambda t: lo + (hi - lo) * t / a.duration
    else:
        pps_at = lambda t: a.normal_pps
    normal_traffic(w, rng, a.duration, pps_at, servers, clients)
    if a.flash_crowd:
        start, duration, pps = (float(x) for x in a.flash_crowd.split(":"))
        crowd = ["100.65.%d.%d" % (i // 250, 1 + i % 250) for i in range(5000)]
        sub = Writer.__new__(Writer)
        sub.packets = []
        normal_traffic(sub, rng, duration, lambda t: pps, servers[:1], crowd)
        w.packets.extend((start + t, f) for t, f in sub.packets)
    for spec in a.attack:
        parts = spec.split(":")
        kind, start, duration, pps = parts[0], float(parts[1]), float(parts[2]), float(parts[3])
        target = parts[4] if len(parts) > 4 and parts[4] else servers[0]
        sources = parts[5] if len(parts) > 5 else "spoofed"
        pulse = tuple(float(x) for x in a.pulse.split(":")) if a.pulse else None
        attack(w, rng, kind, start, duration, pps, target, sources, pulse)
    w.close(a.start)
    print("wrote %d packets to %s" % (len(w.packets), a.out))


if __name__ == "__main__":
    main()
