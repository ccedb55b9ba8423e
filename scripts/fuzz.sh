#!/usr/bin/env bash
# Runs a fuzz target for a given time, seeded with generated frames and captures.
#
#   scripts/fuzz.sh [SECONDS] [TARGET]     (default 60 s, parse_frame; or read_capture)
#
# cargo-fuzz needs nightly-only compiler flags (sanitizer, coverage); on a stable
# toolchain RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
TARGET="${2:-parse_frame}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo run -q -p levee-dataplane --example write_fuzz_seeds -- fuzz/corpus
cd fuzz
RUSTC_BOOTSTRAP=1 cargo fuzz run "$TARGET" "corpus/$TARGET" -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -rss_limit_mb=2048 2>&1 | tail -n 20
echo "fuzz: $TARGET ran for $SECONDS_TO_RUN s without a crash"
