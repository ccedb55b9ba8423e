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
