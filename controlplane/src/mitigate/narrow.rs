//! Narrow signatures, measured before they apply: from the sampled packets of an
//! attack, the narrowest signature they support (protocol, ports, IP length
//! and TTL ranges, TCP flags, fragments); and its collateral, the share of the target's
//! sampled peacetime packets it would drop (those of known sources pass).

use std::collections::{HashMap, VecDeque};

#[cfg(test)]
use levee_dataplane::wire::TrafficClass;

/// What a signature can match of a packet (sampled by the workers).
pub use levee_dataplane::stats::PacketShape as Shape;

/// The fields of a narrow signature (`None`: any value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrow {
    pub protocol: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub ip_length: Option<(u16, u16)>,
    /// TTL (hop limit) range, when the attack's TTLs cluster.
    pub ttl: Option<(u8, u8)>,
    /// `FLAGS/MASK` notation of the exact flags seen (TCP).
    pub tcp_flags: Option<(u8, u8)>,
    pub non_first_fragments: bool,
}

/// A field value held by at least this share of the attack's samples is kept.
const DOMINANT: f64 = 0.95;
/// A TTL range wider than this says nothing (spoofed floods draw TTLs at random).
const MAX_TTL_SPAN: u16 = 128;
/// Samples needed before a signature is derived.
pub const MIN_SAMPLES: usize = 32;

impl Narrow {
    /// The narrowest signature that still matches (nearly) every sample; `None`
    /// with too few samples or no common protocol.
    pub fn derive(samples: &[Shape]) -> Option<Narrow> {
        if samples.len() < MIN_SAMPLES {
            return None;
        }
        let n = samples.len() as f64;
        let dominant = |f: &dyn Fn(&Shape) -> u32| -> Option<u32> {
            let mut counts: HashMap<u32, usize> = HashMap::new();
            for s in samples {
                *counts.entry(f(s)).or_default() += 1;
            }
            counts
                .into_iter()
                .max_by_key(|(v, c)| (*c, std::cmp::Reverse(*v)))
                .filter(|(_, c)| *c as f64 >= DOMINANT * n)
                .map(|(v, _)| v)
        };
        let protocol = dominant(&|s| u32::from(s.protocol))? as u8;
        let of_protocol: Vec<&Shape> = samples.iter().filter(|s| s.protocol == protocol).collect();
        let non_first = of_protocol.iter().all(|s| s.non_first_fragment);
        let ports = matches!(protocol, 6 | 17) && !non_first;
        let port = |f: &dyn Fn(&Shape) -> u32| {
            if ports {
                dominant(f).map(|p| p as u16)
            } else {
                None
            }
        };
        // Lengths: the range of the middle 99% (an outlier does not widen it).
        let mut lens: Vec<u16> = of_protocol.iter().map(|s| s.ip_len).collect();
        lens.sort_unstable();
        let cut = lens.len() / 200;
        let ip_length = Some((lens[cut], lens[lens.len() - 1 - cut]));
        // TTLs the same way, kept only where they cluster.
        let mut ttls: Vec<u8> = of_protocol.iter().map(|s| s.ttl).collect();
        ttls.sort_unstable();
        let (lo, hi) = (ttls[cut], ttls[ttls.len() - 1 - cut]);
        let ttl = (u16::from(hi) - u16::from(lo) < MAX_TTL_SPAN).then_some((lo, hi));
        let tcp_flags = (protocol == 6 && !non_first)
            .then(|| dominant(&|s| u32::from(s.tcp_flags)))
            .flatten()
            // Exact flags: every bit is in the mask.
            .map(|f| (0xff, f as u8));
        Some(Narrow {
            protocol,
            src_port: port(&|s| u32::from(s.src_port)),
            dst_port: port(&|s| u32::from(s.dst_port)),
            ip_length,
            ttl,
            tcp_flags,
            non_first_fragments: non_first,
        })
    }

    pub fn matches(&self, s: &Shape) -> bool {
        s.protocol == self.protocol
            && self.src_port.is_none_or(|p| p == s.src_port)
            && self.dst_port.is_none_or(|p| p == s.dst_port)
            && self
                .ip_length
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&s.ip_len))
            && self.ttl.is_none_or(|(lo, hi)| (lo..=hi).contains(&s.ttl))
            && self
                .tcp_flags
                .is_none_or(|(mask, value)| s.tcp_flags & mask == value)
            && (!self.non_first_fragments || s.non_first_fragment)
    }

    /// Share of the samples it matches.
    pub fn coverage(&self, samples: &[Shape]) -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        samples.iter().filter(|s| self.matches(s)).count() as f64 / samples.len() as f64
    }
}

/// Sampled inbound packets of each protected host in peacetime, bounded. As
/// with known sources, a sample counts only once its host stayed calm for
/// [`super::known::COMMIT_NS`] after it: the first moments of an attack, before
/// it is confirmed, are not peacetime.
#[derive(Debug, Default)]
pub struct Peacetime {
    hosts: HashMap<u128, VecDeque<Shape>>,
    /// Samples waiting for their commit: (seen at, shape), in time order.
    pending: VecDeque<(u64, Shape)>,
}

/// Peacetime samples kept per host.
pub const PEACETIME_SAMPLES: usize = 2048;
/// Hosts whose peacetime samples are kept.
pub const PEACETIME_HOSTS: usize = 4096;
/// Samples waiting for their commit, at most.
const PENDING: usize = 1 << 16;

/// Fewer peacetime samples than this and the collateral is unknown.
pub const MIN_PEACETIME_SAMPLES: usize = 100;

impl Peacetime {
    /// Take in a window's samples; commit those old enough whose host stayed
    /// calm (`calm(host)`), forget those whose host did not.
    pub fn observe(&mut self, now_ns: u64, shapes: &[Shape], calm: impl Fn(u128) -> bool) {
        while let Some((seen, shape)) = self.pending.front().copied() {
            if now_ns.saturating_sub(seen) < super::known::COMMIT_NS {
                break;
            }
            self.pending.pop_front();
            if calm(shape.dst) {
                self.learn(shape);
            }
        }
        // A host that is no longer calm loses what it sent just before.
        self.pending.retain(|(_, s)| calm(s.dst));
        for s in shapes {
            if self.pending.len() < PENDING && calm(s.dst) {
                self.pending.push_back((now_ns, *s));
            }
        }
    }

    /// Samples held, committed and waiting (for the metrics).
    pub fn samples(&self) -> usize {
        self.hosts.values().map(VecDeque::len).sum::<usize>() + self.pending.len()
    }

    fn learn(&mut self, s: Shape) {
        if !self.hosts.contains_key(&s.dst) && self.hosts.len() >= PEACETIME_HOSTS {
            return;
        }
        let ring = self.hosts.entry(s.dst).or_default();
        if ring.len() == PEACETIME_SAMPLES {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// The share of the peacetime packets toward the hosts `covers` accepts
    /// that `rule` would drop (`passes(src)`: the source passes, as known ones
    /// do); `None` when too little was seen to say.
    pub fn collateral(
        &self,
        covers: impl Fn(u128) -> bool,
        rule: &Narrow,
        passes: impl Fn(u128, u128) -> bool,
    ) -> Option<f64> {
        let mut total = 0usize;
        let mut hit = 0usize;
        for (host, ring) in &self.hosts {
            if !covers(*host) {
                continue;
            }
            total += ring.len();
            hit += ring
                .iter()
                .filter(|s| rule.matches(s) && !passes(*host, s.src))
                .count();
        }
        (total >= MIN_PEACETIME_SAMPLES).then(|| hit as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: u128, dport: u16, len: u16) -> Shape {
        udp_ttl(src, dport, len, 50 + (src % 8) as u8)
    }

    fn udp_ttl(src: u128, dport: u16, len: u16, ttl: u8) -> Shape {
        Shape {
            src,
            dst: 1,
            class: TrafficClass::Udp,
            protocol: 17,
            src_port: 40000 + (src % 1000) as u16,
            dst_port: dport,
            ip_len: len,
            ttl,
            tcp_flags: 0,
            non_first_fragment: false,
        }
    }

    #[test]
    fn the_signature_keeps_what_the_attack_shares_and_no_more() {
        let attack: Vec<Shape> = (0..200)
            .map(|i| udp(i, 27015, 100 + (i % 50) as u16))
            .collect();
        let n = Narrow::derive(&attack).expect("enough samples");
        assert_eq!(n.protocol, 17);
        assert_eq!(n.dst_port, Some(27015));
        assert_eq!(n.src_port, None, "source ports vary");
        assert_eq!(n.ip_length, Some((100, 149)));
        assert_eq!(n.ttl, Some((50, 57)), "the bots' TTLs cluster");
        assert!(n.coverage(&attack) > 0.99);
        assert!(Narrow::derive(&attack[..10]).is_none(), "too few samples");
        // A client whose TTL is outside the attack's passes a rule it would
        // otherwise match.
        assert!(!n.matches(&udp_ttl(7, 27015, 120, 120)));
        // Spoofed TTLs, drawn from the whole range, say nothing.
        let spoofed: Vec<Shape> = (0..200)
            .map(|i| udp_ttl(i, 27015, 100, (i * 37 % 256) as u8))
            .collect();
        assert_eq!(Narrow::derive(&spoofed).expect("enough").ttl, None);
    }

    #[test]
    fn collateral_counts_the_peacetime_packets_dropped_and_spares_known_sources() {
        let mut p = Peacetime::default();
        // Peacetime: DNS queries (length 70) from 1..=900, and 100 packets of
        // length 120 to port 27015 from source 5000, a known peer.
        let mut shapes: Vec<Shape> = (0..900).map(|i| udp(i, 53, 70)).collect();
        shapes.extend((0..100).map(|_| udp(5000, 27015, 120)));
        p.observe(0, &shapes, |_| true);
        assert_eq!(
            p.collateral(|h| h == 1, &Narrow::default(), |_, _| false),
            None
        );
        p.observe(super::super::known::COMMIT_NS, &[], |_| true);
        let rule = Narrow {
            protocol: 17,
            dst_port: Some(27015),
            ip_length: Some((100, 149)),
            ..Narrow::default()
        };
        let none_known = p.collateral(|h| h == 1, &rule, |_, _| false);
        assert_eq!(none_known, Some(0.1));
        let known = p.collateral(|h| h == 1, &rule, |_, s| s == 5000);
        assert_eq!(known, Some(0.0));
        assert_eq!(p.collateral(|h| h == 2, &rule, |_, _| false), None);
    }

    #[test]
    fn samples_just_before_an_attack_are_not_peacetime() {
        let mut p = Peacetime::default();
        let shapes: Vec<Shape> = (0..200).map(|i| udp(i, 53, 70)).collect();
        p.observe(0, &shapes, |_| true);
        // The host goes over its limits before the samples are committed.
        p.observe(1_000_000_000, &[], |_| false);
        p.observe(5_000_000_000, &[], |_| true);
        assert_eq!(
            p.collateral(|h| h == 1, &Narrow::default(), |_, _| false),
            None
        );
    }
}
