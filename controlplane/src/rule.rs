//! A mitigation rule as it is recorded, shown and applied: what it matches,
//! its state, its times. The mitigator makes and ends rules; the store keeps
//! them; the API, the exports and BGP show them.

use levee_dataplane::named_enum;
use levee_dataplane::tables::{FragmentMatch, SignatureAction, SignatureRule};
use serde::{Deserialize, Serialize};

use crate::rule_fields::TcpFlags;

named_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum RuleState {
        Staged => "staged",
        /// Sent to the workers, not yet applied by every one of them.
        Pending => "pending",
        /// In every worker's tables.
        Active => "active",
        Expired => "expired",
        Removed => "removed",
        /// Refused by the tables (allowlist, capacity): see `note`.
        Refused => "refused",
    }
}

impl RuleState {
    /// In the tables (or on its way there): pending or active.
    pub fn in_force(self) -> bool {
        matches!(self, RuleState::Pending | RuleState::Active)
    }

    /// Not ended: staged, pending or active.
    pub fn live(self) -> bool {
        self.in_force() || self == RuleState::Staged
    }
}

/// What a rule matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RuleMatch {
    /// Drop everything from a source.
    Block { source: String },
    /// A signature (FlowSpec-like).
    Signature {
        destination: String,
        protocol: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        src_port: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst_port: Option<u16>,
        /// `FLAGS/MASK` in letters F S R P A U E C: `S/SA` is a SYN without ACK.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tcp_flags: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        non_first_fragments: bool,
        /// Inclusive range of the IP length.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip_length: Option<(u16, u16)>,
        /// Inclusive range of the TTL (IPv6: hop limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip_ttl: Option<(u8, u8)>,
        /// None: drop; Some: rate limit in packets per second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate_limit_pps: Option<u32>,
        /// Instead of dropping: challenge unverified SYNs, or drop only the
        /// segments of no known connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<SignatureCheck>,
    },
    /// A per-source token bucket for one traffic class (e.g. SYNs per source).
    #[serde(rename = "source_limit")]
    SourceLimit { class: String, pps: u32 },
}

named_enum! {
    /// What a signature checks before it lets a TCP segment through.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SignatureCheck {
        /// SYNs of sources not yet verified are answered with a challenge that
        /// only a real TCP stack answers; verified sources pass.
        SynAuthentication => "syn_authentication",
        /// Segments that belong to no connection the protected host has are dropped.
        ConnectionState => "connection_state",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: u32,
    pub incident_id: String,
    pub state: RuleState,
    #[serde(rename = "match")]
    pub matches: RuleMatch,
    pub reason: String,
    pub created_at_ns: u64,
    pub expires_at_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For a derived signature: the estimated share of the target's peacetime
    /// packets it drops (known sources pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral: Option<f64>,
}

impl Rule {
    pub fn signature(&self) -> Option<SignatureRule> {
        let RuleMatch::Signature {
            destination,
            protocol,
            src_port,
            dst_port,
            tcp_flags,
            non_first_fragments,
            ip_length,
            ip_ttl,
            rate_limit_pps,
            check,
        } = &self.matches
        else {
            return None;
        };
        let flags = tcp_flags
            .as_deref()
            .and_then(|t| t.parse::<TcpFlags>().ok())
            .map(|f| (f.mask, f.value));
        Some(SignatureRule {
            id: self.id,
            destination: destination.parse().ok(),
            protocol: Some(*protocol),
            src_ports: src_port.map(|p| (p, p)),
            dst_ports: dst_port.map(|p| (p, p)),
            tcp_flags: flags,
            ip_length: *ip_length,
            ttl: *ip_ttl,
            fragment: if *non_first_fragments {
                FragmentMatch::NonFirst
            } else {
                FragmentMatch::Any
            },
            action: match (check, rate_limit_pps) {
                (Some(SignatureCheck::SynAuthentication), _) => SignatureAction::Authenticate,
                (Some(SignatureCheck::ConnectionState), _) => SignatureAction::RequireState,
                (None, Some(pps)) => SignatureAction::RateLimit { pps: *pps },
                (None, None) => SignatureAction::Drop,
            },
        })
    }
}
