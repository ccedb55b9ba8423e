#!/usr/bin/env bash
# Live detection latency in the lab: each attack kind several times, from the
# first attack packet leaving the attackers' namespace to incident.created and
# to the first rule in force (the first attack packet dropped), with legitimate
# traffic running. Prints each kind's and the overall p50/p90/p99/max.
#
#   scripts/lab-latency.sh [runs per kind, default 5] [pps, default 20000]
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
pps="${2:-20000}"
scripts/install-deps.sh >/dev/null
cargo build --release -q -p levee-controlplane
work="$(mktemp -d)"
trap 'scripts/lab.sh down >/dev/null; rm -rf "$work"' EXIT
scripts/lab.sh up

# kind:sources — reflection from real reflectors, floods from a botnet or spoofed.
scenarios=(ntp:50 dns:50 memcached:30 udp:20 syn:spoofed icmp:20 ntp,syn:spoofed carpet-udp:20)
for s in "${scenarios[@]}"; do
  kind="${s%%:*}"
  sources="${s##*:}"
  echo "== $kind from $sources sources, $runs runs at $pps pps =="
  python3 scripts/lab/scenario.py --levee ./target/release/levee --attack "$kind" --sources "$sources" \
    --pps "$pps" --attack-seconds 3 --runs "$runs" --json "$work/$kind.json" | grep -E "latency|legitimate|incident.created" | sort | uniq -c | sort -rn | head -8
done

python3 - "$work" <<'PY'
import glob, json, sys
detect, drop, ok, total = [], [], 0, 0
for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
    r = json.load(open(path))
    for run in r["runs"]:
        if "detect_ms" in run: detect.append(run["detect_ms"])
        if "drop_ms" in run: drop.append(run["drop_ms"])
        ok += run["legit_during_attack"]["ok"]; total += run["legit_during_attack"]["exchanges"]
def pct(v, p):
    v = sorted(v); return v[max(0, min(len(v) - 1, -(-p * len(v) // 100) - 1))]
print("\n== all kinds ==")
for name, v in (("incident.created", detect), ("first drop", drop)):
    print("%-17s n=%d  p50 %.0f ms  p90 %.0f ms  p99 %.0f ms  max %.0f ms" % (name, len(v), pct(v, 50), pct(v, 90), pct(v, 99), max(v)))
print("legitimate exchanges during attacks: %d/%d ok (%.2f%%)" % (ok, total, 100.0 * ok / max(total, 1)))
PY
