//! Mitigation: the rules an incident calls for, and their life (staged, active,
//! expired, removed). Every rule goes through the table publisher, so the
//! allowlist and the table capacities apply to automatic rules as to manual ones.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::rule_fields::TcpFlags;
use levee_dataplane::tables::{
    Prefix, SignatureRule, SourceLimit, TablePublisher, WatchSet, WatchedTarget, MAX_SIGNATURES,
    MAX_WATCHED,
};
use levee_dataplane::wire::{Reflector, TrafficClass, REFLECTORS};

pub mod export;
pub mod known;
pub mod narrow;

use crate::rule::{Rule, RuleMatch, RuleState, SignatureCheck};

use crate::store::Store;

use crate::detect::{mapped_to_ip, AttackType, Detector, Incident, Target, WindowView};
use known::KnownSources;
use narrow::{Narrow, Peacetime, Shape};

/// Mitigation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MitigationConfig {
    /// Apply rules at once; otherwise they wait, staged, for approval.
    pub auto_apply: bool,
    pub rule_ttl_s: u64,
    /// Keep rules after their incident resolves (until they expire).
    pub keep_after_resolve: bool,
    /// Rules of incidents and operators at once (blocks of one incident's
    /// attackers count as one: they are bounded by the blocklist's capacity).
    pub max_rules: usize,
    /// Per-source limit floor while an incident is open (packets per second).
    pub source_floor_pps: f64,
    /// A derived signature above this estimated collateral is staged.
    pub max_collateral: f64,
    /// The detection multiplier: per-source limits are this many times what
    /// the target's sources sent in peacetime.
    pub multiplier: f64,
    pub block_protected_sources: bool,
    /// Shortest prefix (IPv4, IPv6) a pulled ban may block.
    pub min_pulled_prefix: (u8, u8),
    pub protected: Vec<Prefix>,
    /// SYN floods are answered with SYN authentication.
    pub syn_authentication: bool,
    /// ACK, RST and flag floods are answered with a connection state check.
    pub connection_state: bool,
}

impl Default for MitigationConfig {
    fn default() -> Self {
        MitigationConfig {
            auto_apply: true,
            syn_authentication: true,
            connection_state: true,
            rule_ttl_s: 3600,
            keep_after_resolve: false,
            max_rules: 10_000,
            source_floor_pps: 10.0,
            max_collateral: 0.01,
            multiplier: 4.0,
            block_protected_sources: false,
            min_pulled_prefix: (16, 32),
            protected: Vec::new(),
        }
    }
}

/// The rules of every incident, operator and integration, and the state the
/// engine learns to make them narrow: known sources and peacetime samples.
#[derive(Debug)]
pub struct Mitigator {
    config: MitigationConfig,
    rules: BTreeMap<u32, Rule>,
    next_id: u32,
    /// Changes the tables refused, for the log.
    pub refusals: Vec<String>,
    /// Where rules are written before they are applied (none in replay).
    pub store: Option<Store>,
    /// Changes of what is in force (entries in or out, signature sets), for
    /// integrations that follow the rules (the host firewall).
    pub rule_changes: u64,
    /// Rules in force that the store could not take yet (a full disk...):
    /// mitigation goes on from memory, and they are written again each window
    /// until it does.
    pub unsaved: std::collections::BTreeSet<u32>,
    /// Why the store last refused a write, while some rule is unsaved.
    pub store_error: Option<String>,
    /// Rules written in the store's open transaction (unsaved if it fails).
    written: Vec<u32>,
    /// The configuration's signature rules, published ahead of the incidents'.
    pub static_signatures: Vec<SignatureRule>,
    /// The configuration's per-source limit, when no incident sets one.
    pub static_source_limit: Option<SourceLimit>,
    /// Live block rules holding each prefix: an entry leaves the tables only
    /// when the last of them (and the configuration's blocklist) lets go.
    owners: HashMap<Prefix, Vec<u32>>,
    /// Prefixes each incident blocks, to block each attacker once.
    incident_blocks: HashMap<String, HashSet<Prefix>>,
    /// The peers each protected host talks to in peacetime.
    pub known: KnownSources,
    /// Sampled peacetime packets of each protected host.
    peacetime: Peacetime,
    /// Sampled attack packets of each open incident (not from known or blocked
    /// sources), for deriving its signatures.
    attack_samples: HashMap<String, Vec<Shape>>,
    /// The signature derived for each (incident, vector).
    derived: HashMap<(String, AttackType), u32>,
    /// Heaviest single source per class seen in peacetime (pps, decaying).
    source_peak_pps: [f64; TrafficClass::COUNT],
    /// Ended rules kept in memory (the store has them all).
    ended: std::collections::VecDeque<u32>,
    /// Over-limit sources the workers could not report (full reports).
    pub over_limit_lost: u64,
    /// Pending rules and the table change that carries them.
    awaiting: HashMap<u32, u64>,
    /// The known sources of each open incident's target, taken when it opened.
    watch_known: HashMap<String, Vec<u128>>,
}

const FIRST_RULE_ID: u32 = 1000;

/// The incident id of rules added by hand.
pub const MANUAL: &str = "manual";

/// The rule id under which the configuration's blocklist drops (never ends).
pub const STATIC_BLOCKLIST_RULE: u32 = 0;

/// Ended rules remembered in memory.
const ENDED_KEPT: usize = 4096;
/// Attack samples kept per incident.
const ATTACK_SAMPLES: usize = 2048;
/// Known sources handed to the workers per watched target.
const KNOWN_PER_TARGET: usize = 16_384;

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

/// The traffic classes of an attack type.
fn classes_of(a: AttackType) -> impl Iterator<Item = TrafficClass> {
    TrafficClass::all().filter(move |c| AttackType::of_class(*c) == Some(a))
}

/// The prefix an incident's target covers.
pub fn target_prefix(t: &Target) -> Prefix {
    match t {
        Target::Host(k) => Prefix::host(mapped_to_ip(*k)),
        Target::Prefix(p) => *p,
    }
}

impl Mitigator {
    pub fn new(config: MitigationConfig) -> Self {
        Mitigator {
            config,
            rules: BTreeMap::new(),
            next_id: FIRST_RULE_ID,
            refusals: Vec::new(),
            store: None,
            rule_changes: 0,
            unsaved: Default::default(),
            store_error: None,
            written: Vec::new(),
            static_signatures: Vec::new(),
            static_source_limit: None,
            owners: HashMap::new(),
            incident_blocks: HashMap::new(),
            known: KnownSources::default(),
            peacetime: Peacetime::default(),
            attack_samples: HashMap::new(),
            derived: HashMap::new(),
            source_peak_pps: [0.0; TrafficClass::COUNT],
            ended: std::collections::VecDeque::new(),
            over_limit_lost: 0,
            awaiting: HashMap::new(),
            watch_known: HashMap::new(),
        }
    }

    /// A new staged rule of `origin`, numbered, lasting `ttl_s` from `now_ns`.
    fn new_rule(
        &mut self,
        origin: &str,
        matches: RuleMatch,
        reason: String,
        now_ns: u64,
        ttl_s: u64,
    ) -> Rule {
        let id = self.next_id;
        self.next_id += 1;
        Rule {
            id,
            incident_id: origin.into(),
            state: RuleState::Staged,
            matches,
            reason,
            created_at_ns: now_ns,
            expires_at_ns: now_ns.saturating_add(ttl_s.saturating_mul(1_000_000_000)),
            note: None,
            collateral: None,
        }
    }

    /// Record a rule before it applies. A store that cannot take it (a full
    /// disk) does not stop mitigation: the rule applies from memory and is
    /// written again each window until the store takes it.
    fn persist(&mut self, rule: &Rule) {
        let Some(store) = &self.store else {
            return;
        };
        match store.rule(rule) {
            Ok(()) => {
                self.written.push(rule.id);
                self.unsaved.remove(&rule.id);
            }
            Err(e) => {
                if self.unsaved.is_empty() {
                    tracing::error!(
                        "rule {}: the store cannot record it ({e}); applied from memory, written when the store takes it",
                        rule.id
                    );
                }
                self.unsaved.insert(rule.id);
                self.store_error = Some(e.to_string());
            }
        }
    }

    /// The store's transaction around a window's changes began: what is
    /// written from now on is unsaved if it fails.
    pub fn writing(&mut self) {
        self.written.clear();
    }

    /// The transaction failed (nothing of it reached the disk): its rules are
    /// unsaved, in force from memory.
    pub fn write_failed(&mut self, error: String) {
        if self.unsaved.is_empty() {
            tracing::error!("the store cannot record this window's rules ({error}); applied from memory, written when the store takes them");
        }
        self.unsaved.extend(self.written.drain(..));
        self.store_error = Some(error);
    }

    /// Write the unsaved rules again, as they are now.
    pub fn catch_up(&mut self) {
        if self.unsaved.is_empty() {
            self.store_error = None;
            return;
        }
        let ids: Vec<u32> = self.unsaved.iter().copied().collect();
        for id in ids {
            match self.rules.get(&id).cloned() {
                Some(rule) => {
                    self.persist(&rule);
                }
                // Gone from memory (ended and bounded out): nothing to save.
                None => {
                    self.unsaved.remove(&id);
                }
            }
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
            if rule.state.in_force() {
                match &rule.matches {
                    RuleMatch::Block { source } => {
                        let held = source
                            .parse::<Prefix>()
                            .map_err(|e| e.to_string())
                            .and_then(|p| self.hold(p, &rule, publisher));
                        if let Err(e) = held {
                            rule.state = RuleState::Refused;
                            rule.note = Some(e);
                            self.persist(&rule);
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

    /// Live rules that count against `max_rules`: an incident's attacker blocks
    /// count as one rule (the blocklist's capacity bounds them).
    fn live(&self) -> usize {
        let mut incidents_blocking = HashSet::new();
        self.rules
            .values()
            .filter(|r| r.state.live())
            .filter(|r| match r.matches {
                RuleMatch::Block { .. } if r.incident_id.starts_with("inc_") => {
                    incidents_blocking.insert(r.incident_id.as_str())
                }
                _ => true,
            })
            .count()
    }

    /// Learn from a window: the peers of calm hosts (known sources), their
    /// sampled inbound packets (peacetime), the heaviest sources of each class
    /// while nothing is under attack.
    pub fn learn(&mut self, view: &WindowView, detector: &Detector) {
        self.known
            .observe(view.end_ns, &view.peers, |host| detector.calm(host));
        self.peacetime
            .observe(view.end_ns, &view.shapes, |host| detector.calm(host));
        if detector.all_calm() {
            // A slowly decaying maximum: a half-life of about ten minutes.
            let decay = 0.5f64.powf(view.seconds / 600.0);
            for (class, heavy) in view.top_sources.iter().enumerate() {
                let top = heavy.iter().map(|h| h.count).max().unwrap_or(0) as f64 / view.seconds;
                let peak = &mut self.source_peak_pps[class];
                *peak = (*peak * decay).max(top);
            }
        }
    }

    /// Per-source limits (unknown, known sources) for an incident's traffic.
    ///
    /// A source the target did not know may send it the floor, or twice the
    /// mean rate per source of those classes in peacetime if that is higher
    /// (the mean is taken over the sources of a window, so it leans high for
    /// sources that send in bursts). Without a learnt peacetime, a source must
    /// also carry 1% of the attack's traffic: a false alarm on a busy service
    /// must not block its clients one by one. A known source may send the
    /// multiplier times the heaviest single source seen in peacetime.
    fn source_limits(&self, incident: &Incident, detector: &Detector) -> (u32, u32) {
        let classes: Vec<TrafficClass> = incident
            .vectors
            .keys()
            .flat_map(|a| classes_of(*a))
            .collect();
        let c = &self.config;
        let mut unknown = c.source_floor_pps;
        match detector.peacetime(&incident.target) {
            Some(p) => {
                let per_source: f64 = classes
                    .iter()
                    .map(|cl| p.class_pps[cl.index()])
                    .sum::<f64>()
                    / p.sources.max(1.0);
                unknown = unknown.max(2.0 * per_source);
            }
            None => {
                let attack: f64 = incident.vectors.values().sum();
                unknown = unknown.max(0.01 * attack);
            }
        }
        let heaviest = classes
            .iter()
            .map(|cl| self.source_peak_pps[cl.index()])
            .fold(0.0, f64::max);
        let known = unknown.max(c.multiplier * heaviest);
        let clamp = |x: f64| x.clamp(1.0, f64::from(u32::MAX)) as u32;
        (clamp(unknown), clamp(known))
    }

    /// The per-window work for open incidents: block every attacker found since
    /// the last window, derive and measure narrow signatures, renew the rules of
    /// attacks still going on, and tell the workers which targets to account
    /// per source (with their known sources).
    pub fn on_window(
        &mut self,
        view: &WindowView,
        detector: &mut Detector,
        publisher: &mut TablePublisher,
    ) {
        let now_ns = view.end_ns;
        self.acknowledge(publisher);
        self.over_limit_lost += view.over_limit_overflow;
        let open: Vec<Incident> = detector.active().cloned().collect();
        // Attack samples: toward an incident's target, of its vectors, not from
        // a known source or one already blocked.
        for shape in &view.shapes {
            let shape = *shape;
            for incident in &open {
                let target = target_prefix(&incident.target);
                if !target.contains(mapped_to_ip(shape.dst))
                    || !incident.vectors.contains_key(
                        &AttackType::of_class(shape.class).unwrap_or(AttackType::MultiVector),
                    )
                    || self.known.is_known(shape.dst, shape.src)
                    || publisher
                        .blocked()
                        .contains_key(&Prefix::host(mapped_to_ip(shape.src)))
                {
                    continue;
                }
                let samples = self.attack_samples.entry(incident.id.clone()).or_default();
                if samples.len() < ATTACK_SAMPLES {
                    samples.push(shape);
                }
            }
        }
        let mut signatures_changed = false;
        for (id, attackers) in detector.take_fresh_attackers() {
            let Some(incident) = open.iter().find(|i| i.id == id) else {
                continue;
            };
            for ip in attackers {
                self.block_attacker(incident, &ip, now_ns, publisher);
            }
        }
        for incident in &open {
            if self.narrow_signatures(incident, now_ns, publisher) {
                signatures_changed = true;
                // A class-wide fallback the new signature answers comes out.
                self.on_incident(incident, now_ns, publisher);
            }
        }
        signatures_changed |= self.renew(&open, now_ns, publisher);
        if signatures_changed {
            self.publish_signatures(publisher);
        }
        // A target's known sources are taken once, when its incident opens:
        // nothing is learnt of a target under attack.
        for incident in &open {
            if !self.watch_known.contains_key(&incident.id) {
                let target = target_prefix(&incident.target);
                let mut known = self
                    .known
                    .of(|h| target.contains(mapped_to_ip(h)), KNOWN_PER_TARGET);
                known.sort_unstable();
                self.watch_known.insert(incident.id.clone(), known);
            }
        }
        self.watch_known
            .retain(|id, _| open.iter().any(|i| i.id == *id));
        let mut watched: Vec<WatchedTarget> = open
            .iter()
            .map(|incident| {
                let (limit, known_limit) = self.source_limits(incident, detector);
                let target = target_prefix(&incident.target);
                let known = self
                    .watch_known
                    .get(&incident.id)
                    .cloned()
                    .unwrap_or_default();
                WatchedTarget::new(
                    target,
                    incident.vectors.keys().flat_map(|a| classes_of(*a)),
                    limit,
                    known_limit,
                    known,
                )
            })
            .collect();
        if watched.len() > MAX_WATCHED {
            self.refusals.push(format!(
                "{} incidents are open: only {MAX_WATCHED} are accounted per source",
                watched.len()
            ));
            watched.truncate(MAX_WATCHED);
        }
        publisher.set_watch(WatchSet::new(watched));
        self.stamp(publisher);
    }

    /// Block one attacker of an incident (owned by it).
    fn block_attacker(
        &mut self,
        incident: &Incident,
        ip: &str,
        now_ns: u64,
        publisher: &mut TablePublisher,
    ) {
        let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
            return;
        };
        let prefix = Prefix::host(addr);
        let blocks = self.incident_blocks.entry(incident.id.clone()).or_default();
        if !blocks.insert(prefix) {
            return;
        }
        let reason = format!(
            "attacker of {} ({})",
            incident.id,
            incident.attack_type.name()
        );
        let matches = RuleMatch::Block {
            source: prefix.to_string(),
        };
        let ttl = self.config.rule_ttl_s;
        let mut rule = self.new_rule(&incident.id, matches, reason, now_ns, ttl);
        if self.config.auto_apply {
            self.apply(&mut rule, publisher);
        } else {
            self.persist(&rule);
        }
        self.rules.insert(rule.id, rule);
    }

    /// Derive, measure and apply (or stage) a narrow signature for each vector
    /// of an incident that has enough samples and none yet. Returns whether the
    /// signature set changed.
    fn narrow_signatures(
        &mut self,
        incident: &Incident,
        now_ns: u64,
        publisher: &mut TablePublisher,
    ) -> bool {
        let mut changed = false;
        let vectors: Vec<AttackType> = incident.vectors.keys().copied().collect();
        for vector in vectors {
            let key = (incident.id.clone(), vector);
            // A stateful defence tells real clients from the flood; a narrow
            // signature could only drop both.
            if self.derived.contains_key(&key) || self.stateful_defence(vector).is_some() {
                continue;
            }
            let samples: Vec<Shape> = self
                .attack_samples
                .get(&incident.id)
                .map(|s| {
                    s.iter()
                        .filter(|x| AttackType::of_class(x.class) == Some(vector))
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            let Some(narrow) = Narrow::derive(&samples) else {
                continue;
            };
            let target = target_prefix(&incident.target);
            let known = &self.known;
            let collateral = self.peacetime.collateral(
                |h| target.contains(mapped_to_ip(h)),
                &narrow,
                |host, src| known.is_known(host, src),
            );
            let destination = target.to_string();
            let matches = RuleMatch::Signature {
                destination: destination.clone(),
                protocol: narrow.protocol,
                src_port: narrow.src_port,
                dst_port: narrow.dst_port,
                tcp_flags: narrow
                    .tcp_flags
                    .map(|(mask, value)| TcpFlags { mask, value }.to_string()),
                non_first_fragments: narrow.non_first_fragments,
                ip_length: narrow.ip_length,
                ip_ttl: narrow.ttl,
                rate_limit_pps: None,
                check: None,
            };
            let reason = format!(
                "{} toward {destination}: narrowest signature of {} sampled packets, matching {:.1}% of them ({})",
                vector.name(),
                samples.len(),
                100.0 * narrow.coverage(&samples),
                incident.id
            );
            let ttl = self.config.rule_ttl_s;
            let mut rule = self.new_rule(&incident.id, matches, reason, now_ns, ttl);
            rule.collateral = collateral;
            let id = rule.id;
            self.derived.insert(key, id);
            let within = collateral.is_some_and(|c| c <= self.config.max_collateral);
            if !within {
                rule.note = Some(match collateral {
                    Some(c) => format!(
                        "staged: it would drop {:.1}% of the target's peacetime packets (more than {:.1}%)",
                        100.0 * c,
                        100.0 * self.config.max_collateral
                    ),
                    None => "staged: too little peacetime traffic of the target was seen to estimate what it would drop".into(),
                });
                self.persist(&rule);
            } else if self.config.auto_apply {
                changed |= self.apply(&mut rule, publisher);
            } else {
                self.persist(&rule);
            }
            self.rules.insert(id, rule);
        }
        changed
    }

    /// Rules of open incidents are renewed while the attack lasts: expiry never
    /// ends the mitigation of an attack in progress. Refused signatures of open
    /// incidents are tried again when room frees.
    fn renew(&mut self, open: &[Incident], now_ns: u64, publisher: &mut TablePublisher) -> bool {
        let ttl_ns = self.config.rule_ttl_s * 1_000_000_000;
        let open_ids: HashSet<&str> = open.iter().map(|i| i.id.as_str()).collect();
        let due: Vec<u32> = self
            .rules
            .values()
            .filter(|r| {
                open_ids.contains(r.incident_id.as_str())
                    && (r.state.live() && r.expires_at_ns.saturating_sub(now_ns) < ttl_ns / 2
                        || r.state == RuleState::Refused
                            && matches!(r.matches, RuleMatch::Signature { .. })
                            && r.note.as_deref().is_some_and(|n| n.contains("no room")))
            })
            .map(|r| r.id)
            .collect();
        let mut changed = false;
        for id in due {
            let Some(mut rule) = self.rules.remove(&id) else {
                continue;
            };
            rule.expires_at_ns = now_ns + ttl_ns;
            match rule.state {
                RuleState::Refused => changed |= self.apply(&mut rule, publisher),
                state if state.in_force() => {
                    if let RuleMatch::Block { source } = &rule.matches {
                        if let Ok(p) = source.parse::<Prefix>() {
                            self.republish(p, Some(&rule), publisher);
                        }
                    }
                    self.persist(&rule);
                }
                _ => {
                    self.persist(&rule);
                }
            }
            self.rules.insert(id, rule);
        }
        changed
    }

    /// The rules an incident calls for besides its attackers' blocks: the
    /// reflector ports of an amplification, and for a spoofed flood without a
    /// narrow signature yet, a class-wide limit (known sources pass it). Applied
    /// or staged; returns the new rules.
    pub fn on_incident(
        &mut self,
        incident: &Incident,
        now_ns: u64,
        publisher: &mut TablePublisher,
    ) -> Vec<Rule> {
        let destination = target_prefix(&incident.target).to_string();
        let limit = incident.limit_pps.max(1.0).min(f64::from(u32::MAX)) as u32;
        let mut wanted: Vec<(RuleMatch, String)> = Vec::new();
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
                ip_length: None,
                ip_ttl: None,
                rate_limit_pps: rate,
                check: None,
            };
            // TCP floods meet the dataplane's stateful defences, spoofed or
            // not (a botnet's real stacks pass them, and are blocked source by
            // source): no class-wide limit that would starve new clients.
            if let Some((flags, check)) = self.stateful_defence(*vector) {
                let mut m = sig(6, None, Some(flags), false, None);
                if let RuleMatch::Signature { check: c, .. } = &mut m {
                    *c = Some(check);
                }
                let reason = match check {
                    SignatureCheck::SynAuthentication => {
                        format!("{reason}: SYNs of unverified sources are challenged")
                    }
                    SignatureCheck::ConnectionState => {
                        format!("{reason}: segments of no known connection are dropped")
                    }
                };
                wanted.push((m, reason));
                continue;
            }
            let m = match vector {
                a if a.is_amplification() => {
                    // Every reflector port of this vector's family, and the
                    // port the traffic's shape named.
                    for (port, r) in REFLECTORS {
                        if reflector_attack(*r) == *a {
                            wanted.push((sig(17, Some(*port), None, false, None), reason.clone()));
                        }
                    }
                    if let (AttackType::UdpAmplification, Some(port)) = (a, incident.reflector_port)
                    {
                        wanted.push((sig(17, Some(port), None, false, None), reason.clone()));
                    }
                    continue;
                }
                // Real sources are blocked one by one; a class-wide limit would
                // also hit legitimate users.
                _ if !incident.spoofing_likely => continue,
                // An active narrow signature already answers this vector.
                v if self
                    .derived
                    .get(&(incident.id.clone(), *v))
                    .and_then(|id| self.rules.get(id))
                    .is_some_and(|r| r.state.in_force()) =>
                {
                    continue
                }
                AttackType::UdpFlood => sig(17, None, None, false, Some(limit)),
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

        // A class-wide limit the incident no longer calls for (its spoofing
        // judgement changed) comes out; blocks and derived signatures stay.
        let mut signatures_changed = false;
        let mut superseded = Vec::new();
        for rule in self
            .rules
            .values_mut()
            .filter(|r| r.incident_id == incident.id)
        {
            let class_wide = matches!(
                rule.matches,
                RuleMatch::Signature {
                    rate_limit_pps: Some(_),
                    ..
                } | RuleMatch::SourceLimit { .. }
            );
            if class_wide && rule.state.live() && !wanted.iter().any(|(m, _)| *m == rule.matches) {
                signatures_changed |= rule.state.in_force();
                rule.state = RuleState::Removed;
                rule.note = Some("superseded: the incident no longer calls for it".into());
                superseded.push(rule.clone());
            }
        }
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
            let ttl = self.config.rule_ttl_s;
            let mut rule = self.new_rule(&incident.id, m, reason, now_ns, ttl);
            let id = rule.id;
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

    /// The stateful defence the dataplane answers a TCP vector with, if it is
    /// on: the signature's TCP flags and its check.
    fn stateful_defence(&self, vector: AttackType) -> Option<(&'static str, SignatureCheck)> {
        match vector {
            AttackType::SynFlood if self.config.syn_authentication => {
                Some(("S/SA", SignatureCheck::SynAuthentication))
            }
            AttackType::AckFlood | AttackType::RstFlood if self.config.connection_state => {
                Some(("/S", SignatureCheck::ConnectionState))
            }
            AttackType::SynAckFlood if self.config.connection_state => {
                Some(("SA/SA", SignatureCheck::ConnectionState))
            }
            _ => None,
        }
    }

    /// Why a block of `prefix` may not be made: allowlisted, or a protected
    /// network (unless configured).
    fn block_refusal(&self, prefix: &Prefix, publisher: &TablePublisher) -> Option<String> {
        if let Err(e) = publisher.check_block(prefix) {
            return Some(e.to_string());
        }
        // Wider than an allowlisted prefix: it would block it too.
        if let Some(a) = publisher.allowlist().iter().find(|a| prefix.overlaps(a)) {
            return Some(format!(
                "{prefix} covers the allowlisted {a}: allowlisted addresses are never blocked"
            ));
        }
        if !self.config.block_protected_sources {
            if let Some(p) = self.config.protected.iter().find(|p| prefix.overlaps(p)) {
                return Some(format!(
                    "{prefix} is in the protected network {p}: protected hosts are not blocked as sources (mitigation.block_protected_sources)"
                ));
            }
        }
        None
    }

    /// Take `rule` as an owner of `prefix` in the tables.
    fn hold(
        &mut self,
        prefix: Prefix,
        rule: &Rule,
        publisher: &mut TablePublisher,
    ) -> Result<(), String> {
        if let Some(why) = self.block_refusal(&prefix, publisher) {
            return Err(why);
        }
        let owners = self.owners.entry(prefix).or_default();
        if !owners.contains(&rule.id) {
            owners.push(rule.id);
        }
        self.republish(prefix, Some(rule), publisher);
        Ok(())
    }

    /// Put `prefix` in the tables as its live owners want it: the configuration's
    /// entry stays as it is; otherwise the first owner's id and the latest expiry.
    /// With no owner left it comes out. `extra` is an owner not in `rules` yet.
    fn republish(&mut self, prefix: Prefix, extra: Option<&Rule>, publisher: &mut TablePublisher) {
        let current = publisher.blocked().get(&prefix).copied();
        if current.is_some_and(|c| c.rule_id == STATIC_BLOCKLIST_RULE) {
            return;
        }
        let owners: Vec<&Rule> = self
            .owners
            .get(&prefix)
            .into_iter()
            .flatten()
            .filter_map(|id| match extra {
                Some(r) if r.id == *id => Some(r),
                _ => self.rules.get(id),
            })
            .collect();
        match owners.first() {
            None => {
                self.owners.remove(&prefix);
                if current.is_some() {
                    let _ = publisher.unblock(prefix);
                    self.rule_changes += 1;
                }
            }
            Some(first) => {
                let expires = owners.iter().map(|r| r.expires_at_ns).max().unwrap_or(0);
                let rule_id = current
                    .filter(|c| owners.iter().any(|r| r.id == c.rule_id))
                    .map_or(first.id, |c| c.rule_id);
                if current.is_none_or(|c| c.rule_id != rule_id || c.expires_at_ns != expires) {
                    match publisher.block(prefix, rule_id, expires) {
                        // A renewal (a later expiry) changes nothing in force.
                        Ok(_) if current.is_some_and(|c| c.rule_id == rule_id) => {}
                        Ok(_) => self.rule_changes += 1,
                        Err(e) => self.refusals.push(format!("{prefix}: {e}")),
                    }
                }
            }
        }
    }

    /// Make a rule active: recorded first, then into the tables; a refusal (the
    /// allowlist, a full table) leaves it refused with a note, recorded too.
    /// Returns whether the signature set needs publishing.
    fn apply(&mut self, rule: &mut Rule, publisher: &mut TablePublisher) -> bool {
        // Checked before anything is recorded as active.
        let refusal = match &rule.matches {
            RuleMatch::Block { source } => match source.parse::<Prefix>() {
                Ok(p) => self.block_refusal(&p, publisher),
                Err(e) => Some(e.to_string()),
            },
            RuleMatch::Signature { .. } => {
                let active = self
                    .rules
                    .values()
                    .filter(|r| r.state.in_force() && r.id != rule.id)
                    .filter(|r| matches!(r.matches, RuleMatch::Signature { .. }))
                    .count();
                (self.static_signatures.len() + active >= MAX_SIGNATURES).then(|| {
                    format!(
                        "no room: the classifier holds {MAX_SIGNATURES} signatures and all are in use; retried when one ends"
                    )
                })
            }
            RuleMatch::SourceLimit { .. } => None,
        };
        if let Some(why) = refusal {
            rule.state = RuleState::Refused;
            rule.note = Some(why.clone());
            self.refusals.push(format!("rule {}: {why}", rule.id));
            self.persist(rule);
            return false;
        }
        // Recorded before the tables change; active once every worker has it.
        rule.state = RuleState::Pending;
        rule.note = None;
        self.persist(rule);
        match &rule.matches {
            RuleMatch::Block { source } => {
                let held = source
                    .parse::<Prefix>()
                    .map_err(|e| e.to_string())
                    .and_then(|p| self.hold(p, rule, publisher));
                if let Err(e) = held {
                    rule.state = RuleState::Refused;
                    rule.note = Some(e.clone());
                    self.refusals.push(format!("rule {}: {e}", rule.id));
                    self.persist(rule);
                }
                false
            }
            RuleMatch::Signature { .. } | RuleMatch::SourceLimit { .. } => true,
        }
    }

    /// A rule an operator (or an integration, `origin`) adds: checked against
    /// the allowlist, the protected networks and the caps like automatic ones,
    /// recorded, then applied at once. A refusal changes nothing.
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
                if origin != MANUAL {
                    let (v4, v6) = self.config.min_pulled_prefix;
                    let min = if prefix.addr().is_ipv4() { v4 } else { v6 };
                    if prefix.len() < min {
                        return Err(RuleError::Refused(format!(
                            "{prefix} is wider than /{min}, the shortest prefix a pulled ban may block (mitigation.min_pulled_prefix_v4/_v6)"
                        )));
                    }
                }
                if let Some(why) = self.block_refusal(&prefix, publisher) {
                    return Err(RuleError::Refused(why));
                }
                if let Some(other) = self.rules.values().find(|r| {
                    r.state.in_force()
                        && r.incident_id == origin
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
                    collateral: None,
                };
                let active = self.rules.values().filter(|r| {
                    r.state.in_force() && matches!(r.matches, RuleMatch::Signature { .. })
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
        let mut rule = self.new_rule(origin, matches, reason, now_ns, ttl_s);
        let id = rule.id;
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
        if !rule.state.live() {
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
        self.rules.values().filter(|r| r.state.in_force()).count()
    }

    /// Rules of a resolved incident come out of the tables (unless configured to stay).
    pub fn on_resolved(&mut self, incident_id: &str, publisher: &mut TablePublisher) -> Vec<Rule> {
        self.attack_samples.remove(incident_id);
        self.incident_blocks.remove(incident_id);
        self.derived.retain(|(id, _), _| id != incident_id);
        if self.config.keep_after_resolve {
            return Vec::new();
        }
        self.end_rules(
            |r| r.incident_id == incident_id,
            RuleState::Removed,
            publisher,
        )
    }

    /// Expire rules past their time; rules of open incidents (`open`) are
    /// renewed instead, never expired.
    pub fn expire(
        &mut self,
        now_ns: u64,
        open: &HashSet<String>,
        publisher: &mut TablePublisher,
    ) -> Vec<Rule> {
        self.end_rules(
            |r| r.expires_at_ns <= now_ns && !open.contains(&r.incident_id),
            RuleState::Expired,
            publisher,
        )
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
        let mut released = Vec::new();
        for rule in self.rules.values_mut() {
            if !rule.state.live() || !which(rule) {
                continue;
            }
            if rule.state.in_force() {
                match &rule.matches {
                    RuleMatch::Block { source } => {
                        if let Ok(p) = source.parse::<Prefix>() {
                            released.push((p, rule.id));
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
        for (p, id) in released {
            if let Some(owners) = self.owners.get_mut(&p) {
                owners.retain(|o| *o != id);
            }
            self.republish(p, None, publisher);
        }
        for r in &changed {
            self.persist(r);
            self.ended.push_back(r.id);
        }
        // Bounded: the oldest ended rules leave memory (the store keeps them).
        while self.ended.len() > ENDED_KEPT {
            if let Some(id) = self.ended.pop_front() {
                if self.rules.get(&id).is_some_and(|r| !r.state.live()) {
                    self.rules.remove(&id);
                }
            }
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
                    .filter(|r| r.state.in_force())
                    .filter_map(Rule::signature),
            )
            .take(MAX_SIGNATURES)
            .collect();
        match publisher.set_signatures(rules) {
            Ok(_) => self.rule_changes += 1,
            Err(e) => self.refusals.push(format!("signature set refused: {e}")),
        }
        let limit = self
            .rules
            .values()
            .filter(|r| r.state.in_force())
            .find_map(|r| match &r.matches {
                RuleMatch::SourceLimit { class, pps } => {
                    TrafficClass::from_name(class).map(|class| SourceLimit {
                        class,
                        pps: *pps,
                        burst: *pps,
                        rule_id: r.id,
                    })
                }
                _ => None,
            });
        publisher.set_source_limit(limit.or(self.static_source_limit));
    }

    /// Note the table change that carries each newly pending rule (everything
    /// published so far).
    fn stamp(&mut self, publisher: &TablePublisher) {
        let seq = publisher.last_seq();
        for r in self
            .rules
            .values()
            .filter(|r| r.state == RuleState::Pending)
        {
            self.awaiting.entry(r.id).or_insert(seq);
        }
        self.awaiting.retain(|id, _| {
            self.rules
                .get(id)
                .is_some_and(|r| r.state == RuleState::Pending)
        });
    }

    /// Pending rules every worker has applied become active (recorded); returns
    /// how many are still waiting.
    pub fn acknowledge(&mut self, publisher: &mut TablePublisher) -> usize {
        publisher.flush();
        self.stamp(publisher);
        let done: Vec<u32> = self
            .awaiting
            .iter()
            .filter(|(_, seq)| publisher.visible_everywhere(**seq))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.awaiting.remove(&id);
            if let Some(mut rule) = self.rules.remove(&id) {
                rule.state = RuleState::Active;
                self.persist(&rule);
                self.rules.insert(id, rule);
            }
        }
        self.awaiting.len()
    }

    /// A rule as it now stands.
    pub fn rule(&self, id: u32) -> Option<&Rule> {
        self.rules.get(&id)
    }

    /// The protected networks.
    pub fn protected(&self) -> &[Prefix] {
        &self.config.protected
    }

    /// Known sources, for metrics.
    pub fn known_sources(&self) -> usize {
        self.known.peers()
    }

    /// What the mitigator holds in memory, by kind (each bounded), for metrics.
    pub fn memory(&self) -> [(&'static str, usize); 4] {
        [
            ("rules", self.rules.len()),
            ("known_sources", self.known.peers()),
            ("peacetime_samples", self.peacetime.samples()),
            (
                "attack_samples",
                self.attack_samples.values().map(Vec::len).sum(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests;

fn reflector_attack(r: Reflector) -> AttackType {
    AttackType::of_class(levee_dataplane::wire::TrafficClass::Reflected(r))
        .unwrap_or(AttackType::UdpAmplification)
}
