#!/usr/bin/env bash
# Two levee builds on one of bench-dataplane.sh's measurements, in alternating
# runs of the same configuration, so that the host's noise falls on both alike:
#
#   scripts/bench-dataplane.sh --keep DIR 2        (once: captures, configurations)
#   scripts/bench-ab.sh DIR NAME ROUNDS LEVEE_A LEVEE_B [SECONDS]
#
# NAME: plain, full, challenge, attack or drop. For each build it prints the
# median over the runs of the worker's median cycles per burst (the pipeline's
# own time per burst, `burst_cycles_p50` of `levee run --json`: a host that
# takes the CPU away stretches few bursts, so it moves less than packets per
# second do), the least of those (the run the host disturbed least: on a host
# whose speed flips between two phases, the clearest figure when both builds
# had runs in the fast one) and the median and best Mpps. Copy a build
# aside (cp target/release/levee /tmp/levee-a) before building the other.
set -euo pipefail
dir="${1:?usage: bench-ab.sh DIR NAME ROUNDS LEVEE_A LEVEE_B [SECONDS]}"
name="${2:?name: plain, full, challenge, attack or drop}"
rounds="${3:?rounds}"
a="${4:?first levee binary}"
b="${5:?second levee binary}"
seconds="${6:-2}"
config="$dir/levee-$name.toml"
[ -f "$config" ] || { echo "bench-ab: no $config (run scripts/bench-dataplane.sh --keep $dir 2 first)" >&2; exit 2; }
case "$name" in
  challenge | drop) field=rx_pps ;;
  *) field=tx_pps ;;
esac
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
for _ in $(seq 1 "$rounds"); do
  for side in a b; do
    bin="$a"; [ "$side" = b ] && bin="$b"
    "$bin" run --config "$config" --duration "$seconds" --json 2>/dev/null | tail -1 |
      python3 -c 'import json, sys
s = json.load(sys.stdin)
print(s["totals"][sys.argv[1]] / 1e6, s["pipeline"]["burst_cycles_p50"])' "$field" >>"$results/$side"
  done
done
python3 - "$results" "$name" "$a" "$b" <<'PY'
import statistics, sys
results, name, a, b = sys.argv[1:5]
print(f"{name}: {'build':<40} {'cycles/burst (median p50)':>26} {'(least)':>8} {'Mpps median':>12} {'Mpps best':>10}")
for side, binary in (("a", a), ("b", b)):
    runs = [tuple(map(float, line.split())) for line in open(f"{results}/{side}")]
    mpps = [r[0] for r in runs]
    cycles = [r[1] for r in runs]
    print(f"{'':<{len(name) + 2}}{binary:<40} {statistics.median(cycles):26.0f} {min(cycles):8.0f} {statistics.median(mpps):12.2f} {max(mpps):10.2f}")
PY
