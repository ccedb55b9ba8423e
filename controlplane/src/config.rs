//! The configuration file (TOML): parsed strictly, validated as a whole, and every
//! problem reported with the key it concerns.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use levee_dataplane::pipeline::{FramePolicy, PipelineConfig};
use levee_dataplane::stats::ReportCapacities;
use levee_dataplane::tables::{
    FragmentMatch, Prefix, PrefixTable, SignatureAction, SignatureRule, SignatureSet,
    TableCapacities,
};
use levee_dataplane::wire::TrafficClass;
use serde::Deserialize;

use crate::rule_fields::{IpProtocol, TcpFlags};

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
    #[serde(default)]
    pub pipeline: PipelineSection,
    #[serde(default)]
    pub tables: TablesSection,
    #[serde(default)]
    pub rules: RulesSection,
    #[serde(default)]
    pub detection: DetectionSection,
    #[serde(default)]
    pub mitigation: MitigationSection,
    #[serde(default)]
    pub forensics: ForensicsSection,
    #[serde(default)]
    pub store: StoreSection,
    /// The admin API runs when this section is present.
    pub api: Option<ApiSection>,
    /// `[[integration]]`: `name`, `kind` (webhook, abuseipdb, crowdsec,
    /// iptables) and the kind's settings, as the API takes them.
    #[serde(default, rename = "integration")]
    pub integrations: Vec<toml::Table>,
}

/// `[api]`: the local admin HTTP API (and the CLI's way to it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address and port to listen on; loopback unless you mean otherwise.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// The bearer token for every route but /api/v1/health (or `token_file`).
    pub token: Option<String>,
    /// A file holding the token (relative paths: next to the configuration).
    pub token_file: Option<PathBuf>,
    /// A token that may only read (GET), or `read_only_token_file`.
    pub read_only_token: Option<String>,
    pub read_only_token_file: Option<PathBuf>,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted.
    #[serde(default = "default_api_body")]
    pub max_body_bytes: usize,
}

fn default_api_listen() -> String {
    "127.0.0.1:8470".into()
}
fn default_api_body() -> usize {
    64 * 1024
}

/// The API's tokens, read from the configuration or its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokens {
    pub admin: String,
    pub read_only: Option<String>,
}

/// Shortest token accepted: a guessable token is no protection.
const MIN_TOKEN_LEN: usize = 16;

impl ApiSection {
    /// The tokens, or what is wrong with them (each naming its key).
    pub fn tokens(&self) -> Result<ApiTokens, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut read =
            |key: &str, inline: &Option<String>, file: &Option<PathBuf>, required: bool| {
                let token = match (inline, file) {
                    (Some(_), Some(_)) => {
                        problems.push(Problem {
                            key: format!("api.{key}"),
                            message: format!("set either {key} or {key}_file, not both"),
                        });
                        return None;
                    }
                    (Some(t), None) => t.trim().to_owned(),
                    (None, Some(f)) => match std::fs::read_to_string(f) {
                        Ok(t) => t.trim().to_owned(),
                        Err(e) => {
                            problems.push(Problem {
                                key: format!("api.{key}_file"),
                                message: format!("cannot read {}: {e}", f.display()),
                            });
                            return None;
                        }
                    },
                    (None, None) => {
                        if required {
                            problems.push(Problem {
                                key: format!("api.{key}"),
                                message: format!("the admin API needs a {key} (or {key}_file)"),
                            });
                        }
                        return None;
                    }
                };
                if token.len() < MIN_TOKEN_LEN
                    || token.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    problems.push(Problem {
                        key: format!("api.{key}"),
                        message: format!(
                            "a token must be at least {MIN_TOKEN_LEN} characters without spaces"
                        ),
                    });
                    return None;
                }
                Some(token)
            };
        let admin = read("token", &self.token, &self.token_file, true);
        let read_only = read(
            "read_only_token",
            &self.read_only_token,
            &self.read_only_token_file,
            false,
        );
        match admin {
            Some(admin) if problems.is_empty() => {
                if read_only.as_deref() == Some(admin.as_str()) {
                    return Err(vec![Problem {
                        key: "api.read_only_token".into(),
                        message: "must differ from the admin token".into(),
                    }]);
                }
                Ok(ApiTokens { admin, read_only })
            }
            _ => Err(problems),
        }
    }

    fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            bad(
                "api.listen",
                format!(
                    "{:?} is not an address:port (e.g. 127.0.0.1:8470)",
                    self.listen
                ),
            );
        }
        if let Err(problems) = self.tokens() {
            for p in problems {
                bad(&p.key, p.message);
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bad("api.tls_key", "tls_cert needs tls_key".into()),
            (None, Some(_)) => bad("api.tls_cert", "tls_key needs tls_cert".into()),
            _ => {}
        }
        for (key, file) in [
            ("api.tls_cert", &self.tls_cert),
            ("api.tls_key", &self.tls_key),
        ] {
            if let Some(f) = file {
                if let Err(e) = std::fs::metadata(f) {
                    bad(key, format!("cannot read {}: {e}", f.display()));
                }
            }
        }
        if !(1024..=16 << 20).contains(&self.max_body_bytes) {
            bad(
                "api.max_body_bytes",
                format!("{} is outside 1024..=16777216", self.max_body_bytes),
            );
        }
    }
}

/// `[store]`: the SQLite database of incidents, events, rules and the node id.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Relative paths are relative to the configuration file.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Without a store nothing survives a restart.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Resolved incidents, ended rules and finished deliveries older than this
    /// are removed (checked hourly); open incidents and live rules always stay.
    #[serde(default = "default_keep_days")]
    pub keep_days: f64,
}

fn default_keep_days() -> f64 {
    90.0
}

fn default_store_path() -> PathBuf {
    PathBuf::from("levee.db")
}

impl Default for StoreSection {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// `[forensics]`: pcapng captures of each incident's sampled packets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForensicsSection {
    /// Where captures go (`<incident id>.pcapng`); unset: none are written.
    pub dir: Option<PathBuf>,
    /// Seconds of packets before the incident's start included.
    #[serde(default = "default_lookback")]
    pub lookback_seconds: u64,
    #[serde(default = "default_forensic_packets")]
    pub max_packets: usize,
    /// The captures in `dir` together stay under this many MiB: the oldest go.
    #[serde(default = "default_forensic_mib")]
    pub max_total_mib: u64,
}

fn default_forensic_mib() -> u64 {
    1024
}

fn default_lookback() -> u64 {
    5
}
fn default_forensic_packets() -> usize {
    100_000
}

impl Default for ForensicsSection {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// `[detection]`: limits, baselines and the incident lifecycle.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSection {
    /// No traffic class of a host is an attack below this many packets/s.
    #[serde(default = "default_floor_pps")]
    pub floor_pps: f64,
    #[serde(default = "default_floor_bps")]
    pub floor_bps: f64,
    /// The same for a protected prefix as a whole (carpet bombing).
    #[serde(default = "default_prefix_floor_pps")]
    pub prefix_floor_pps: f64,
    /// Dynamic limit = multiplier x learnt baseline.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    #[serde(default = "default_half_life")]
    pub baseline_half_life_seconds: f64,
    /// Learning time before dynamic limits apply to a target.
    #[serde(default = "default_warmup")]
    pub warmup_seconds: f64,
    /// Until a target's baseline is learnt (warm-up, or restored from the
    /// store), no class of it is an attack below this many packets/s (never
    /// less than `floor_pps`); static group limits apply from the first window.
    #[serde(default = "default_cold_start_floor_pps")]
    pub cold_start_floor_pps: f64,
    /// Baselines saved longer ago than this are not restored at start.
    #[serde(default = "default_baseline_max_age_hours")]
    pub baseline_max_age_hours: f64,
    /// Consecutive windows over a limit before an incident starts.
    #[serde(default = "default_confirm")]
    pub confirm_windows: u32,
    /// Time under the limits before an incident resolves.
    #[serde(default = "default_cooldown")]
    pub cooldown_seconds: f64,
    #[serde(default = "default_max_attackers")]
    pub max_attackers: usize,
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupSection>,
}

fn default_floor_pps() -> f64 {
    5_000.0
}
fn default_floor_bps() -> f64 {
    50_000_000.0
}
fn default_prefix_floor_pps() -> f64 {
    10_000.0
}
fn default_multiplier() -> f64 {
    4.0
}
fn default_half_life() -> f64 {
    300.0
}
fn default_warmup() -> f64 {
    5.0
}
fn default_cold_start_floor_pps() -> f64 {
    50_000.0
}
fn default_baseline_max_age_hours() -> f64 {
    168.0
}
fn default_confirm() -> u32 {
    2
}
fn default_cooldown() -> f64 {
    10.0
}
fn default_max_attackers() -> usize {
    20
}

impl Default for DetectionSection {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// `[[detection.group]]`: static limits for a group of protected prefixes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: String,
    pub prefixes: Vec<String>,
    pub pps: Option<f64>,
    pub bps: Option<f64>,
    /// Per traffic class, e.g. { udp_ntp = 2000, tcp_syn = 5000 }.
    #[serde(default)]
    pub class_pps: BTreeMap<String, f64>,
}

/// `[mitigation]`: what happens to the rules incidents call for.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitigationSection {
    /// Apply rules at once (true) or stage them for approval (false).
    #[serde(default = "default_true")]
    pub auto_apply: bool,
    #[serde(default = "default_rule_ttl")]
    pub rule_ttl_seconds: u64,
    /// Keep an incident's rules after it resolves, until they expire.
    #[serde(default)]
    pub keep_after_resolve: bool,
    #[serde(default = "default_max_rules")]
    pub max_rules: usize,
    /// While an incident is open, a source that sends its target more than this
    /// many packets per second of the attack's classes is blocked, or more than
    /// `multiplier` times what the target's sources sent each in peacetime if
    /// that is higher.
    #[serde(default = "default_source_floor_pps")]
    pub source_floor_pps: f64,
    /// A derived signature whose estimated collateral (the share of the
    /// target's peacetime packets it would drop) is above this is staged, not applied.
    #[serde(default = "default_max_collateral")]
    pub max_collateral: f64,
    /// Whether sources inside the protected networks may be blocked.
    #[serde(default)]
    pub block_protected_sources: bool,
    /// Bans pulled from elsewhere (CrowdSec) on prefixes shorter than these
    /// are refused.
    #[serde(default = "default_min_pulled_v4")]
    pub min_pulled_prefix_v4: u8,
    #[serde(default = "default_min_pulled_v6")]
    pub min_pulled_prefix_v6: u8,
    /// Answer a SYN flood with SYN authentication: a target's unverified
    /// sources get a challenge only a real TCP stack answers (instead of a
    /// class-wide SYN rate limit).
    #[serde(default = "default_true")]
    pub syn_authentication: bool,
    /// Answer an ACK, RST or other flag flood by dropping the target's TCP
    /// segments that belong to no known connection.
    #[serde(default = "default_true")]
    pub connection_state: bool,
    /// For how long after start a connection state check still lets unknown
    /// connections through (connections opened before levee started, and
    /// silent since, are not in its table).
    #[serde(default = "default_connection_grace")]
    pub connection_grace_seconds: u64,
}

fn default_connection_grace() -> u64 {
    60
}

fn default_source_floor_pps() -> f64 {
    10.0
}
fn default_max_collateral() -> f64 {
    0.01
}
fn default_min_pulled_v4() -> u8 {
    16
}
fn default_min_pulled_v6() -> u8 {
    32
}

fn default_true() -> bool {
    true
}
fn default_rule_ttl() -> u64 {
    3600
}
fn default_max_rules() -> usize {
    10_000
}

impl Default for MitigationSection {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// `[pipeline]`: what workers count and how they treat frames rules cannot judge.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// Networks levee protects: per-destination counters are kept for their hosts.
    #[serde(default)]
    pub protected: Vec<String>,
    /// Keep the head of 1 packet in N for forensic captures (0: off).
    #[serde(default = "default_sample_one_in")]
    pub sample_one_in: u32,
    /// K of the per-class top-sources sketches.
    #[serde(default = "default_top_sources")]
    pub top_sources: usize,
    /// Feed 1 packet in N to the top-sources sketches (each counting N).
    #[serde(default = "default_top_sources_one_in")]
    pub top_sources_one_in: u32,
    /// Protected hosts tracked per window.
    #[serde(default = "default_destinations")]
    pub destinations: usize,
    /// Sampled packets kept per window and worker.
    #[serde(default = "default_samples")]
    pub samples_per_window: usize,
    /// "drop" or "forward" frames that do not parse.
    #[serde(default = "default_drop")]
    pub malformed: String,
    /// "drop" or "forward" well-formed non-IP frames (ARP...).
    #[serde(default = "default_forward")]
    pub non_ip: String,
    /// Window reports in flight to the control plane (all workers).
    #[serde(default = "default_report_depth")]
    pub report_channel_depth: usize,
}

fn default_window_ms() -> u64 {
    100
}
fn default_sample_one_in() -> u32 {
    64
}
fn default_top_sources() -> usize {
    64
}
fn default_top_sources_one_in() -> u32 {
    4
}
fn default_destinations() -> usize {
    1024
}
fn default_samples() -> usize {
    256
}
fn default_drop() -> String {
    "drop".into()
}
fn default_forward() -> String {
    "forward".into()
}
fn default_report_depth() -> usize {
    64
}

impl Default for PipelineSection {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// `[tables]`: capacities, reserved at start-up.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesSection {
    #[serde(default = "default_blocked_hosts")]
    pub blocked_hosts: usize,
    #[serde(default = "default_blocked_prefixes")]
    pub blocked_prefixes: usize,
    #[serde(default = "default_allowlist")]
    pub allowlist: usize,
    #[serde(default = "default_limiter_slots")]
    pub source_limiter_slots: usize,
}

fn default_blocked_hosts() -> usize {
    65_536
}
fn default_blocked_prefixes() -> usize {
    4096
}
fn default_allowlist() -> usize {
    1024
}
fn default_limiter_slots() -> usize {
    65_536
}

impl Default for TablesSection {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// `[rules]`: rules that hold from start-up (the API adds and removes others).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    /// Prefixes never dropped by any rule.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// Sources always dropped (addresses or prefixes), counted under rule 0.
    #[serde(default)]
    pub blocklist: Vec<String>,
    /// A file with one blocked address or prefix per line ('#' comments).
    pub blocklist_file: Option<PathBuf>,
    #[serde(default, rename = "signature")]
    pub signatures: Vec<SignatureSection>,
    pub source_limit: Option<SourceLimitSection>,
}

/// `[[rules.signature]]`: a FlowSpec-like match; unset fields match everything.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSection {
    pub id: u32,
    pub destination: Option<String>,
    /// "tcp", "udp", "icmp", "gre" or a number.
    pub protocol: Option<toml::Value>,
    /// "53" or "1000-2000".
    pub src_ports: Option<toml::Value>,
    pub dst_ports: Option<toml::Value>,
    /// value/mask in tcpdump letters, e.g. "S/SA" (SYN without ACK).
    pub tcp_flags: Option<String>,
    /// IP length range, e.g. "1000-1500".
    pub ip_length: Option<toml::Value>,
    /// TTL (IPv6: hop limit) range, e.g. "50-64" (0-255).
    pub ttl: Option<toml::Value>,
    /// "any", "none", "first", "non-first", "any-fragment".
    pub fragment: Option<String>,
    /// "drop", "rate-limit", or for TCP "syn-authentication" (challenge
    /// unverified SYNs) or "connection-state" (drop segments of no known connection).
    #[serde(default = "default_drop")]
    pub action: String,
    /// For rate-limit: packets per second.
    pub pps: Option<u32>,
}

/// `[rules.source_limit]`: packets per second per source for one traffic class.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceLimitSection {
    /// A traffic class name, e.g. "tcp_syn".
    pub class: String,
    pub pps: u32,
    pub burst: Option<u32>,
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
    /// `text` (for a terminal) or `json` (one object per line, for journald
    /// and log shippers).
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            format: LogFormat::Text,
        }
    }
}

/// What a configuration is loaded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Run,
    Replay,
    /// The CLI client: only the `[api]` section matters.
    Client,
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
    // The reason is in the text, so it is not also a `source` (printed twice).
    #[error("cannot read {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path} is not a valid levee configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
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

impl Config {
    /// Read, parse and validate a configuration file for `levee run`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_for(path, Purpose::Run)
    }

    /// The configuration `levee replay` uses without `--config`.
    /// With no protected networks, watch every destination (a capture from
    /// anywhere gives an answer): each is judged as a host, and since
    /// everything is "protected", attackers may be blocked as sources.
    /// Whether it did.
    pub fn watch_everything_if_unprotected(&mut self) -> bool {
        if !self.pipeline.protected.is_empty() {
            return false;
        }
        self.pipeline.protected = vec!["0.0.0.0/0".into(), "::/0".into()];
        self.mitigation.block_protected_sources = true;
        true
    }

    pub fn replay_default() -> Config {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every section has defaults"))
    }

    /// Read, parse and validate a configuration file for a purpose: replay needs
    /// no ports.
    pub fn load_for(path: &Path, purpose: Purpose) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.into(),
            reason,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        config.expand_config_dir(&dir);
        if let Some(f) = &mut config.rules.blocklist_file {
            if f.is_relative() {
                *f = dir.join(&*f);
            }
        }
        if config.store.path.is_relative() {
            config.store.path = dir.join(&config.store.path);
        }
        if let Some(f) = &mut config.forensics.dir {
            if f.is_relative() {
                *f = dir.join(&*f);
            }
        }
        if let Some(api) = &mut config.api {
            for f in [
                &mut api.token_file,
                &mut api.read_only_token_file,
                &mut api.tls_cert,
                &mut api.tls_key,
            ]
            .into_iter()
            .flatten()
            {
                if f.is_relative() {
                    *f = dir.join(&*f);
                }
            }
        }
        let mut problems = config.problems();
        match purpose {
            Purpose::Run => {}
            Purpose::Replay => problems.retain(|p| !p.key.starts_with("pair")),
            Purpose::Client => problems.retain(|p| p.key.starts_with("api")),
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.into(),
                problems,
            })
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

    /// The configured integrations, or what is wrong with each.
    pub fn integration_specs(
        &self,
    ) -> Result<Vec<crate::integrations::IntegrationSpec>, Vec<Problem>> {
        let mut specs: Vec<crate::integrations::IntegrationSpec> = Vec::new();
        let mut problems = Vec::new();
        for (i, table) in self.integrations.iter().enumerate() {
            let key = format!("integration[{i}]");
            let parsed = serde_json::to_value(table)
                .map_err(|e| e.to_string())
                .and_then(crate::integrations::IntegrationSpec::parse)
                .and_then(|spec| spec.settings.require_secrets().map(|()| spec));
            match parsed {
                Ok(spec) if specs.iter().any(|s| s.name == spec.name) => problems.push(Problem {
                    key,
                    message: format!("name: {:?} is used twice", spec.name),
                }),
                Ok(spec) => specs.push(spec),
                Err(message) => problems.push(Problem { key, message }),
            }
        }
        if problems.is_empty() {
            Ok(specs)
        } else {
            Err(problems)
        }
    }

    /// Every problem found, each naming its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(Problem {
                key: key.into(),
                message,
            })
        };
        let d = &self.dpdk;

        if let Err(found) = self.integration_specs() {
            for p in found {
                bad(&p.key, p.message);
            }
        }
        if d.worker_lcores.is_empty() {
            bad(
                "dpdk.worker_lcores",
                "at least one worker lcore is needed".into(),
            );
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
        if let Some(id) = &self.node.id {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bad(
                    "node.id",
                    format!("{id:?} must be 1-64 characters of [A-Za-z0-9_-]"),
                );
            }
        }
        self.pipeline_problems(&mut bad);
        if let Some(api) = &self.api {
            api.problems(&mut bad);
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            bad(
                "log.level",
                format!(
                    "{:?} is not a log filter (e.g. info, debug, levee=debug)",
                    self.log.level
                ),
            );
        }
        problems
    }

    fn pipeline_problems(&self, bad: &mut impl FnMut(&str, String)) {
        let p = &self.pipeline;
        if !(10..=10_000).contains(&p.window_ms) {
            bad(
                "pipeline.window_ms",
                format!("{} is outside 10..=10000", p.window_ms),
            );
        }
        for (i, s) in p.protected.iter().enumerate() {
            if let Err(e) = s.parse::<Prefix>() {
                bad(&format!("pipeline.protected[{i}]"), e.to_string());
            }
        }
        for (key, v) in [
            ("pipeline.malformed", &p.malformed),
            ("pipeline.non_ip", &p.non_ip),
        ] {
            if frame_policy(v).is_none() {
                bad(key, format!("{v:?} is neither \"drop\" nor \"forward\""));
            }
        }
        for (key, v, max) in [
            ("pipeline.top_sources", p.top_sources, 4096),
            ("pipeline.destinations", p.destinations, 1 << 20),
            ("pipeline.samples_per_window", p.samples_per_window, 1 << 16),
            (
                "pipeline.report_channel_depth",
                p.report_channel_depth,
                1 << 16,
            ),
        ] {
            if v == 0 || v > max {
                bad(key, format!("{v} is outside 1..={max}"));
            }
        }
        if p.top_sources_one_in == 0 {
            bad("pipeline.top_sources_one_in", "must be at least 1".into());
        }
        let t = &self.tables;
        for (key, v) in [
            ("tables.blocked_hosts", t.blocked_hosts),
            ("tables.blocked_prefixes", t.blocked_prefixes),
            ("tables.allowlist", t.allowlist),
            ("tables.source_limiter_slots", t.source_limiter_slots),
        ] {
            if v == 0 || v > 1 << 26 {
                bad(key, format!("{v} is outside 1..={}", 1 << 26));
            }
        }
        let d = &self.detection;
        for (key, v) in [
            ("detection.floor_pps", d.floor_pps),
            ("detection.floor_bps", d.floor_bps),
            ("detection.prefix_floor_pps", d.prefix_floor_pps),
            ("detection.baseline_max_age_hours", d.baseline_max_age_hours),
            ("detection.cold_start_floor_pps", d.cold_start_floor_pps),
            (
                "detection.baseline_half_life_seconds",
                d.baseline_half_life_seconds,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bad(key, format!("{v} must be a positive number"));
            }
        }
        if !(d.multiplier.is_finite() && d.multiplier >= 1.0) {
            bad(
                "detection.multiplier",
                format!("{} must be at least 1", d.multiplier),
            );
        }
        for (key, v) in [
            ("detection.warmup_seconds", d.warmup_seconds),
            ("detection.cooldown_seconds", d.cooldown_seconds),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bad(key, format!("{v} must be zero or more"));
            }
        }
        if d.confirm_windows == 0 {
            bad("detection.confirm_windows", "must be at least 1".into());
        }
        for (g, group) in d.groups.iter().enumerate() {
            for (i, s) in group.prefixes.iter().enumerate() {
                if let Err(e) = s.parse::<Prefix>() {
                    bad(
                        &format!("detection.group[{g}].prefixes[{i}]"),
                        e.to_string(),
                    );
                }
            }
            for class in group.class_pps.keys() {
                if traffic_class(class).is_none() {
                    bad(
                        &format!("detection.group[{g}].class_pps.{class}"),
                        "not a traffic class (e.g. udp_ntp, tcp_syn)".into(),
                    );
                }
            }
        }
        if !(self.store.keep_days.is_finite() && self.store.keep_days > 0.0) {
            bad(
                "store.keep_days",
                format!("{} must be a positive number", self.store.keep_days),
            );
        }
        if self.forensics.max_total_mib == 0 {
            bad("forensics.max_total_mib", "must be at least 1".into());
        }
        let m = &self.mitigation;
        if !(m.source_floor_pps.is_finite() && m.source_floor_pps >= 1.0) {
            bad(
                "mitigation.source_floor_pps",
                format!("{} must be at least 1", m.source_floor_pps),
            );
        }
        if !(m.max_collateral.is_finite() && (0.0..=1.0).contains(&m.max_collateral)) {
            bad(
                "mitigation.max_collateral",
                format!("{} is outside 0..=1", m.max_collateral),
            );
        }
        if m.min_pulled_prefix_v4 > 32 {
            bad(
                "mitigation.min_pulled_prefix_v4",
                format!("{} is above 32", m.min_pulled_prefix_v4),
            );
        }
        if m.min_pulled_prefix_v6 > 128 {
            bad(
                "mitigation.min_pulled_prefix_v6",
                format!("{} is above 128", m.min_pulled_prefix_v6),
            );
        }
        if self.mitigation.max_rules == 0 {
            bad("mitigation.max_rules", "must be at least 1".into());
        }
        let r = &self.rules;
        for (i, s) in r.allowlist.iter().enumerate() {
            if let Err(e) = s.parse::<Prefix>() {
                bad(&format!("rules.allowlist[{i}]"), e.to_string());
            }
        }
        for (i, s) in r.blocklist.iter().enumerate() {
            if let Err(e) = s.parse::<Prefix>() {
                bad(&format!("rules.blocklist[{i}]"), e.to_string());
            }
        }
        if let Some(path) = &r.blocklist_file {
            if let Err(e) = read_prefix_file(path) {
                bad("rules.blocklist_file", e);
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, sig) in r.signatures.iter().enumerate() {
            let key = format!("rules.signature[{i}]");
            if !ids.insert(sig.id) {
                bad(&format!("{key}.id"), format!("id {} is used twice", sig.id));
            }
            if let Err((field, e)) = signature_rule(sig) {
                bad(&format!("{key}.{field}"), e);
            }
        }
        if let Err(e) = SignatureSet::new(
            r.signatures
                .iter()
                .filter_map(|s| signature_rule(s).ok())
                .collect(),
        ) {
            bad("rules.signature", e.to_string());
        }
        if let Some(limit) = &r.source_limit {
            if traffic_class(&limit.class).is_none() {
                bad(
                    "rules.source_limit.class",
                    format!(
                        "{:?} is not a traffic class (e.g. tcp_syn, udp, icmp)",
                        limit.class
                    ),
                );
            }
            if limit.pps == 0 {
                bad("rules.source_limit.pps", "must be at least 1".into());
            }
        }
    }

    /// The EAL arguments: lcores, the configured extras, then one device option per port.
    pub fn eal_args(&self) -> Vec<String> {
        let d = &self.dpdk;
        let mut lcores = vec![d.main_lcore];
        lcores.extend(&d.worker_lcores);
        let mut args = vec![
            "-l".to_owned(),
            lcores
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
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

/// "drop" / "forward".
pub fn frame_policy(s: &str) -> Option<FramePolicy> {
    match s {
        "drop" => Some(FramePolicy::Drop),
        "forward" => Some(FramePolicy::Forward),
        _ => None,
    }
}

/// A traffic class by its stable name.
pub fn traffic_class(name: &str) -> Option<TrafficClass> {
    TrafficClass::all().find(|c| c.name() == name)
}

/// Read a file of addresses/prefixes, one per line, '#' starting a comment.
pub fn read_prefix_file(path: &Path) -> Result<Vec<Prefix>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        out.push(
            line.parse::<Prefix>()
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

fn range(
    field: &'static str,
    v: &Option<toml::Value>,
) -> Result<Option<(u16, u16)>, (&'static str, String)> {
    let Some(v) = v else { return Ok(None) };
    let bad = || {
        (
            field,
            format!("{v} is not a number or a range like \"1000-2000\" (0-65535)"),
        )
    };
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.clone(),
        _ => return Err(bad()),
    };
    let (lo, hi) = text.split_once('-').unwrap_or((&text, &text));
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err((field, format!("{lo} is above {hi}")));
    }
    Ok(Some((lo, hi)))
}

/// A `[[rules.signature]]` as a table rule; the error names the bad field.
pub fn signature_rule(s: &SignatureSection) -> Result<SignatureRule, (&'static str, String)> {
    let destination = s
        .destination
        .as_deref()
        .map(|d| {
            d.parse::<Prefix>()
                .map_err(|e| ("destination", e.to_string()))
        })
        .transpose()?;
    let protocol = match &s.protocol {
        None => None,
        Some(toml::Value::Integer(n)) => Some(IpProtocol::number(*n)),
        Some(toml::Value::String(name)) => Some(name.parse::<IpProtocol>()),
        Some(v) => return Err(("protocol", format!("{v} is not a protocol"))),
    }
    .transpose()
    .map_err(|e| ("protocol", e.to_string()))?
    .map(|p| p.0);
    let tcp_flags = s
        .tcp_flags
        .as_deref()
        .map(str::parse::<TcpFlags>)
        .transpose()
        .map_err(|e| ("tcp_flags", e.to_string()))?
        .map(|f| (f.mask, f.value));
    let fragment = match s.fragment.as_deref() {
        None | Some("any") => FragmentMatch::Any,
        Some("none") => FragmentMatch::NotFragmented,
        Some("first") => FragmentMatch::First,
        Some("non-first") => FragmentMatch::NonFirst,
        Some("any-fragment") => FragmentMatch::AnyFragment,
        Some(other) => {
            return Err((
                "fragment",
                format!("{other:?} is not any, none, first, non-first or any-fragment"),
            ))
        }
    };
    let action = match (s.action.as_str(), s.pps) {
        ("drop", None) => SignatureAction::Drop,
        ("drop", Some(_)) => return Err(("pps", "only a rate-limit action takes pps".into())),
        ("rate-limit", Some(pps)) if pps > 0 => SignatureAction::RateLimit { pps },
        ("rate-limit", _) => return Err(("pps", "a rate-limit action needs pps >= 1".into())),
        ("syn-authentication", None) => SignatureAction::Authenticate,
        ("connection-state", None) => SignatureAction::RequireState,
        ("syn-authentication" | "connection-state", Some(_)) => {
            return Err(("pps", "only a rate-limit action takes pps".into()))
        }
        (other, _) => {
            return Err((
                "action",
                format!(
                    "{other:?} is not drop, rate-limit, syn-authentication or connection-state"
                ),
            ))
        }
    };
    let rule = SignatureRule {
        id: s.id,
        destination,
        protocol,
        src_ports: range("src_ports", &s.src_ports)?,
        dst_ports: range("dst_ports", &s.dst_ports)?,
        tcp_flags,
        ip_length: range("ip_length", &s.ip_length)?,
        ttl: match range("ttl", &s.ttl)? {
            None => None,
            Some((lo, hi)) => match (u8::try_from(lo), u8::try_from(hi)) {
                (Ok(lo), Ok(hi)) => Some((lo, hi)),
                _ => return Err(("ttl", format!("{lo}-{hi} is outside 0-255"))),
            },
        },
        fragment,
        action,
    };
    rule.validate().map_err(|e| ("id", e.to_string()))?;
    Ok(rule)
}

impl Config {
    /// The pipeline settings for the workers.
    pub fn pipeline_config(&self) -> PipelineConfig {
        let p = &self.pipeline;
        PipelineConfig {
            window_ms: p.window_ms,
            sample_one_in: p.sample_one_in,
            top_sources_one_in: p.top_sources_one_in,
            malformed: frame_policy(&p.malformed).unwrap_or(FramePolicy::Drop),
            non_ip: frame_policy(&p.non_ip).unwrap_or(FramePolicy::Forward),
            capacities: ReportCapacities {
                destinations: p.destinations,
                rules: 1024,
                top_sources: p.top_sources,
                samples: p.samples_per_window,
                ..ReportCapacities::default()
            },
            connection_grace_ms: self
                .mitigation
                .connection_grace_seconds
                .saturating_mul(1000),
        }
    }

    pub fn table_capacities(&self) -> TableCapacities {
        let t = &self.tables;
        TableCapacities {
            blocked_hosts: t.blocked_hosts,
            blocked_prefixes: t.blocked_prefixes,
            allowlist: t.allowlist,
            source_limiter_slots: t.source_limiter_slots,
        }
    }

    pub fn detection_config(&self) -> crate::detect::DetectionConfig {
        let d = &self.detection;
        let window_ms = self.pipeline.window_ms;
        crate::detect::DetectionConfig {
            window_ms,
            floor_pps: d.floor_pps,
            floor_bps: d.floor_bps,
            prefix_floor_pps: d.prefix_floor_pps,
            multiplier: d.multiplier,
            baseline_half_life_s: d.baseline_half_life_seconds,
            warmup_windows: ((d.warmup_seconds * 1000.0) / window_ms as f64).ceil() as u32,
            cold_start_floor_pps: d.cold_start_floor_pps,
            confirm_windows: d.confirm_windows,
            cooldown_s: d.cooldown_seconds,
            max_attackers: d.max_attackers,
            groups: d
                .groups
                .iter()
                .map(|g| crate::detect::HostGroup {
                    name: g.name.clone(),
                    prefixes: g.prefixes.iter().filter_map(|p| p.parse().ok()).collect(),
                    pps: g.pps,
                    bps: g.bps,
                    class_pps: g
                        .class_pps
                        .iter()
                        .filter_map(|(c, v)| traffic_class(c).map(|c| (c.index(), *v)))
                        .collect(),
                })
                .collect(),
            // Prefixes judged as a whole (carpet bombing); the whole address
            // space, when every destination is watched, is not one network.
            protected: self
                .pipeline
                .protected
                .iter()
                .filter_map(|p| p.parse::<Prefix>().ok())
                .filter(|p| p.len() > 0)
                .collect(),
            allowlist: self
                .rules
                .allowlist
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            ..crate::detect::DetectionConfig::default()
        }
    }

    pub fn mitigation_config(&self) -> crate::mitigate::MitigationConfig {
        let m = &self.mitigation;
        crate::mitigate::MitigationConfig {
            auto_apply: m.auto_apply,
            rule_ttl_s: m.rule_ttl_seconds,
            keep_after_resolve: m.keep_after_resolve,
            max_rules: m.max_rules,
            source_floor_pps: m.source_floor_pps,
            max_collateral: m.max_collateral,
            multiplier: self.detection.multiplier,
            block_protected_sources: m.block_protected_sources,
            min_pulled_prefix: (m.min_pulled_prefix_v4, m.min_pulled_prefix_v6),
            syn_authentication: m.syn_authentication,
            connection_state: m.connection_state,
            protected: self
                .pipeline
                .protected
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
        }
    }

    pub fn forensics_config(&self) -> crate::forensics::ForensicsConfig {
        crate::forensics::ForensicsConfig {
            dir: self.forensics.dir.clone(),
            lookback_s: self.forensics.lookback_seconds,
            max_packets: self.forensics.max_packets.max(1),
            max_total_bytes: self.forensics.max_total_mib.saturating_mul(1 << 20),
        }
    }

    /// This node's id: configured, or derived from the host name.
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.node.id {
            return if id.starts_with("nd_") {
                id.clone()
            } else {
                format!("nd_{id}")
            };
        }
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let h = host.trim().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("nd_{:012x}", h & 0xffff_ffff_ffff)
    }

    /// The protected networks as a lookup table.
    pub fn protected_networks(&self) -> PrefixTable<()> {
        let prefixes: Vec<Prefix> = self
            .pipeline
            .protected
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let mut t = PrefixTable::with_capacity(prefixes.len().max(1));
        for p in prefixes {
            let _ = t.insert(p, ());
        }
        t
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
        if p.is_empty() {
            Ok(c)
        } else {
            Err(p
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"))
        }
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
            [
                "-l",
                "0,1",
                "--main-lcore",
                "0",
                "--vdev=net_pcap0,rx_pcap=a.pcap",
                "--vdev=net_null0"
            ]
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
        assert!(c
            .eal_args()
            .ends_with(&["-a".to_owned(), "0000:03:00.0".to_owned()]));
    }

    #[test]
    fn rules_and_pipeline_sections() {
        let c = parse(
            r#"
            [pipeline]
            protected = ["10.0.0.0/24", "2001:db8::/48"]
            malformed = "forward"
            [rules]
            allowlist = ["192.0.2.0/24"]
            blocklist = ["203.0.113.7", "198.51.100.0/24"]
            [[rules.signature]]
            id = 5
            destination = "10.0.0.0/24"
            protocol = "udp"
            src_ports = 53
            ip_length = "512-1500"
            ttl = "50-64"
            [[rules.signature]]
            id = 6
            protocol = "tcp"
            tcp_flags = "S/SA"
            action = "rate-limit"
            pps = 1000
            [[rules.signature]]
            id = 7
            destination = "10.0.0.1"
            protocol = "tcp"
            tcp_flags = "S/SA"
            action = "syn-authentication"
            [[rules.signature]]
            id = 8
            destination = "10.0.0.1"
            protocol = "tcp"
            tcp_flags = "/S"
            action = "connection-state"
            [rules.source_limit]
            class = "tcp_syn"
            pps = 50
            [[pair]]
            outside = "net_null0"
            inside = "net_null1"
            "#,
        )
        .expect("valid");
        let rules: Vec<SignatureRule> = c
            .rules
            .signatures
            .iter()
            .map(|s| signature_rule(s).expect("valid"))
            .collect();
        assert_eq!(rules[0].src_ports, Some((53, 53)));
        assert_eq!(rules[0].ip_length, Some((512, 1500)));
        assert_eq!(rules[0].ttl, Some((50, 64)));
        assert_eq!(rules[1].tcp_flags, Some((0x12, 0x02)));
        assert_eq!(rules[1].action, SignatureAction::RateLimit { pps: 1000 });
        assert_eq!(rules[2].action, SignatureAction::Authenticate);
        assert_eq!(rules[3].action, SignatureAction::RequireState);
        assert_eq!(rules[3].tcp_flags, Some((0x02, 0)), "/S: SYN clear");
        assert_eq!(c.pipeline_config().malformed, FramePolicy::Forward);
        assert!(c
            .protected_networks()
            .contains(levee_dataplane::tables::Addr::V4(0x0a00_0005)));
    }

    #[test]
    fn bad_rules_name_their_field() {
        let e = parse(
            r#"
            [pipeline]
            protected = ["10.0.0.0/33"]
            non_ip = "maybe"
            [rules]
            blocklist = ["not-an-ip"]
            [[rules.signature]]
            id = 1
            protocol = "carrier-pigeon"
            [[rules.signature]]
            id = 1
            dst_ports = "80"
            [[rules.signature]]
            id = 2
            protocol = "tcp"
            tcp_flags = "XYZ"
            [[rules.signature]]
            id = 3
            ttl = "50-300"
            [[rules.signature]]
            id = 4
            protocol = "udp"
            action = "syn-authentication"
            [[rules.signature]]
            id = 5
            protocol = "tcp"
            action = "connection-state"
            pps = 10
            [rules.source_limit]
            class = "tcp_sin"
            pps = 0
            [[pair]]
            outside = "net_null0"
            inside = "net_null1"
            "#,
        )
        .expect_err("bad");
        for key in [
            "pipeline.protected[0]",
            "pipeline.non_ip",
            "rules.blocklist[0]",
            "rules.signature[0].protocol",
            "rules.signature[1].id",
            "rules.signature[2].tcp_flags",
            "rules.signature[3].ttl",
            "rules.signature[4].id",
            "rules.signature[5].pps",
            "rules.source_limit.class",
            "rules.source_limit.pps",
        ] {
            assert!(e.contains(key), "{key} missing from:\n{e}");
        }
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
