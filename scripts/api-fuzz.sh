#!/usr/bin/env bash
# Fuzz the admin API from its own OpenAPI document with schemathesis: a levee
# forwarding the bundled capture between two virtual ports serves the API on a
# free loopback port; every operation is called with generated valid and
# invalid input, and any 5xx, undocumented status code, wrong content type or
# response that breaks its schema fails the run. Both run in a network
# namespace of their own with only loopback: integrations the fuzzer creates
# and tests cannot reach any other host.
#
#   scripts/api-fuzz.sh [max examples per operation, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples="${1:-50}"
LEVEE_TOOLS="${LEVEE_TOOLS:-/opt/levee-tools}"
st="$LEVEE_TOOLS/venv/bin/st"
[ -x "$st" ] || scripts/install-deps.sh
cargo build -q -p levee-controlplane
levee="${CARGO_TARGET_DIR:-$PWD/target}/debug/levee"

work="$(mktemp -d)"
netns="levee-fuzz-$$"
pid=""
cleanup() {
  # `ip netns exec` may fork: end what runs in the namespace this script made.
  for p in $(ip netns pids "$netns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$netns"
ip netns exec "$netns" ip link set lo up
in_netns() { ip netns exec "$netns" "$@"; }

admin_token="fuzz-admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$work/levee.toml" <<EOF
mode = "inline"
[dpdk]
eal_args = ["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--log-level=*:warning"]
mempool_size = 8191
[[pair]]
outside = "net_pcap0,rx_pcap=$PWD/config/demo-traffic.pcap,infinite_rx=1"
inside = "net_null0"
[rules]
allowlist = ["192.0.2.0/24"]
[store]
path = "$work/levee.db"
[forensics]
dir = "$work/forensics"
[api]
listen = "127.0.0.1:0"
token = "$admin_token"
EOF

in_netns "$levee" run --config "$work/levee.toml" >/dev/null 2>"$work/levee.log" &
pid=$!
url=""
for _ in $(seq 300); do
  url="$(sed -n 's/.*admin API listening on \(http[^ ]*\).*/\1/p' "$work/levee.log" | head -1)"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "api-fuzz: levee's API did not come up:" >&2
  cat "$work/levee.log" >&2
  exit 1
fi
echo "api-fuzz: levee pid $pid serving $url in network namespace $netns (loopback only)"

in_netns "$st" run "$url/api/v1/openapi.json" \
  -H "Authorization: Bearer $admin_token" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "$max_examples" --seed 1 --warnings off --no-color

if ! kill -0 "$pid" 2>/dev/null; then
  echo "api-fuzz: levee exited during the run:" >&2
  cat "$work/levee.log" >&2
  exit 1
fi
echo "api-fuzz: no server errors, every response matched the document"
