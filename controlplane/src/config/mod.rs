//! The configuration file (TOML): parsed strictly, validated as a whole, and every
//! problem reported with the key it concerns. One file per section, each with
//! its defaults (one `impl Default`, taken from the core's own where it has
//! them) and its checks; this one holds the whole and what it is turned into.

use std::fmt;
use std::path::{Path, PathBuf};

use levee_dataplane::pipeline::{FramePolicy, PipelineConfig};
use levee_dataplane::stats::ReportCapacities;
use levee_dataplane::tables::{Prefix, PrefixTable, TableCapacities};
use levee_dataplane::wire::TrafficClass;
use serde::Deserialize;

mod api;
mod detection;
mod dpdk;
pub mod host;
mod log;
mod mitigation;
mod pipeline;
mod rules;
mod store;

pub use api::{ApiSection, ApiTokens};
pub use detection::{DetectionSection, GroupSection};
pub use dpdk::{Device, DpdkConfig, PairConfig};
pub use log::{LogConfig, LogFormat};
pub use mitigation::MitigationSection;
pub use pipeline::{frame_policy, PipelineSection, TablesSection};
pub use rules::{
    read_prefix_file, signature_rule, RulesSection, SignatureSection, SourceLimitSection,
};
pub use store::{ForensicsSection, StoreSection};

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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Stable id of this appliance (`nd_...`); derived from the host name if unset.
    pub id: Option<String>,
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
            // Only the appliance runs on this machine's CPUs.
            Purpose::Run => problems.extend(host::cpu_problems(&config, &host::sysfs_root())),
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

        if let Err(found) = self.integration_specs() {
            for p in found {
                bad(&p.key, p.message);
            }
        }
        self.dpdk.problems(&mut bad);
        self.pair_problems(&mut bad);
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
        self.pipeline.problems(&mut bad);
        self.tables.problems(&mut bad);
        self.detection.problems(&mut bad);
        self.store.problems(&mut bad);
        self.forensics.problems(&mut bad);
        self.mitigation.problems(&mut bad);
        self.rules.problems(&mut bad);
        if let Some(api) = &self.api {
            api.problems(&mut bad);
        }
        self.log.problems(&mut bad);
        problems
    }
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
                        .filter_map(|(c, v)| TrafficClass::from_name(c).map(|c| (c.index(), *v)))
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

#[cfg(test)]
mod tests;
