#!/usr/bin/env bash
# Preparing a real box for levee, step by step (see docs/BARE-METAL.md):
#
#   bare-metal.sh [--dry-run] status
#   bare-metal.sh [--dry-run] hugepages [PAGES]   2 MiB pages now and at every boot
#   bare-metal.sh [--dry-run] bind PCI...         ports to vfio-pci (their kernel
#                                                 drivers remembered for unbind)
#   bare-metal.sh [--dry-run] unbind PCI...       ports back to their kernel drivers
#   bare-metal.sh [--dry-run] isolate CPUS        keep the kernel off the worker CPUs
#                                                 (kernel command line, from the next boot)
#
# --dry-run prints every command that would change the machine instead of
# running it. Needs root for anything but status and --dry-run.
set -euo pipefail

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
SYS="${LEVEE_SYSFS:-/sys}"
STATE="${LEVEE_STATE_DIR:-/var/lib/levee}"
SYSCTL_FILE="${LEVEE_SYSCTL_FILE:-/etc/sysctl.d/60-levee-hugepages.conf}"
GRUB_FILE="${LEVEE_GRUB_FILE:-/etc/default/grub}"

die() { echo "bare-metal: $*" >&2; exit 2; }
run() { # a command that changes the machine
  if [ "$DRY" = 1 ]; then echo "+ $*"; else "$@"; fi
}
write() { # file, text
  if [ "$DRY" = 1 ]; then printf '+ write %s:\n%s\n' "$1" "$2"; else printf '%s\n' "$2" > "$1"; fi
}
devbind() {
  command -v dpdk-devbind.py >/dev/null || [ "$DRY" = 1 ] ||
    die "dpdk-devbind.py not found: apt-get install dpdk"
  run dpdk-devbind.py "$@"
}
check_pci() {
  [[ "$1" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] ||
    die "$1 is not a PCI address like 0000:03:00.0"
}
cpu_list_ok() { [[ "$1" =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]]; }

cmd_status() {
  echo "hugepages (2 MiB): $(cat "$SYS/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" 2>/dev/null || echo '?') reserved, $(cat "$SYS/kernel/mm/hugepages/hugepages-2048kB/free_hugepages" 2>/dev/null || echo '?') free"
  if grep -qs " /dev/hugepages hugetlbfs" /proc/mounts; then echo "/dev/hugepages: mounted"; else echo "/dev/hugepages: not mounted"; fi
  echo "isolated CPUs: $(cat "$SYS/devices/system/cpu/isolated" 2>/dev/null || echo '?')"
  echo "NUMA nodes: $(cat "$SYS/devices/system/node/online" 2>/dev/null || echo '?')"
  for dev in "$SYS"/bus/pci/devices/*; do
    [ -e "$dev/class" ] || continue
    # Ethernet controllers (class 0x0200xx).
    case "$(cat "$dev/class")" in 0x0200*) ;; *) continue ;; esac
    local driver="-"
    [ -L "$dev/driver" ] && driver="$(basename "$(readlink "$dev/driver")")"
    echo "port $(basename "$dev"): driver $driver, NUMA node $(cat "$dev/numa_node" 2>/dev/null || echo '?')"
  done
}

cmd_hugepages() {
  local pages="${1:-1024}"
  [[ "$pages" =~ ^[0-9]+$ ]] && [ "$pages" -gt 0 ] || die "PAGES must be a positive number, not $pages"
  write "$SYSCTL_FILE" "# levee: DPDK's memory, reserved at boot
vm.nr_hugepages = $pages"
  run sysctl -w "vm.nr_hugepages=$pages"
  if ! grep -qs " /dev/hugepages hugetlbfs" /proc/mounts; then
    run mkdir -p /dev/hugepages
    run mount -t hugetlbfs nodev /dev/hugepages
  fi
}

cmd_bind() {
  [ $# -gt 0 ] || die "bind: which ports? (PCI addresses; see status)"
  run modprobe vfio-pci
  run mkdir -p "$STATE"
  for pci in "$@"; do
    check_pci "$pci"
    local driver=""
    [ -L "$SYS/bus/pci/devices/$pci/driver" ] && driver="$(basename "$(readlink "$SYS/bus/pci/devices/$pci/driver")")"
    if [ -n "$driver" ] && [ "$driver" != vfio-pci ]; then
      # Remembered, so unbind gives the port back to the same driver.
      write "$STATE/driver-$pci" "$driver"
    fi
    devbind --bind=vfio-pci "$pci"
  done
}

cmd_unbind() {
  [ $# -gt 0 ] || die "unbind: which ports?"
  for pci in "$@"; do
    check_pci "$pci"
    local driver
    driver="$(cat "$STATE/driver-$pci" 2>/dev/null || true)"
    [ -n "$driver" ] || die "unbind: no kernel driver remembered for $pci (bind it with: dpdk-devbind.py --bind=DRIVER $pci)"
    devbind --bind="$driver" "$pci"
    run rm -f "$STATE/driver-$pci"
  done
}

cmd_isolate() {
  local cpus="${1:-}"
  cpu_list_ok "$cpus" || die "isolate: CPUS must be a list like 2-3 or 2,4, not '$cpus'"
  local args="isolcpus=$cpus nohz_full=$cpus rcu_nocbs=$cpus"
  echo "kernel command line for isolated worker CPUs: $args"
  if [ -f "$GRUB_FILE" ] || [ "$DRY" = 1 ]; then
    local current=""
    [ -f "$GRUB_FILE" ] && current="$(sed -n 's/^GRUB_CMDLINE_LINUX_DEFAULT="\(.*\)"$/\1/p' "$GRUB_FILE")"
    # Earlier isolation settings are replaced, the rest kept.
    local kept
    kept="$(tr ' ' '\n' <<<"$current" | grep -Ev '^(isolcpus|nohz_full|rcu_nocbs)=' | tr '\n' ' ' | sed 's/ *$//')"
    local line="GRUB_CMDLINE_LINUX_DEFAULT=\"${kept:+$kept }$args\""
    if [ "$DRY" = 1 ]; then
      echo "+ edit $GRUB_FILE: $line"
    else
      sed -i "s|^GRUB_CMDLINE_LINUX_DEFAULT=.*|$line|" "$GRUB_FILE"
    fi
    run update-grub
    echo "reboot for it to take effect; then set dpdk.worker_lcores to these CPUs"
  else
    echo "no $GRUB_FILE: add these to your boot loader's kernel command line, then reboot"
  fi
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  status) cmd_status ;;
  hugepages) cmd_hugepages "$@" ;;
  bind) cmd_bind "$@" ;;
  unbind) cmd_unbind "$@" ;;
  isolate) cmd_isolate "$@" ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
esac
