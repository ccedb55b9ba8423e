//! What `check-config` can tell about the machine a configuration runs on,
//! from sysfs: worker CPUs the kernel still schedules on, and ports on another
//! NUMA node than the workers that poll them. Warnings, not errors: levee
//! runs either way, only slower.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Config, Device};

/// The sysfs levee reads: `/sys`, or `$LEVEE_SYSFS` (tests, or a copy of
/// another machine's).
pub fn sysfs_root() -> PathBuf {
    std::env::var_os("LEVEE_SYSFS").map_or_else(|| PathBuf::from("/sys"), PathBuf::from)
}

/// A kernel CPU list (`0-3,8,10-11`); `None` if it is not one.
pub fn parse_cpu_list(text: &str) -> Option<BTreeSet<u32>> {
    let mut cpus = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u32, u32) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        if lo > hi || hi - lo > 65_536 {
            return None;
        }
        cpus.extend(lo..=hi);
    }
    Some(cpus)
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The NUMA node of a CPU (its `nodeN` entry), if the machine says.
fn cpu_node(sys: &Path, cpu: u32) -> Option<u32> {
    std::fs::read_dir(sys.join(format!("devices/system/cpu/cpu{cpu}")))
        .ok()?
        .flatten()
        .find_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
}

/// The NUMA node of a PCI device; `None` when unknown (-1: one node, or the
/// firmware does not say).
fn pci_node(sys: &Path, address: &str) -> Option<u32> {
    let text = read(&sys.join(format!("bus/pci/devices/{address}/numa_node")))?;
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
}

/// Lcores that would run on CPUs the machine at `sys` does not have online:
/// the EAL would refuse them with its usage text; levee names the key.
/// Nothing when the machine does not say which CPUs are online.
pub fn cpu_problems(config: &Config, sys: &Path) -> Vec<super::Problem> {
    let Some(online) =
        read(&sys.join("devices/system/cpu/online")).and_then(|t| parse_cpu_list(&t))
    else {
        return Vec::new();
    };
    let listed = online
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mapped = config.dpdk.worker_cpus.is_some() || config.dpdk.main_cpu.is_some();
    let mut out = Vec::new();
    for (i, (lcore, cpu)) in config.lcore_cpus().into_iter().enumerate() {
        if online.contains(&cpu) {
            continue;
        }
        let key = match (i, mapped) {
            (0, true) => "dpdk.main_cpu".to_owned(),
            (0, false) => "dpdk.main_lcore".to_owned(),
            (_, true) => format!("dpdk.worker_cpus[{}]", i - 1),
            (_, false) => format!("dpdk.worker_lcores[{}]", i - 1),
        };
        out.push(super::Problem {
            key,
            message: format!(
                "lcore {lcore} would run on CPU {cpu}, which this machine does not have (online: {listed}); map lcores onto its CPUs with dpdk.worker_cpus and dpdk.main_cpu"
            ),
        });
    }
    out
}

/// Everything worth telling the operator about running `config` on the
/// machine whose sysfs is at `sys`.
pub fn warnings(config: &Config, sys: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let online = read(&sys.join("devices/system/cpu/online")).and_then(|t| parse_cpu_list(&t));
    let isolated = read(&sys.join("devices/system/cpu/isolated"))
        .and_then(|t| parse_cpu_list(&t))
        .unwrap_or_default();
    let cpus: Vec<u32> = config
        .lcore_cpus()
        .into_iter()
        .skip(1)
        .map(|(_, cpu)| cpu)
        .collect();
    for (i, cpu) in cpus.iter().enumerate() {
        let key = format!("dpdk.worker_lcores[{i}]");
        if online.as_ref().is_some_and(|o| !o.contains(cpu)) {
            // A problem, not a warning (`cpu_problems`).
            continue;
        }
        if !isolated.contains(cpu) {
            out.push(format!(
                "{key}: CPU {cpu} is not isolated from the kernel (isolcpus=): other tasks share the CPU a worker polls at 100%, and packets wait while they run"
            ));
        }
    }
    for (p, pair) in config.pairs.iter().enumerate() {
        for (side, spec) in [
            ("outside", Some(&pair.outside)),
            ("inside", pair.inside.as_ref()),
        ] {
            let Some(Ok(Device::Pci(address))) = spec.map(|s| Device::parse(s)) else {
                continue;
            };
            let Some(port_node) = pci_node(sys, &address) else {
                continue;
            };
            for cpu in cpus.iter().copied().collect::<BTreeSet<u32>>() {
                if let Some(node) = cpu_node(sys, cpu).filter(|n| *n != port_node) {
                    out.push(format!(
                        "pair[{p}].{side}: port {address} is on NUMA node {port_node} but worker CPU {cpu} is on node {node}: every packet crosses between sockets"
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-2,5,7-8\n"),
            Some([0, 1, 2, 5, 7, 8].into_iter().collect())
        );
        assert_eq!(parse_cpu_list("\n"), Some(BTreeSet::new()));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }
}
