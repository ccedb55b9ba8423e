//! Mitigation: the rules an incident calls for, and their life (staged, active,
//! expired, removed). Every rule goes through the table publisher, so the
//! allowlist and the table capacities apply to automatic rules as to manual ones.

use std::collections::BTreeMap;

use levee_dataplane::tables::{
    FragmentMatch, Prefix, SignatureAction, SignatureRule, SourceLimit, TablePublisher,
};
use levee_dataplane::wire::{Reflector, REFLECTORS};
use serde::{Deserialize, Serialize};

pub mod export;

use crate::store::Store;

use crate::detect::{AttackType, Incident, Target};

/// Mitigation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MitigationConfig {
    /// Apply rules at once; otherwise they wait, staged, for approval.
    pub auto_apply: bool,
    pub rule_ttl_s: u64,
    /// Keep rules after their incident resolves (until they expire).
    pub keep_after_resolve: bool,
    pub max_rules: usize,
}

impl Default for MitigationConfig {
    fn default() -> Self {
        MitigationConfig {
            auto_apply: true,
            rule_ttl_s: 3600,
            keep_after_resolve: false,
            max_rules: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleState {
    Staged,
    Active,
    Expired,
    Removed,
    /// Refused by the tables (allowlist, capacity): see `note`.
    Refused,
}

impl RuleState {
    pub const ALL: [RuleState; 5] = [
        RuleState::Staged,
        RuleState::Active,
        RuleState::Expired,
        RuleState::Removed,
        RuleState::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuleState::Staged => "staged",
            RuleState::Active => "active",
            RuleState::Expired => "expired",
            RuleState::Removed => "removed",
            RuleState::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<RuleState> {
        RuleState::ALL.into_iter().find(|st| st.name() == s)
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
        /// None: drop; Some: rate limit in packets per second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate_limit_pps: Option<u32>,
    },
    /// A per-source token bucket for one traffic class (e.g. SYNs per source).
    #[serde(rename = "source_limit")]
    SourceLimit { class: String, pps: u32 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
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
}

impl Rule {
    fn signature(&self) -> Option<SignatureRule> {
        let RuleMatch::Signature {
            destination,
            protocol,
            src_port,
            dst_port,
            tcp_flags,
            non_first_fragments,
            rate_limit_pps,
        } = &self.matches
        else {
            return None;
        };
        let flags = tcp_flags.as_deref().and_then(parse_tcp_flags);
        Some(SignatureRule {
            id: self.id,
            destination: destination.parse().ok(),
            protocol: Some(*protocol),
            src_ports: src_port.map(|p| (p, p)),
            dst_ports: dst_port.map(|p| (p, p)),
            tcp_flags: flags,
            ip_length: None,
            fragment: if *non_first_fragments {
                FragmentMatch::NonFirst
            } else {
                FragmentMatch::Any
            },
            action: rate_limit_pps.map_or(SignatureAction::Drop, |pps| {
                SignatureAction::RateLimit { pps }
            }),
        })
    }
}

/// The rules of every incident.
#[derive(Debug)]
pub struct Mitigator {
    config: MitigationConfig,
    rules: BTreeMap<u32, Rule>,
    next_id: u32,
    /// Changes the tables refused, for the log.
    pub refusals: Vec<String>,
    /// Where rules are written before they are applied (none in replay).
    pub store: Option<Store>,
    /// The configuration's signature rules, published ahead of the incidents'.
    pub static_signatures: Vec<SignatureRule>,
    /// The configuration's per-source limit, when no incident sets one.
    pub static_source_limit: Option<SourceLimit>,
}

const FIRST_RULE_ID: u32 = 1000;

/// The incident id of rules added by hand.
pub const MANUAL: &str = "manual";

/// Why an operator's change to the rules was not made; the text is the message.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("no rule {0}")]
    NotFound(u32),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The allowlist, a cap or a table refused it.
    #[error("{0}")]
    Refused(String),
    /// The rule is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
}

/// SYNs per second a source may send while a SYN flood from real sources lasts
/// (and as a burst). Browsers open a handful of connections at a
/// time; a large NAT can need more, which `[rules.source_limit]` can raise.
const SYN_PER_SOURCE_PPS: u32 = 5;

impl Mitigator {
    pub fn new(config: MitigationConfig) -> Self {
        Mitigator {
            config,
            rules: BTreeMap::new(),
            next_id: FIRST_RULE_ID,
            refusals: Vec::new(),
            store: None,
            static_signatures: Vec::new(),
            static_source_limit: None,
        }
    }

    /// Record a rule; a rule that cannot be recorded is not applied.
    fn persist(&mut self, rule: &Rule) -> bool {
        match &self.store {
            None => true,
            Some(store) => match store.rule(rule) {
                Ok(()) => true,
                Err(e) => {
                    self.refusals.push(format!(
                        "rule {}: not recorded, so not applied: {e}",
                        rule.id
                    ));
                    false
                }
            },
        }
    }

    /// Put back the rules that were live before a restart (before forwarding).
    pub fn restore(
        &mut self,
        rules: Vec<Rule>,
        next_id: u32,
        now_ns: u64,
        publisher: &mut TablePublisher,
    ) {
        self.next_id = self.next_id.max(next_id);
        let mut signatures = false;
        for mut rule in rules {
            if rule.expires_at_ns <= now_ns {
                rule.state = RuleState::Expired;
                self.persist(&rule);
                continue;
            }
            if rule.state == RuleState::Active {
                match &rule.matches {
                    RuleMatch::Block { source } => {
                        if let Ok(p) = source.parse::<Prefix>() {
                            if let Err(e) = publisher.block(p, rule.id, rule.expires_at_ns) {
                                rule.state = RuleState::Refused;
                                rule.note = Some(e.to_string());
                                self.persist(&rule);
                            }
                        }
                    }
                    RuleMatch::Signature { .. } | RuleMatch::SourceLimit { .. } => {
                        signatures = true
                    }
                }
            }
            self.rules.insert(rule.id, rule);
        }
        if signatures {
            self.publish_signatures(publisher);
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }

    fn live(&self) -> usize {
        self.rules
            .values()
            .filter(|r| matches!(r.state, RuleState::Active | RuleState::Staged))
            .count()
    }

    /// The rules an incident calls for that it does not have yet; applied or
    /// staged. Returns the new rules.
    pub fn on_incident(
        &mut self,
        incident: &Incident,
        now_ns: u64,
        publisher: &mut TablePublisher,
    ) -> Vec<Rule> {
        let destination = match incident.target {
            Target::Host(_) => Prefix::host(crate::detect::mapped_to_ip(match incident.target {
                Target::Host(k) => k,
                Target::Prefix(_) => 0,
            }))
            .to_string(),
            Target::Prefix(p) => p.to_string(),
        };
        let limit = incident.limit_pps.max(1.0).min(f64::from(u32::MAX)) as u32;
        let mut wanted: Vec<(RuleMatch, String)> = Vec::new();
        if !incident.spoofing_likely {
            for ip in incident.attackers.keys() {
                wanted.push((
                    RuleMatch::Block { source: ip.clone() },
                    format!(
                        "attacker of {} ({})",
                        incident.id,
                        incident.attack_type.name()
                    ),
                ));
            }
        }
        for vector in incident.vectors.keys() {
            let reason = format!("{} toward {destination} ({})", vector.name(), incident.id);
            let sig = |protocol: u8,
                       src_port: Option<u16>,
                       tcp_flags: Option<&str>,
                       frags: bool,
                       rate: Option<u32>| RuleMatch::Signature {
                destination: destination.clone(),
                protocol,
                src_port,
                dst_port: None,
                tcp_flags: tcp_flags.map(str::to_owned),
                non_first_fragments: frags,
                rate_limit_pps: rate,
            };
            let m = match vector {
                a if a.is_amplification() => {
                    // Every reflector port of this vector's family.
                    for (port, r) in REFLECTORS {
                        if reflector_attack(*r) == *a {
                            wanted.push((sig(17, Some(*port), None, false, None), reason.clone()));
                        }
                    }
                    continue;
                }
                // With real attackers blocked one by one, a class-wide limit
                // would also hit legitimate users: only spoofed floods get one.
                _ if !incident.spoofing_likely && !incident.attackers.is_empty() => continue,
                AttackType::UdpFlood => sig(17, None, None, false, Some(limit)),
                // Many real sources, none heavy (a botnet): each gets a SYN budget no
                // legitimate client needs, instead of a limit on everyone's SYNs.
                AttackType::SynFlood if !incident.spoofing_likely => RuleMatch::SourceLimit {
                    class: "tcp_syn".into(),
                    pps: SYN_PER_SOURCE_PPS,
                },
                AttackType::SynFlood => sig(6, None, Some("S/SA"), false, Some(limit)),
                AttackType::SynAckFlood => sig(6, None, Some("SA/SA"), false, Some(limit)),
                AttackType::AckFlood => sig(6, None, Some("A/SAR"), false, Some(limit)),
                AttackType::RstFlood => sig(6, None, Some("R/R"), false, Some(limit)),
                AttackType::IcmpFlood => sig(1, None, None, false, Some(limit)),
                AttackType::FragmentFlood => sig(17, None, None, true, Some(limit)),
                AttackType::GreFlood => sig(47, None, None, false, Some(limit)),
                _ => continue,
            };
            wanted.push((m, reason));
        }

        // A class-wide limit or a per-source limit the incident no longer calls for
        // (its spoofing judgement changed) comes out; blocks stay until the end.
        let mut signatures_changed = false;
        for rule in self
            .rules
            .values_mut()
            .filter(|r| r.incident_id == incident.id)
        {
            let class_wide = !matches!(rule.matches, RuleMatch::Block { .. });
            if class_wide
                && matches!(rule.state, RuleState::Active | RuleState::Staged)
                && !wanted.iter().any(|(m, _)| *m == rule.matches)
            {
                signatures_changed |= rule.state == RuleState::Active;
                rule.state = RuleState::Removed;
                rule.note = Some("superseded: the incident's spoofing judgement changed".into());
            }
        }
        let superseded: Vec<Rule> = self
            .rules
            .values()
            .filter(|r| {
                r.incident_id == incident.id
                    && r.note
                        .as_deref()
                        .is_some_and(|n| n.starts_with("superseded"))
            })
            .cloned()
            .collect();
        for r in &superseded {
            self.persist(r);
        }
        let mut new_rules = Vec::new();
        for (m, reason) in wanted {
            if self
                .rules
                .values()
                .any(|r| r.incident_id == incident.id && r.matches == m)
            {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let mut rule = Rule {
                id,
                incident_id: incident.id.clone(),
                state: RuleState::Staged,
                matches: m,
                reason,
                created_at_ns: now_ns,
                expires_at_ns: now_ns + self.config.rule_ttl_s * 1_000_000_000,
                note: None,
            };
            if self.live() >= self.config.max_rules {
                rule.state = RuleState::Refused;
                rule.note = Some(format!(
                    "the cap of {} rules is reached",
                    self.config.max_rules
                ));
                self.refusals.push(format!(
                    "rule {id}: {}",
                    rule.note.clone().unwrap_or_default()
                ));
                self.persist(&rule);
            } else if self.config.auto_apply {
                signatures_changed |= self.apply(&mut rule, publisher);
            } else {
                self.persist(&rule);
            }
            self.rules.insert(id, rule.clone());
            new_rules.push(rule);
        }
        if signatures_changed {
            self.publish_signatures(publisher);
        }
        new_rules
    }

    /// Make a rule active: recorded first, then into the tables; a refusal (the
    /// allowlist, a full table) leaves it refused with a note, recorded too.
    /// Returns whether the signature set needs publishing.
    fn apply(&mut self, rule: &mut Rule, publisher: &mut TablePublisher) -> bool {
        rule.state = RuleState::Active;
        rule.note = None;
        if !self.persist(rule) {
            rule.state = RuleState::Refused;
            rule.note = Some("the store cannot record it".into());
            return false;
        }
        match &rule.matches {
            RuleMatch::Block { source } => match source
                .parse::<Prefix>()
                .map(|p| publisher.block(p, rule.id, rule.expires_at_ns))
            {
                Ok(Ok(_)) => false,
                Ok(Err(e)) | Err(e) => {
                    rule.state = RuleState::Refused;
                    rule.note = Some(e.to_string());
                    self.refusals.push(format!("rule {}: {e}", rule.id));
                    self.persist(rule);
                    false
                }
            },
            RuleMatch::Signature { .. } | RuleMatch::SourceLimit { .. } => true,
        }
    }

    /// A rule an operator adds by hand: checked against the allowlist and the caps
    /// like automatic ones, recorded, then applied at once. A refusal changes nothing.
    /// Add a rule for `origin` (`manual`, or an integration's), same checks as
    /// automatic mitigation.
    pub fn add_manual(
        &mut self,
        origin: &str,
        matches: RuleMatch,
        ttl_s: u64,
        reason: String,
        now_ns: u64,
        publisher: &mut TablePublisher,
    ) -> Result<Rule, RuleError> {
        if self.live() >= self.config.max_rules {
            return Err(RuleError::Refused(format!(
                "the cap of {} rules is reached",
                self.config.max_rules
            )));
        }
        match &matches {
            RuleMatch::Block { source } => {
                let prefix = source
                    .parse::<Prefix>()
                    .map_err(|e| RuleError::Invalid(e.to_string()))?;
                publisher
                    .check_block(&prefix)
                    .map_err(|e| RuleError::Refused(e.to_string()))?;
                if let Some(other) = self.rules.values().find(|r| {
                    r.state == RuleState::Active
                        && matches!(&r.matches, RuleMatch::Block { source: s } if s.parse::<Prefix>().ok() == Some(prefix))
                }) {
                    return Err(RuleError::Conflict(format!(
                        "{prefix} is already blocked by rule {}",
                        other.id
                    )));
                }
            }
            RuleMatch::Signature { .. } => {
                let probe = Rule {
                    id: self.next_id,
                    incident_id: MANUAL.into(),
                    state: RuleState::Active,
                    matches: matches.clone(),
                    reason: String::new(),
                    created_at_ns: now_ns,
                    expires_at_ns: now_ns,
                    note: None,
                };
                let active = self.rules.values().filter(|r| {
                    r.state == RuleState::Active && matches!(r.matches, RuleMatch::Signature { .. })
                });
                let all: Vec<SignatureRule> = self
                    .static_signatures
                    .iter()
                    .cloned()
                    .chain(active.filter_map(Rule::signature))
                    .chain(probe.signature())
                    .collect();
                levee_dataplane::tables::SignatureSet::new(all)
                    .map_err(|e| RuleError::Refused(e.to_string()))?;
            }
            RuleMatch::SourceLimit { .. } => {
                return Err(RuleError::Invalid(
                    "per-source limits are set in the configuration ([rules.source_limit])".into(),
                ))
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut rule = Rule {
            id,
            incident_id: origin.into(),
            state: RuleState::Staged,
            matches,
            reason,
            created_at_ns: now_ns,
            expires_at_ns: now_ns.saturating_add(ttl_s.saturating_mul(1_000_000_000)),
            note: None,
        };
        let signatures = self.apply(&mut rule, publisher);
        self.rules.insert(id, rule.clone());
        if signatures {
            self.publish_signatures(publisher);
        }
        match rule.state {
            RuleState::Refused => Err(RuleError::Refused(rule.note.unwrap_or_default())),
            _ => Ok(rule),
        }
    }

    /// Apply a staged rule (the review flow).
    pub fn approve(&mut self, id: u32, publisher: &mut TablePublisher) -> Result<Rule, RuleError> {
        let mut rule = self
            .rules
            .get(&id)
            .cloned()
            .ok_or(RuleError::NotFound(id))?;
        if rule.state != RuleState::Staged {
            return Err(RuleError::Conflict(format!(
                "rule {id} is {}, only staged rules can be approved",
                rule.state.name()
            )));
        }
        if self.live_active() >= self.config.max_rules {
            return Err(RuleError::Refused(format!(
                "the cap of {} active rules is reached",
                self.config.max_rules
            )));
        }
        let signatures = self.apply(&mut rule, publisher);
        self.rules.insert(id, rule.clone());
        if signatures {
            self.publish_signatures(publisher);
        }
        for refusal in self.refusals.drain(..) {
            tracing::warn!("mitigation: {refusal}");
        }
        match rule.state {
            RuleState::Refused => Err(RuleError::Refused(rule.note.unwrap_or_default())),
            _ => Ok(rule),
        }
    }

    /// Take a staged or active rule out (by hand).
    pub fn delete(&mut self, id: u32, publisher: &mut TablePublisher) -> Result<Rule, RuleError> {
        let rule = self.rules.get(&id).ok_or(RuleError::NotFound(id))?;
        if !matches!(rule.state, RuleState::Active | RuleState::Staged) {
            return Err(RuleError::Conflict(format!(
                "rule {id} is already {}",
                rule.state.name()
            )));
        }
        let mut ended = self.end_rules(|r| r.id == id, RuleState::Removed, publisher);
        ended.pop().ok_or(RuleError::NotFound(id))
    }

    /// The TTL of rules when none is given.
    pub fn default_ttl_s(&self) -> u64 {
        self.config.rule_ttl_s
    }

    fn live_active(&self) -> usize {
        self.rules
            .values()
            .filter(|r| r.state == RuleState::Active)
            .count()
    }

    /// Rules of a resolved incident come out of the tables (unless configured to stay).
    pub fn on_resolved(&mut self, incident_id: &str, publisher: &mut TablePublisher) -> Vec<Rule> {
        if self.config.keep_after_resolve {
            return Vec::new();
        }
        self.end_rules(
            |r| r.incident_id == incident_id,
            RuleState::Removed,
            publisher,
        )
    }

    /// Expire rules past their time.
    pub fn expire(&mut self, now_ns: u64, publisher: &mut TablePublisher) -> Vec<Rule> {
        self.end_rules(|r| r.expires_at_ns <= now_ns, RuleState::Expired, publisher)
    }

    /// Take the live rules `which` selects out of the tables and record them in
    /// their final `state`; returns them.
    fn end_rules(
        &mut self,
        which: impl Fn(&Rule) -> bool,
        state: RuleState,
        publisher: &mut TablePublisher,
    ) -> Vec<Rule> {
        let mut changed = Vec::new();
        let mut signatures_changed = false;
        for rule in self.rules.values_mut() {
            if !matches!(rule.state, RuleState::Active | RuleState::Staged) || !which(rule) {
                continue;
            }
            if rule.state == RuleState::Active {
                match &rule.matches {
                    RuleMatch::Block { source } => {
                        if let Ok(p) = source.parse::<Prefix>() {
                            let _ = publisher.unblock(p);
                        }
                    }
                    RuleMatch::Signature { .. } | RuleMatch::SourceLimit { .. } => {
                        signatures_changed = true
                    }
                }
            }
            rule.state = state;
            changed.push(rule.clone());
        }
        for r in &changed {
            self.persist(r);
        }
        if signatures_changed {
            self.publish_signatures(publisher);
        }
        changed
    }

    /// Publish the signature set (configured rules first, then the incidents')
    /// and the per-source limit from the active rules.
    fn publish_signatures(&mut self, publisher: &mut TablePublisher) {
        let rules: Vec<SignatureRule> = self
            .static_signatures
            .iter()
            .cloned()
            .chain(
                self.rules
                    .values()
                    .filter(|r| r.state == RuleState::Active)
                    .filter_map(Rule::signature),
            )
            .collect();
        if let Err(e) = publisher.set_signatures(rules) {
            self.refusals.push(format!("signature set refused: {e}"));
        }
        let limit =
            self.rules
                .values()
                .filter(|r| r.state == RuleState::Active)
                .find_map(|r| match &r.matches {
                    RuleMatch::SourceLimit { class, pps } => crate::config::traffic_class(class)
                        .map(|class| SourceLimit {
                            class,
                            pps: *pps,
                            burst: *pps,
                            rule_id: r.id,
                        }),
                    _ => None,
                });
        publisher.set_source_limit(limit.or(self.static_source_limit));
    }
}

/// TCP flag letters, in the order of their bits.
pub const TCP_FLAG_LETTERS: [(char, u8); 8] = [
    ('F', 0x01),
    ('S', 0x02),
    ('R', 0x04),
    ('P', 0x08),
    ('A', 0x10),
    ('U', 0x20),
    ('E', 0x40),
    ('C', 0x80),
];

/// `FLAGS/MASK` (`S/SA`: SYN set, ACK clear) as (mask, value); `FLAGS` alone
/// means those flags set, others ignored. `None` if it is not that notation.
pub fn parse_tcp_flags(s: &str) -> Option<(u8, u8)> {
    let bits = |part: &str| -> Option<u8> {
        if part.is_empty() {
            return None;
        }
        part.chars().try_fold(0u8, |acc, c| {
            TCP_FLAG_LETTERS
                .iter()
                .find(|(l, _)| *l == c.to_ascii_uppercase())
                .map(|(_, b)| acc | b)
        })
    };
    let (value, mask) = match s.split_once('/') {
        Some((v, m)) => (bits(v)?, bits(m)?),
        None => {
            let v = bits(s)?;
            (v, v)
        }
    };
    (value & !mask == 0).then_some((mask, value))
}

fn reflector_attack(r: Reflector) -> AttackType {
    AttackType::of_class(levee_dataplane::wire::TrafficClass::Reflected(r))
        .unwrap_or(AttackType::UdpAmplification)
}
