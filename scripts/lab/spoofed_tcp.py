#!/usr/bin/env python3
"""A spoofed TCP flood against the lab's server, replayed by tcpreplay at top
speed from the attackers' namespace, while legitimate clients that never
connected before (many addresses of the clients' namespace) open connections
with a 3 s connect timeout, and one long-lived connection keeps exchanging.
Needs the lab up (scripts/lab.sh up), root and tcpreplay.

  spoofed_tcp.py --levee BIN --flood syn|ack [--sources N] [--seconds S]
                 [--clients N] [--json FILE]

What reached the server is counted by the server's own kernel (iptables
counters in its namespace, every packet, no sampling): the share of the
spoofed packets that reached it from 1 s after the onset is its counter's
growth over that time against the attackers' interface's transmit counter.
"""
import argparse
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

import labkit

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.environ.get("LEVEE_LAB_STATE", "/run/levee-lab")
# Legitimate clients: addresses of the clients' namespace that levee never saw.
CLIENT_NET = "198.18"
SERVICE_PORT = 8080
SESSION_PORT = 9100


sh, in_ns = labkit.sh, labkit.in_ns


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def spoofed_source(rng):
    """A unicast address outside the lab's networks."""
    while True:
        a = rng.randrange(1 << 24, 224 << 24)
        if a >> 24 not in (10, 127) and a >> 16 != (198 << 8 | 18) and a >> 16 != (198 << 8 | 19):
            return struct.pack("!I", a)


def write_flood(path, kind, sources, dst_mac, src_mac, target, seed):
    """One TCP segment from each of `sources` random sources to target:8080."""
    rng = random.Random(seed)
    dst = socket.inet_aton(target)
    flags = {"syn": 0x02, "ack": 0x10}[kind]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n in range(sources):
            src = spoofed_source(rng)
            tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65536), SERVICE_PORT, rng.getrandbits(32),
                              rng.getrandbits(32) if flags & 0x10 else 0, 5 << 4, flags, 64240, 0, 0)
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
            tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), n & 0xFFFF, 0, rng.randrange(30, 250), 6, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
            frame = dst_mac + src_mac + b"\x08\x00" + ip + tcp
            frame += b"\0" * max(0, 60 - len(frame))
            f.write(struct.pack("<IIII", n // 1000, (n % 1000) * 1000, len(frame), len(frame)) + frame)


def rfc3339(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.strip().split(":"))


class Run:
    def __init__(self, a):
        self.a = a
        self.env = dict(l.strip().split("=", 1) for l in open(os.path.join(STATE, "lab.env")) if "=" in l)
        self.work_dir = labkit.WorkDir("levee-spoofed-")
        self.work = self.work_dir.path
        self.procs = labkit.Processes()
        self.clients = ["%s.%d.%d" % (CLIENT_NET, 1 + i // 250, 1 + i % 250) for i in range(a.clients)]

    def spawn(self, args, **kw):
        return self.procs.spawn(args, **kw)

    def close(self, failed=False):
        self.procs.stop_all()
        in_ns("lv-server", "iptables", "-F", "INPUT", check=False)
        in_ns("lv-server", "ip", "route", "del", CLIENT_NET + ".0.0/16", check=False)
        batch = "".join("addr del %s/32 dev c0\n" % c for c in self.clients)
        subprocess.run(["ip", "netns", "exec", "lv-clients", "ip", "-force", "-batch", "-"], input=batch, text=True)
        self.work_dir.close(failed)

    def setup(self):
        client_mac = in_ns("lv-clients", "cat", "/sys/class/net/c0/address").strip()
        batch = "".join("addr add %s/32 dev c0\n" % c for c in self.clients)
        subprocess.run(["ip", "netns", "exec", "lv-clients", "ip", "-batch", "-"], input=batch, text=True, check=True)
        in_ns("lv-server", "ip", "route", "replace", CLIENT_NET + ".0.0/16", "dev", "s0")
        batch = "".join("neigh replace %s lladdr %s dev s0 nud permanent\n" % (c, client_mac) for c in self.clients)
        subprocess.run(["ip", "netns", "exec", "lv-server", "ip", "-batch", "-"], input=batch, text=True, check=True)
        # Counting rules: the legitimate and lab sources leave the chain first;
        # what is left toward the server is spoofed (rule 3: SYNs, rule 4: the rest).
        server = self.env["SERVER_IP"]
        for rule in (["-s", CLIENT_NET + ".0.0/16", "-j", "RETURN"], ["-s", "10.0.0.0/8", "-j", "RETURN"],
                     ["--syn"], ["!", "--syn"]):
            in_ns("lv-server", "iptables", "-A", "INPUT", "-p", "tcp", "-d", server, *rule)
        # A TCP echo for the long-lived session.
        self.spawn(["ip", "netns", "exec", "lv-server", sys.executable, "-c", SESSION_SERVER % SESSION_PORT])

    def spoofed_at_server(self):
        """[spoofed SYNs, spoofed other segments] the server's kernel received."""
        out = in_ns("lv-server", "iptables", "-L", "INPUT", "-v", "-x", "-n", "--line-numbers")
        counts = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) > 2 and f[0].isdigit():
                counts[int(f[0])] = int(f[1])
        return [counts.get(3, 0), counts.get(4, 0)]

    def attacker_tx(self):
        return int(in_ns("lv-attackers", "cat", "/sys/class/net/a0/statistics/tx_packets"))

    def start_levee(self):
        # The lab's levee starts a few seconds before the attack: connections
        # older than its table cannot exist here, so the grace is short.
        self.levee, self.url, self.token = labkit.start_levee(
            self.a.levee, self.work, self.procs, "\n[mitigation]\nconnection_grace_seconds = 3\n")

    def api(self, path):
        return labkit.api(self.url, self.token, path)

    def run(self):
        a = self.a
        flood = os.path.join(self.work, "flood.pcap")
        write_flood(flood, a.flood, a.sources, mac_bytes(self.env["SERVER_MAC"]),
                    mac_bytes(self.env["ATTACKER_MAC"]), self.env["SERVER_IP"], a.seed)
        self.setup()
        self.start_levee()
        session = Session(self.env["SERVER_IP"], self.clients[-1])
        session.start()
        time.sleep(5)  # levee learns peacetime (warmup) with the session running
        before = self.spoofed_at_server()
        onset = time.time()
        replay = self.spawn(["ip", "netns", "exec", "lv-attackers", "taskset", "-c", self.a.attacker_cpu, "tcpreplay", "-i", "a0", "--topspeed",
                             "--loop", "0", "--duration", str(int(a.seconds)), flood],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        at_1s = (time.time(), self.attacker_tx(), self.spoofed_at_server())
        results = connect_all(self.env["SERVER_IP"], self.clients[:-1], onset + a.seconds - 3.5)
        replay_out = replay.communicate(timeout=a.seconds + 30)[0]
        at_end = (time.time(), self.attacker_tx(), self.spoofed_at_server())
        session.stop()
        status = self.api("/api/v1/status")
        incidents = self.api("/api/v1/incidents")["incidents"]
        rules = self.api("/api/v1/rules")["rules"]
        sent = at_end[1] - at_1s[1]
        which = 0 if a.flood == "syn" else 1
        reached = at_end[2][which] - at_1s[2][which]
        ok = [r for r in results if r["ok"]]
        times = [r["connect_ms"] for r in ok]
        return {
            "flood": a.flood, "sources": a.sources, "seconds": a.seconds,
            "attack_pps_after_1s": sent / max(at_end[0] - at_1s[0], 1e-9),
            "spoofed_sent_after_1s": sent, "spoofed_reached_server_after_1s": reached,
            "spoofed_reached_share": reached / max(sent, 1),
            "spoofed_reached_server_in_all": at_end[2][which] - before[which],
            "new_clients": len(results), "new_clients_ok": len(ok),
            "connect_ms": {"median": statistics.median(times) if times else None,
                           "p99": sorted(times)[max(0, int(len(times) * 0.99) - 1)] if times else None,
                           "max": max(times) if times else None},
            "session": session.result(),
            "defences": status.get("defences"),
            "failed_clients": [r for r in results if not r["ok"]],
            "ports": [{"name": p["name"], "rx_missed": p.get("rx_missed"), "rx_errors": p.get("rx_errors")}
                      for p in status.get("ports", [])],
            "levee_rx": sum(w.get("rx_packets", 0) for w in status.get("workers", [])),
            "kernel_rx_outside": int(sh("cat", "/sys/class/net/lv-out/statistics/rx_packets")),
            "incidents": [{"id": i["incident_id"], "type": i["attack_type"], "target": i["target"]} for i in incidents],
            "rules": [{"id": r["id"], "state": r["state"], "match": r["match"],
                       "ms_after_onset": round((rfc3339(r["created_at"]) - onset) * 1000)} for r in rules
                      if r["match"].get("kind") == "signature"],
            "tcpreplay": [l for l in replay_out.splitlines() if "Actual" in l or "Rated" in l],
        }


SESSION_SERVER = r'''
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(8)
def serve(c):
    while True:
        b = c.recv(100)
        if not b: return
        c.sendall(b)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


class Session(threading.Thread):
    """A connection opened before the attack, exchanging every 100 ms."""

    def __init__(self, server, source):
        super().__init__(daemon=True)
        self.server, self.source = server, source
        self.exchanges = self.failures = 0
        self.halt = threading.Event()

    def run(self):
        cmd = ["ip", "netns", "exec", "lv-clients", sys.executable, "-c", SESSION_CLIENT % (self.source, self.server, SESSION_PORT)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:
            ok = line.strip() == "ok"
            self.exchanges += 1
            self.failures += not ok
            if self.halt.is_set():
                break

    def stop(self):
        self.halt.set()
        self.join(timeout=5)
        if self.proc.poll() is None:
            self.proc.terminate()

    def result(self):
        return {"exchanges": self.exchanges, "failures": self.failures}


SESSION_CLIENT = r'''
import socket, sys, time
s = socket.socket(); s.bind(("%s", 0)); s.settimeout(5); s.connect(("%s", %d))
s.settimeout(2)
while True:
    try:
        s.sendall(b"ping"); ok = s.recv(100) == b"ping"
    except OSError:
        ok = False
    print("ok" if ok else "fail", flush=True)
    time.sleep(0.1)
'''


CONNECT_CLIENT = r'''
import json, socket, sys, threading, time
server, port, until = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sources = sys.argv[4:]
out, lock = [], threading.Lock()
def one(src):
    t = time.time()
    try:
        s = socket.socket(); s.bind((src, 0)); s.settimeout(3.0)
        s.connect((server, port)); connected = time.time() - t
        s.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b: break
            data += b
        ok = data.startswith(b"HTTP/1.1 200") and data.endswith(b"levee lab: ok\n")
        r = {"src": src, "ok": ok, "connect_ms": connected * 1000}
    except OSError as e:
        r = {"src": src, "ok": False, "error": str(e), "connect_ms": (time.time() - t) * 1000}
    with lock: out.append(r)
# Spread the new clients over the attack, a few at a time.
gap = max(0.0, (until - time.time()) / max(len(sources), 1))
threads = []
for src in sources:
    th = threading.Thread(target=one, args=(src,)); th.start(); threads.append(th)
    time.sleep(gap)
for th in threads: th.join()
print(json.dumps(out))
'''


def connect_all(server, sources, until):
    out = subprocess.run(["ip", "netns", "exec", "lv-clients", sys.executable, "-c", CONNECT_CLIENT, server,
                          str(SERVICE_PORT), str(until)] + sources, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levee", required=True)
    p.add_argument("--flood", choices=["syn", "ack"], required=True)
    p.add_argument("--sources", type=int, default=200_000)
    p.add_argument("--seconds", type=float, default=12)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    # The attacker runs on the main lcore's CPU, not on the worker's (two CPUs here).
    p.add_argument("--attacker-cpu", default="0")
    p.add_argument("--json")
    a = p.parse_args()
    run = Run(a)
    failed = True
    try:
        r = run.run()
        failed = False
    finally:
        run.close(failed)
    print("== spoofed %s flood: %d sources, tcpreplay --topspeed for %g s ==" % (a.flood.upper(), a.sources, a.seconds))
    for line in r["tcpreplay"]:
        print("  tcpreplay: " + line.strip())
    print("  incidents: %s" % ", ".join("%s %s -> %s" % (i["id"], i["type"], i["target"]) for i in r["incidents"]))
    for rule in r["rules"]:
        m = rule["match"]
        print("  rule %d (%s, %d ms after the onset): tcp %s to %s, %s" % (
            rule["id"], rule["state"], rule["ms_after_onset"], m.get("tcp_flags"), m["destination"],
            m.get("check") or ("limit %s/s" % m["rate_limit_pps"] if m.get("rate_limit_pps") else "drop")))
    print("  attack after 1 s: %d spoofed packets at %.0f pps; %d reached the server (%.3f%%); %d in all, from the onset" % (
        r["spoofed_sent_after_1s"], r["attack_pps_after_1s"], r["spoofed_reached_server_after_1s"], 100 * r["spoofed_reached_share"],
        r["spoofed_reached_server_in_all"]))
    c = r["connect_ms"]
    print("  new clients: %d/%d connected and served (%.2f%%) with a 3 s connect timeout; connect median %s ms, p99 %s ms, max %s ms" % (
        r["new_clients_ok"], r["new_clients"], 100.0 * r["new_clients_ok"] / max(r["new_clients"], 1),
        "%.0f" % c["median"] if c["median"] is not None else "-", "%.0f" % c["p99"] if c["p99"] is not None else "-",
        "%.0f" % c["max"] if c["max"] is not None else "-"))
    s = r["session"]
    print("  long-lived connection opened before the attack: %d exchanges, %d failed" % (s["exchanges"], s["failures"]))
    print("  levee's defences: %s" % json.dumps(r["defences"]))
    print("  levee's ports: %s; levee received %d packets, its outside veth %d" % (
        json.dumps(r["ports"]), r["levee_rx"], r["kernel_rx_outside"]))
    for f in r["failed_clients"][:5]:
        print("  failed client: %s" % json.dumps(f))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
