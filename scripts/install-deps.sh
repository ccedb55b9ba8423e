#!/usr/bin/env bash
# Installs every system package levee needs to build, test, demo and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo) and apt-get.
set -euo pipefail

PACKAGES=(
  # DPDK 22.11 (libraries, PMD plugins, dpdk-testpmd) and what the bindings need
  dpdk dpdk-dev libdpdk-dev pkg-config libclang-dev build-essential
  # capture files (net_pcap PMD) and inspecting them
  libpcap-dev tshark
  # network-namespace tests and the lab
  iproute2 iputils-ping ethtool python3
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

if ! command -v cargo >/dev/null; then
  echo "install-deps: a Rust toolchain (cargo) is required; install it with rustup" >&2
  exit 1
fi
pkg-config --atleast-version=22.11 libdpdk || { echo "install-deps: libdpdk >= 22.11 not found after install" >&2; exit 1; }
echo "install-deps: ok (DPDK $(pkg-config --modversion libdpdk))"
