#!/usr/bin/env bash
# The attack lab on one machine: network namespaces joined by veth pairs, with
# levee (run separately, config/inline-lab.toml) as the bump in the wire
# between the Internet side and the protected server.
#
#   lv-clients  (10.0.0.10)  --\
#                               lv-edge (bridge) -- lv-out [levee] lv-in -- lv-server (10.0.0.1/24)
#   lv-attackers (10.0.0.66) --/                                               HTTP :8080, UDP echo :9000
#
#   scripts/lab.sh up|down|status
#
# `down` removes everything `up` made, also what a crashed run left behind.
# Needs root, iproute2, ethtool and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${LEVEE_LAB_STATE:-/run/levee-lab}"
NAMESPACES=(lv-clients lv-attackers lv-server lv-edge)
SERVER_IP=10.0.0.1
CLIENT_IP=10.0.0.10
ATTACKER_IP=10.0.0.66

in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

# Plain frames only: no offloads that only a veth peer could finish.
no_offloads() { # [netns] ifname
  if [ $# -eq 2 ]; then in_ns "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
  else ethtool -K "$1" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true; fi
}

# A veth pair: $1 in netns $2 with address $3 (or none), peer $4 in netns $5 (or the root).
veth() {
  local a="$1" ns_a="$2" addr="$3" b="$4" ns_b="$5"
  ip link add "$a" type veth peer name "$b"
  ip link set "$a" netns "$ns_a"
  in_ns "$ns_a" ip link set "$a" up
  [ -n "$addr" ] && in_ns "$ns_a" ip addr add "$addr" dev "$a"
  no_offloads "$ns_a" "$a"
  if [ -n "$ns_b" ]; then
    ip link set "$b" netns "$ns_b"
    in_ns "$ns_b" ip link set "$b" up
    no_offloads "$ns_b" "$b"
  else
    ip link set "$b" up
    no_offloads "$b"
  fi
}

mac_of() { in_ns "$1" cat "/sys/class/net/$2/address"; }

down() {
  if [ -d "$STATE" ]; then
    for pidfile in "$STATE"/*.pid; do
      [ -e "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    done
  fi
  for ns in "${NAMESPACES[@]}"; do
    # `ip netns exec` forks: whatever still runs in a lab namespace is the lab's.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  # Deleting a namespace takes its veth ends and their peers; these are
  # levee's ends in the root namespace, in case a pair was half made.
  for ifname in lv-out lv-in; do
    ip link del "$ifname" 2>/dev/null || true
  done
  rm -rf "$STATE"
}

up() {
  down
  mkdir -p "$STATE"
  for ns in "${NAMESPACES[@]}"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
  done
  # The Internet side: a bridge joining clients, attackers and levee's outside port.
  in_ns lv-edge ip link add lvbr0 type bridge
  in_ns lv-edge ip link set lvbr0 up
  # A plain switch: bridged frames do not go through the firewall hooks
  # (br_netfilter, when loaded, would run them for every frame).
  for family in iptables ip6tables arptables; do
    in_ns lv-edge sysctl -qw "net.bridge.bridge-nf-call-$family=0" 2>/dev/null || true
  done
  veth c0 lv-clients "$CLIENT_IP/24" e-clients lv-edge
  veth a0 lv-attackers "$ATTACKER_IP/24" e-attackers lv-edge
  ip link add lv-out type veth peer name e-levee
  ip link set e-levee netns lv-edge
  in_ns lv-edge ip link set e-levee up
  no_offloads lv-edge e-levee
  ip link set lv-out up
  no_offloads lv-out
  for port in e-clients e-attackers e-levee; do
    in_ns lv-edge ip link set "$port" master lvbr0
  done
  # The attackers stand for the Internet: what goes back to their (spoofed)
  # sources -- SYN-ACKs, challenges, RSTs -- would leave by a NIC toward
  # those addresses' owners. Here a veth would run it through the attackers'
  # IP stack on the sender's CPU (levee's worker), a cost no real uplink puts
  # there; the lab's switch drops it at the attackers' port instead.
  # LEVEE_LAB_BACKSCATTER=deliver keeps the delivery, to measure that cost.
  if [ "${LEVEE_LAB_BACKSCATTER:-sink}" = sink ]; then
    in_ns lv-edge nft -f - <<'NFT' || echo "lab: no nftables bridge family here: backscatter reaches the attackers' namespace" >&2
table bridge lab {
  chain backscatter {
    type filter hook forward priority 0;
    oifname "e-attackers" drop
  }
}
NFT
  fi
  # The protected side: levee's inside port and the server.
  veth s0 lv-server "$SERVER_IP/24" lv-in ""
  # Neighbours are static: the lab measures levee, not ARP timing.
  local server_mac client_mac attacker_mac
  server_mac="$(mac_of lv-server s0)"
  client_mac="$(mac_of lv-clients c0)"
  attacker_mac="$(mac_of lv-attackers a0)"
  in_ns lv-clients ip neigh replace "$SERVER_IP" lladdr "$server_mac" dev c0 nud permanent
  in_ns lv-attackers ip neigh replace "$SERVER_IP" lladdr "$server_mac" dev a0 nud permanent
  in_ns lv-server ip neigh replace "$CLIENT_IP" lladdr "$client_mac" dev s0 nud permanent
  in_ns lv-server ip neigh replace "$ATTACKER_IP" lladdr "$attacker_mac" dev s0 nud permanent
  # The protected services.
  in_ns lv-server python3 scripts/lab/services.py --bind "$SERVER_IP" >"$STATE/services.log" 2>&1 &
  echo $! >"$STATE/services.pid"
  cat >"$STATE/lab.env" <<EOF
SERVER_IP=$SERVER_IP
SERVER_MAC=$server_mac
CLIENT_IP=$CLIENT_IP
ATTACKER_IP=$ATTACKER_IP
ATTACKER_MAC=$attacker_mac
EOF
  echo "lab up: clients $CLIENT_IP, attackers $ATTACKER_IP, server $SERVER_IP ($server_mac); levee's ports: lv-out, lv-in"
}

status() {
  local missing=0
  for ns in "${NAMESPACES[@]}"; do
    if ip netns list | grep -qw "$ns"; then echo "netns $ns: up"; else echo "netns $ns: missing"; missing=1; fi
  done
  for ifname in lv-out lv-in; do
    if ip link show "$ifname" >/dev/null 2>&1; then echo "link $ifname: up"; else echo "link $ifname: missing"; missing=1; fi
  done
  if [ -f "$STATE/services.pid" ] && kill -0 "$(cat "$STATE/services.pid")" 2>/dev/null; then
    echo "server services: running (pid $(cat "$STATE/services.pid"))"
  else
    echo "server services: not running"; missing=1
  fi
  return "$missing"
}

case "${1:-}" in
  up) up ;;
  down) down; echo "lab down" ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
