//! Membership in a set of prefixes for the per-packet question "is this
//! address one of ours": an IPv4 address is answered from two direct loads (its
//! /16, then a bitmap of that /16's /24s) instead of a hash probe per prefix
//! length. Prefixes longer than /24 and IPv6 ask the prefix table.

use super::prefix::{Addr, PrefixTable};

/// Nothing of the /16 is in the set.
const NONE: u16 = 0;
/// All of the /16 is in the set.
const ALL: u16 = 1;
/// Codes from here name a block: `code - FIRST_BLOCK`.
const FIRST_BLOCK: u16 = 2;

/// One bit per /24 of a /16.
type Bits256 = [u64; 4];

#[inline(always)]
fn bit(bits: &Bits256, i: u32) -> bool {
    bits[(i >> 6) as usize] & (1 << (i & 63)) != 0
}

fn set_bit(bits: &mut Bits256, i: u32) {
    bits[(i >> 6) as usize] |= 1 << (i & 63);
}

/// A set of IPv4 and IPv6 prefixes, read-only once built.
#[derive(Clone, Debug)]
pub struct PrefixSet {
    table: PrefixTable<()>,
    /// Per /16: [`NONE`], [`ALL`], or the block of its /24s.
    top: Box<[u16]>,
    /// Per block: the /24s wholly in the set...
    covered: Vec<Bits256>,
    /// ...and those partly in it (a prefix longer than /24): the table decides.
    partial: Vec<Bits256>,
    /// More /16s are split than codes exist: every IPv4 lookup asks the table.
    overflowed: bool,
}

impl PrefixSet {
    pub fn new(table: PrefixTable<()>) -> PrefixSet {
        let mut set = PrefixSet {
            top: vec![NONE; 1 << 16].into_boxed_slice(),
            covered: Vec::new(),
            partial: Vec::new(),
            overflowed: false,
            table,
        };
        let mut v4: Vec<(u32, u8)> = set
            .table
            .iter()
            .filter_map(|(p, _)| match Addr::from(p.addr()) {
                Addr::V4(a) => Some((a, p.len())),
                Addr::V6(_) => None,
            })
            .collect();
        // Shorter prefixes first: what they cover needs no finer marks.
        v4.sort_by_key(|(_, len)| *len);
        for (addr, len) in v4 {
            set.add_v4(addr, len);
        }
        set
    }

    fn add_v4(&mut self, addr: u32, len: u8) {
        let slash16 = (addr >> 16) as usize;
        if len <= 16 {
            let count = 1usize << (16 - len);
            self.top[slash16..slash16 + count].fill(ALL);
            return;
        }
        let block = match self.top[slash16] {
            ALL => return,
            NONE => {
                let Ok(code) = u16::try_from(self.covered.len() + usize::from(FIRST_BLOCK)) else {
                    self.overflowed = true;
                    return;
                };
                self.covered.push([0; 4]);
                self.partial.push([0; 4]);
                self.top[slash16] = code;
                usize::from(code - FIRST_BLOCK)
            }
            code => usize::from(code - FIRST_BLOCK),
        };
        let slash24 = (addr >> 8) & 0xff;
        if len <= 24 {
            for i in slash24..slash24 + (1 << (24 - len)) {
                set_bit(&mut self.covered[block], i);
            }
        } else if !bit(&self.covered[block], slash24) {
            set_bit(&mut self.partial[block], slash24);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether some prefix of the set holds `addr`.
    #[inline]
    pub fn contains(&self, addr: Addr) -> bool {
        let Addr::V4(a) = addr else {
            return self.table.contains(addr);
        };
        if self.overflowed {
            return self.table.contains(addr);
        }
        match self.top[(a >> 16) as usize] {
            NONE => false,
            ALL => true,
            code => {
                let block = usize::from(code - FIRST_BLOCK);
                let slash24 = (a >> 8) & 0xff;
                bit(&self.covered[block], slash24)
                    || (bit(&self.partial[block], slash24) && self.table.contains(addr))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Prefix;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn table(prefixes: &[(u32, u8)]) -> PrefixTable<()> {
        let mut t = PrefixTable::with_capacity(prefixes.len().max(1));
        for (a, len) in prefixes {
            let p = Prefix::new(Ipv4Addr::from(*a).into(), *len).expect("prefix");
            let _ = t.insert(p, ());
        }
        t
    }

    #[test]
    fn examples() {
        let set = PrefixSet::new(table(&[
            (0x0a00_0000, 24), // 10.0.0.0/24
            (0xc0a8_0000, 16), // 192.168.0.0/16
            (0xac10_0000, 12), // 172.16.0.0/12
            (0xcb00_7105, 32), // 203.0.113.5/32
            (0xcb00_7180, 25), // 203.0.113.128/25
        ]));
        let has = |a: [u8; 4]| set.contains(Addr::V4(u32::from_be_bytes(a)));
        assert!(has([10, 0, 0, 1]) && has([10, 0, 0, 255]));
        assert!(!has([10, 0, 1, 0]) && !has([9, 255, 255, 255]));
        assert!(has([192, 168, 200, 1]) && !has([192, 169, 0, 0]));
        assert!(has([172, 31, 255, 255]) && !has([172, 32, 0, 0]));
        assert!(has([203, 0, 113, 5]) && !has([203, 0, 113, 6]));
        assert!(has([203, 0, 113, 200]) && !has([203, 0, 113, 127]));
        assert!(!has([203, 0, 112, 5]));
        let v6: Addr = Addr::from("2001:db8::1".parse::<std::net::IpAddr>().expect("ip"));
        assert!(!set.contains(v6));
    }

    #[test]
    fn everything_and_nothing() {
        let all = PrefixSet::new(table(&[(0, 0)]));
        assert!(all.contains(Addr::V4(0)) && all.contains(Addr::V4(u32::MAX)));
        let none = PrefixSet::new(table(&[]));
        assert!(none.is_empty() && !none.contains(Addr::V4(0x0a00_0001)));
    }

    proptest! {
        /// The direct tables answer what the prefix table answers, for any mix
        /// of lengths and addresses in and around the prefixes.
        #[test]
        fn agrees_with_the_prefix_table(
            prefixes in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..40),
            probes in proptest::collection::vec((0usize..40, any::<u32>(), 0u32..600), 0..200),
        ) {
            // Cluster the prefixes so that they nest and share /16s.
            let prefixes: Vec<(u32, u8)> = prefixes
                .iter()
                .map(|(a, len)| ((a & 0x0003_ffff) | 0x0a00_0000, *len))
                .collect();
            let t = table(&prefixes);
            let set = PrefixSet::new(t.clone());
            for (pick, random, near) in probes {
                let a = match prefixes.get(pick) {
                    Some((base, _)) => base.wrapping_add(near).wrapping_sub(300),
                    None => random,
                };
                prop_assert_eq!(set.contains(Addr::V4(a)), t.contains(Addr::V4(a)), "{}", Ipv4Addr::from(a));
            }
        }
    }
}
