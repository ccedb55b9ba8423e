#!/usr/bin/env bash
# levee's main job on an embedded default that needs no NIC: the bundled capture
# is replayed through a net_pcap virtual port, forwarded by a levee worker to a
# second virtual port, and a summary is printed. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release -q -p levee-controlplane

echo
echo "== levee: replaying config/demo-traffic.pcap through two virtual ports =="
./target/release/levee check-config config/demo.toml
./target/release/levee run --config config/demo.toml --exit-when-idle 1 2> >(grep -v "^EAL\|TELEMETRY" >&2)
echo
echo "forwarded frames were written to /tmp/levee-demo-out.pcap"

echo
echo "== levee replay: 8 s of normal traffic, then a 3 s NTP reflection attack on 10.0.0.1 =="
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 scripts/attack-capture.py "$work/attack.pcap" --duration 14 --attack ntp:8:3:30000::40
./target/release/levee replay --config config/demo.toml "$work/attack.pcap" 2> >(grep -v "^EAL\|TELEMETRY" >&2)
