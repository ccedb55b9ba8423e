//! `[detection]` and its `[[detection.group]]`s.

use std::collections::BTreeMap;

use levee_dataplane::tables::Prefix;
use serde::Deserialize;

use crate::detect::DetectionConfig;
use levee_dataplane::wire::TrafficClass;

/// `[detection]`: limits, baselines and the incident lifecycle.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionSection {
    /// No traffic class of a host is an attack below this many packets/s.
    pub floor_pps: f64,
    pub floor_bps: f64,
    /// The same for a protected prefix as a whole (carpet bombing).
    pub prefix_floor_pps: f64,
    /// Dynamic limit = multiplier x learnt baseline.
    pub multiplier: f64,
    pub baseline_half_life_seconds: f64,
    /// Learning time before dynamic limits apply to a target.
    pub warmup_seconds: f64,
    /// Until a target's baseline is learnt (warm-up, or restored from the
    /// store), no class of it is an attack below this many packets/s (never
    /// less than `floor_pps`); static group limits apply from the first window.
    pub cold_start_floor_pps: f64,
    /// Baselines saved longer ago than this are not restored at start.
    pub baseline_max_age_hours: f64,
    /// Consecutive windows over a limit before an incident starts.
    pub confirm_windows: u32,
    /// Time under the limits before an incident resolves.
    pub cooldown_seconds: f64,
    pub max_attackers: usize,
    #[serde(rename = "group")]
    pub groups: Vec<GroupSection>,
}

/// The detector's own defaults (one set of numbers), in the file's units.
impl Default for DetectionSection {
    fn default() -> Self {
        let d = DetectionConfig::default();
        DetectionSection {
            floor_pps: d.floor_pps,
            floor_bps: d.floor_bps,
            prefix_floor_pps: d.prefix_floor_pps,
            multiplier: d.multiplier,
            baseline_half_life_seconds: d.baseline_half_life_s,
            warmup_seconds: f64::from(d.warmup_windows) * d.window_ms as f64 / 1000.0,
            cold_start_floor_pps: d.cold_start_floor_pps,
            baseline_max_age_hours: 168.0,
            confirm_windows: d.confirm_windows,
            cooldown_seconds: d.cooldown_s,
            max_attackers: d.max_attackers,
            groups: Vec::new(),
        }
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

impl DetectionSection {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        let d = self;
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
                if TrafficClass::from_name(class).is_none() {
                    bad(
                        &format!("detection.group[{g}].class_pps.{class}"),
                        "not a traffic class (e.g. udp_ntp, tcp_syn)".into(),
                    );
                }
            }
        }
    }
}
