//! `[pipeline]` and `[tables]`: what the workers count and the tables' sizes.

use levee_dataplane::pipeline::FramePolicy;
use levee_dataplane::tables::Prefix;
use serde::Deserialize;

/// `[pipeline]`: what workers count and how they treat frames rules cannot judge.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSection {
    pub window_ms: u64,
    /// Networks levee protects: per-destination counters are kept for their hosts.
    pub protected: Vec<String>,
    /// Keep the head of 1 packet in N for forensic captures (0: off).
    pub sample_one_in: u32,
    /// K of the per-class top-sources sketches.
    pub top_sources: usize,
    /// Feed at least 1 packet in N of a class to its top-sources sketch (each
    /// update counting N); a flooded class is sampled sparser (see
    /// `levee_dataplane::pipeline::TOP_SOURCE_SAMPLES_PER_KEY`).
    pub top_sources_one_in: u32,
    /// Protected hosts tracked per window.
    pub destinations: usize,
    /// Sampled packets kept per window and worker.
    pub samples_per_window: usize,
    /// "drop" or "forward" frames that do not parse.
    pub malformed: String,
    /// "drop" or "forward" well-formed non-IP frames (ARP...).
    pub non_ip: String,
    /// Window reports in flight to the control plane (all workers).
    pub report_channel_depth: usize,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            window_ms: 100,
            protected: Vec::new(),
            sample_one_in: 64,
            top_sources: 64,
            top_sources_one_in: 4,
            destinations: 1024,
            samples_per_window: 256,
            malformed: "drop".into(),
            non_ip: "forward".into(),
            report_channel_depth: 64,
        }
    }
}

/// `[tables]`: capacities, reserved at start-up.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TablesSection {
    pub blocked_hosts: usize,
    pub blocked_prefixes: usize,
    pub allowlist: usize,
    pub source_limiter_slots: usize,
}

impl Default for TablesSection {
    fn default() -> Self {
        TablesSection {
            blocked_hosts: 65_536,
            blocked_prefixes: 4096,
            allowlist: 1024,
            source_limiter_slots: 65_536,
        }
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

impl PipelineSection {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        let p = self;
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
    }
}

impl TablesSection {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        let t = self;
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
    }
}
