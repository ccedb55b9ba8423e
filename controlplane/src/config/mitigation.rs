//! `[mitigation]`: what happens to the rules incidents call for.

use serde::Deserialize;

use crate::mitigate::MitigationConfig;

/// `[mitigation]`: what happens to the rules incidents call for.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MitigationSection {
    /// Apply rules at once (true) or stage them for approval (false).
    pub auto_apply: bool,
    pub rule_ttl_seconds: u64,
    /// Keep an incident's rules after it resolves, until they expire.
    pub keep_after_resolve: bool,
    pub max_rules: usize,
    /// While an incident is open, a source that sends its target more than this
    /// many packets per second of the attack's classes is blocked, or more than
    /// `multiplier` times what the target's sources sent each in peacetime if
    /// that is higher.
    pub source_floor_pps: f64,
    /// A derived signature whose estimated collateral (the share of the
    /// target's peacetime packets it would drop) is above this is staged, not applied.
    pub max_collateral: f64,
    /// Whether sources inside the protected networks may be blocked.
    pub block_protected_sources: bool,
    /// Bans pulled from elsewhere (CrowdSec) on prefixes shorter than these
    /// are refused.
    pub min_pulled_prefix_v4: u8,
    pub min_pulled_prefix_v6: u8,
    /// Answer a SYN flood with SYN authentication: a target's unverified
    /// sources get a challenge only a real TCP stack answers (instead of a
    /// class-wide SYN rate limit).
    pub syn_authentication: bool,
    /// Answer an ACK, RST or other flag flood by dropping the target's TCP
    /// segments that belong to no known connection.
    pub connection_state: bool,
    /// For how long after start a connection state check still lets unknown
    /// connections through (connections opened before levee started, and
    /// silent since, are not in its table).
    pub connection_grace_seconds: u64,
}

/// The mitigator's own defaults (one set of numbers), in the file's units.
impl Default for MitigationSection {
    fn default() -> Self {
        let m = MitigationConfig::default();
        MitigationSection {
            auto_apply: m.auto_apply,
            rule_ttl_seconds: m.rule_ttl_s,
            keep_after_resolve: m.keep_after_resolve,
            max_rules: m.max_rules,
            source_floor_pps: m.source_floor_pps,
            max_collateral: m.max_collateral,
            block_protected_sources: m.block_protected_sources,
            min_pulled_prefix_v4: m.min_pulled_prefix.0,
            min_pulled_prefix_v6: m.min_pulled_prefix.1,
            syn_authentication: m.syn_authentication,
            connection_state: m.connection_state,
            connection_grace_seconds: 60,
        }
    }
}

impl MitigationSection {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        let m = self;
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
        if self.max_rules == 0 {
            bad("mitigation.max_rules", "must be at least 1".into());
        }
    }
}
