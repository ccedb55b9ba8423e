//! `[store]` and `[forensics]`: what levee keeps on disk.

use std::path::PathBuf;

use serde::Deserialize;

/// `[store]`: the SQLite database of incidents, events, rules and the node id.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// Relative paths are relative to the configuration file.
    pub path: PathBuf,
    /// Without a store nothing survives a restart.
    pub enabled: bool,
    /// Resolved incidents, ended rules and finished deliveries older than this
    /// are removed (checked hourly); open incidents and live rules always stay.
    pub keep_days: f64,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from("levee.db"),
            enabled: true,
            keep_days: 90.0,
        }
    }
}

/// `[forensics]`: pcapng captures of each incident's sampled packets.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForensicsSection {
    /// Where captures go (`<incident id>.pcapng`); unset: none are written.
    pub dir: Option<PathBuf>,
    /// Seconds of packets before the incident's start included.
    pub lookback_seconds: u64,
    pub max_packets: usize,
    /// The captures in `dir` together stay under this many MiB: the oldest go.
    pub max_total_mib: u64,
}

impl Default for ForensicsSection {
    fn default() -> Self {
        ForensicsSection {
            dir: None,
            lookback_seconds: 5,
            max_packets: 100_000,
            max_total_mib: 1024,
        }
    }
}

impl StoreSection {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        if !(self.keep_days.is_finite() && self.keep_days > 0.0) {
            bad(
                "store.keep_days",
                format!("{} must be a positive number", self.keep_days),
            );
        }
    }
}

impl ForensicsSection {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        if self.max_total_mib == 0 {
            bad("forensics.max_total_mib", "must be at least 1".into());
        }
    }
}
