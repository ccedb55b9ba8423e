//! Detection: window views in, incident events out. No I/O; time comes from the
//! windows (capture time in replay, the TSC in `levee run`), so tests drive it
//! deterministically.
//!
//! For every protected host, and for every protected prefix as a whole, each
//! window's rate per traffic class is compared with two limits:
//! - static limits of the host group the address belongs to (pps, bps, per class);
//! - a dynamic baseline per class learnt from that target's normal traffic: an
//!   exponentially weighted average that only learns from windows that are not
//!   over the limit and not inside an incident, each clipped to the current limit,
//!   so an attack cannot teach it that the attack is normal while a slow ramp of
//!   real traffic is followed. The limit is `max(floor, multiplier × baseline)`.
//!
//! Until a target's baseline is learnt (its warm-up, or restored from the store
//! at start), its floor is the much higher cold-start floor, so a busy service
//! is not taken for a flood the moment levee starts; static group limits apply
//! from the first window. Learning during the warm-up is clipped to that floor.
//!
//! A target over a limit for `confirm_windows` windows in a row becomes an
//! incident; its vectors are the classes over their limits. Two checks keep
//! legitimate surges (a flash crowd of complete sessions) from being named TCP
//! floods: ACKs are sessions when SYNs open them and the target answers them
//! (`explained_by_sessions`), and SYNs matched by as many such ACKs are
//! handshakes completing.

mod aggregate;
mod classify;
mod incident;
#[cfg(test)]
mod tests;

pub use aggregate::{Aggregator, WindowView};
pub use classify::AttackType;
pub use incident::{Incident, IncidentEvent};

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use levee_dataplane::stats::DestinationStats;
use levee_dataplane::tables::Prefix;
use levee_dataplane::wire::TrafficClass;

/// Static limits for a group of protected prefixes.
#[derive(Clone, Debug, PartialEq)]
pub struct HostGroup {
    pub name: String,
    pub prefixes: Vec<Prefix>,
    pub pps: Option<f64>,
    pub bps: Option<f64>,
    pub class_pps: BTreeMap<usize, f64>,
}

/// Detection settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionConfig {
    pub window_ms: u64,
    /// No class of a host is an attack below this rate, whatever its baseline.
    pub floor_pps: f64,
    pub floor_bps: f64,
    /// Floor of a protected prefix as a whole (carpet bombing).
    pub prefix_floor_pps: f64,
    /// Dynamic limit = multiplier × baseline.
    pub multiplier: f64,
    /// Half-life of the baselines' memory.
    pub baseline_half_life_s: f64,
    /// Windows of learning before dynamic limits apply to a target.
    pub warmup_windows: u32,
    /// Until then, no class of the target is an attack below this (static
    /// group limits apply from the first window).
    pub cold_start_floor_pps: f64,
    /// Consecutive windows over a limit before an incident is created.
    pub confirm_windows: u32,
    /// Time under the limits before an incident is resolved.
    pub cooldown_s: f64,
    /// A source is an attacker when it sends at least this share of a vector.
    pub attacker_share: f64,
    pub attacker_min_pps: f64,
    pub max_attackers: usize,
    /// Several vectors each at least this share of the attack: Multi-vector.
    pub multi_vector_share: f64,
    pub groups: Vec<HostGroup>,
    /// Protected prefixes (carpet bombing is judged per prefix).
    pub protected: Vec<Prefix>,
    /// Allowlisted sources are never attackers.
    pub allowlist: Vec<Prefix>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            window_ms: 100,
            floor_pps: 5_000.0,
            floor_bps: 50_000_000.0,
            prefix_floor_pps: 10_000.0,
            multiplier: 4.0,
            baseline_half_life_s: 300.0,
            warmup_windows: 50,
            cold_start_floor_pps: 50_000.0,
            confirm_windows: 2,
            cooldown_s: 10.0,
            attacker_share: 0.02,
            attacker_min_pps: 100.0,
            max_attackers: 20,
            multi_vector_share: 0.2,
            groups: Vec::new(),
            protected: Vec::new(),
            allowlist: Vec::new(),
        }
    }
}

/// Learnt normal rates of one target.
#[derive(Clone, Debug)]
struct Baseline {
    class_pps: [f64; TrafficClass::COUNT],
    pps: f64,
    bps: f64,
    /// Distinct sources per window.
    sources: f64,
    windows: u32,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            class_pps: [0.0; TrafficClass::COUNT],
            pps: 0.0,
            bps: 0.0,
            sources: 0.0,
            windows: 0,
        }
    }
}

/// A target's learnt baseline as the store keeps it across restarts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedBaseline {
    pub target: String,
    pub windows: u32,
    pub pps: f64,
    pub bps: f64,
    pub sources: f64,
    /// Learnt packets/s by class name (classes with traffic only).
    pub class_pps: BTreeMap<String, f64>,
}

/// A target's baseline as the API shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BaselineView {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Windows learnt from; the dynamic limits apply from `warmup_windows` on.
    pub windows: u32,
    pub learnt: bool,
    pub pps: f64,
    pub bps: f64,
    pub classes: Vec<ClassBaseline>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ClassBaseline {
    pub class: &'static str,
    /// Learnt normal rate.
    pub pps: f64,
    /// The limit above which this class of traffic is an attack.
    pub limit_pps: f64,
}

/// What a target did in one window, as rates.
#[derive(Clone, Debug)]
pub struct TargetRates {
    pub pps: f64,
    pub bps: f64,
    pub class_pps: [f64; TrafficClass::COUNT],
    pub class_bps: [f64; TrafficClass::COUNT],
    pub distinct_sources: f64,
    /// TTL buckets holding at least 5% of the packets.
    pub ttl_spread: u32,
    pub hosts: usize,
    /// What the target sent back (packets/s, from the sampled peers; SYN-ACKs,
    /// RSTs and ICMP left out); `None` where levee cannot see it.
    pub answered_pps: Option<f64>,
}

impl TargetRates {
    fn from_stats(s: &DestinationStats, seconds: f64, hosts: usize) -> Self {
        let mut class_pps = [0.0; TrafficClass::COUNT];
        let mut class_bps = [0.0; TrafficClass::COUNT];
        for i in 0..TrafficClass::COUNT {
            class_pps[i] = f64::from(s.classes[i].packets) / seconds;
            class_bps[i] = f64::from(s.classes[i].bytes) * 8.0 / seconds;
        }
        let ttl_buckets = s.ttl_buckets();
        let total: u32 = ttl_buckets.iter().sum();
        let ttl_spread = ttl_buckets
            .iter()
            .filter(|b| u64::from(**b) * 20 >= u64::from(total) && **b > 0)
            .count() as u32;
        TargetRates {
            pps: s.packets as f64 / seconds,
            bps: s.bytes as f64 * 8.0 / seconds,
            class_pps,
            class_bps,
            distinct_sources: s.distinct_sources(),
            ttl_spread,
            hosts,
            answered_pps: None,
        }
    }
}

/// The verdict on one target in one window.
#[derive(Clone, Debug)]
pub struct Over {
    /// Vectors over their limits, heaviest first, with their pps and bps.
    pub vectors: Vec<(AttackType, f64, f64)>,
    /// How far over the limit (rate / limit) the worst measure is.
    pub ratio: f64,
    /// The limit that was crossed, for severity.
    pub limit_pps: f64,
}

/// Where an attack is aimed: a host, or a whole protected prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Host(u128),
    Prefix(Prefix),
}

impl Target {
    /// An address (a host) or a prefix, as [`Target::display`] writes them.
    pub fn parse(s: &str) -> Option<Target> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Some(Target::Host(levee_dataplane::tables::mapped_key(ip))),
            Err(_) => s.parse::<Prefix>().ok().map(Target::Prefix),
        }
    }

    pub fn display(&self) -> String {
        match self {
            Target::Host(k) => mapped_to_ip(*k).to_string(),
            Target::Prefix(p) => p.to_string(),
        }
    }
}

/// An IPv4-mapped 16-byte key back to an address.
pub fn mapped_to_ip(k: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The detector: baselines, incidents, and the events they produce.
#[derive(Debug)]
pub struct Detector {
    config: DetectionConfig,
    node_id: String,
    baselines: HashMap<Target, Baseline>,
    incidents: BTreeMap<Target, Incident>,
    /// Consecutive windows over the limits, per target not yet in an incident.
    pending: HashMap<Target, (u32, u64)>,
    next_incident: u64,
    /// Windows judged since the detector started: a target first seen after
    /// them was quiet all that time, and that is what it learnt.
    windows_seen: u32,
    /// Resolved incidents, newest last (the last [`RESOLVED_KEPT`]; the store
    /// has them all).
    pub resolved: std::collections::VecDeque<Incident>,
}

/// Whether sessions explain a TCP class's packets. ACKs are sessions when
/// handshakes open them (at least one SYN per 20) and the target answers them
/// (it sends at least one packet per 4 ACKs, SYN-ACKs and RSTs not counted):
/// an attacker can add SYNs to an ACK flood, not the target's answers. SYNs
/// matched by as many such ACKs are handshakes completing (a flash crowd).
/// Where levee cannot see the answers (one direction only), the SYNs decide.
fn explained_by_sessions(class: TrafficClass, r: &TargetRates) -> bool {
    let syn = r.class_pps[TrafficClass::TcpSyn.index()];
    let ack = r.class_pps[TrafficClass::TcpAck.index()];
    let sessions = syn * 20.0 >= ack && r.answered_pps.is_none_or(|a| a * 4.0 >= ack);
    match class {
        TrafficClass::TcpSyn => ack >= syn && sessions,
        TrafficClass::TcpAck => sessions,
        _ => false,
    }
}

/// Windows of the warm-up averaged before a sudden rise is held back from it.
const WARMUP_SETTLE_WINDOWS: u32 = 10;

/// Resolved incidents kept in memory.
pub const RESOLVED_KEPT: usize = 256;

/// What a target's traffic looked like in peacetime.
#[derive(Clone, Copy, Debug)]
pub struct Peacetime {
    pub class_pps: [f64; TrafficClass::COUNT],
    /// Distinct sources per window.
    pub sources: f64,
}

impl Detector {
    pub fn new(config: DetectionConfig, node_id: String) -> Self {
        Detector {
            config,
            node_id,
            baselines: HashMap::new(),
            incidents: BTreeMap::new(),
            pending: HashMap::new(),
            next_incident: 1,
            windows_seen: 0,
            resolved: std::collections::VecDeque::new(),
        }
    }

    fn retire(&mut self, incident: Incident) {
        if self.resolved.len() >= RESOLVED_KEPT {
            self.resolved.pop_front();
        }
        self.resolved.push_back(incident);
    }

    /// Whether a protected host is at peace: no incident on it or a prefix of
    /// it, and not over its limits.
    pub fn calm(&self, host: u128) -> bool {
        let ip = mapped_to_ip(host);
        let covers = |t: &Target| match t {
            Target::Host(k) => *k == host,
            Target::Prefix(p) => p.contains(ip),
        };
        !self.incidents.keys().any(covers) && !self.pending.keys().any(covers)
    }

    /// Whether any target is in an incident or over its limits.
    pub fn all_calm(&self) -> bool {
        self.incidents.is_empty() && self.pending.is_empty()
    }

    /// The learnt peacetime rates of a target, once its warm-up is over.
    pub fn peacetime(&self, target: &Target) -> Option<Peacetime> {
        self.baselines
            .get(target)
            .filter(|b| b.windows >= self.config.warmup_windows)
            .map(|b| Peacetime {
                class_pps: b.class_pps,
                sources: b.sources,
            })
    }

    /// Attackers found since the last call, per open incident.
    pub fn take_fresh_attackers(&mut self) -> Vec<(String, Vec<String>)> {
        self.incidents
            .values_mut()
            .filter(|i| !i.fresh_attackers.is_empty())
            .map(|i| (i.id.clone(), std::mem::take(&mut i.fresh_attackers)))
            .collect()
    }

    fn allowlisted(&self, ip: IpAddr) -> bool {
        self.config.allowlist.iter().any(|p| p.contains(ip))
    }

    pub fn active(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// Carry on an incident that was open before a restart.
    pub fn restore(&mut self, e: &IncidentEvent, started_at_ns: u64, now_ns: u64) {
        let Some(target) = Target::parse(&e.target) else {
            return;
        };
        self.incidents
            .insert(target, Incident::restore(e, target, started_at_ns, now_ns));
    }

    /// Continue numbering incidents after `n` earlier ones.
    pub fn set_incident_count(&mut self, n: u64) {
        self.next_incident = self.next_incident.max(n + 1);
    }

    /// The number the next incident's id will end in.
    pub fn next_incident_number(&self) -> u64 {
        self.next_incident
    }

    /// An incident by id, open or resolved.
    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents
            .values()
            .chain(self.resolved.iter().rev())
            .find(|i| i.id == id)
    }

    /// Resolve an open incident by hand (an operator's call); `None` if no open
    /// incident has this id. Traffic that is still over the limits opens a new one.
    pub fn resolve(&mut self, id: &str, now_ns: u64) -> Option<IncidentEvent> {
        let target = *self.incidents.iter().find(|(_, i)| i.id == id)?.0;
        let mut incident = self.incidents.remove(&target)?;
        incident.resolved_at_ns = Some(now_ns);
        let event = incident.event("incident.resolved", now_ns);
        self.retire(incident);
        Some(event)
    }

    /// What has been learnt of each target, with the limits now in force.
    pub fn baselines(&self) -> Vec<BaselineView> {
        let c = &self.config;
        let mut out: Vec<BaselineView> = self
            .baselines
            .iter()
            .map(|(target, b)| {
                let learnt = b.windows >= c.warmup_windows;
                let floor = self.floor(target, learnt);
                let group = self.group_of(target);
                let classes = TrafficClass::all()
                    .filter(|cl| AttackType::of_class(*cl).is_some())
                    .map(|cl| {
                        let i = cl.index();
                        let dynamic = if learnt {
                            c.multiplier * b.class_pps[i]
                        } else {
                            0.0
                        };
                        let mut limit = floor.max(dynamic);
                        if let Some(l) = group.and_then(|g| g.class_pps.get(&i)) {
                            limit = limit.min(*l);
                        }
                        ClassBaseline {
                            class: cl.name(),
                            pps: b.class_pps[i],
                            limit_pps: limit,
                        }
                    })
                    .collect();
                BaselineView {
                    target: target.display(),
                    group: group.map(|g| g.name.clone()),
                    windows: b.windows,
                    learnt,
                    pps: b.pps,
                    bps: b.bps,
                    classes,
                }
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }

    /// Judge one window; returns the incident events it causes.
    #[cfg(test)]
    pub fn observe(&mut self, view: &WindowView) -> Vec<IncidentEvent> {
        self.observe_knowing(view, &|_, _| false)
    }

    /// Judge one window, told which sources each host knows from peacetime
    /// (`is_known(host, source)`): they are never named attackers by their
    /// weight alone.
    pub fn observe_knowing(
        &mut self,
        view: &WindowView,
        is_known: &dyn Fn(u128, u128) -> bool,
    ) -> Vec<IncidentEvent> {
        let now_ns = view.end_ns.max(view.start_ns + (view.seconds * 1e9) as u64);
        let mut events = Vec::new();
        let mut seen: Vec<(Target, TargetRates)> = Vec::new();
        // What each host sent back, where levee sees both directions in full.
        let answers: Option<HashMap<u128, f64>> =
            (view.outbound_packets > 0 && view.peers_overflow == 0).then(|| {
                let each = f64::from(levee_dataplane::pipeline::PEER_ONE_IN) / view.seconds;
                let mut m: HashMap<u128, f64> = HashMap::new();
                for (host, _) in &view.peers {
                    *m.entry(*host).or_default() += each;
                }
                m
            });
        let answered = |host: u128| {
            answers
                .as_ref()
                .map(|m| m.get(&host).copied().unwrap_or(0.0))
        };
        // Hosts.
        for (key, stats) in &view.destinations {
            let mut rates = TargetRates::from_stats(stats, view.seconds, 1);
            rates.answered_pps = answered(*key);
            seen.push((Target::Host(*key), rates));
        }
        // Prefixes as a whole: the sum of their hosts.
        for prefix in &self.config.protected {
            let mut sum = DestinationStats::default();
            let mut hosts = 0;
            for (key, stats) in &view.destinations {
                if prefix.contains(mapped_to_ip(*key)) {
                    sum.add(stats);
                    hosts += 1;
                }
            }
            if hosts > 0 {
                let mut rates = TargetRates::from_stats(&sum, view.seconds, hosts);
                rates.answered_pps = answers.as_ref().map(|m| {
                    m.iter()
                        .filter(|(k, _)| prefix.contains(mapped_to_ip(**k)))
                        .map(|(_, v)| v)
                        .sum()
                });
                seen.push((Target::Prefix(*prefix), rates));
            }
        }

        let mut over_now: BTreeMap<Target, Over> = BTreeMap::new();
        for (target, rates) in &seen {
            let verdict = self.judge(target, rates);
            match &verdict {
                Some(o) => {
                    over_now.insert(*target, o.clone());
                }
                None => {
                    if !self.incidents.contains_key(target) {
                        self.learn(target, rates);
                    }
                }
            }
        }
        // A prefix is an incident of its own only when no host of it is: carpet
        // bombing is many hosts each under their limit, together over the prefix's.
        let host_over: Vec<IpAddr> = over_now
            .keys()
            .chain(self.incidents.keys())
            .filter_map(|t| {
                if let Target::Host(k) = t {
                    Some(mapped_to_ip(*k))
                } else {
                    None
                }
            })
            .collect();
        over_now.retain(|t, _| match t {
            Target::Prefix(p) => !host_over.iter().any(|h| p.contains(*h)),
            Target::Host(_) => true,
        });

        let rates: HashMap<Target, &TargetRates> = seen.iter().map(|(t, r)| (*t, r)).collect();
        for (target, over) in &over_now {
            let r = rates[target];
            if let Some(incident) = self.incidents.get_mut(target) {
                incident.quiet_since_ns = None;
                if let Some(e) = incident.observe(now_ns, over, r, view, &self.config, is_known) {
                    events.push(e);
                }
                continue;
            }
            let (count, since) = self.pending.entry(*target).or_insert((0, view.start_ns));
            *count += 1;
            if *count >= self.config.confirm_windows {
                let since = *since;
                self.pending.remove(target);
                let id = format!(
                    "inc_{}_{:04}",
                    self.node_id.trim_start_matches("nd_"),
                    self.next_incident
                );
                self.next_incident += 1;
                let mut incident = Incident::new(id, self.node_id.clone(), *target, since, now_ns);
                incident.observe(now_ns, over, r, view, &self.config, is_known);
                events.push(incident.event("incident.created", now_ns));
                self.incidents.insert(*target, incident);
            }
        }
        self.pending.retain(|t, _| over_now.contains_key(t));

        // Every source the workers found over its limit toward an incident's
        // target is one of its attackers.
        for o in &view.over_limit {
            let target = if o.target.is_host() {
                Target::Host(levee_dataplane::tables::mapped_key(o.target.addr()))
            } else {
                Target::Prefix(o.target)
            };
            let ip = mapped_to_ip(o.src);
            if self.allowlisted(ip) {
                continue;
            }
            if let Some(incident) = self.incidents.get_mut(&target) {
                incident.add_attacker(ip.to_string(), u64::from(o.packets));
            }
        }

        // Incidents whose target stayed under the limits for the cool-down resolve.
        let cooldown_ns = (self.config.cooldown_s * 1e9) as u64;
        let quiet: Vec<Target> = self
            .incidents
            .keys()
            .filter(|t| !over_now.contains_key(t))
            .copied()
            .collect();
        for t in quiet {
            let Some(incident) = self.incidents.get_mut(&t) else {
                continue;
            };
            let since = *incident.quiet_since_ns.get_or_insert(view.start_ns);
            if now_ns.saturating_sub(since) >= cooldown_ns {
                if let Some(mut incident) = self.incidents.remove(&t) {
                    incident.resolved_at_ns = Some(now_ns);
                    events.push(incident.event("incident.resolved", now_ns));
                    self.retire(incident);
                }
            }
        }
        self.windows_seen = self.windows_seen.saturating_add(1);
        events
    }

    fn group_of(&self, target: &Target) -> Option<&HostGroup> {
        let ip = match target {
            Target::Host(k) => mapped_to_ip(*k),
            Target::Prefix(p) => p.addr(),
        };
        self.config
            .groups
            .iter()
            .find(|g| g.prefixes.iter().any(|p| p.contains(ip)))
    }

    /// Is the target over a static or dynamic limit, and with which vectors?
    fn judge(&self, target: &Target, r: &TargetRates) -> Option<Over> {
        let c = &self.config;
        let baseline = self.baselines.get(target);
        // A target never seen has been quiet for every window so far.
        let learnt = baseline.map_or(self.windows_seen, |b| b.windows) >= c.warmup_windows;
        let floor = self.floor(target, learnt);
        let group = self.group_of(target);
        let mut vectors: BTreeMap<AttackType, (f64, f64)> = BTreeMap::new();
        let mut ratio: f64 = 0.0;
        let mut limit_pps = f64::MAX;
        for class in TrafficClass::all() {
            let i = class.index();
            let Some(attack) = AttackType::of_class(class) else {
                continue;
            };
            let pps = r.class_pps[i];
            if pps <= 0.0 {
                continue;
            }
            let dynamic = if learnt {
                baseline.map_or(0.0, |b| c.multiplier * b.class_pps[i])
            } else {
                0.0
            };
            let mut limit = floor.max(dynamic);
            if let Some(static_limit) = group.and_then(|g| g.class_pps.get(&i)) {
                limit = limit.min(*static_limit);
            }
            if pps <= limit {
                continue;
            }
            if explained_by_sessions(class, r) {
                continue;
            }
            let e = vectors.entry(attack).or_default();
            e.0 += pps;
            e.1 += r.class_bps[i];
            ratio = ratio.max(pps / limit);
            limit_pps = limit_pps.min(limit);
        }
        // Whole-target judgement: an attack spread over classes, each under its
        // limit, is still over the target's learnt total. What sessions explain
        // is left out; the vectors are the classes that carry the rise.
        if vectors.is_empty() {
            let counted = |i: usize, cl: TrafficClass| {
                if AttackType::of_class(cl).is_some() && !explained_by_sessions(cl, r) {
                    r.class_pps[i]
                } else {
                    0.0
                }
            };
            let learnt_pps = |i: usize| {
                if learnt {
                    baseline.map_or(0.0, |b| b.class_pps[i])
                } else {
                    0.0
                }
            };
            let total: f64 = TrafficClass::all().map(|cl| counted(cl.index(), cl)).sum();
            let normal: f64 = TrafficClass::all()
                .filter(|cl| AttackType::of_class(*cl).is_some())
                .map(|cl| learnt_pps(cl.index()))
                .sum();
            let limit = floor.max(c.multiplier * normal);
            // Bits too: a flood of large packets can stay under every packet
            // limit. The bps floor scales with the packet floor in force (the
            // cold start included).
            let counted_bps: f64 = TrafficClass::all()
                .filter(|cl| counted(cl.index(), *cl) > 0.0)
                .map(|cl| r.class_bps[cl.index()])
                .sum();
            let normal_bps = if learnt {
                baseline.map_or(0.0, |b| b.bps)
            } else {
                0.0
            };
            let floor_bps = c.floor_bps * floor / c.floor_pps.max(1.0);
            let limit_bps = floor_bps.max(c.multiplier * normal_bps);
            let over = (total / limit).max(counted_bps / limit_bps);
            if over > 1.0 {
                let rises: Vec<(TrafficClass, f64)> = TrafficClass::all()
                    .map(|cl| {
                        (
                            cl,
                            (counted(cl.index(), cl) - learnt_pps(cl.index())).max(0.0),
                        )
                    })
                    .filter(|(_, rise)| *rise > 0.0)
                    .collect();
                let rise: f64 = rises.iter().map(|(_, x)| x).sum();
                for (cl, x) in rises {
                    if x >= c.multi_vector_share * rise {
                        if let Some(a) = AttackType::of_class(cl) {
                            let e = vectors.entry(a).or_default();
                            e.0 += r.class_pps[cl.index()];
                            e.1 += r.class_bps[cl.index()];
                        }
                    }
                }
                ratio = ratio.max(over);
                limit_pps = limit_pps.min(limit);
            }
        }
        // Whole-target static limits: the dominant attack class names the vector.
        if let Some(g) = group {
            let over_pps = g.pps.map(|l| r.pps / l).filter(|x| *x > 1.0);
            let over_bps = g.bps.map(|l| r.bps / l).filter(|x| *x > 1.0);
            if let Some(x) = over_pps.into_iter().chain(over_bps).reduce(f64::max) {
                if vectors.is_empty() {
                    let dominant = TrafficClass::all()
                        .filter(|cl| AttackType::of_class(*cl).is_some())
                        .max_by(|a, b| r.class_pps[a.index()].total_cmp(&r.class_pps[b.index()]));
                    if let Some(cl) = dominant {
                        if let Some(a) = AttackType::of_class(cl) {
                            vectors.insert(a, (r.class_pps[cl.index()], r.class_bps[cl.index()]));
                        }
                    }
                }
                ratio = ratio.max(x);
                limit_pps = limit_pps.min(g.pps.unwrap_or(f64::MAX));
            }
        }
        if vectors.is_empty() {
            return None;
        }
        let mut v: Vec<(AttackType, f64, f64)> =
            vectors.into_iter().map(|(a, (p, b))| (a, p, b)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(Over {
            vectors: v,
            ratio,
            limit_pps: if limit_pps == f64::MAX {
                floor
            } else {
                limit_pps
            },
        })
    }

    /// The rate below which no class of a target is an attack: the floor, or
    /// until its baseline is learnt, the cold-start floor. Before levee knows
    /// what a target's normal is, a busy service is not taken for a flood.
    fn floor(&self, target: &Target, learnt: bool) -> f64 {
        let c = &self.config;
        let floor = match target {
            Target::Host(_) => c.floor_pps,
            Target::Prefix(_) => c.prefix_floor_pps,
        };
        if learnt {
            floor
        } else {
            floor.max(c.cold_start_floor_pps)
        }
    }

    /// What has been learnt, for the store: targets with at least one window.
    pub fn saved_baselines(&self) -> Vec<SavedBaseline> {
        let mut out: Vec<SavedBaseline> = self
            .baselines
            .iter()
            .filter(|(_, b)| b.windows > 0)
            .map(|(target, b)| SavedBaseline {
                target: target.display(),
                windows: b.windows,
                pps: b.pps,
                bps: b.bps,
                sources: b.sources,
                class_pps: TrafficClass::all()
                    .filter(|c| b.class_pps[c.index()] > 0.0)
                    .map(|c| (c.name().to_owned(), b.class_pps[c.index()]))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }

    /// Take back baselines learnt before a restart (targets outside the
    /// protected networks, and classes this build does not know, are left
    /// out); how many were taken.
    pub fn restore_baselines(&mut self, saved: &[SavedBaseline]) -> usize {
        let mut restored = 0;
        for b in saved {
            let Some(target) = Target::parse(&b.target) else {
                continue;
            };
            let protected = match target {
                Target::Host(k) => self
                    .config
                    .protected
                    .iter()
                    .any(|p| p.contains(mapped_to_ip(k))),
                Target::Prefix(p) => self.config.protected.contains(&p),
            };
            let finite = [b.pps, b.bps, b.sources]
                .into_iter()
                .chain(b.class_pps.values().copied())
                .all(|x| x.is_finite() && x >= 0.0);
            if !protected || !finite {
                continue;
            }
            let mut baseline = Baseline {
                pps: b.pps,
                bps: b.bps,
                sources: b.sources,
                windows: b.windows,
                ..Baseline::default()
            };
            for class in TrafficClass::all() {
                if let Some(pps) = b.class_pps.get(class.name()) {
                    baseline.class_pps[class.index()] = *pps;
                }
            }
            self.baselines.insert(target, baseline);
            restored += 1;
        }
        restored
    }

    /// Learn from a window judged normal, clipped to the current limits (during
    /// the warm-up, to the cold-start floor: what cannot alarm yet cannot
    /// teach more than that either).
    fn learn(&mut self, target: &Target, r: &TargetRates) {
        let c = &self.config;
        let alpha =
            1.0 - 0.5f64.powf((c.window_ms as f64 / 1000.0) / c.baseline_half_life_s.max(0.001));
        let quiet_until_now = self.windows_seen;
        let b = self.baselines.entry(*target).or_insert_with(|| Baseline {
            windows: quiet_until_now,
            ..Baseline::default()
        });
        // Early windows learn fast (plain average) so the baseline starts sensible.
        let a = if b.windows < c.warmup_windows {
            1.0 / f64::from(b.windows + 1)
        } else {
            alpha
        };
        let warming = b.windows < c.warmup_windows;
        let settled = b.windows >= c.warmup_windows.min(WARMUP_SETTLE_WINDOWS);
        let mut rose = false;
        for i in 0..TrafficClass::COUNT {
            // In the warm-up, once its first second is averaged, a class that
            // jumps over the floor and the multiplier times what was learnt is
            // not learnt: an attack that starts then is judged when the warm-up
            // ends, instead of becoming the target's normal.
            if warming && settled && r.class_pps[i] > c.floor_pps.max(c.multiplier * b.class_pps[i])
            {
                rose = true;
                continue;
            }
            let limit = if warming {
                c.floor_pps.max(c.cold_start_floor_pps)
            } else {
                (c.multiplier * b.class_pps[i]).max(c.floor_pps)
            };
            let x = r.class_pps[i].min(limit);
            b.class_pps[i] += a * (x - b.class_pps[i]);
        }
        if !rose {
            b.pps += a * (r.pps - b.pps);
            b.bps += a * (r.bps - b.bps);
            b.sources += a * (r.distinct_sources - b.sources);
        }
        b.windows = b.windows.saturating_add(1);
    }
}
