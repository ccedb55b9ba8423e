//! `[dpdk]` and `[[pair]]`: the EAL, its lcores, and the ports.

use serde::Deserialize;

use super::{Config, Mode};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpdkConfig {
    /// Extra EAL arguments (memory, `--no-huge`, `--file-prefix`...). Lcores and
    /// devices come from `main_lcore`, `worker_lcores` and the pairs.
    pub eal_args: Vec<String>,
    pub main_lcore: u32,
    pub worker_lcores: Vec<u32>,
    /// The CPU each worker lcore runs on, in the order of `worker_lcores`
    /// (DPDK's `--lcores lcore@cpu`): several lcores may share a CPU (tests on
    /// a small machine), or lcore ids differ from CPU numbers. Unset: lcore N
    /// runs on CPU N.
    pub worker_cpus: Option<Vec<u32>>,
    /// The CPU of the main lcore, with `worker_cpus` (unset: CPU `main_lcore`).
    pub main_cpu: Option<u32>,
    pub mempool_size: u32,
    pub mempool_cache: u32,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// How often workers publish their counters.
    pub stats_interval_ms: u64,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            eal_args: Vec::new(),
            main_lcore: 0,
            worker_lcores: vec![1],
            worker_cpus: None,
            main_cpu: None,
            mempool_size: 16383,
            mempool_cache: 256,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            stats_interval_ms: 100,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// A PCI address (`0000:03:00.0`) or a virtual device string
    /// (`net_pcap0,rx_pcap=in.pcap`, `net_af_packet0,iface=eth1`...).
    pub outside: String,
    /// The peer port; required in inline mode, absent in monitor mode.
    pub inside: Option<String>,
}

/// A device string split into what DPDK needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// A PCI address, passed to the EAL with `-a`.
    Pci(String),
    /// A virtual device, passed with `--vdev`; `name` is the part before the first comma.
    Virtual { name: String, spec: String },
}

impl Device {
    pub fn parse(spec: &str) -> Result<Device, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("empty device string".into());
        }
        if is_pci_address(spec) {
            return Ok(Device::Pci(spec.to_owned()));
        }
        let name = spec.split(',').next().unwrap_or_default();
        let driver_like = name.starts_with("net_") || name.starts_with("eth_");
        if !driver_like
            || name
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(format!(
                "{spec:?} is neither a PCI address (0000:03:00.0) nor a virtual device (net_pcap0,..., net_af_packet0,iface=...)"
            ));
        }
        Ok(Device::Virtual {
            name: name.to_owned(),
            spec: spec.to_owned(),
        })
    }

    /// The name DPDK gives the port.
    pub fn port_name(&self) -> &str {
        match self {
            Device::Pci(a) => a,
            Device::Virtual { name, .. } => name,
        }
    }
}

fn is_pci_address(s: &str) -> bool {
    let hex =
        |part: &str, len: usize| part.len() == len && part.chars().all(|c| c.is_ascii_hexdigit());
    let (bdf, func) = match s.rsplit_once('.') {
        Some(x) => x,
        None => return false,
    };
    if func.len() != 1 || !matches!(func.as_bytes()[0], b'0'..=b'7') {
        return false;
    }
    let parts: Vec<&str> = bdf.split(':').collect();
    match parts.as_slice() {
        [domain, bus, dev] => hex(domain, 4) && hex(bus, 2) && hex(dev, 2),
        [bus, dev] => hex(bus, 2) && hex(dev, 2),
        _ => false,
    }
}

/// EAL options levee derives itself; setting them by hand would contradict the config.
const RESERVED_EAL_OPTIONS: &[(&str, &str)] = &[
    ("-l", "dpdk.main_lcore and dpdk.worker_lcores"),
    ("-c", "dpdk.main_lcore and dpdk.worker_lcores"),
    ("--lcores", "dpdk.main_lcore and dpdk.worker_lcores"),
    ("--main-lcore", "dpdk.main_lcore"),
    ("--vdev", "the pair device strings"),
    ("-a", "the pair device strings"),
    ("--allow", "the pair device strings"),
];

fn dpdk_max_lcore() -> u32 {
    // RTE_MAX_LCORE of Debian's build; the EAL rejects anything beyond it anyway.
    128
}

impl Config {
    /// The EAL arguments: lcores, the configured extras, then one device option per port.
    pub fn eal_args(&self) -> Vec<String> {
        let d = &self.dpdk;
        let mut args = if d.worker_cpus.is_some() || d.main_cpu.is_some() {
            // lcore@cpu for each: lcores may share CPUs.
            let lcores: Vec<String> = self
                .lcore_cpus()
                .into_iter()
                .map(|(lcore, cpu)| format!("{lcore}@{cpu}"))
                .collect();
            vec!["--lcores".to_owned(), lcores.join(",")]
        } else {
            let mut lcores = vec![d.main_lcore];
            lcores.extend(&d.worker_lcores);
            let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
            vec!["-l".to_owned(), list.join(",")]
        };
        args.extend(["--main-lcore".to_owned(), d.main_lcore.to_string()]);
        args.extend(d.eal_args.iter().cloned());
        for device in self.devices() {
            match device {
                Device::Pci(addr) => args.extend(["-a".to_owned(), addr]),
                Device::Virtual { spec, .. } => args.push(format!("--vdev={spec}")),
            }
        }
        args
    }

    /// Each lcore (the main one first) and the CPU it runs on.
    pub fn lcore_cpus(&self) -> Vec<(u32, u32)> {
        let d = &self.dpdk;
        let mut out = vec![(d.main_lcore, d.main_cpu.unwrap_or(d.main_lcore))];
        for (i, lcore) in d.worker_lcores.iter().enumerate() {
            let cpu = d
                .worker_cpus
                .as_ref()
                .and_then(|c| c.get(i).copied())
                .unwrap_or(*lcore);
            out.push((*lcore, cpu));
        }
        out
    }

    /// Every port's device, outside then inside for each pair.
    pub fn devices(&self) -> Vec<Device> {
        self.pairs
            .iter()
            .flat_map(|p| std::iter::once(&p.outside).chain(p.inside.as_ref()))
            .filter_map(|s| Device::parse(s).ok())
            .collect()
    }
}

impl DpdkConfig {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        let d = self;
        if d.worker_lcores.is_empty() {
            bad(
                "dpdk.worker_lcores",
                "at least one worker lcore is needed".into(),
            );
        }
        if let Some(cpus) = &d.worker_cpus {
            if cpus.len() != d.worker_lcores.len() {
                bad(
                    "dpdk.worker_cpus",
                    format!(
                        "{} CPU(s) for {} worker lcore(s): give one CPU per worker lcore, in the same order",
                        cpus.len(),
                        d.worker_lcores.len()
                    ),
                );
            }
            for (i, cpu) in cpus.iter().enumerate() {
                if *cpu >= dpdk_max_lcore() {
                    bad(
                        &format!("dpdk.worker_cpus[{i}]"),
                        format!("CPU {cpu} is beyond {}", dpdk_max_lcore() - 1),
                    );
                }
            }
        }
        if d.main_cpu.is_some_and(|c| c >= dpdk_max_lcore()) {
            bad("dpdk.main_cpu", format!("beyond {}", dpdk_max_lcore() - 1));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, lcore) in d.worker_lcores.iter().enumerate() {
            if *lcore == d.main_lcore {
                bad(
                    &format!("dpdk.worker_lcores[{i}]"),
                    format!("lcore {lcore} is the main lcore"),
                );
            }
            if !seen.insert(*lcore) {
                bad(
                    &format!("dpdk.worker_lcores[{i}]"),
                    format!("lcore {lcore} is listed twice"),
                );
            }
            if *lcore >= dpdk_max_lcore() {
                bad(
                    &format!("dpdk.worker_lcores[{i}]"),
                    format!("lcore {lcore} is beyond {}", dpdk_max_lcore() - 1),
                );
            }
        }
        if d.main_lcore >= dpdk_max_lcore() {
            bad(
                "dpdk.main_lcore",
                format!("lcore {} is beyond {}", d.main_lcore, dpdk_max_lcore() - 1),
            );
        }
        if d.worker_lcores.len() > usize::from(u16::MAX) {
            bad("dpdk.worker_lcores", "too many workers".into());
        }
        if d.mempool_size < 1024 {
            bad(
                "dpdk.mempool_size",
                format!("{} mbufs is too few (at least 1024)", d.mempool_size),
            );
        }
        if d.mempool_cache > 512 || d.mempool_cache > d.mempool_size / 2 {
            bad(
                "dpdk.mempool_cache",
                format!("{} exceeds 512 or half the pool", d.mempool_cache),
            );
        }
        for (key, n) in [
            ("dpdk.rx_descriptors", d.rx_descriptors),
            ("dpdk.tx_descriptors", d.tx_descriptors),
        ] {
            if !(32..=16384).contains(&n) {
                bad(key, format!("{n} is outside 32..=16384"));
            }
        }
        if !(1..=10_000).contains(&d.stats_interval_ms) {
            bad(
                "dpdk.stats_interval_ms",
                format!("{} is outside 1..=10000", d.stats_interval_ms),
            );
        }
        for (i, arg) in d.eal_args.iter().enumerate() {
            let option = arg.split('=').next().unwrap_or_default();
            if let Some((_, instead)) = RESERVED_EAL_OPTIONS.iter().find(|(o, _)| *o == option) {
                bad(
                    &format!("dpdk.eal_args[{i}]"),
                    format!("{option} is set by levee from {instead}"),
                );
            }
        }
    }
}

impl Config {
    pub(super) fn pair_problems(&self, bad: &mut impl FnMut(&str, String)) {
        if self.pairs.is_empty() {
            bad("pair", "at least one [[pair]] of ports is needed".into());
        }
        let mut names = std::collections::BTreeMap::new();
        for (i, pair) in self.pairs.iter().enumerate() {
            let mut check = |side: &str, spec: &str| match Device::parse(spec) {
                Ok(dev) => {
                    if let Some(other) =
                        names.insert(dev.port_name().to_owned(), format!("pair[{i}].{side}"))
                    {
                        bad(
                            &format!("pair[{i}].{side}"),
                            format!("port {} is already used by {other}", dev.port_name()),
                        );
                    }
                }
                Err(message) => bad(&format!("pair[{i}].{side}"), message),
            };
            check("outside", &pair.outside);
            match (&pair.inside, self.mode) {
                (Some(inside), _) => check("inside", inside),
                (None, Mode::Inline) => bad(
                    &format!("pair[{i}].inside"),
                    "inline mode needs an inside port to forward to".into(),
                ),
                (None, Mode::Monitor) => {}
            }
        }
    }
}
