#!/usr/bin/env bash
# levee's dataplane against dpdk-testpmd, measured in one run on the same virtual
# devices (net_pcap infinite_rx -> net_null) and the same single worker core:
#
#   1. forwarding, no rules            vs testpmd --forward-mode=io
#   2. full pipeline: 1M-entry blocklist, 200 signature rules, per-class counters,
#      per-destination counters, top-sources sketches, sampling; nothing matches
#                                      vs testpmd --forward-mode=io
#   3. drop path: every source is in the blocklist
#                                      vs testpmd --forward-mode=rxonly
#   4. challenge path: every packet a SYN from a new source to a target under
#      SYN authentication (parse, cookie, SYN-ACK written and sent back out)
#                                      vs testpmd --forward-mode=io
#   5. pipeline under attack: the full pipeline with an incident open on every
#      protected destination (the mitigation engine's per-source accounting on)
#      and 100,000 sources blocked (none of the capture's); nothing dropped
#                                      vs testpmd --forward-mode=io
#
# Each levee line also shows levee's own cycles per packet: its time per packet
# minus testpmd's, at the TSC rate.
#
#   scripts/bench-dataplane.sh [--rounds R] [--memory huge|4k|auto] [SECONDS]
#       (default 10 s per measurement, one round, auto memory). With R rounds,
#       every line is measured R times beside its reference and the median of
#       the per-round ratios is printed, with each round's ratio and the
#       ratio of the line's best run to its reference's best run. Memory: the
#       packet buffers in 2 MiB huge pages (reserved and given back by the
#       script; needs root) or in 4 KiB pages (--no-huge); auto takes huge
#       pages where the host can give them.
#   scripts/bench-dataplane.sh --keep DIR [SECONDS]
#       the same, keeping the captures and each measurement's levee
#       configuration in DIR (levee-plain.toml, levee-full.toml,
#       levee-challenge.toml, levee-attack.toml, levee-drop.toml) for
#       scripts/bench-ab.sh to compare two builds on
#   scripts/bench-dataplane.sh --workers N [SECONDS]
#       forwarding with 1..N workers (one RX queue each on both ports) against
#       testpmd io with as many forwarding cores and queues; on a machine with
#       fewer CPUs than workers, lcores share CPUs (it shows correctness, not
#       scaling)
#   scripts/bench-dataplane.sh --also LABEL=BINARY [--also ...] [--rounds R] [SECONDS]
#       also runs the forwarding, full pipeline and drop lines with other levee
#       builds, in every round beside the same references, and prints their
#       rows under the main ones: a change's effect on the ratios themselves,
#       with the host's slow spells falling on every build of a round alike
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=0
KEEP=""
ROUNDS=1
MEMORY=auto
ALSO_LABELS=()
ALSO_BINS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP="${2:?--keep needs a directory}"; shift 2 ;;
    --workers)
      WORKERS="${2:?--workers needs a number}"
      [[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: --workers needs a positive number" >&2; exit 2; }
      shift 2 ;;
    --rounds)
      ROUNDS="${2:?--rounds needs a number}"
      [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: --rounds needs a positive number" >&2; exit 2; }
      shift 2 ;;
    --memory)
      MEMORY="${2:?--memory needs huge, 4k or auto}"
      case "$MEMORY" in huge | 4k | auto) ;; *) echo "bench: --memory is huge, 4k or auto" >&2; exit 2 ;; esac
      shift 2 ;;
    --also)
      also="${2:?--also needs LABEL=BINARY}"
      [[ "$also" == ?*=?* && "$also" != *" "* ]] || { echo "bench: --also needs LABEL=BINARY (no spaces)" >&2; exit 2; }
      [ -x "${also#*=}" ] || { echo "bench: --also: ${also#*=} is not an executable" >&2; exit 2; }
      ALSO_LABELS+=("${also%%=*}")
      ALSO_BINS+=("$(cd "$(dirname "${also#*=}")" && pwd)/$(basename "${also#*=}")")
      shift 2 ;;
    -*) echo "bench: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ "$WORKERS" -eq 0 ] || [ ${#ALSO_BINS[@]} -eq 0 ] || { echo "bench: --also compares builds on one worker; it does not combine with --workers" >&2; exit 2; }
SECONDS_PER_SIDE="${1:-10}"
# testpmd reports once a second: a shorter run has no figure of its own.
[[ "$SECONDS_PER_SIDE" =~ ^[0-9]+$ ]] && [ "$SECONDS_PER_SIDE" -ge 2 ] ||
  { echo "bench: SECONDS must be a whole number, at least 2" >&2; exit 2; }

scripts/install-deps.sh >/dev/null
cargo build --release -q -p levee-controlplane
LEVEE=./target/release/levee

cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT
if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  work="$(cd "$KEEP" && pwd)"
else
  work="$(mktemp -d)"
  cleanup+=("rm -rf '$work'")
fi

# Packet buffers: in 2 MiB huge pages, as on a production box, for testpmd and
# levee alike. Without them (`--no-huge`) DPDK puts each mbuf at the start of
# a 4 KiB page of its own so that no buffer spans two pages: every mbuf
# header then falls in the same few L1 sets, and a burst's headers evict one
# another. testpmd keeps that layout; levee packs its pool where I/O
# addresses are virtual (dataplane/src/dpdk/mempool.rs), so on 4 KiB pages
# the two sides do not run on the same memory layout and the ratios say more
# about the layouts than about levee. `auto` takes huge pages when the host
# has or can reserve them (reserved and mounted here, and given back at the
# end), else 4 KiB pages.
# Undo $1 at exit; with --keep, leave it (bench-ab.sh runs the kept
# configurations later) and say so ($2: what is left).
undo_at_exit() {
  if [ -z "$KEEP" ]; then
    cleanup+=("$1")
  else
    echo "bench: $2 left for the configurations in $KEEP (undo: $1)" >&2
  fi
}
HUGE_PAGES_NEEDED=$((384 * (WORKERS > 0 ? WORKERS : 1)))
MEMORY_MB=$((512 * (WORKERS > 0 ? WORKERS : 1)))
huge_pages_ready() {
  local sys=/sys/kernel/mm/hugepages/hugepages-2048kB
  [ -d "$sys" ] || return 1
  if ! grep -qs " /dev/hugepages hugetlbfs" /proc/mounts; then
    mkdir -p /dev/hugepages 2>/dev/null && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || return 1
    undo_at_exit "umount /dev/hugepages" "the /dev/hugepages mount"
  fi
  local free total
  free=$(cat "$sys/free_hugepages")
  if [ "$free" -lt "$HUGE_PAGES_NEEDED" ]; then
    total=$(cat "$sys/nr_hugepages")
    echo $((total + HUGE_PAGES_NEEDED - free)) >"$sys/nr_hugepages" 2>/dev/null || return 1
    undo_at_exit "echo $total >$sys/nr_hugepages" "$HUGE_PAGES_NEEDED reserved huge pages"
    [ "$(cat "$sys/free_hugepages")" -ge "$HUGE_PAGES_NEEDED" ] || return 1
  fi
}
if [ "$MEMORY" = auto ]; then
  if huge_pages_ready; then MEMORY=huge; else MEMORY=4k; fi
elif [ "$MEMORY" = huge ]; then
  huge_pages_ready || { echo "bench: cannot have $HUGE_PAGES_NEEDED huge pages of 2 MiB (root, and a kernel with them, are needed)" >&2; exit 1; }
fi
if [ "$MEMORY" = huge ]; then
  # In memory only: no files in the mount, nothing left behind.
  EAL_MEMORY=(--in-memory -m "$MEMORY_MB")
  MEMORY_NOTE="mbufs in 2 MiB huge pages"
else
  EAL_MEMORY=(--no-huge -m "$MEMORY_MB" --no-shconf)
  MEMORY_NOTE="mbufs in 4 KiB pages (--no-huge: testpmd one per page, levee packed where I/O addresses are virtual)"
fi
# The same arguments as TOML strings, for levee's configurations.
EAL_TOML="$(printf '"%s", ' "${EAL_MEMORY[@]}")"
capture="$work/small-mix.pcap"
$LEVEE generate-capture --out "$capture" --packets 1024 --seed 7 >/dev/null

EAL_COMMON=("${EAL_MEMORY[@]}" --no-pci --log-level='*:error')
RX_DEV="net_pcap0,rx_pcap=$capture,infinite_rx=1"
TX_DEV="net_null0,no-rx=1"

median_pps() { # testpmd's log, port, field (Tx-pps: or Rx-pps:): the median of its per-second figures
  awk -v p="$2" -v f="$3" '
    /NIC statistics for port/ { port = $(NF-1) }
    $1 == f && port == p && $2 > 0 { print $2 }' "$1" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'
}

# testpmd with the given arguments for SECONDS, logging to $1; prints the median
# of its per-second pps on port $2 (field $3: Tx-pps: or Rx-pps:). testpmd now
# and then starts too late to report a second of forwarding in a short run: one
# more run then, so that the levee lines keep their reference.
testpmd_pps() {
  local log="$1" port="$2" field="$3" pps pid
  shift 3
  for _ in 1 2; do
    dpdk-testpmd "$@" >"$log" 2>&1 &
    pid=$!
    sleep "$SECONDS_PER_SIDE"
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pps=$(median_pps "$log" "$port" "$field")
    [ "${pps%.*}" -gt 0 ] 2>/dev/null && break
  done
  echo "$pps"
}

# The CPU lcore $1 runs on: its own number while the machine has it, else
# shared round robin (lcore 0, the main one, always on CPU 0).
cpu_of() { local n; n=$(nproc); if [ "$1" -lt "$n" ]; then echo "$1"; else echo $(($1 % n)); fi; }
lcores_of() { # the --lcores list for lcores 0..$1
  local out="" l
  for l in $(seq 0 "$1"); do out="$out${out:+,}$l@$(cpu_of "$l")"; done
  echo "$out"
}

if [ "$WORKERS" -gt 0 ]; then
  echo "running: forwarding with 1..$WORKERS workers, testpmd io with as many cores ($SECONDS_PER_SIDE s each)" >&2
  printf "%s\n" "net_pcap(infinite_rx, 1024 small mixed frames, one queue per worker) -> net_null, $(nproc) CPU(s), $SECONDS_PER_SIDE s each, $MEMORY_NOTE"
  printf '  %-9s %14s %14s %7s %s\n' workers "testpmd Mpps" "levee Mpps" ratio "per-worker Mpps"
  for n in $(seq 1 "$WORKERS"); do
    rx="net_pcap0$(for _ in $(seq 1 "$n"); do printf ',rx_pcap=%s' "$capture"; done),infinite_rx=1"
    io=$(testpmd_pps "$work/testpmd-$n.log" 1 Tx-pps: \
      --lcores "$(lcores_of "$n")" "${EAL_COMMON[@]}" --vdev="$rx" --vdev="net_null0,no-rx=1" -- \
      --total-num-mbufs=$((16384 * n)) --forward-mode=io --nb-cores="$n" --rxq="$n" --txq="$n" \
      --auto-start --stats-period 1)
    workers=$(seq -s, 1 "$n"); cpus=""
    for l in $(seq 1 "$n"); do cpus="$cpus${cpus:+, }$(cpu_of "$l")"; done
    cat >"$work/levee-$n.toml" <<TOML
mode = "inline"
[dpdk]
eal_args = [$EAL_TOML"--no-pci", "--log-level=*:error"]
main_lcore = 0
main_cpu = 0
worker_lcores = [$workers]
worker_cpus = [$cpus]
mempool_size = $((16384 * n - 1))
[[pair]]
outside = "$rx"
inside = "net_null0,no-rx=1"
[log]
level = "warn"
[store]
enabled = false
[detection]
floor_pps = 1e12
floor_bps = 1e15
prefix_floor_pps = 1e12
TOML
    $LEVEE run --config "$work/levee-$n.toml" --duration "$SECONDS_PER_SIDE" --json 2>"$work/levee.err" | tail -1 >"$work/summary.json" || true
    [ -s "$work/summary.json" ] || { echo "levee failed:" >&2; cat "$work/levee.err" >&2; exit 1; }
    python3 - "$n" "$io" "$work/summary.json" <<'PY'
import json, sys
n, io = int(sys.argv[1]), float(sys.argv[2])
s = json.load(open(sys.argv[3]))
total = s["totals"]["tx_pps"]
secs = s["seconds"]
each = " ".join(f'{w["inbound"]["tx_packets"] / secs / 1e6:.2f}' for w in s["workers"])
assert len(s["workers"]) == n, f"{len(s['workers'])} workers ran, {n} asked"
print(f"  {n:<9} {io / 1e6:14.2f} {total / 1e6:14.2f} {total / io if io else float('nan'):7.3f} {each}")
PY
  done
  exit 0
fi

reference() { # $1 = forward mode; prints the median per-second pps of the counted port
  local mode="$1" port=1 field="Tx-pps:"
  if [ "$mode" = rxonly ]; then port=0; field="Rx-pps:"; fi
  testpmd_pps "$work/testpmd-$mode.log" "$port" "$field" \
    -l 0-1 "${EAL_COMMON[@]}" --vdev="$RX_DEV" --vdev="$TX_DEV" -- \
    --total-num-mbufs=16384 --forward-mode="$mode" --auto-start --stats-period 1
}

NO_INCIDENTS="floor_pps = 1e12
floor_bps = 1e15
prefix_floor_pps = 1e12"
# One run of levee build $1 on configuration $2; prints the summary's field $3
# (tx_pps or rx_pps) and leaves the summary in $work/summary.json.
levee_measure() {
  "$1" run --config "$2" --duration "$SECONDS_PER_SIDE" --json 2>"$work/levee.err" | tail -1 >"$work/summary.json" || true
  [ -s "$work/summary.json" ] || { echo "levee ($1) failed:" >&2; cat "$work/levee.err" "$2" >&2; exit 1; }
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[2]))["totals"][sys.argv[1]]))' "$3" "$work/summary.json"
}
levee_run() { # $1 = name; $2 = extra TOML; $3 = JSON field (tx_pps or rx_pps); $4 = outside device; $5 = [detection] settings
  local name="$1"
  shift
  cat >"$work/levee.toml" <<TOML
mode = "inline"
[dpdk]
eal_args = [$EAL_TOML"--no-pci", "--log-level=*:error"]
main_lcore = 0
worker_lcores = [1]
mempool_size = 16383
[[pair]]
outside = "${3:-$RX_DEV}"
inside = "$TX_DEV"
[log]
level = "warn"
[store]
enabled = false
# Detection runs but never opens an incident: one would switch on the per-source
# accounting of its target (the pipeline under attack), which is not what these
# lines measure.
[detection]
${4:-$NO_INCIDENTS}
$1
[mitigation]
# The bench measures the dataplane with the rules it is given: detection runs,
# but its rules stay staged.
auto_apply = false
TOML
  cp "$work/levee.toml" "$work/levee-$name.toml"
  levee_measure "$LEVEE" "$work/levee.toml" "$2"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tsc_hz"])' "$work/summary.json" >"$work/tsc_hz"
}

# Every packet a SYN from one of 4096 spoofed sources to 10.0.0.1 (infinite_rx
# holds the whole capture in mbufs): none
# ever answers, so each one is challenged (the outside port's TX drops what
# is sent back: net_pcap without a tx stream).
python3 - "$work/syn-flood.pcap" <<'PY'
import sys
sys.path.insert(0, "scripts/lab")
import spoofed_tcp
spoofed_tcp.write_flood(sys.argv[1], "syn", 4096, bytes.fromhex("020000000002"), bytes.fromhex("020000000001"), "10.0.0.1", 7)
PY

# 1M blocked addresses: for the forwarding run none is a source of the capture
# (198.18.0.0/15); for the drop run the whole /15 is in, as exact entries.
python3 - "$work" <<'PY'
import random, sys, ipaddress
work = sys.argv[1]
rng = random.Random(11)
bench = ipaddress.ip_network("198.18.0.0/15")
others = set()
while len(others) < 1_000_000:
    a = ipaddress.IPv4Address(rng.getrandbits(32))
    if a not in bench:
        others.add(str(a))
others = sorted(others)
with open(f"{work}/blocklist-miss.txt", "w") as f:
    f.write("\n".join(others) + "\n")
with open(f"{work}/blocklist-hit.txt", "w") as f:
    f.write("\n".join(str(a) for a in bench) + "\n")
    f.write("\n".join(others[: 1_000_000 - bench.num_addresses]) + "\n")
# 200 signature rules over the protected /24 that the traffic never matches
# (lengths 1400-1500), so every rule is evaluated and nothing is dropped.
protos = [("udp", [53, 123, 27015, 443]), ("tcp", [80, 443, 22, 25])]
with open(f"{work}/signatures.toml", "w") as f:
    for i in range(200):
        proto, ports = protos[i % 2]
        port = ports[(i // 2) % 4]
        f.write(f'[[rules.signature]]\nid = {1000 + i}\ndestination = "10.0.0.0/24"\nprotocol = "{proto}"\n'
                f'dst_ports = "{port}-{port + i // 8}"\nip_length = "{1400 + i % 50}-1500"\n\n')
PY

PIPELINE_TOML="[pipeline]
protected = [\"10.0.0.0/24\"]
top_sources_one_in = 4
[tables]
blocked_hosts = 1048576
[rules]"

echo "running: $ROUNDS round(s) of testpmd io, levee forwarding, levee full pipeline, levee challenge path, levee under attack, testpmd rxonly, levee drop path ($SECONDS_PER_SIDE s each, $MEMORY_NOTE)" >&2
head -n 100000 "$work/blocklist-miss.txt" >"$work/blocklist-100k.txt"
# Each round measures every line next to its reference, so that a slow spell
# of the host falls on both; the ratios are taken per round, then their median.
: >"$work/rounds.txt"
: >"$work/also.txt"
for round in $(seq 1 "$ROUNDS"); do
  io_pps=$(reference io)
  plain_pps=$(levee_run plain "" tx_pps)
  full_pps=$(levee_run full "$PIPELINE_TOML
blocklist_file = \"$work/blocklist-miss.txt\"
$(cat "$work/signatures.toml")" tx_pps)
  challenge_pps=$(levee_run challenge "[pipeline]
protected = [\"10.0.0.0/24\"]
[rules]
[[rules.signature]]
id = 9
destination = \"10.0.0.1/32\"
protocol = \"tcp\"
tcp_flags = \"S/SA\"
action = \"syn-authentication\"" rx_pps "net_pcap0,rx_pcap=$work/syn-flood.pcap,infinite_rx=1")
  challenges=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["pipeline"]["defences"]["challenges"], s["totals"]["rx_packets"])' "$work/summary.json")
  # Under attack: detection opens an incident on each busy destination at once
  # (low floors), its rules staged, not applied, so the per-source accounting
  # runs and nothing is dropped; 100,000 blocked sources none of which sends.
  attack_pps=$(levee_run attack "$PIPELINE_TOML
blocklist_file = \"$work/blocklist-100k.txt\"
$(cat "$work/signatures.toml")" tx_pps "" "floor_pps = 1000
floor_bps = 1e6
cold_start_floor_pps = 1000
prefix_floor_pps = 1e12
warmup_seconds = 0")
  attack_incidents=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["open_incidents"])' "$work/summary.json")
  rxonly_pps=$(reference rxonly)
  drop_pps=$(levee_run drop "$PIPELINE_TOML
blocklist_file = \"$work/blocklist-hit.txt\"
$(cat "$work/signatures.toml")" rx_pps)
  echo "$io_pps $plain_pps $full_pps $rxonly_pps $drop_pps $challenge_pps $challenges $attack_pps $attack_incidents" >>"$work/rounds.txt"
  # Other builds on the configurations just written, against this round's
  # references.
  for i in "${!ALSO_BINS[@]}"; do
    also_pps=""
    for line in plain:tx_pps full:tx_pps drop:rx_pps; do
      also_pps="$also_pps $(levee_measure "${ALSO_BINS[$i]}" "$work/levee-${line%%:*}.toml" "${line#*:}")"
    done
    echo "$((round - 1)) ${ALSO_LABELS[$i]}$also_pps" >>"$work/also.txt"
  done
done

python3 - "$work/rounds.txt" "$SECONDS_PER_SIDE" "$(cat "$work/tsc_hz")" "$MEMORY_NOTE" "$work/also.txt" <<'PY'
import statistics, sys
rounds = [[float(x) for x in line.split()] for line in open(sys.argv[1]) if line.strip()]
secs, hz, memory = sys.argv[2], float(sys.argv[3]), sys.argv[4]
med = statistics.median
r = lambda a, b: a / b if b else float("nan")
# levee's own cycles per packet: its time per packet less the reference's.
own = lambda a, b: (1 / a - 1 / b) * hz if a and b else float("nan")
IO, PLAIN, FULL, RXONLY, DROP, CHALLENGE, CHALLENGED, RECEIVED, ATTACK, INCIDENTS = range(10)
n = len(rounds)
print(f"net_pcap(infinite_rx, 1024 small mixed frames) -> net_null, 1 worker core, {secs} s each, "
      f"TSC {hz/1e9:.2f} GHz, {memory}" + (f", medians of {n} rounds" if n > 1 else ""))
# With rounds, also the best of each line against the best of its reference:
# a busy host only ever slows a run down, so each side's fastest run is the
# nearest to its undisturbed speed (the median ratio still pairs runs of one
# round, which a slow spell in the middle of a round splits).
print(f"  {'measurement':<58} {'Mpps':>8} {'ratio':>7} {'cycles/pkt':>11}"
      + (f" {'best ratio':>10}  ratio per round" if n > 1 else ""))
def row(label, col, ref=None, note="", rounds=rounds):
    mpps = med(x[col] for x in rounds) / 1e6
    if ref is None:
        best = f" (best {max(x[col] for x in rounds) / 1e6:.2f})" if n > 1 else ""
        print(f"  {label:<58} {mpps:8.2f}{best}")
        return
    ratios = [r(x[col], x[ref]) for x in rounds]
    cycles = med(own(x[col], x[ref]) for x in rounds)
    per_round = ""
    if n > 1:
        best = r(max(x[col] for x in rounds), max(x[ref] for x in rounds))
        per_round = f" {best:10.3f}  " + " ".join(f"{q:.3f}" for q in ratios)
    print(f"  {label:<58} {mpps:8.2f} {med(ratios):7.3f} {cycles:11.0f}{per_round}{note}")
row("dpdk-testpmd --forward-mode=io", IO)
row("levee forwarding (no rules)", PLAIN, IO)
row("levee full pipeline (1M blocklist, 200 signatures, stats)", FULL, IO)
row("levee pipeline under attack (incidents, 100k blocked)", ATTACK, IO)
print(f"    {int(rounds[-1][INCIDENTS])} incident(s) open at the end")
row("dpdk-testpmd --forward-mode=rxonly", RXONLY)
row("levee drop path (every source blocked)", DROP, RXONLY)
row("levee challenge path (SYN authentication, new sources)", CHALLENGE, IO, note="  (vs testpmd io)")
print(f"    {int(rounds[-1][CHALLENGED])} challenges written for {int(rounds[-1][RECEIVED])} packets received")
# Another build's rounds: the main rounds with its forwarding, full and drop
# figures in their places, so that one row() prints both.
also = {}
for line in open(sys.argv[5]):
    i, label, plain, full, drop = line.split()
    theirs = also.setdefault(label, [list(x) for x in rounds])[int(i)]
    theirs[PLAIN], theirs[FULL], theirs[DROP] = float(plain), float(full), float(drop)
for label, theirs in also.items():
    print(f"  build {label}:")
    row("  levee forwarding (no rules)", PLAIN, IO, rounds=theirs)
    row("  levee full pipeline", FULL, IO, rounds=theirs)
    row("  levee drop path", DROP, RXONLY, rounds=theirs)
PY
