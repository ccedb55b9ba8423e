#!/usr/bin/env bash
# A UDP flood from 500 real sources replayed by tcpreplay at top speed through
# the lab, first through dpdk-testpmd (io: forwards everything) and then
# through levee, on the same net_af_packet ports and worker CPU, while clients
# hold HTTP and UDP exchanges with the server. Prints, per forwarder, the
# offered rate, what the forwarder received and sent, what reached the server
# and the clients' success during the attack (figures in docs/PERFORMANCE.md).
#
#   scripts/lab-replay-bench.sh [seconds, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
scripts/install-deps.sh >/dev/null
cargo build --release -q -p levee-controlplane
work="$(mktemp -d)"
trap 'scripts/lab.sh down >/dev/null; rm -rf "$work"' EXIT
for forwarder in testpmd levee; do
  scripts/lab.sh up >/dev/null
  python3 scripts/lab/replay_bench.py --forwarder "$forwarder" --levee ./target/release/levee \
    --seconds "$seconds" --json "$work/$forwarder.json" >/dev/null
  scripts/lab.sh down >/dev/null
done

python3 - "$work" <<'PY'
import json, sys
rows = [json.load(open("%s/%s.json" % (sys.argv[1], f))) for f in ("testpmd", "levee")]
print("tcpreplay --topspeed, UDP flood from %d sources -> lab (net_af_packet lv-out/lv-in), %.0f s" % (rows[0]["sources"], rows[0]["seconds"]))
print("  %-9s %12s %14s %14s %16s %16s" % ("forwarder", "offered kpps", "received kpps", "sent on kpps", "attack at server", "clients ok"))
for r in rows:
    s = r["seconds"]
    l = r["legit_during_attack"]
    print("  %-9s %12.1f %14.1f %14.1f %15.2f%% %9d/%d" % (
        r["forwarder"], r["offered_pps"] / 1e3, r["forwarder_rx"] / s / 1e3, r["forwarder_tx"] / s / 1e3,
        100 * r["reached_server_share"], l["ok"], l["exchanges"]))
lv = rows[1]
print("  levee: %s; %d dropped" % (", ".join(lv.get("incidents", [])) or "no incident", lv.get("dropped", 0)))
PY
