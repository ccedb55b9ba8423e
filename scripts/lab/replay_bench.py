"""A capture replayed at top speed through the lab: tcpreplay from the
attackers' namespace into the forwarder's outside port, while clients hold
HTTP and UDP exchanges with the server. The forwarder is dpdk-testpmd (io
mode: forwards everything) or levee (detects and drops), on the same two
net_af_packet ports (lv-out, lv-in) and the same worker CPU. Prints one JSON
object: what was offered, what the forwarder received and sent, what reached
the server, and the clients' success during the attack.

  replay_bench.py --forwarder testpmd|levee --levee BIN --seconds S --json OUT
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

import labkit

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.environ.get("LEVEE_LAB_STATE", "/run/levee-lab")


def counter(ns, iface, name):
    return int(labkit.in_ns(ns, "cat", "/sys/class/net/%s/statistics/%s" % (iface, name)))


def write_attack(path, env, sources, seed):
    """A UDP flood toward the server from `sources` real addresses (a fixed
    TTL each), attack-capture.py's frames with the lab's MAC addresses."""
    pool = labkit.FramePool()
    labkit.attack_capture().attack(pool, random.Random(seed), "udp", 0.0, 1.0, 50000, env["SERVER_IP"], str(sources))
    dst = bytes.fromhex(env["SERVER_MAC"].replace(":", ""))
    src = bytes.fromhex(env["ATTACKER_MAC"].replace(":", ""))
    labkit.write_pcap(path, [dst + src + frame[12:] for frame in pool.frames])


def start_testpmd(procs, work, cpus):
    log = open(os.path.join(work, "testpmd.log"), "w")
    p = procs.spawn(["dpdk-testpmd", "-l", cpus, "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
                     "--log-level=*:error",
                     "--vdev=net_af_packet0,iface=lv-out,framecnt=8192",
                     "--vdev=net_af_packet1,iface=lv-in,framecnt=8192",
                     "--", "--forward-mode=io", "--auto-start", "--stats-period", "1",
                     "--total-num-mbufs=16384"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(3)
    if p.poll() is not None:
        sys.exit("testpmd did not start:\n" + open(log.name).read())
    return p, log.name


def testpmd_counts(log):
    """The last RX-packets of port 0 and TX-packets of port 1 testpmd printed."""
    text = open(log).read()
    rx = tx = 0
    for block in text.split("NIC statistics for port")[1:]:
        port = int(block.split()[0])
        m_rx = re.search(r"RX-packets:\s+(\d+)", block)
        m_tx = re.search(r"TX-packets:\s+(\d+)", block)
        if port == 0 and m_rx:
            rx = int(m_rx.group(1))
        if port == 1 and m_tx:
            tx = int(m_tx.group(1))
    return rx, tx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--forwarder", choices=["testpmd", "levee"], required=True)
    p.add_argument("--levee", default=os.path.join(labkit.ROOT, "target", "release", "levee"))
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--sources", type=int, default=500)
    p.add_argument("--attacker-cpu", default="0")
    p.add_argument("--json", required=True)
    a = p.parse_args()
    env = dict(l.strip().split("=", 1) for l in open(os.path.join(STATE, "lab.env")) if "=" in l)
    work_dir = labkit.WorkDir("levee-replay-bench-")
    work = work_dir.path
    procs = labkit.Processes()
    failed = True
    try:
        flood = os.path.join(work, "flood.pcap")
        write_attack(flood, env, a.sources, 3)
        if a.forwarder == "testpmd":
            _, log = start_testpmd(procs, work, "0-1")
        else:
            _, url, token = labkit.start_levee(a.levee, work, procs)
        legit_out = os.path.join(work, "legit.jsonl")
        procs.spawn(["ip", "netns", "exec", "lv-clients", sys.executable, os.path.join(HERE, "traffic.py"), "legit",
                     "--server", env["SERVER_IP"], "--rate", "40", "--duration", str(a.seconds + 8), "--out", legit_out])
        time.sleep(4)  # peacetime: levee learns its baselines
        sent0 = counter("lv-attackers", "a0", "tx_packets")
        server0 = counter("lv-server", "s0", "rx_packets")
        onset = time.time()
        replay = procs.spawn(["ip", "netns", "exec", "lv-attackers", "taskset", "-c", a.attacker_cpu, "tcpreplay",
                              "-i", "a0", "--topspeed", "--loop", "0", "--duration", str(int(a.seconds)), flood],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        replay.communicate(timeout=a.seconds + 60)
        end = time.time()
        sent = counter("lv-attackers", "a0", "tx_packets") - sent0
        at_server = counter("lv-server", "s0", "rx_packets") - server0
        time.sleep(4)
        result = {"forwarder": a.forwarder, "seconds": end - onset, "sources": a.sources,
                  "offered_pps": sent / (end - onset), "reached_server_pps": at_server / (end - onset),
                  "reached_server_share": at_server / max(sent, 1)}
        if a.forwarder == "testpmd":
            rx, tx = testpmd_counts(log)
            result.update(forwarder_rx=rx, forwarder_tx=tx)
        else:
            status = labkit.api(url, token, "/api/v1/status")
            result.update(forwarder_rx=sum(w["rx_packets"] for w in status["workers"]),
                          forwarder_tx=sum(w["tx_packets"] for w in status["workers"]),
                          incidents=[i["attack_type"] for i in labkit.api(url, token, "/api/v1/incidents")["incidents"]],
                          dropped=sum(w["dropped_packets"] for w in status["workers"]))
        procs.stop_all()
        during = [json.loads(l) for l in open(legit_out) if l.strip()]
        during = [x for x in during if onset + 1 <= x["at"] <= end]
        result["legit_during_attack"] = {"exchanges": len(during), "ok": sum(1 for x in during if x["ok"])}
        json.dump(result, open(a.json, "w"))
        print(json.dumps(result))
        failed = False
    finally:
        procs.stop_all()
        work_dir.close(failed)


if __name__ == "__main__":
    main()
