#!/usr/bin/env python3
"""One lab scenario end to end: levee bridging the lab with a local webhook
receiver configured, legitimate traffic throughout, one or more attacks, and a
timeline of what happened. Needs the lab up (scripts/lab.sh up) and root.

  scenario.py --levee BIN [--attack KIND[,KIND...]] [--pps N] [--attack-seconds S]
              [--sources N|spoofed] [--runs N] [--json FILE]

Latency is measured from the first attack packet leaving the attackers'
namespace (wall clock, same machine) to (a) incident.created (the event's `at`)
and (b) the incident's first rule in force (its `created_at`): the dataplane
applies a published rule before the next burst, so that is when the first attack
packet is dropped.
"""
import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time

import labkit
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.environ.get("LEVEE_LAB_STATE", "/run/levee-lab")


def rfc3339(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def percentile(values, p):
    """Nearest-rank percentile, as an HdrHistogram summary reports it."""
    ordered = sorted(values)
    if not ordered:
        return None
    k = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
    return ordered[k]


class Lab:
    def __init__(self, a):
        self.a = a
        self.env = dict(l.strip().split("=", 1) for l in open(os.path.join(STATE, "lab.env")) if "=" in l)
        self.work_dir = labkit.WorkDir("levee-lab-")
        self.work = self.work_dir.path
        self.procs = labkit.Processes()
        self.secret = "whsec_" + secrets.token_hex(24)
        self.token = None
        self.url = None

    def spawn(self, args, **kw):
        return self.procs.spawn(args, **kw)

    def in_ns(self, ns, args, **kw):
        return self.spawn(["ip", "netns", "exec", ns] + args, **kw)

    def close(self, failed=False):
        self.procs.stop_all()
        # `ip netns exec` may fork: end what this run started in the lab's namespaces.
        for ns in ("lv-clients", "lv-attackers"):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                subprocess.run(["kill", pid], capture_output=True)
        for ns, name in (("lv-server", "count"),):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    cmd = open("/proc/%s/cmdline" % pid).read()
                except OSError:
                    continue
                if "traffic.py" in cmd and name in cmd:
                    subprocess.run(["kill", pid], capture_output=True)
        self.work_dir.close(failed)

    def api(self, path, method="GET"):
        return labkit.api(self.url, self.token, path, method)

    def start(self):
        receiver = self.spawn(
            [sys.executable, os.path.join(HERE, "webhook-receiver.py"), "--secret", self.secret,
             "--log", os.path.join(self.work, "webhooks.jsonl")],
            stdout=subprocess.PIPE, text=True)
        port = int(receiver.stdout.readline())
        webhook = ('\n[[integration]]\nname = "lab-webhook"\nkind = "webhook"\nurl = "http://127.0.0.1:%d/levee"\n'
                   'secret = "%s"\nretry_base_ms = 200\n' % (port, self.secret))
        self.levee, self.url, self.token = labkit.start_levee(self.a.levee, self.work, self.procs, webhook)

    def run(self):
        a = self.a
        self.start()
        per_run = a.attack_seconds + 12
        total = 6 + a.runs * per_run + 5
        legit_log = os.path.join(self.work, "legit.jsonl")
        rx_log = os.path.join(self.work, "server-rx.jsonl")
        self.in_ns("lv-server", [sys.executable, os.path.join(HERE, "traffic.py"), "count", "--iface", "s0", "--out", rx_log])
        self.in_ns("lv-clients", [sys.executable, os.path.join(HERE, "traffic.py"), "legit", "--server", self.env["SERVER_IP"],
                                  "--rate", str(a.legit_rate), "--duration", str(total), "--out", legit_log])
        # levee learns the legitimate traffic first (warmup_seconds in the lab's config).
        time.sleep(6)
        runs = []
        for n in range(a.runs):
            attack = subprocess.run(
                ["ip", "netns", "exec", "lv-attackers", sys.executable, os.path.join(HERE, "traffic.py"), "attack",
                 "--kind", a.attack, "--pps", str(a.pps), "--duration", str(a.attack_seconds), "--iface", "a0",
                 "--dst-mac", self.env["SERVER_MAC"], "--target", self.env["SERVER_IP"], "--sources", a.sources,
                 "--seed", str(n + 1)],
                capture_output=True, text=True, check=True)
            sent = json.loads(attack.stdout.strip().splitlines()[-1])
            incident = self.wait_resolved(sent["first_sent_at"], timeout=a.attack_seconds + 40)
            runs.append({"attack": sent, "incident": incident})
            time.sleep(1.5)
        time.sleep(1.0)
        return self.report(runs, lines(legit_log), lines(rx_log), lines(os.path.join(self.work, "webhooks.jsonl")))

    def wait_resolved(self, since, timeout):
        deadline = time.time() + timeout
        stamp = datetime.utcfromtimestamp(int(since) - 1).strftime("%Y-%m-%dT%H:%M:%SZ")
        while time.time() < deadline:
            found = self.api("/api/v1/incidents?since=%s" % stamp)["incidents"]
            found = [i for i in found if rfc3339(i["started_at"]) >= int(since) - 1]
            if found and all(i["status"] == "resolved" for i in found):
                return [self.api("/api/v1/incidents/%s" % i["incident_id"]) for i in found]
            time.sleep(0.25)
        return [self.api("/api/v1/incidents/%s" % i["incident_id"]) for i in found] if found else []

    def report(self, runs, legit, rx, hooks):
        out = {"runs": [], "webhooks": {"received": len(hooks), "valid": sum(1 for h in hooks if h["valid"] and h["valid_timestamped"])}}
        for r in runs:
            t0, t_end = r["attack"]["first_sent_at"], r["attack"]["last_sent_at"]
            incidents = r["incident"]
            first = min(incidents, key=lambda d: d["incident"]["started_at"]) if incidents else None
            run = {"attack": r["attack"], "incidents": []}
            for d in incidents:
                inc = d["incident"]
                iid = inc["incident_id"]
                created = [h for h in hooks if h["body"].get("incident_id") == iid and h["body"].get("event") == "incident.created"]
                resolved = [h for h in hooks if h["body"].get("incident_id") == iid and h["body"].get("event") == "incident.resolved"]
                rules = sorted(d["rules"], key=lambda x: x["created_at"])
                applied = [x for x in rules if x["state"] != "staged" and x["state"] != "refused"]
                run["incidents"].append({
                    "incident_id": iid, "attack_type": inc["attack_type"], "target": inc["target"],
                    "status": inc["status"], "peak_pps": inc.get("peak_pps"),
                    "attackers": len(inc.get("attacker_ips") or []),
                    "spoofing_likely": inc.get("spoofing_likely"),
                    "created_at": rfc3339(created[0]["body"]["at"]) if created else None,
                    "resolved_at": rfc3339(resolved[0]["body"]["at"]) if resolved else None,
                    "webhook_created_valid": bool(created) and all(h["valid"] and h["valid_timestamped"] for h in created),
                    "webhook_resolved_valid": bool(resolved) and all(h["valid"] and h["valid_timestamped"] for h in resolved),
                    "rules": [{"id": x["id"], "match": x["match"], "state": x["state"], "at": rfc3339(x["created_at"])} for x in applied],
                })
            firsts = [i for i in run["incidents"] if i["created_at"]]
            if firsts:
                run["detect_ms"] = (min(i["created_at"] for i in firsts) - t0) * 1000
            rule_times = [x["at"] for i in run["incidents"] for x in i["rules"]]
            if rule_times:
                run["drop_ms"] = (min(rule_times) - t0) * 1000
            during = [x for x in legit if t0 <= x["at"] <= t_end]
            run["legit_during_attack"] = {"exchanges": len(during), "ok": sum(1 for x in during if x["ok"]),
                                          "median_ms": statistics.median([x["ms"] for x in during if x["ok"]]) if during else None}
            # What reached the server: its receive rate before the attack, and
            # once the rules are in force (plus 100 ms), against the attack's rate.
            def rate(a0, a1):
                pts = [p for p in rx if a0 <= p["at"] <= a1]
                if len(pts) < 2 or pts[-1]["at"] == pts[0]["at"]:
                    return None
                return (pts[-1]["rx"] - pts[0]["rx"]) / (pts[-1]["at"] - pts[0]["at"])
            base = rate(t0 - 3.0, t0 - 0.05)
            after = rate(t0 + run.get("drop_ms", 0) / 1000 + 0.1, t_end) if "drop_ms" in run else None
            run["server_rx_pps"] = {"before": base, "mitigated": after, "attack_pps": r["attack"]["sent"] / max(t_end - t0, 1e-9)}
            out["runs"].append(run)
        ok = [x for x in legit if x["ok"]]
        out["legit_total"] = {"exchanges": len(legit), "ok": len(ok)}
        detect = [r["detect_ms"] for r in out["runs"] if "detect_ms" in r]
        drop = [r["drop_ms"] for r in out["runs"] if "drop_ms" in r]
        out["latency_ms"] = {name: {"count": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90),
                                    "p99": percentile(v, 99), "max": max(v) if v else None}
                             for name, v in (("incident_created", detect), ("first_drop", drop))}
        return out


def timeline(result, a):
    print("== levee lab: %s at %d pps for %g s from %s sources, %d run(s) ==" % (a.attack, a.pps, a.attack_seconds, a.sources, a.runs))
    for n, run in enumerate(result["runs"], 1):
        t0 = run["attack"]["first_sent_at"]
        print("\n-- run %d --" % n)
        print("  +%7.0f ms  attack starts: first packet leaves lv-attackers (%d packets sent)" % (0, run["attack"]["sent"]))
        events = []
        for i in run["incidents"]:
            if i["created_at"]:
                events.append((i["created_at"], "incident.created %s: %s against %s, %d attacker IPs%s (webhook %s)" % (
                    i["incident_id"], i["attack_type"], i["target"], i["attackers"],
                    ", spoofed sources" if i["spoofing_likely"] else "",
                    "received, signature valid" if i["webhook_created_valid"] else "MISSING or INVALID")))
            if i["rules"]:
                kinds = {}
                for x in i["rules"]:
                    kinds[x["match"]["kind"]] = kinds.get(x["match"]["kind"], 0) + 1
                events.append((i["rules"][0]["at"], "rules in force: %s; attack traffic dropped from here" % ", ".join("%d %s" % (c, k) for k, c in kinds.items())))
            if i["resolved_at"]:
                events.append((i["resolved_at"], "incident.resolved %s (webhook %s)" % (
                    i["incident_id"], "received, signature valid" if i["webhook_resolved_valid"] else "MISSING or INVALID")))
        events.append((run["attack"]["last_sent_at"], "attack ends"))
        for at, text in sorted(events):
            print("  +%7.0f ms  %s" % ((at - t0) * 1000, text))
        rx = run["server_rx_pps"]
        if rx["mitigated"] is not None and rx["before"] is not None:
            print("  server received %.0f pkt/s before the attack and %.0f pkt/s while it ran mitigated (attack: %.0f pkt/s)" % (
                rx["before"], rx["mitigated"], rx["attack_pps"]))
        l = run["legit_during_attack"]
        if l["exchanges"]:
            print("  legitimate HTTP and UDP during the attack: %d/%d ok (%.1f%%), median %.1f ms" % (
                l["ok"], l["exchanges"], 100.0 * l["ok"] / l["exchanges"], l["median_ms"] or 0))
    w = result["webhooks"]
    print("\nwebhooks: %d received, %d with valid signatures" % (w["received"], w["valid"]))
    for name, s in result["latency_ms"].items():
        if s["count"]:
            print("latency to %-16s n=%d  p50 %.0f ms  p90 %.0f ms  p99 %.0f ms  max %.0f ms" % (
                name.replace("_", " "), s["count"], s["p50"], s["p90"], s["p99"], s["max"]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levee", required=True)
    p.add_argument("--attack", default="ntp")
    p.add_argument("--pps", type=float, default=20000)
    p.add_argument("--attack-seconds", type=float, default=5)
    p.add_argument("--sources", default="50")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--legit-rate", type=float, default=40)
    p.add_argument("--json", help="also write the result as JSON here")
    a = p.parse_args()
    lab = Lab(a)
    failed = True
    try:
        result = lab.run()
        failed = False
    finally:
        lab.close(failed)
    timeline(result, a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
