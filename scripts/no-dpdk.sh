#!/usr/bin/env bash
# levee without DPDK: the dataplane's pure parts and the `levee` binary built
# with `--no-default-features` (no dpdk-sys, nothing of DPDK linked), linted, the
# dataplane's unit tests run, and the binary replaying a capture, checking a
# configuration and refusing `run` with a clear message.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo clippy -p levee-dataplane -p levee-controlplane --no-default-features --all-targets -q -- -D warnings
cargo test -p levee-dataplane --no-default-features --lib -q
cargo build -p levee-controlplane --no-default-features -q
# A binary of its own, so the suite's `levee` (with DPDK) is not replaced.
bin=target/no-dpdk/levee
mkdir -p target/no-dpdk
cp target/debug/levee "$bin"
cargo build -p levee-controlplane -q

if cargo tree -p levee-controlplane --no-default-features -e normal | grep -q dpdk-sys; then
  echo "no-dpdk: dpdk-sys is still a dependency" >&2; exit 1
fi
if ldd "$bin" | grep -q librte_; then
  echo "no-dpdk: the binary links DPDK:" >&2; ldd "$bin" | grep librte_ >&2; exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate-capture --out "$work/mixed.pcap" --packets 2000 >/dev/null
out=$("$bin" replay "$work/mixed.pcap" --json)
grep -q '"packets":2000' <<<"$out" || { echo "no-dpdk: replay did not count 2000 packets: $out" >&2; exit 1; }
"$bin" check-config config/demo.toml >/dev/null
set +e
msg=$("$bin" run --config config/demo.toml 2>&1); rc=$?
set -e
if [ "$rc" != 2 ] || ! grep -q "built without DPDK" <<<"$msg"; then
  echo "no-dpdk: run should exit 2 saying levee was built without DPDK (exit $rc): $msg" >&2; exit 1
fi
echo "no-dpdk: ok (replay, check-config, run refused; no DPDK linked)"
