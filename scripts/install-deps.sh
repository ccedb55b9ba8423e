#!/usr/bin/env bash
# Installs every system package levee needs to build, test, demo and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo) and apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # DPDK 22.11 (libraries, PMD plugins, dpdk-testpmd) and what the bindings need
  dpdk dpdk-dev libdpdk-dev pkg-config libclang-dev build-essential
  # capture files (net_pcap PMD) and inspecting them
  libpcap-dev tshark
  # network-namespace tests and the lab
  iproute2 iputils-ping ethtool python3 tcpreplay
  # the firewall text levee exports is checked by the real tools
  iptables nftables curl
  # the service unit is checked by systemd-analyze verify
  systemd
  # the dashboard's browser tests
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Tools used by the tests but not installed system-wide (their packages would
# start services): unpacked from their Debian packages under $LEVEE_TOOLS.
LEVEE_TOOLS="${LEVEE_TOOLS:-/opt/levee-tools}"
extract_deb() { # package, a file it must provide
  local package="$1" file="$2"
  [ -x "$LEVEE_TOOLS/$file" ] && return 0
  echo "install-deps: unpacking $package into $LEVEE_TOOLS"
  local work
  work="$(mktemp -d)"
  (cd "$work" && apt-get download "$package" >/dev/null 2>&1) || {
    apt-get update -qq && (cd "$work" && apt-get download "$package" >/dev/null)
  }
  mkdir -p "$LEVEE_TOOLS"
  dpkg -x "$work"/"$package"_*.deb "$LEVEE_TOOLS"
  rm -rf "$work"
  [ -x "$LEVEE_TOOLS/$file" ] || { echo "install-deps: $package did not provide $file" >&2; exit 1; }
}
extract_deb prometheus usr/bin/promtool
# CrowdSec's LAPI and cscli for the CrowdSec integration tests (LAPI only).
extract_deb crowdsec usr/bin/crowdsec
# BGP speakers for the bgp integration's tests: GoBGP (levee's speaker) and
# BIRD (the upstream router), each run in a namespace a test makes.
extract_deb gobgpd usr/bin/gobgpd
extract_deb bird2 usr/sbin/bird

# cargo-deb (pinned), for the Debian package and its test.
scripts/package.sh --tool

# The API fuzzer (schemathesis, pinned) in its own virtualenv.
SCHEMATHESIS_VERSION=4.32.5
if ! "$LEVEE_TOOLS/venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "install-deps: installing schemathesis $SCHEMATHESIS_VERSION into $LEVEE_TOOLS/venv"
  python3 -m venv "$LEVEE_TOOLS/venv"
  "$LEVEE_TOOLS/venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The dashboard's charting library (embedded into levee at build time) and the
# browser tests' driver, pinned in dashboard/package-lock.json.
if ! command -v npm >/dev/null; then
  echo "install-deps: npm (Node.js) is required for the dashboard's assets" >&2
  exit 1
fi
if [ ! -f dashboard/node_modules/uplot/dist/uPlot.iife.min.js ] || [ ! -d dashboard/node_modules/playwright-core ]; then
  echo "install-deps: npm ci in dashboard/"
  npm ci --prefix dashboard --no-audit --no-fund >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: a Rust toolchain (cargo) is required; install it with rustup" >&2
  exit 1
fi
pkg-config --atleast-version=22.11 libdpdk || { echo "install-deps: libdpdk >= 22.11 not found after install" >&2; exit 1; }
echo "install-deps: ok (DPDK $(pkg-config --modversion libdpdk))"
