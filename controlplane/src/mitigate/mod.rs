//! Mitigation: the rules an incident calls for, and their life (staged, active,
//! expired, removed). Every rule goes through the table publisher, so the
//! allowlist and the table capacities apply to automatic rules as to manual ones.

use std::collections::BTreeMap;

use levee_dataplane::tables::{
    FragmentMatch, Prefix, SignatureAction, SignatureRule, SourceLimit, TablePublisher,
};
use levee_dataplane::wire::{Reflector, REFLECTORS};
use serde::{Deserialize, Serialize};

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
        #[serde(skip_serializing_if = "Option::is_none")]
        src_port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tcp_flags: Option<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        non_first_fragments: bool,
        /// None: drop; Some: rate limit in packets per second.
        #[serde(skip_serializing_if = "Option::is_none")]
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
            tcp_flags,
            non_first_fragments,
            rate_limit_pps,
        } = &self.matches
        else {
            return None;
        };
        let flags = tcp_flags.as_deref().map(|f| match f {
            "S/SA" => (0x12, 0x02),
            "A/SAR" => (0x16, 0x10),
            "SA/SA" => (0x12, 0x12),
            _ => (0x04, 0x04),
        });
        Some(SignatureRule {
            id: self.id,
            destination: destination.parse().ok(),
            protocol: Some(*protocol),
            src_ports: src_port.map(|p| (p, p)),
            dst_ports: None,
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
            } else if self.config.auto_apply {
                // Written as active before it takes effect; a refusal rewrites it.
                rule.state = RuleState::Active;
                if !self.persist(&rule) {
                    rule.state = RuleState::Refused;
                    self.rules.insert(id, rule.clone());
                    new_rules.push(rule);
                    continue;
                }
                rule.state = RuleState::Staged;
                match &rule.matches {
                    RuleMatch::Block { source } => match source
                        .parse::<Prefix>()
                        .map(|p| publisher.block(p, id, rule.expires_at_ns))
                    {
                        Ok(Ok(_)) => rule.state = RuleState::Active,
                        Ok(Err(e)) | Err(e) => {
                            rule.state = RuleState::Refused;
                            rule.note = Some(e.to_string());
                            self.refusals.push(format!("rule {id}: {e}"));
                            self.persist(&rule);
                        }
                    },
                    RuleMatch::Signature { .. } | RuleMatch::SourceLimit { .. } => {
                        rule.state = RuleState::Active;
                        signatures_changed = true;
                    }
                }
            }
            if rule.state == RuleState::Staged
                || rule.state == RuleState::Refused
                    && rule.note.as_deref().is_some_and(|n| n.contains("cap"))
            {
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

fn reflector_attack(r: Reflector) -> AttackType {
    AttackType::of_class(levee_dataplane::wire::TrafficClass::Reflected(r))
        .unwrap_or(AttackType::UdpAmplification)
}
