#!/usr/bin/env bash
# Blocklist lookups: levee's table against DPDK's rte_hash_lookup_bulk on the same
# 1M random IPv4 keys and batches, in one run; prints both rates and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo run --release -q -p levee-dataplane --example bench_blocklist
