#!/usr/bin/env bash
# Two builds of the pipeline benchmark (dataplane/benches/pipeline.rs), in
# alternating runs so that the host's slow spells fall on both alike:
#
#   cargo bench -p levee-dataplane --bench pipeline --no-run    (prints the binary)
#   cp target/release/deps/pipeline-HASH /some/where/pipeline-a  (then change, rebuild: b)
#   scripts/bench-pipeline-ab.sh A B [RUNS] [CASE...]
#
# Each run is 40 rounds of every case; per case and build it prints the least
# time per burst over all runs (the least disturbed: the figure to compare on)
# and the median of the runs' least times, and B's least against A's.
set -euo pipefail
a="${1:?usage: bench-pipeline-ab.sh A B [RUNS] [CASE...]}"
b="${2:?usage: bench-pipeline-ab.sh A B [RUNS] [CASE...]}"
runs="${3:-6}"
shift $(($# < 3 ? $# : 3))
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
for _ in $(seq 1 "$runs"); do
  for side in a b; do
    bin="$a"; [ "$side" = b ] && bin="$b"
    # The case's name and its least ns per burst, one line each.
    PIPELINE_BENCH_ROUNDS=40 "$bin" --bench "$@" | awk 'NR > 1 { print $1, $2 }' >>"$results/$side"
  done
done
python3 - "$results" "$a" "$b" <<'PY'
import statistics, sys
results, a, b = sys.argv[1:4]
def load(side):
    runs = {}
    for line in open(f"{results}/{side}"):
        name, ns = line.split()
        runs.setdefault(name, []).append(float(ns))
    return runs
ra, rb = load("a"), load("b")
print(f"{'case':<24} {'A least':>9} {'A median':>9} {'B least':>9} {'B median':>9} {'B/A least':>10}   ns per burst of 32")
for name in ra:
    la, lb = min(ra[name]), min(rb[name])
    print(f"{name:<24} {la:9.0f} {statistics.median(ra[name]):9.0f} {lb:9.0f} {statistics.median(rb[name]):9.0f} {lb / la:10.3f}")
print(f"A = {a}\nB = {b}")
PY
