#!/usr/bin/env bash
# Spoofed TCP floods in the lab: a SYN flood and an ACK flood from 200,000
# random sources, replayed by tcpreplay at top speed from the attackers'
# namespace, while first-time clients (300 addresses of the clients' namespace)
# connect with a 3 s timeout and a connection opened before the attack keeps
# exchanging. Prints, per run, the share of the spoofed packets that reached
# the server from 1 s after the onset (counted by the server's kernel) and the
# clients' success. levee answers with SYN authentication and the connection
# state check (detected, not configured).
#
#   scripts/lab-spoofed-tcp.sh [runs per flood, default 2] [seconds, default 12]
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-2}"
seconds="${2:-12}"
scripts/install-deps.sh >/dev/null
cargo build --release -q -p levee-controlplane
work="$(mktemp -d)"
trap 'scripts/lab.sh down >/dev/null; rm -rf "$work"' EXIT
for flood in syn ack; do
  for run in $(seq "$runs"); do
    scripts/lab.sh up >/dev/null
    python3 scripts/lab/spoofed_tcp.py --levee ./target/release/levee --flood "$flood" --seconds "$seconds" \
      --clients 300 --seed "$run" --json "$work/$flood-$run.json"
    scripts/lab.sh down >/dev/null
  done
done

python3 - "$work" <<'PY'
import glob, json, sys
print("\n== all runs ==")
print("%-5s %5s %10s %14s %14s %16s %12s" % ("flood", "runs", "kpps", "spoofed sent", "reached", "new clients ok", "session"))
for flood in ("syn", "ack"):
    rs = [json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/%s-*.json" % flood))]
    if not rs:
        continue
    sent = sum(r["spoofed_sent_after_1s"] for r in rs)
    reached = sum(r["spoofed_reached_server_after_1s"] for r in rs)
    ok = sum(r["new_clients_ok"] for r in rs); n = sum(r["new_clients"] for r in rs)
    fails = sum(r["session"]["failures"] for r in rs); ex = sum(r["session"]["exchanges"] for r in rs)
    kpps = sum(r["attack_pps_after_1s"] for r in rs) / len(rs) / 1000
    print("%-5s %5d %10.0f %14d %13.3f%% %15.2f%% %5d/%d ok" % (flood, len(rs), kpps, sent, 100.0 * reached / max(sent, 1),
          100.0 * ok / max(n, 1), ex - fails, ex))
PY
