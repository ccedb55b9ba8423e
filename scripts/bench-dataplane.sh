#!/usr/bin/env bash
# Forwarding rate of levee against dpdk-testpmd's io forwarding, measured in one
# run on the same virtual devices (net_pcap infinite_rx -> net_null) and the same
# single worker core. Prints both rates and their ratio.
#
#   scripts/bench-dataplane.sh [SECONDS]        (default 10 s per side)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_SIDE="${1:-10}"

scripts/install-deps.sh >/dev/null
cargo build --release -q -p levee-controlplane
LEVEE=./target/release/levee

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
capture="$work/small-mix.pcap"
$LEVEE generate-capture --out "$capture" --packets 1024 --seed 7 >/dev/null

EAL_COMMON=(--no-huge -m 1024 --no-pci --no-shconf --log-level='*:error')
RX_DEV="net_pcap0,rx_pcap=$capture,infinite_rx=1"
TX_DEV="net_null0,no-rx=1"

# --- reference: dpdk-testpmd io forwarding, per-second Tx-pps of the null port ---
testpmd_log="$work/testpmd.log"
dpdk-testpmd -l 0-1 "${EAL_COMMON[@]}" --vdev="$RX_DEV" --vdev="$TX_DEV" -- \
  --total-num-mbufs=16384 --forward-mode=io --auto-start --stats-period 1 \
  >"$testpmd_log" 2>&1 &
testpmd_pid=$!
sleep "$SECONDS_PER_SIDE"
kill -INT "$testpmd_pid" 2>/dev/null || true
wait "$testpmd_pid" 2>/dev/null || true
# Median of port 1's per-second Tx-pps samples, ignoring the zero samples of start-up.
testpmd_pps=$(awk '
  /NIC statistics for port/ { port = $(NF-1) }
  /Tx-pps:/ && port == 1 && $2 > 0 { print $2 }' "$testpmd_log" | sort -n |
  awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }')

# --- levee: the same devices, one worker on lcore 1 ---
cat >"$work/levee.toml" <<TOML
mode = "inline"
[dpdk]
eal_args = ["--no-huge", "-m", "1024", "--no-pci", "--no-shconf", "--log-level=*:error"]
main_lcore = 0
worker_lcores = [1]
mempool_size = 16383
[[pair]]
outside = "$RX_DEV"
inside = "$TX_DEV"
[log]
level = "warn"
TOML
levee_json=$($LEVEE run --config "$work/levee.toml" --duration "$SECONDS_PER_SIDE" --json 2>/dev/null | tail -1)
levee_pps=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["totals"]["tx_pps"]))' "$levee_json")

python3 - "$testpmd_pps" "$levee_pps" "$SECONDS_PER_SIDE" <<'PY'
import sys
ref, levee, secs = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
print(f"forwarding, net_pcap(infinite_rx, 1024 small mixed frames) -> net_null, 1 worker core, {secs} s each")
print(f"  dpdk-testpmd --forward-mode=io : {ref/1e6:8.2f} Mpps")
print(f"  levee run (inline)             : {levee/1e6:8.2f} Mpps")
print(f"  ratio levee / testpmd          : {levee/ref if ref else float('nan'):8.3f}")
PY
