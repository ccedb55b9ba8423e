//! Targets under attack, as the workers see them: which traffic of theirs is
//! accounted per source, the per-source limits, and the sources the target
//! exchanged traffic with in peacetime ("known sources"), which pass signatures
//! and rate limits.
//!
//! A [`WatchSet`] is built by the control plane (where it may allocate) and
//! handed to every worker whole, like the signature set; a worker only reads it.

use std::net::IpAddr;

use super::{fold_hash, Prefix};
use crate::wire::TrafficClass;

/// Targets watched at once; an incident beyond this is not accounted per source.
pub const MAX_WATCHED: usize = 64;

/// One target under attack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedTarget {
    /// The host (/32, /128) or prefix (carpet bombing) attacked.
    pub target: Prefix,
    /// Traffic classes of the attack (bit = class index): only these are counted.
    pub classes: u64,
    /// Packets per second a source not known to the target may send it in
    /// those classes before it is reported.
    pub limit_pps: u32,
    /// The same for a known source.
    pub known_limit_pps: u32,
    /// Known sources (IPv4-mapped keys), sorted.
    known: Box<[u128]>,
    /// A filter over `known` (see [`KnownFilter`]).
    known_filter: KnownFilter,
    /// The target as a range of IPv4-mapped keys.
    lo: u128,
    hi: u128,
}

/// Which sources may be known, in one load: nearly every packet to a target
/// under attack is from a source it does not know, and a binary search of up
/// to a host's thousands of peers took a dependent cache miss at every step.
/// Each key sets two bits of one word picked by its hash, in about 16 bits a
/// key; a key whose two bits are not both set is not known, and the 1 to 2 in
/// 100 unknown keys that pass are found absent by the search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KnownFilter {
    words: Box<[u64]>,
}

impl KnownFilter {
    fn new(keys: &[u128]) -> KnownFilter {
        if keys.is_empty() {
            return KnownFilter::default();
        }
        let mut words = vec![0u64; keys.len().div_ceil(4).next_power_of_two()];
        for key in keys {
            let (word, bits) = Self::place(*key, words.len());
            words[word] |= bits;
        }
        KnownFilter {
            words: words.into_boxed_slice(),
        }
    }

    /// The word and the two bits of `key` in a filter of `len` words (a power of two).
    #[inline(always)]
    fn place(key: u128, len: usize) -> (usize, u64) {
        let h = fold_hash(key, 0x5bd1_e995);
        let word = (h >> 32) as usize & (len - 1);
        (word, (1 << (h & 63)) | (1 << ((h >> 6) & 63)))
    }

    /// False: `key` is not one of the filter's keys. True: it may be.
    #[inline(always)]
    fn may_hold(&self, key: u128) -> bool {
        if self.words.is_empty() {
            return false;
        }
        let (word, bits) = Self::place(key, self.words.len());
        self.words.get(word).is_some_and(|w| w & bits == bits)
    }
}

/// An IPv4-mapped key of an address.
pub fn mapped_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from_be_bytes(a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl WatchedTarget {
    pub fn new(
        target: Prefix,
        classes: impl IntoIterator<Item = TrafficClass>,
        limit_pps: u32,
        known_limit_pps: u32,
        mut known: Vec<u128>,
    ) -> Self {
        known.sort_unstable();
        known.dedup();
        let known_filter = KnownFilter::new(&known);
        let (lo, hi) = target.range_u128();
        let (lo, hi) = if target.addr().is_ipv4() {
            let mapped = 0xffffu128 << 32;
            (mapped | lo, mapped | hi)
        } else {
            (lo, hi)
        };
        WatchedTarget {
            target,
            classes: classes
                .into_iter()
                .fold(0, |m, c| m | 1u64 << (c.index() as u64 & 63)),
            limit_pps: limit_pps.max(1),
            known_limit_pps: known_limit_pps.max(limit_pps).max(1),
            known: known.into_boxed_slice(),
            known_filter,
            lo,
            hi,
        }
    }

    #[inline(always)]
    pub fn covers(&self, dst_key: u128) -> bool {
        (self.lo..=self.hi).contains(&dst_key)
    }

    #[inline(always)]
    pub fn counts(&self, class: TrafficClass) -> bool {
        self.counts_index(class.index())
    }

    /// [`WatchedTarget::counts`] for a class index (a packet's `class_index`).
    #[inline(always)]
    pub fn counts_index(&self, class_index: usize) -> bool {
        self.classes & (1u64 << (class_index as u64 & 63)) != 0
    }

    #[inline]
    pub fn is_known(&self, src_key: u128) -> bool {
        self.known_filter.may_hold(src_key) && self.known.binary_search(&src_key).is_ok()
    }

    pub fn known_len(&self) -> usize {
        self.known.len()
    }
}

/// Every watched target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchSet {
    targets: Vec<WatchedTarget>,
    /// The host targets' keys, each with the first target index that has it
    /// plus one (0: an empty slot), by open addressing in [`HOST_SLOTS`]
    /// slots (at most a quarter used): a destination is found in about one
    /// probe (a scan of 64 targets was most of the accounting's cost, a
    /// binary search of them still half).
    hosts: Box<[(u128, u16)]>,
    /// The prefix targets' indices, in order (carpet bombing: few).
    prefixes: Vec<u16>,
}

impl WatchSet {
    /// At most [`MAX_WATCHED`] targets: the rest are left out (the caller says so).
    pub fn new(mut targets: Vec<WatchedTarget>) -> Self {
        targets.truncate(MAX_WATCHED);
        let mut hosts = vec![(0u128, 0u16); HOST_SLOTS].into_boxed_slice();
        let mut prefixes = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            if !t.target.is_host() {
                prefixes.push(i as u16);
                continue;
            }
            let mut slot = host_slot(t.lo);
            // A key already placed keeps its first target.
            while hosts[slot].1 != 0 && hosts[slot].0 != t.lo {
                slot = (slot + 1) % HOST_SLOTS;
            }
            if hosts[slot].1 == 0 {
                hosts[slot] = (t.lo, i as u16 + 1);
            }
        }
        WatchSet {
            targets,
            hosts,
            prefixes,
        }
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The watched target a destination belongs to, and its index.
    #[inline]
    pub fn target_of(&self, dst_key: u128) -> Option<(usize, &WatchedTarget)> {
        let host = self.host_target(dst_key);
        // The first target in order wins: a prefix listed before the host.
        let prefix = self
            .prefixes
            .iter()
            .map(|i| usize::from(*i))
            .take_while(|i| host.is_none_or(|h| *i < h))
            .find(|i| self.targets[*i].covers(dst_key));
        let index = prefix.or(host)?;
        Some((index, &self.targets[index]))
    }

    pub fn targets(&self) -> &[WatchedTarget] {
        &self.targets
    }

    /// The first host target whose address is `key`.
    #[inline(always)]
    fn host_target(&self, key: u128) -> Option<usize> {
        if self.hosts.is_empty() {
            return None;
        }
        let mut slot = host_slot(key);
        // Never full (a quarter at most), so an empty slot ends every probe.
        loop {
            let (k, index) = *self.hosts.get(slot)?;
            if index == 0 {
                return None;
            }
            if k == key {
                return Some(usize::from(index - 1));
            }
            slot = (slot + 1) % HOST_SLOTS;
        }
    }
}

/// Slots of the host targets' table: four per target at most.
const HOST_SLOTS: usize = 4 * MAX_WATCHED;

#[inline(always)]
fn host_slot(key: u128) -> usize {
    (fold_hash(key, 0) >> 56) as usize % HOST_SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_target_covers_its_address_and_knows_its_sources() {
        let host: IpAddr = "10.0.0.1".parse().expect("ip");
        let known: IpAddr = "100.64.1.2".parse().expect("ip");
        let t = WatchedTarget::new(
            Prefix::host(host),
            [TrafficClass::Udp],
            10,
            1000,
            vec![mapped_key(known)],
        );
        assert!(t.covers(mapped_key(host)));
        assert!(!t.covers(mapped_key("10.0.0.2".parse().expect("ip"))));
        assert!(t.is_known(mapped_key(known)));
        assert!(!t.is_known(mapped_key("100.64.1.3".parse().expect("ip"))));
        assert!(t.counts(TrafficClass::Udp));
        assert!(!t.counts(TrafficClass::TcpSyn));
        let set = WatchSet::new(vec![t]);
        assert_eq!(set.target_of(mapped_key(host)).map(|(i, _)| i), Some(0));
    }

    /// Every known source is found, whatever the number; of sources not
    /// known, the filter lets few through to the search, and the search
    /// turns those away.
    #[test]
    fn known_sources_are_found_and_the_filter_turns_most_others_away() {
        let key = |i: u32| mapped_key(IpAddr::V4((0x6440_0000 + i * 7).into()));
        for count in [1u32, 2, 5, 100, 1000, 8192] {
            let known: Vec<u128> = (0..count).map(key).collect();
            let t = WatchedTarget::new(
                Prefix::host("10.0.0.1".parse().expect("ip")),
                [TrafficClass::Udp],
                10,
                10,
                known.clone(),
            );
            assert!(known.iter().all(|k| t.is_known(*k)), "{count} known");
            let others: Vec<u128> = (count..count + 50_000).map(key).collect();
            assert!(others.iter().all(|k| !t.is_known(*k)), "{count} known");
            let passed = others
                .iter()
                .filter(|k| t.known_filter.may_hold(**k))
                .count();
            assert!(
                passed < others.len() / 20,
                "{passed} of 50,000 passed the filter of {count}"
            );
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// The lookup finds what a scan of the targets in order finds.
        #[test]
        fn lookup_agrees_with_a_scan(
            targets in proptest::collection::vec((0u32..64, proptest::prop_oneof![Just(32u8), 26u8..32]), 0..70),
            probes in proptest::collection::vec(0u32..80, 0..100),
        ) {
            let base = 0x0a00_0000u32;
            let set = WatchSet::new(
                targets
                    .iter()
                    .map(|(host, len)| {
                        let ip = IpAddr::V4((base + host).into());
                        let p = Prefix::new(ip, *len).expect("prefix");
                        WatchedTarget::new(p, [TrafficClass::Udp], 10, 10, Vec::new())
                    })
                    .collect(),
            );
            for probe in probes {
                let key = mapped_key(IpAddr::V4((base + probe).into()));
                let scan = set.targets().iter().position(|t| t.covers(key));
                prop_assert_eq!(set.target_of(key).map(|(i, _)| i), scan);
            }
        }
    }

    #[test]
    fn a_prefix_target_covers_the_prefix_only() {
        let p: Prefix = "10.0.0.0/24".parse().expect("prefix");
        let t = WatchedTarget::new(p, [TrafficClass::Udp], 10, 10, Vec::new());
        assert!(t.covers(mapped_key("10.0.0.200".parse().expect("ip"))));
        assert!(!t.covers(mapped_key("10.0.1.1".parse().expect("ip"))));
        let v6: Prefix = "2001:db8::/64".parse().expect("prefix");
        let t = WatchedTarget::new(v6, [TrafficClass::Udp], 10, 10, Vec::new());
        assert!(t.covers(mapped_key("2001:db8::5".parse().expect("ip"))));
        assert!(!t.covers(mapped_key("2001:db8:1::5".parse().expect("ip"))));
    }
}
