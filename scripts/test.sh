#!/usr/bin/env bash
# The whole test suite: unit, property, DPDK virtual-device and network-namespace
# end-to-end tests. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# Lints are part of the suite: warnings fail it.
cargo clippy --workspace --all-targets -q -- -D warnings

# levee without DPDK (replay, check-config, the CLI) builds, lints and replays.
scripts/no-dpdk.sh

if cargo nextest --version >/dev/null 2>&1; then
  # nextest runs every test in its own process: one DPDK EAL per process.
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

# The admin API fuzzed from its own OpenAPI document (schemathesis).
scripts/api-fuzz.sh
