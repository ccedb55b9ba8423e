//! The configuration file (TOML): parsed strictly, validated as a whole, and every
//! problem reported with the key it concerns.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What levee does with the traffic it receives.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bump in the wire: forward between the ports of each pair.
    #[default]
    Inline,
    /// Receive and count only (e.g. a mirror/SPAN port); nothing is transmitted.
    Monitor,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub node: NodeConfig,
    #[serde(default)]
    pub dpdk: DpdkConfig,
    /// Port pairs: `outside` faces the Internet, `inside` the protected networks.
    #[serde(default, rename = "pair")]
    pub pairs: Vec<PairConfig>,
    #[serde(default)]
    pub log: LogConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Stable id of this appliance (`nd_...`); derived from the host name if unset.
    pub id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkConfig {
    /// Extra EAL arguments (memory, `--no-huge`, `--file-prefix`...). Lcores and
    /// devices come from `main_lcore`, `worker_lcores` and the pairs.
    #[serde(default)]
    pub eal_args: Vec<String>,
    #[serde(default)]
    pub main_lcore: u32,
    #[serde(default = "default_workers")]
    pub worker_lcores: Vec<u32>,
    #[serde(default = "default_mempool_size")]
    pub mempool_size: u32,
    #[serde(default = "default_mempool_cache")]
    pub mempool_cache: u32,
    #[serde(default = "default_descriptors")]
    pub rx_descriptors: u16,
    #[serde(default = "default_descriptors")]
    pub tx_descriptors: u16,
    /// How often workers publish their counters.
    #[serde(default = "default_stats_interval")]
    pub stats_interval_ms: u64,
}

fn default_workers() -> Vec<u32> {
    vec![1]
}
fn default_mempool_size() -> u32 {
    16383
}
fn default_mempool_cache() -> u32 {
    256
}
fn default_descriptors() -> u16 {
    1024
}
fn default_stats_interval() -> u64 {
    100
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            eal_args: Vec::new(),
            main_lcore: 0,
            worker_lcores: default_workers(),
            mempool_size: default_mempool_size(),
            mempool_cache: default_mempool_cache(),
            rx_descriptors: default_descriptors(),
            tx_descriptors: default_descriptors(),
            stats_interval_ms: default_stats_interval(),
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `levee=debug,warn`...
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: default_log_level() }
    }
}

/// One problem with a configuration, and the key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration cannot be used. The text is the message shown.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid levee configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
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
        if !driver_like || name.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '_')) {
            return Err(format!(
                "{spec:?} is neither a PCI address (0000:03:00.0) nor a virtual device (net_pcap0,..., net_af_packet0,iface=...)"
            ));
        }
        Ok(Device::Virtual { name: name.to_owned(), spec: spec.to_owned() })
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
    let hex = |part: &str, len: usize| part.len() == len && part.chars().all(|c| c.is_ascii_hexdigit());
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

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        config.expand_config_dir(&dir);
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: path.into(), problems })
        }
    }

    /// Device strings may say `{config_dir}` for the directory of the config file,
    /// so bundled configurations can point at files next to them.
    fn expand_config_dir(&mut self, dir: &Path) {
        let dir = dir.display().to_string();
        for pair in &mut self.pairs {
            pair.outside = pair.outside.replace("{config_dir}", &dir);
            if let Some(inside) = &mut pair.inside {
                *inside = inside.replace("{config_dir}", &dir);
            }
        }
    }

    /// Every problem found, each naming its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| problems.push(Problem { key: key.into(), message });
        let d = &self.dpdk;

        if d.worker_lcores.is_empty() {
            bad("dpdk.worker_lcores", "at least one worker lcore is needed".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, lcore) in d.worker_lcores.iter().enumerate() {
            if *lcore == d.main_lcore {
                bad(&format!("dpdk.worker_lcores[{i}]"), format!("lcore {lcore} is the main lcore"));
            }
            if !seen.insert(*lcore) {
                bad(&format!("dpdk.worker_lcores[{i}]"), format!("lcore {lcore} is listed twice"));
            }
            if *lcore >= dpdk_max_lcore() {
                bad(&format!("dpdk.worker_lcores[{i}]"), format!("lcore {lcore} is beyond {}", dpdk_max_lcore() - 1));
            }
        }
        if d.main_lcore >= dpdk_max_lcore() {
            bad("dpdk.main_lcore", format!("lcore {} is beyond {}", d.main_lcore, dpdk_max_lcore() - 1));
        }
        if d.worker_lcores.len() > usize::from(u16::MAX) {
            bad("dpdk.worker_lcores", "too many workers".into());
        }
        if d.mempool_size < 1024 {
            bad("dpdk.mempool_size", format!("{} mbufs is too few (at least 1024)", d.mempool_size));
        }
        if d.mempool_cache > 512 || d.mempool_cache > d.mempool_size / 2 {
            bad("dpdk.mempool_cache", format!("{} exceeds 512 or half the pool", d.mempool_cache));
        }
        for (key, n) in [("dpdk.rx_descriptors", d.rx_descriptors), ("dpdk.tx_descriptors", d.tx_descriptors)] {
            if !(32..=16384).contains(&n) {
                bad(key, format!("{n} is outside 32..=16384"));
            }
        }
        if !(1..=10_000).contains(&d.stats_interval_ms) {
            bad("dpdk.stats_interval_ms", format!("{} is outside 1..=10000", d.stats_interval_ms));
        }
        for (i, arg) in d.eal_args.iter().enumerate() {
            let option = arg.split('=').next().unwrap_or_default();
            if let Some((_, instead)) = RESERVED_EAL_OPTIONS.iter().find(|(o, _)| *o == option) {
                bad(&format!("dpdk.eal_args[{i}]"), format!("{option} is set by levee from {instead}"));
            }
        }

        if self.pairs.is_empty() {
            bad("pair", "at least one [[pair]] of ports is needed".into());
        }
        let mut names = std::collections::BTreeMap::new();
        for (i, pair) in self.pairs.iter().enumerate() {
            let mut check = |side: &str, spec: &str| match Device::parse(spec) {
                Ok(dev) => {
                    if let Some(other) = names.insert(dev.port_name().to_owned(), format!("pair[{i}].{side}")) {
                        bad(&format!("pair[{i}].{side}"), format!("port {} is already used by {other}", dev.port_name()));
                    }
                }
                Err(message) => bad(&format!("pair[{i}].{side}"), message),
            };
            check("outside", &pair.outside);
            match (&pair.inside, self.mode) {
                (Some(inside), _) => check("inside", inside),
                (None, Mode::Inline) => {
                    bad(&format!("pair[{i}].inside"), "inline mode needs an inside port to forward to".into())
                }
                (None, Mode::Monitor) => {}
            }
        }
        if let Some(id) = &self.node.id {
            if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                bad("node.id", format!("{id:?} must be 1-64 characters of [A-Za-z0-9_-]"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            bad("log.level", format!("{:?} is not a log filter (e.g. info, debug, levee=debug)", self.log.level));
        }
        problems
    }

    /// The EAL arguments: lcores, the configured extras, then one device option per port.
    pub fn eal_args(&self) -> Vec<String> {
        let d = &self.dpdk;
        let mut lcores = vec![d.main_lcore];
        lcores.extend(&d.worker_lcores);
        let mut args = vec![
            "-l".to_owned(),
            lcores.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            "--main-lcore".to_owned(),
            d.main_lcore.to_string(),
        ];
        args.extend(d.eal_args.iter().cloned());
        for device in self.devices() {
            match device {
                Device::Pci(addr) => args.extend(["-a".to_owned(), addr]),
                Device::Virtual { spec, .. } => args.push(format!("--vdev={spec}")),
            }
        }
        args
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

fn dpdk_max_lcore() -> u32 {
    // RTE_MAX_LCORE of Debian's build; the EAL rejects anything beyond it anyway.
    128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        let p = c.problems();
        if p.is_empty() { Ok(c) } else { Err(p.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")) }
    }

    const MINIMAL: &str = r#"
        [[pair]]
        outside = "net_pcap0,rx_pcap=a.pcap"
        inside = "net_null0"
    "#;

    #[test]
    fn minimal_config_gets_defaults_and_eal_args() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.mode, Mode::Inline);
        assert_eq!(c.dpdk.worker_lcores, vec![1]);
        assert_eq!(
            c.eal_args(),
            ["-l", "0,1", "--main-lcore", "0", "--vdev=net_pcap0,rx_pcap=a.pcap", "--vdev=net_null0"]
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("[dpdk]\nmempool_sise = 4096\n").expect_err("typo");
        assert!(e.contains("mempool_sise"), "{e}");
        let e = parse("colour = 1\n").expect_err("unknown top-level key");
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_values_name_each_key() {
        let e = parse(
            r#"
            mode = "inline"
            [dpdk]
            main_lcore = 1
            worker_lcores = [1, 2, 2]
            mempool_size = 10
            eal_args = ["-l", "0-3"]
            [[pair]]
            outside = "eth0"
            [[pair]]
            outside = "net_null0"
            inside = "net_null0"
            "#,
        )
        .expect_err("many problems");
        for key in [
            "dpdk.worker_lcores[0]",
            "dpdk.worker_lcores[2]",
            "dpdk.mempool_size",
            "dpdk.eal_args[0]",
            "pair[0].outside",
            "pair[0].inside",
            "pair[1].inside",
        ] {
            assert!(e.contains(key), "{key} missing from:\n{e}");
        }
    }

    #[test]
    fn bad_types_and_modes_are_parse_errors() {
        let e = parse("mode = \"sideways\"\n").expect_err("bad mode");
        assert!(e.contains("sideways") || e.contains("mode"), "{e}");
        let e = parse("[dpdk]\nmempool_size = \"lots\"\n").expect_err("bad type");
        assert!(e.contains("mempool_size"), "{e}");
    }

    #[test]
    fn monitor_mode_needs_no_inside_port() {
        let c = parse("mode = \"monitor\"\n[[pair]]\noutside = \"0000:03:00.0\"\n").expect("valid");
        assert_eq!(c.devices(), vec![Device::Pci("0000:03:00.0".into())]);
        assert!(c.eal_args().ends_with(&["-a".to_owned(), "0000:03:00.0".to_owned()]));
    }

    #[test]
    fn device_strings() {
        assert_eq!(Device::parse("03:00.1"), Ok(Device::Pci("03:00.1".into())));
        assert!(Device::parse("0000:03:00.8").is_err());
        assert_eq!(
            Device::parse("net_af_packet0,iface=veth0").map(|d| d.port_name().to_owned()),
            Ok("net_af_packet0".into())
        );
        assert!(Device::parse("").is_err());
        assert!(Device::parse("net_pcap 0").is_err());
    }
}
