//! Signature rules (FlowSpec-like) for floods whose sources are spoofed, compiled
//! into a bit-vector classifier: for each field, the values are cut into
//! elementary intervals, each holding the set of rules it satisfies; a packet's
//! matching rules are the AND of one set per field, and the first set bit is the
//! highest-priority match. The cost is a table load per field some rule names
//! (a count or a binary search for destinations) and word-wide ANDs, whatever
//! the number of rules, instead of a scan of every rule.

use std::collections::HashMap;

use super::prefix::{Addr, Prefix};
use super::TableError;
use crate::wire::{ip_protocol, Fragment, L3Family, PacketMeta};

/// Most rules one set holds (the width of the rule bit vectors).
pub const MAX_SIGNATURES: usize = 512;
const WORDS: usize = MAX_SIGNATURES / 64;

/// Which fragments a rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FragmentMatch {
    #[default]
    Any,
    NotFragmented,
    First,
    NonFirst,
    /// First or non-first.
    AnyFragment,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAction {
    Drop,
    /// Let through at most this many packets per second (per worker share).
    RateLimit {
        pps: u32,
    },
    /// SYN authentication: TCP SYNs from sources not yet verified are answered
    /// with a challenge; verified sources pass.
    Authenticate,
    /// Out-of-state TCP: segments of no known connection are dropped.
    RequireState,
}

/// One rule. Unset fields match everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureRule {
    pub id: u32,
    pub destination: Option<Prefix>,
    pub protocol: Option<u8>,
    pub src_ports: Option<(u16, u16)>,
    pub dst_ports: Option<(u16, u16)>,
    /// (mask, value): matches when `flags & mask == value`. TCP only.
    pub tcp_flags: Option<(u8, u8)>,
    /// Inclusive range of the IP length (IPv4 total length, IPv6 40 + payload).
    pub ip_length: Option<(u16, u16)>,
    /// Inclusive range of the TTL (IPv4) or hop limit (IPv6).
    pub ttl: Option<(u8, u8)>,
    pub fragment: FragmentMatch,
    pub action: SignatureAction,
}

impl SignatureRule {
    /// A rule that matches everything and drops it (fill in the fields you need).
    pub fn drop_all(id: u32) -> SignatureRule {
        SignatureRule {
            id,
            destination: None,
            protocol: None,
            src_ports: None,
            dst_ports: None,
            tcp_flags: None,
            ip_length: None,
            ttl: None,
            fragment: FragmentMatch::Any,
            action: SignatureAction::Drop,
        }
    }

    /// Refuse rules that cannot mean what they say.
    pub fn validate(&self) -> Result<(), TableError> {
        let bad = |m: &str| {
            Err(TableError::BadSignature {
                id: self.id,
                reason: m.to_owned(),
            })
        };
        let ports = self.src_ports.is_some() || self.dst_ports.is_some();
        if ports && !matches!(self.protocol, Some(ip_protocol::TCP | ip_protocol::UDP)) {
            return bad("port ranges need protocol tcp (6) or udp (17)");
        }
        if self.tcp_flags.is_some() && self.protocol != Some(ip_protocol::TCP) {
            return bad("tcp_flags need protocol tcp (6)");
        }
        if let Some((mask, value)) = self.tcp_flags {
            if value & !mask != 0 {
                return bad("tcp_flags value has bits outside the mask");
            }
        }
        for (name, range) in [
            ("src_ports", self.src_ports),
            ("dst_ports", self.dst_ports),
            ("ip_length", self.ip_length),
        ] {
            if let Some((lo, hi)) = range {
                if lo > hi {
                    return Err(TableError::BadSignature {
                        id: self.id,
                        reason: format!("{name}: {lo} > {hi}"),
                    });
                }
            }
        }
        if let Some((lo, hi)) = self.ttl {
            if lo > hi {
                return bad(&format!("ttl: {lo} > {hi}"));
            }
        }
        if self.action == (SignatureAction::RateLimit { pps: 0 }) {
            return bad("a rate limit of 0 pps is a drop; say drop");
        }
        if matches!(
            self.action,
            SignatureAction::Authenticate | SignatureAction::RequireState
        ) && self.protocol != Some(ip_protocol::TCP)
        {
            return bad("SYN authentication and connection state checks need protocol tcp (6)");
        }
        Ok(())
    }

    /// The reference meaning of a rule, used by tests to check the compiled set.
    pub fn matches(&self, m: &PacketMeta) -> bool {
        if let Some(d) = &self.destination {
            match m.dst_ip() {
                Some(ip) if d.contains(ip) => {}
                _ => return false,
            }
        }
        let in_range =
            |r: Option<(u16, u16)>, v: u16| r.is_none_or(|(lo, hi)| (lo..=hi).contains(&v));
        self.protocol.is_none_or(|p| p == m.protocol)
            && in_range(self.src_ports, m.src_port)
            && in_range(self.dst_ports, m.dst_port)
            && self
                .tcp_flags
                .is_none_or(|(mask, value)| m.tcp_flags & mask == value)
            && in_range(self.ip_length, m.ip_len)
            && self.ttl.is_none_or(|(lo, hi)| lo <= m.ttl && m.ttl <= hi)
            && match self.fragment {
                FragmentMatch::Any => true,
                FragmentMatch::NotFragmented => m.fragment == Fragment::None,
                FragmentMatch::First => m.fragment == Fragment::First,
                FragmentMatch::NonFirst => m.fragment == Fragment::NonFirst,
                FragmentMatch::AnyFragment => m.fragment != Fragment::None,
            }
            && m.family != L3Family::None
    }
}

type Bits = [u64; WORDS];

/// Interval indexes with at most this many starts are searched by counting.
const LINEAR_STARTS: usize = 16;

/// AND `other` into `acc`. `N` is a constant so the loop unrolls into a few
/// vector instructions.
#[inline(always)]
fn and_into<const N: usize>(acc: &mut [u64; N], other: &[u64; N]) {
    for w in 0..N {
        acc[w] &= other[w];
    }
}

/// The words each rule set takes for `rules` rules: as many as they need,
/// rounded up to 1, 2, 4 or 8 (0: no rules), the widths
/// [`SignatureSet::first_match`] has a loop for.
fn stride_for(rules: usize) -> usize {
    match rules.div_ceil(64) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 | 4 => 4,
        _ => WORDS,
    }
}

/// A field's rule sets side by side, each as wide as the rules need: with a
/// set per value of a byte (protocol, TCP flags, TTL), sets of full width
/// were 16 KiB a field, half the first-level cache, for the bits of a few
/// rules; 40 rules keep them in 2 KiB.
#[derive(Debug, Clone, Default)]
struct RuleSets {
    words: Vec<u64>,
}

impl RuleSets {
    fn new(sets: impl IntoIterator<Item = Bits>, stride: usize) -> RuleSets {
        RuleSets {
            words: sets
                .into_iter()
                .flat_map(|bits| bits.into_iter().take(stride))
                .collect(),
        }
    }

    /// Set `i`, for sets of `N` words (`N` is the stride they were made with).
    #[inline(always)]
    fn get<const N: usize>(&self, i: usize) -> Option<&[u64; N]> {
        self.words.as_chunks::<N>().0.get(i)
    }
}

/// Sorted interval starts over a field's value space, each with its rule set.
#[derive(Debug, Clone, Default)]
struct IntervalIndex<T> {
    starts: Vec<T>,
    sets: RuleSets,
    /// For a 16-bit field with several intervals: the interval of every value,
    /// two loads instead of a binary search whose every step waits on the one
    /// before (perf: the search was a third of the classifier).
    direct: DirectIndex,
}

/// The interval of every 16-bit value in two steps: the value's block of 256,
/// then its place in the block. Blocks holding the same intervals share one
/// row, so that a set of rules takes a few rows: a flat table of every value
/// was 128 KiB, and the ports of mixed traffic missed the caches in it.
#[derive(Debug, Clone, Default)]
struct DirectIndex {
    /// The row of each block (empty: no direct index).
    blocks: Vec<u16>,
    rows: Vec<[u16; 256]>,
}

impl DirectIndex {
    fn new(interval_of: impl Fn(u16) -> u16) -> Self {
        let mut index = DirectIndex::default();
        let mut known: HashMap<[u16; 256], u16> = HashMap::new();
        for block in 0..=u8::MAX {
            let row: [u16; 256] =
                std::array::from_fn(|low| interval_of(u16::from(block) << 8 | low as u16));
            let at = *known.entry(row).or_insert_with(|| {
                index.rows.push(row);
                (index.rows.len() - 1) as u16
            });
            index.blocks.push(at);
        }
        index
    }

    #[inline(always)]
    fn interval(&self, v: u128) -> Option<u16> {
        let row = *self.blocks.get((v >> 8) as usize)?;
        self.rows
            .get(usize::from(row))
            .map(|r| r[(v & 0xff) as usize])
    }
}

impl IntervalIndex<u16> {
    fn with_direct(mut self) -> Self {
        if self.starts.len() > 1 {
            let starts = &self.starts;
            // The last start at or below `v` (starts[0] is 0).
            self.direct = DirectIndex::new(|v| (starts.partition_point(|s| *s <= v) - 1) as u16);
        }
        self
    }
}

impl<T: Copy + Ord + Default + Into<u128>> IntervalIndex<T> {
    /// `ranges[i]` is rule i's inclusive range, `None` for "any value"; each
    /// set `stride` words.
    fn build(
        ranges: &[Option<(T, T)>],
        next: impl Fn(T) -> Option<T>,
        min: T,
        stride: usize,
    ) -> Self {
        let mut starts = vec![min];
        for (lo, hi) in ranges.iter().flatten() {
            starts.push(*lo);
            if let Some(after) = next(*hi) {
                starts.push(after);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let sets = starts.iter().map(|s| {
            let mut bits = [0u64; WORDS];
            for (i, r) in ranges.iter().enumerate() {
                if r.is_none_or(|(lo, hi)| lo <= *s && *s <= hi) {
                    bits[i / 64] |= 1 << (i % 64);
                }
            }
            bits
        });
        let sets = RuleSets::new(sets, stride);
        IntervalIndex {
            starts,
            sets,
            direct: DirectIndex::default(),
        }
    }

    /// The set of the rules whose range holds `v` (`N` words).
    #[inline(always)]
    fn lookup<const N: usize>(&self, v: T) -> Option<&[u64; N]> {
        let i = match self.direct.interval(v.into()) {
            Some(i) => usize::from(i),
            // A few starts (a rule's one prefix): count those at or below the
            // value, with no step waiting on the one before.
            None if self.starts.len() <= LINEAR_STARTS => {
                self.starts[1..].iter().filter(|s| **s <= v).count()
            }
            // starts[0] is the minimum of the space, so the index is never negative.
            None => self.starts.partition_point(|s| *s <= v).saturating_sub(1),
        };
        self.sets.get(i)
    }
}

/// A compiled, immutable set of signature rules, shared by every worker.
#[derive(Debug, Clone, Default)]
pub struct SignatureSet {
    rules: Vec<SignatureRule>,
    /// Words in each rule set (see [`stride_for`]).
    stride: usize,
    by_protocol: RuleSets,
    v4_destination: IntervalIndex<u32>,
    v6_destination: IntervalIndex<u128>,
    src_port: IntervalIndex<u16>,
    dst_port: IntervalIndex<u16>,
    tcp_flags: RuleSets,
    ip_length: IntervalIndex<u16>,
    /// Rules by TTL, a direct table; empty when no rule looks at the TTL.
    ttl: RuleSets,
    /// Rules by fragment kind: not a fragment, first, non-first.
    fragment: RuleSets,
    /// The fields some rule looks at: only their sets are ANDed.
    fields: Fields,
}

/// Which of a packet's fields some rule constrains (besides the protocol, and
/// the TTL, whose table is empty when no rule looks at it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fields {
    fragment: bool,
    tcp_flags: bool,
    src_port: bool,
    dst_port: bool,
    ip_length: bool,
    destination: bool,
}

impl Fields {
    fn of(rules: &[SignatureRule]) -> Fields {
        let any = |f: fn(&SignatureRule) -> bool| rules.iter().any(f);
        Fields {
            fragment: any(|r| r.fragment != FragmentMatch::Any),
            tcp_flags: any(|r| r.tcp_flags.is_some()),
            src_port: any(|r| r.src_ports.is_some()),
            dst_port: any(|r| r.dst_ports.is_some()),
            ip_length: any(|r| r.ip_length.is_some()),
            destination: any(|r| r.destination.is_some()),
        }
    }
}

impl SignatureSet {
    /// Compile rules, in priority order (the first matching rule wins).
    pub fn new(rules: Vec<SignatureRule>) -> Result<SignatureSet, TableError> {
        if rules.len() > MAX_SIGNATURES {
            return Err(TableError::Full {
                capacity: MAX_SIGNATURES,
            });
        }
        for r in &rules {
            r.validate()?;
        }
        let stride = stride_for(rules.len());
        let mut set = SignatureSet {
            stride,
            ..SignatureSet::default()
        };
        // The rules `holds(rule, value)` says match, for each of `values`.
        let sets_by = |values: &mut dyn Iterator<Item = u8>,
                       holds: &dyn Fn(&SignatureRule, u8) -> bool| {
            let sets = values.map(|v| {
                let mut bits = [0; WORDS];
                for (i, r) in rules.iter().enumerate() {
                    if holds(r, v) {
                        bits[i / 64] |= 1 << (i % 64);
                    }
                }
                bits
            });
            RuleSets::new(sets, stride)
        };
        set.by_protocol = sets_by(&mut (0..=u8::MAX), &|r, p| {
            r.protocol.is_none_or(|rp| rp == p)
        });
        set.tcp_flags = sets_by(&mut (0..=u8::MAX), &|r, f| {
            r.tcp_flags.is_none_or(|(mask, value)| f & mask == value)
        });
        if rules.iter().any(|r| r.ttl.is_some()) {
            set.ttl = sets_by(&mut (0..=u8::MAX), &|r, t| {
                r.ttl.is_none_or(|(lo, hi)| lo <= t && t <= hi)
            });
        }
        // Fragment kinds in the order of `first_match_in`'s index.
        const KINDS: [Fragment; 3] = [Fragment::None, Fragment::First, Fragment::NonFirst];
        set.fragment = sets_by(&mut (0..KINDS.len() as u8), &|r, k| {
            let kind = KINDS[usize::from(k)];
            match r.fragment {
                FragmentMatch::Any => true,
                FragmentMatch::NotFragmented => kind == Fragment::None,
                FragmentMatch::First => kind == Fragment::First,
                FragmentMatch::NonFirst => kind == Fragment::NonFirst,
                FragmentMatch::AnyFragment => kind != Fragment::None,
            }
        });
        // Destinations: a rule with an IPv6 prefix matches no IPv4 packet and
        // vice versa; an empty range (lo > hi) encodes "never".
        let v4: Vec<Option<(u32, u32)>> = rules
            .iter()
            .map(|r| match r.destination {
                None => None,
                Some(p) if p.addr().is_ipv4() => {
                    let (lo, hi) = p.range_u128();
                    Some((lo as u32, hi as u32))
                }
                Some(_) => Some((1, 0)),
            })
            .collect();
        let v6: Vec<Option<(u128, u128)>> = rules
            .iter()
            .map(|r| match r.destination {
                None => None,
                Some(p) if p.addr().is_ipv6() => Some(p.range_u128()),
                Some(_) => Some((1, 0)),
            })
            .collect();
        set.v4_destination = IntervalIndex::build(&v4, |x: u32| x.checked_add(1), 0, stride);
        set.v6_destination = IntervalIndex::build(&v6, |x: u128| x.checked_add(1), 0, stride);
        let ports = |f: fn(&SignatureRule) -> Option<(u16, u16)>| -> Vec<Option<(u16, u16)>> {
            rules.iter().map(f).collect()
        };
        set.src_port = IntervalIndex::build(
            &ports(|r| r.src_ports),
            |x: u16| x.checked_add(1),
            0,
            stride,
        )
        .with_direct();
        set.dst_port = IntervalIndex::build(
            &ports(|r| r.dst_ports),
            |x: u16| x.checked_add(1),
            0,
            stride,
        )
        .with_direct();
        set.ip_length = IntervalIndex::build(
            &ports(|r| r.ip_length),
            |x: u16| x.checked_add(1),
            0,
            stride,
        )
        .with_direct();
        set.fields = Fields::of(&rules);
        set.rules = rules;
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[SignatureRule] {
        &self.rules
    }

    /// The index (priority order) of the first rule matching `m`.
    #[inline]
    pub fn first_match(&self, m: &PacketMeta) -> Option<usize> {
        if m.family == L3Family::None {
            return None;
        }
        // A constant width unrolls the ANDs; words past the last rule are
        // zero in every set.
        match self.stride {
            0 => None,
            1 => self.first_match_in::<1>(m),
            2 => self.first_match_in::<2>(m),
            4 => self.first_match_in::<4>(m),
            _ => self.first_match_in::<WORDS>(m),
        }
    }

    /// Every constrained field's set ANDed, whatever the sets before left:
    /// a packet costs the same few independent loads, and no branch waits on
    /// what the traffic holds (stopping at the first empty set mispredicted
    /// on mixed traffic more often than it saved loads). `N` is the stride;
    /// a set not found (none is missing) matches nothing.
    #[inline(always)]
    fn first_match_in<const N: usize>(&self, m: &PacketMeta) -> Option<usize> {
        let mut acc = *self.by_protocol.get::<N>(usize::from(m.protocol))?;
        let f = self.fields;
        if f.fragment {
            let frag = match m.fragment {
                Fragment::None => 0,
                Fragment::First => 1,
                Fragment::NonFirst => 2,
            };
            and_into(&mut acc, self.fragment.get(frag)?);
        }
        if f.tcp_flags {
            and_into(&mut acc, self.tcp_flags.get(usize::from(m.tcp_flags))?);
        }
        if let Some(by_ttl) = self.ttl.get(usize::from(m.ttl)) {
            and_into(&mut acc, by_ttl);
        }
        if f.dst_port {
            and_into(&mut acc, self.dst_port.lookup(m.dst_port)?);
        }
        if f.src_port {
            and_into(&mut acc, self.src_port.lookup(m.src_port)?);
        }
        if f.ip_length {
            and_into(&mut acc, self.ip_length.lookup(m.ip_len)?);
        }
        if f.destination {
            match Addr::from_meta(&m.dst, m.family) {
                Some(Addr::V4(a)) => and_into(&mut acc, self.v4_destination.lookup(a)?),
                Some(Addr::V6(a)) => and_into(&mut acc, self.v6_destination.lookup(a)?),
                None => return None,
            }
        }
        acc.iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    /// The rule at a priority index returned by [`SignatureSet::first_match`].
    pub fn rule(&self, index: usize) -> Option<&SignatureRule> {
        self.rules.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;
    use crate::wire::parse;
    use proptest::prelude::*;

    fn metas() -> Vec<PacketMeta> {
        let mut frames: Vec<Vec<u8>> = synth::labelled_mix(11)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        frames.extend(
            synth::mixed_small_traffic(200, 12, 0)
                .into_iter()
                .map(|(_, _, f)| f),
        );
        frames.iter().map(|f| parse(f)).collect()
    }

    #[test]
    fn examples() {
        let dns_to_10 = SignatureRule {
            destination: Some("10.0.0.0/8".parse().expect("prefix")),
            protocol: Some(17),
            src_ports: Some((53, 53)),
            ip_length: Some((400, 1500)),
            ..SignatureRule::drop_all(7)
        };
        let syn = SignatureRule {
            protocol: Some(6),
            tcp_flags: Some((0x12, 0x02)),
            action: SignatureAction::RateLimit { pps: 1000 },
            ..SignatureRule::drop_all(9)
        };
        let frags = SignatureRule {
            fragment: FragmentMatch::NonFirst,
            ..SignatureRule::drop_all(11)
        };
        let set = SignatureSet::new(vec![dns_to_10, syn, frags]).expect("valid");
        for m in metas() {
            let expected = set.rules().iter().position(|r| r.matches(&m));
            assert_eq!(set.first_match(&m), expected, "{m:?}");
        }
        assert!(
            metas().iter().any(|m| set.first_match(m) == Some(1)),
            "some SYN matched"
        );
    }

    /// The two-step index of a 16-bit field gives every value the interval the
    /// binary search finds, in a handful of rows.
    #[test]
    fn the_direct_index_gives_every_value_its_interval_in_a_few_rows() {
        // Rules of a few ports each, near the bottom and around 27015: blocks
        // without a boundary share rows, so the index stays small.
        let rules: Vec<SignatureRule> = (0..200u16)
            .map(|i| SignatureRule {
                protocol: Some(ip_protocol::UDP),
                dst_ports: Some(if i % 2 == 0 {
                    (22 + i, 40 + 2 * i)
                } else {
                    (27015, 27016 + i / 8)
                }),
                ..SignatureRule::drop_all(u32::from(i))
            })
            .collect();
        let set = SignatureSet::new(rules).expect("valid");
        let index = &set.dst_port;
        for v in 0..=u16::MAX {
            let searched = index.starts.partition_point(|s| *s <= v) - 1;
            assert_eq!(
                index.direct.interval(u128::from(v)),
                Some(searched as u16),
                "{v}"
            );
        }
        // Blocks 0, 1 (ports up to 438) and 105 (27015-27040) hold boundaries;
        // the others are uniform: one row before 27015, one after.
        assert!(
            index.direct.rows.len() <= 6,
            "{} rows",
            index.direct.rows.len()
        );
        assert_eq!(index.direct.blocks.len(), 256);
        // No direct index where there is nothing to choose between.
        assert!(set.src_port.direct.blocks.is_empty());
    }

    /// Destinations are found by counting the interval starts when there are
    /// few and by a binary search when there are many: both agree with the
    /// rules, on every address around every prefix's edges.
    #[test]
    fn destinations_are_found_with_few_prefixes_and_with_many() {
        let udp = metas()
            .into_iter()
            .find(|m| m.family == L3Family::Ipv4 && m.protocol == ip_protocol::UDP)
            .expect("an IPv4 UDP packet");
        for prefixes in [2u32, 40] {
            let rules: Vec<SignatureRule> = (0..prefixes)
                .map(|i| SignatureRule {
                    destination: Some(
                        format!("10.{i}.0.0/{}", 16 + i % 9)
                            .parse()
                            .expect("prefix"),
                    ),
                    ..SignatureRule::drop_all(i)
                })
                .collect();
            let set = SignatureSet::new(rules.clone()).expect("valid");
            let starts = set.v4_destination.starts.len();
            assert_eq!(starts > LINEAR_STARTS, prefixes > 8, "{starts} starts");
            let mut matched = 0;
            for i in 0..prefixes + 2 {
                for low in [0u32, 1, 0x7f_ff, 0x80_00, 0xff_ff, 0x1_00_00] {
                    let mut m = udp;
                    let addr = (10u32 << 24 | i << 16) + low;
                    m.dst[12..].copy_from_slice(&addr.to_be_bytes());
                    let expected = rules.iter().position(|r| r.matches(&m));
                    assert_eq!(set.first_match(&m), expected, "{addr:#x}");
                    matched += usize::from(expected.is_some());
                }
            }
            assert!(matched > 0, "some addresses matched");
        }
    }

    #[test]
    fn invalid_rules_are_refused() {
        let ports_without_protocol = SignatureRule {
            dst_ports: Some((80, 80)),
            ..SignatureRule::drop_all(1)
        };
        assert!(matches!(
            SignatureSet::new(vec![ports_without_protocol]),
            Err(TableError::BadSignature { id: 1, .. })
        ));
        let flags_on_udp = SignatureRule {
            protocol: Some(17),
            tcp_flags: Some((2, 2)),
            ..SignatureRule::drop_all(2)
        };
        assert!(SignatureSet::new(vec![flags_on_udp]).is_err());
        let backwards = SignatureRule {
            ip_length: Some((100, 50)),
            ..SignatureRule::drop_all(3)
        };
        assert!(SignatureSet::new(vec![backwards]).is_err());
        let too_many = (0..=MAX_SIGNATURES as u32)
            .map(SignatureRule::drop_all)
            .collect();
        assert!(matches!(
            SignatureSet::new(too_many),
            Err(TableError::Full { .. })
        ));
    }

    fn arb_rule() -> impl Strategy<Value = SignatureRule> {
        let range = || {
            proptest::option::of((0u16..2000, 0u16..2000).prop_map(|(a, b)| (a.min(b), a.max(b))))
        };
        (
            proptest::option::of(prop_oneof![
                (0u32..4, 0u8..=32).prop_map(|(a, l)| Prefix::new(
                    std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 | a << 6)),
                    l
                )
                .expect("v4")),
                (0u8..=128)
                    .prop_map(|l| Prefix::new("2001:db8:1::".parse().expect("v6"), l).expect("v6")),
            ]),
            proptest::option::of(prop_oneof![Just(6u8), Just(17u8), Just(1u8)]),
            range(),
            range(),
            proptest::option::of((any::<u8>(), any::<u8>())),
            range(),
            proptest::option::of((any::<u8>(), any::<u8>())),
            prop_oneof![
                Just(FragmentMatch::Any),
                Just(FragmentMatch::NotFragmented),
                Just(FragmentMatch::First),
                Just(FragmentMatch::NonFirst),
                Just(FragmentMatch::AnyFragment)
            ],
        )
            .prop_map(
                |(destination, protocol, sp, dp, flags, len, ttl, fragment)| {
                    let ports_ok = matches!(protocol, Some(6 | 17));
                    SignatureRule {
                        id: 0,
                        destination,
                        protocol,
                        src_ports: if ports_ok { sp } else { None },
                        dst_ports: if ports_ok { dp } else { None },
                        tcp_flags: if protocol == Some(6) {
                            flags.map(|(m, v)| (m, v & m))
                        } else {
                            None
                        },
                        ip_length: len,
                        ttl: ttl.map(|(a, b)| (a.min(b), a.max(b))),
                        fragment,
                        action: SignatureAction::Drop,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn compiled_set_agrees_with_a_linear_scan(rules in proptest::collection::vec(arb_rule(), 0..80)) {
            let rules: Vec<SignatureRule> = rules.into_iter().enumerate().map(|(i, r)| SignatureRule { id: i as u32, ..r }).collect();
            let set = SignatureSet::new(rules.clone()).expect("valid");
            for m in metas() {
                prop_assert_eq!(set.first_match(&m), rules.iter().position(|r| r.matches(&m)));
            }
        }

        /// Sets of every width (1, 2, 4 and 8 words): rules that match none
        /// of the packets (UDP to port 0) push the random ones and a final
        /// catch-all into the later words.
        #[test]
        fn wide_sets_agree_with_a_linear_scan(
            filler in 0usize..=450,
            random in proptest::collection::vec(arb_rule(), 0..60),
        ) {
            let udp_to_port_0 = SignatureRule {
                protocol: Some(17),
                dst_ports: Some((0, 0)),
                ..SignatureRule::drop_all(0)
            };
            let rules: Vec<SignatureRule> = std::iter::repeat_n(udp_to_port_0, filler)
                .chain(random)
                .chain([SignatureRule::drop_all(0)])
                .enumerate()
                .map(|(i, r)| SignatureRule { id: i as u32, ..r })
                .collect();
            let set = SignatureSet::new(rules.clone()).expect("valid");
            let mut latest = 0;
            for m in metas() {
                let expected = rules.iter().position(|r| r.matches(&m));
                prop_assert_eq!(set.first_match(&m), expected);
                latest = latest.max(expected.unwrap_or(0));
            }
            prop_assert!(latest >= filler, "the filler matched: {latest} < {filler}");
        }
    }
}
