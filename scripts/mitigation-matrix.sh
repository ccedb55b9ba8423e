#!/usr/bin/env bash
# The mitigation matrix: labelled captures (scripts/mitigation/scenarios.py) run
# through `levee replay --dropped`, scored by what reached the target
# (scripts/mitigation/score.py). Prints, per scenario, the share of the attack
# dropped from 1 s after the onset, the share of legitimate traffic to the target
# delivered, legitimate packets lost before the onset, and the time to 99% dropped.
# A legitimate SYN levee answers with a SYN authentication challenge counts as
# delivered (a real stack answers it; see score.py), and the share of the
# legitimate packets challenged is printed: each costs its client one retransmission.
#
#   scripts/mitigation-matrix.sh [SCENARIO...]     (default: every scenario)
#
# Captures and outputs go to target/mitigation-matrix/ (LEVEE_MATRIX_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${LEVEE_MATRIX_DIR:-target/mitigation-matrix}"
mkdir -p "$out"
cargo build --release -q -p levee-controlplane
levee=target/release/levee

cat > "$out/levee.toml" <<'TOML'
# What a user starts with: protected networks, everything else by default.
[pipeline]
protected = ["10.0.0.0/24"]
TOML

scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  mapfile -t scenarios < <(python3 scripts/mitigation/scenarios.py --list)
fi

printf '%-24s %9s %14s %12s %12s %12s %10s\n' scenario packets "attack drop" "legit ok" "challenged" "legit lost<" "to 99%"
for s in "${scenarios[@]}"; do
  pcap="$out/$s.pcap"
  [ -s "$pcap" ] && [ -s "$pcap.json" ] || python3 scripts/mitigation/scenarios.py "$s" "$pcap" >/dev/null
  "$levee" replay "$pcap" --config "$out/levee.toml" --json --dropped "$out/$s.dropped.pcap" \
    --challenged "$out/$s.challenged.pcap" > "$out/$s.replay.jsonl"
  python3 scripts/mitigation/score.py "$pcap" "$out/$s.dropped.pcap" "$out/$s.challenged.pcap" > "$out/$s.score.json"
  python3 - "$out/$s.score.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
pct = lambda x: "-" if x is None else "%.2f%%" % (100 * x)
ms = "never" if r["ms_to_99pct_dropped"] is None else "%d ms" % r["ms_to_99pct_dropped"]
print("%-24s %9d %14s %12s %12s %12d %10s" % (r["scenario"], r["attack_packets"] + r["legit_packets"],
      pct(r["attack_dropped_after_1s"]), pct(r["legit_delivered"]), pct(r["legit_challenged"]),
      r["legit_lost_before_onset"], ms))
PY
done
