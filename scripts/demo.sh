#!/usr/bin/env bash
# levee's main job, live, on one machine: the lab's namespaces (clients,
# attackers, a protected server) with levee bridging them through two
# net_af_packet ports, a local webhook receiver configured, legitimate HTTP and
# UDP traffic throughout, and an NTP reflection attack. Prints the timeline:
# detection, rules, what reached the server, legitimate success, resolution,
# verified webhooks. Installs what it needs first and cleans up after itself.
#
#   scripts/demo.sh [scenario.py options, e.g. --attack syn --sources spoofed]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release -q -p levee-controlplane

trap 'scripts/lab.sh down >/dev/null' EXIT
scripts/lab.sh up
python3 scripts/lab/scenario.py --levee ./target/release/levee "$@"
