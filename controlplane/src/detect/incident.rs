//! One incident: its target, vectors, peak, attackers, and the events it emits.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use levee_dataplane::wire::head_addresses;

use levee_dataplane::wire::TrafficClass;
use serde::{Deserialize, Serialize};

use super::{mapped_to_ip, AttackType, DetectionConfig, Over, Target, TargetRates, WindowView};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// From how far the peak is over the limit.
    pub fn of_ratio(ratio: f64) -> Severity {
        match ratio {
            r if r < 2.0 => Severity::Low,
            r if r < 5.0 => Severity::Medium,
            r if r < 20.0 => Severity::High,
            _ => Severity::Critical,
        }
    }
}

/// An attack in progress or over.
#[derive(Clone, Debug)]
pub struct Incident {
    pub id: String,
    pub node_id: String,
    pub target: Target,
    pub started_at_ns: u64,
    pub created_at_ns: u64,
    pub resolved_at_ns: Option<u64>,
    pub quiet_since_ns: Option<u64>,
    pub attack_type: AttackType,
    /// Vectors seen so far, with their peak pps.
    pub vectors: BTreeMap<AttackType, f64>,
    pub peak_pps: f64,
    pub peak_bps: f64,
    pub peak_ratio: f64,
    pub limit_pps: f64,
    /// Attacker address -> packets attributed (at most [`MAX_ATTACKERS`]).
    pub attackers: BTreeMap<String, u64>,
    /// Attackers added since the mitigation last took them.
    pub fresh_attackers: Vec<String>,
    /// Attackers listed in events (the rest are counted in `attackers_total`).
    pub report_cap: usize,
    pub spoofing_likely: bool,
    pub confidence: f64,
    pub hosts_hit: usize,
    pub windows_over: u64,
    /// What the last created/updated event said, to judge "material" change.
    reported: Option<(f64, Vec<AttackType>, usize, u64, bool)>,
    /// Sources of the target's sampled packets, to see whether they come back.
    sampled_sources: HashSet<IpAddr>,
    samples: u64,
    repeats: u64,
    /// The source ports of the target's sampled plain-UDP packets.
    udp_source_ports: SourcePorts,
    /// A UDP source port judged a reflected service by the traffic's shape.
    pub reflector_port: Option<u16>,
}

/// Sampled UDP packets toward a target, by source port: many sources sending
/// large packets from one port is a reflection (amplification) attack, from a
/// service levee's reflector table may not list (STUN, IPsec NAT-T...).
#[derive(Clone, Debug, Default)]
struct SourcePorts {
    ports: BTreeMap<u16, PortTally>,
    packets: u64,
}

#[derive(Clone, Debug, Default)]
struct PortTally {
    packets: u64,
    bytes: u64,
    sources: HashSet<u128>,
}

/// Ports and sources per port a [`SourcePorts`] remembers.
const MAX_TALLIED_PORTS: usize = 1024;
const MAX_TALLIED_SOURCES: usize = 64;
/// Sampled packets needed before the shape is judged.
const SHAPE_MIN_PACKETS: u64 = 32;
/// One source port carrying at least this share of the sampled UDP...
const REFLECTED_PORT_SHARE: f64 = 0.8;
/// ...from at least this many sources...
const REFLECTED_MIN_SOURCES: usize = 8;
/// ...with packets this large on average (IP length): answers, not requests.
const REFLECTED_MIN_LENGTH: u64 = 200;

impl SourcePorts {
    fn add(&mut self, src: u128, src_port: u16, ip_len: u16) {
        self.packets += 1;
        if !self.ports.contains_key(&src_port) && self.ports.len() >= MAX_TALLIED_PORTS {
            return;
        }
        let t = self.ports.entry(src_port).or_default();
        t.packets += 1;
        t.bytes += u64::from(ip_len);
        if t.sources.len() < MAX_TALLIED_SOURCES {
            t.sources.insert(src);
        }
    }

    /// The one source port that carries the traffic, if it looks reflected.
    fn reflected(&self) -> Option<u16> {
        if self.packets < SHAPE_MIN_PACKETS {
            return None;
        }
        let (port, t) = self.ports.iter().max_by_key(|(_, t)| t.packets)?;
        let shaped = *port != 0
            && t.packets as f64 >= REFLECTED_PORT_SHARE * self.packets as f64
            && t.sources.len() >= REFLECTED_MIN_SOURCES
            && t.bytes >= REFLECTED_MIN_LENGTH * t.packets;
        shaped.then_some(*port)
    }
}

/// Sampled sources remembered per incident.
const MAX_SAMPLED_SOURCES: usize = 65_536;
/// Attackers one incident remembers (the blocklist's order of size).
pub const MAX_ATTACKERS: usize = 65_536;

impl Incident {
    /// An open incident as it was recorded before a restart.
    pub fn restore(e: &IncidentEvent, target: Target, started_at_ns: u64, now_ns: u64) -> Incident {
        let mut i = Incident::new(
            e.incident_id.clone(),
            e.node_id.clone(),
            target,
            started_at_ns,
            now_ns,
        );
        i.attack_type = e.attack_type;
        i.vectors = e
            .vectors
            .iter()
            .map(|v| (v.attack_type, v.peak_pps as f64))
            .collect();
        i.reflector_port = e
            .vectors
            .iter()
            .filter_map(|v| v.service.as_deref()?.strip_prefix("udp/")?.parse().ok())
            .next();
        i.peak_pps = e.peak_pps as f64;
        i.peak_bps = e.peak_bps as f64;
        i.attackers = e.attacker_ips.iter().map(|a| (a.clone(), 0)).collect();
        i.report_cap = e.attacker_ips.len().max(i.report_cap);
        i.spoofing_likely = e.spoofing_likely;
        i.confidence = e.confidence;
        i.hosts_hit = e.hosts_hit;
        i.peak_ratio = match e.severity {
            Severity::Low => 1.0,
            Severity::Medium => 2.0,
            Severity::High => 5.0,
            Severity::Critical => 20.0,
        };
        i.reported = Some((
            i.peak_pps,
            i.vectors.keys().copied().collect(),
            i.attackers.len(),
            now_ns,
            i.spoofing_likely,
        ));
        i
    }
}

/// An event in the DESIGN.md payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub event: String,
    pub incident_id: String,
    pub node_id: String,
    pub attack_type: AttackType,
    pub severity: Severity,
    pub target: String,
    pub peak_pps: u64,
    pub peak_bps: u64,
    pub duration_seconds: u64,
    /// The heaviest attackers, at most `max_attackers` of them.
    pub attacker_ips: Vec<String>,
    /// Every attacker found (blocked, unless allowlisted).
    #[serde(default)]
    pub attackers_total: usize,
    pub started_at: String,
    pub resolved_at: Option<String>,
    pub at: String,
    pub confidence: f64,
    pub spoofing_likely: bool,
    pub vectors: Vec<VectorInfo>,
    pub carpet_bombing: bool,
    pub hosts_hit: usize,
    /// Detection latency in the capture's time: from the first window over the
    /// limits to this event.
    pub detection_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorInfo {
    pub attack_type: AttackType,
    pub peak_pps: u64,
    /// The reflected service found by the traffic's shape (`udp/3478`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

use crate::clock::rfc3339_s as rfc3339;

impl Incident {
    pub fn new(
        id: String,
        node_id: String,
        target: Target,
        started_at_ns: u64,
        now_ns: u64,
    ) -> Self {
        Incident {
            id,
            node_id,
            target,
            started_at_ns,
            created_at_ns: now_ns,
            resolved_at_ns: None,
            quiet_since_ns: None,
            attack_type: AttackType::UdpFlood,
            vectors: BTreeMap::new(),
            peak_pps: 0.0,
            peak_bps: 0.0,
            peak_ratio: 0.0,
            limit_pps: 0.0,
            attackers: BTreeMap::new(),
            fresh_attackers: Vec::new(),
            report_cap: 20,
            spoofing_likely: false,
            confidence: 0.0,
            hosts_hit: 0,
            windows_over: 0,
            reported: None,
            sampled_sources: HashSet::new(),
            samples: 0,
            repeats: 0,
            udp_source_ports: SourcePorts::default(),
            reflector_port: None,
        }
    }

    /// Take in one more window over the limits; an `incident.updated` event when
    /// something changed materially (peak up 50%, a new vector, attackers up 50%),
    /// at most once a second.
    pub fn observe(
        &mut self,
        now_ns: u64,
        over: &Over,
        r: &TargetRates,
        view: &WindowView,
        c: &DetectionConfig,
        is_known: &dyn Fn(u128, u128) -> bool,
    ) -> Option<IncidentEvent> {
        self.windows_over += 1;
        self.report_cap = c.max_attackers;
        let pps: f64 = over.vectors.iter().map(|v| v.1).sum();
        let bps: f64 = over.vectors.iter().map(|v| v.2).sum();
        if pps > self.peak_pps {
            self.peak_pps = pps;
            self.limit_pps = over.limit_pps;
        }
        self.peak_bps = self.peak_bps.max(bps);
        self.peak_ratio = self.peak_ratio.max(over.ratio);
        self.hosts_hit = self.hosts_hit.max(r.hosts);
        for (a, p, _) in &over.vectors {
            let e = self.vectors.entry(*a).or_default();
            *e = e.max(*p);
        }
        // Plain UDP that many sources send from one port in large packets is
        // reflected, whatever the port: named by its shape, not by a table.
        if self.vectors.contains_key(&AttackType::UdpFlood) {
            for s in view.shapes.iter().filter(|s| s.class == TrafficClass::Udp) {
                let ours = match self.target {
                    Target::Host(k) => s.dst == k,
                    Target::Prefix(p) => p.contains(mapped_to_ip(s.dst)),
                };
                if ours {
                    self.udp_source_ports.add(s.src, s.src_port, s.ip_len);
                }
            }
            if self.reflector_port.is_none() {
                self.reflector_port = self.udp_source_ports.reflected();
            }
        }
        if self.reflector_port.is_some() {
            if let Some(p) = self.vectors.remove(&AttackType::UdpFlood) {
                let e = self
                    .vectors
                    .entry(AttackType::UdpAmplification)
                    .or_default();
                *e = e.max(p);
            }
        }
        // Vectors that carry a real share of the attack at its peak.
        let strong: Vec<AttackType> = {
            let total: f64 = self.vectors.values().sum();
            let mut v: Vec<(AttackType, f64)> = self
                .vectors
                .iter()
                .filter(|(_, p)| **p >= c.multi_vector_share * total)
                .map(|(a, p)| (*a, *p))
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1));
            v.into_iter().map(|(a, _)| a).collect()
        };
        self.attack_type = if strong.len() > 1 {
            AttackType::MultiVector
        } else {
            strong.first().copied().unwrap_or(self.attack_type)
        };

        // Attackers: heavy sources of the vector classes (a spoofed flood has
        // none), unless the target knows them: known sources are judged by the
        // workers' per-source accounting against their own, higher limit. The
        // rest of the attackers come from that accounting (`Detector::observe`).
        for class in TrafficClass::all() {
            let Some(a) = AttackType::of_class(class) else {
                continue;
            };
            if !over.vectors.iter().any(|v| v.0 == a) {
                continue;
            }
            let class_packets = view.inbound.class_packets[class.index()] as f64;
            let min = (c.attacker_share * class_packets).max(c.attacker_min_pps * view.seconds);
            for h in &view.top_sources[class.index()] {
                // What the source surely sent beyond the one admission that let it
                // in: a spoofed source, seen once, has nothing left.
                let guaranteed = h.count.saturating_sub(h.error).saturating_sub(
                    view.admission_quantum
                        .get(class.index())
                        .copied()
                        .unwrap_or(0),
                ) as f64;
                let ip = mapped_to_ip(h.key);
                let known = match self.target {
                    Target::Host(t) => is_known(t, h.key),
                    Target::Prefix(_) => false,
                };
                if guaranteed >= min && !known && !c.allowlist.iter().any(|p| p.contains(ip)) {
                    self.add_attacker(ip.to_string(), h.count);
                }
            }
        }
        // Do the target's sampled sources come back? Spoofed sources, drawn from
        // the whole address space, almost never do; a botnet's do.
        for s in &view.samples {
            if let Some((src, dst)) = head_addresses(&s.data[..usize::from(s.captured_len)]) {
                let ours = match self.target {
                    Target::Host(k) => mapped_to_ip(k) == dst,
                    Target::Prefix(p) => p.contains(dst),
                };
                if ours {
                    self.samples += 1;
                    if self.sampled_sources.contains(&src) {
                        self.repeats += 1;
                    } else if self.sampled_sources.len() < MAX_SAMPLED_SOURCES {
                        self.sampled_sources.insert(src);
                    }
                }
            }
        }
        // Spoofing: no heavy source, many distinct sources with widely spread TTLs,
        // and (once enough packets were sampled) sources that do not come back. The
        // sources of a reflection attack are real reflectors.
        let amplification = self.vectors.keys().all(|a| a.is_amplification());
        let sources_return = self.samples >= 50 && self.repeats * 20 >= self.samples;
        self.spoofing_likely = !amplification
            && self.attackers.is_empty()
            && r.distinct_sources >= 200.0
            && r.ttl_spread >= 4
            && !sources_return;
        self.confidence =
            (0.5 + 0.1 * over.ratio.max(1.0).log2() + 0.05 * (self.windows_over as f64).min(6.0))
                .min(0.99);

        let state = (
            self.peak_pps,
            strong.clone(),
            self.attackers.len(),
            now_ns,
            self.spoofing_likely,
        );
        let material = match &self.reported {
            None => {
                self.reported = Some(state);
                return None;
            }
            Some((peak, vectors, attackers, at, spoofed)) => {
                now_ns.saturating_sub(*at) >= 1_000_000_000
                    && (self.peak_pps >= 1.5 * peak
                        || strong != *vectors
                        || self.attackers.len() as f64 >= 1.5 * (*attackers as f64).max(1.0)
                        // The spoofing judgement decides the mitigation.
                        || self.spoofing_likely != *spoofed)
            }
        };
        if material {
            self.reported = Some(state);
            Some(self.event("incident.updated", now_ns))
        } else {
            None
        }
    }

    /// Count packets of an attacker; a new one (room permitting) is fresh.
    pub fn add_attacker(&mut self, ip: String, packets: u64) {
        let room = self.attackers.len() < MAX_ATTACKERS;
        match self.attackers.get_mut(&ip) {
            Some(n) => *n += packets,
            None if room => {
                self.fresh_attackers.push(ip.clone());
                self.attackers.insert(ip, packets);
            }
            None => {}
        }
    }

    /// The payload of an event about this incident, emitted at `now_ns`.
    pub fn event(&self, kind: &'static str, now_ns: u64) -> IncidentEvent {
        let end = self.resolved_at_ns.unwrap_or(now_ns);
        let mut attackers: Vec<(&String, &u64)> = self.attackers.iter().collect();
        attackers.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut vectors: Vec<VectorInfo> = self
            .vectors
            .iter()
            .map(|(a, p)| VectorInfo {
                attack_type: *a,
                peak_pps: *p as u64,
                service: match (a, self.reflector_port) {
                    (AttackType::UdpAmplification, Some(port)) => Some(format!("udp/{port}")),
                    _ => None,
                },
            })
            .collect();
        vectors.sort_by_key(|v| std::cmp::Reverse(v.peak_pps));
        IncidentEvent {
            event: kind.to_owned(),
            incident_id: self.id.clone(),
            node_id: self.node_id.clone(),
            attack_type: self.attack_type,
            severity: Severity::of_ratio(self.peak_ratio),
            target: self.target.display(),
            peak_pps: self.peak_pps as u64,
            peak_bps: self.peak_bps as u64,
            duration_seconds: end.saturating_sub(self.started_at_ns) / 1_000_000_000,
            attackers_total: attackers.len(),
            attacker_ips: attackers
                .into_iter()
                .take(self.report_cap)
                .map(|(ip, _)| ip.clone())
                .collect(),
            started_at: rfc3339(self.started_at_ns),
            resolved_at: self.resolved_at_ns.map(rfc3339),
            at: crate::clock::rfc3339_ms(now_ns),
            confidence: (self.confidence * 100.0).round() / 100.0,
            spoofing_likely: self.spoofing_likely,
            vectors,
            carpet_bombing: matches!(self.target, Target::Prefix(_)),
            hosts_hit: self.hosts_hit,
            detection_ms: self.created_at_ns.saturating_sub(self.started_at_ns) / 1_000_000,
        }
    }
}
