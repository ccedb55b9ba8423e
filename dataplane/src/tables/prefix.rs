//! IP prefixes and longest-prefix-match tables built from one exact table per
//! family: a prefix is stored under (masked address, length), and a lookup tries
//! only the lengths present, longest first. Operators' prefix lists hold a handful
//! of distinct lengths, so a lookup costs a handful of hash probes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::exact::{ExactTable, TableKey};
use super::TableError;

/// An IPv4 or IPv6 prefix with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// The prefix of `addr` with length `len` (host bits are cleared).
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, TableError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(TableError::BadPrefix(format!(
                "{addr}/{len}: length above {max}"
            )));
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(a), len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(a), len))),
        };
        Ok(Prefix { addr, len })
    }

    /// A single address (/32 or /128).
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    #[allow(clippy::len_without_is_empty)] // a prefix length, not a container size
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_host(&self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `addr` falls inside the prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => mask_v4(u32::from(a), self.len) == u32::from(p),
            (IpAddr::V6(p), IpAddr::V6(a)) => mask_v6(u128::from(a), self.len) == u128::from(p),
            _ => false,
        }
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        let shorter = if self.len <= other.len { self } else { other };
        let longer = if self.len <= other.len { other } else { self };
        shorter.contains(longer.addr)
    }

    /// First and last address as integers (IPv4 in the low 32 bits).
    pub fn range_u128(&self) -> (u128, u128) {
        match self.addr {
            IpAddr::V4(a) => {
                let lo = u32::from(a);
                let hi = lo
                    | if self.len == 0 {
                        u32::MAX
                    } else {
                        (1u32 << (32 - u32::from(self.len))).wrapping_sub(1)
                    };
                (u128::from(lo), u128::from(hi))
            }
            IpAddr::V6(a) => {
                let lo = u128::from(a);
                let hi = lo
                    | if self.len == 0 {
                        u128::MAX
                    } else {
                        (1u128 << (128 - u32::from(self.len))).wrapping_sub(1)
                    };
                (lo, hi)
            }
        }
    }
}

impl Default for Prefix {
    /// 0.0.0.0/0.
    fn default() -> Self {
        Prefix {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            len: 0,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = TableError;

    /// `203.0.113.0/24`, `2001:db8::/32`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Prefix, TableError> {
        let bad = || TableError::BadPrefix(format!("{s:?} is not an IP address or prefix"));
        match s.split_once('/') {
            Some((a, l)) => {
                let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
                let len: u8 = l.trim().parse().map_err(|_| bad())?;
                Prefix::new(addr, len)
            }
            None => Ok(Prefix::host(s.trim().parse().map_err(|_| bad())?)),
        }
    }
}

#[inline(always)]
pub(crate) fn mask_v4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(len.min(32))))
    }
}

#[inline(always)]
pub(crate) fn mask_v6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(len.min(128))))
    }
}

/// An IPv6 prefix as a table key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6Key {
    addr: u128,
    len: u8,
}

impl TableKey for V6Key {
    #[inline(always)]
    fn hash(&self, m: u64, seed: u64) -> u64 {
        self.addr.hash(
            m,
            seed ^ u64::from(self.len).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
    }
}

/// The address of a parsed packet (IPv4-mapped for IPv4) split by family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    V4(u32),
    V6(u128),
}

impl Addr {
    /// From PacketMeta's 16-byte form and its family.
    #[inline(always)]
    pub fn from_meta(bytes: &[u8; 16], family: crate::wire::L3Family) -> Option<Addr> {
        match family {
            crate::wire::L3Family::Ipv4 => Some(Addr::V4(u32::from_be_bytes([
                bytes[12], bytes[13], bytes[14], bytes[15],
            ]))),
            crate::wire::L3Family::Ipv6 => Some(Addr::V6(u128::from_be_bytes(*bytes))),
            crate::wire::L3Family::None => None,
        }
    }

    pub fn ip(self) -> IpAddr {
        match self {
            Addr::V4(a) => IpAddr::V4(Ipv4Addr::from(a)),
            Addr::V6(a) => IpAddr::V6(Ipv6Addr::from(a)),
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(a) => Addr::V4(u32::from(a)),
            IpAddr::V6(a) => Addr::V6(u128::from(a)),
        }
    }
}

/// Longest-prefix match over IPv4 and IPv6 prefixes, each carrying a `V`.
#[derive(Debug, Clone)]
pub struct PrefixTable<V> {
    v4: ExactTable<u64, V>,
    v6: ExactTable<V6Key, V>,
    /// Bit `len` set when some IPv4 prefix of that length is present.
    v4_lengths: u64,
    v6_lengths: [u64; 3],
    v4_per_length: [u32; 33],
    v6_per_length: [u32; 129],
}

impl<V: Copy + Default> PrefixTable<V> {
    /// Room for `capacity` prefixes of each family.
    pub fn with_capacity(capacity: usize) -> Self {
        PrefixTable {
            v4: ExactTable::with_capacity(capacity),
            v6: ExactTable::with_capacity(capacity),
            v4_lengths: 0,
            v6_lengths: [0; 3],
            v4_per_length: [0; 33],
            v6_per_length: [0; 129],
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.v4.capacity() + self.v6.capacity()
    }

    pub fn insert(&mut self, prefix: Prefix, value: V) -> Result<Option<V>, TableError> {
        let len = prefix.len;
        match prefix.addr {
            IpAddr::V4(a) => {
                let old = self
                    .v4
                    .insert((u64::from(len) << 32) | u64::from(u32::from(a)), value)?;
                if old.is_none() {
                    self.v4_per_length[usize::from(len)] += 1;
                    self.v4_lengths |= 1 << len;
                }
                Ok(old)
            }
            IpAddr::V6(a) => {
                let old = self.v6.insert(
                    V6Key {
                        addr: u128::from(a),
                        len,
                    },
                    value,
                )?;
                if old.is_none() {
                    self.v6_per_length[usize::from(len)] += 1;
                    self.v6_lengths[usize::from(len / 64)] |= 1 << (len % 64);
                }
                Ok(old)
            }
        }
    }

    pub fn remove(&mut self, prefix: &Prefix) -> Option<V> {
        let len = prefix.len;
        match prefix.addr {
            IpAddr::V4(a) => {
                let old = self
                    .v4
                    .remove(&((u64::from(len) << 32) | u64::from(u32::from(a))))?;
                self.v4_per_length[usize::from(len)] -= 1;
                if self.v4_per_length[usize::from(len)] == 0 {
                    self.v4_lengths &= !(1 << len);
                }
                Some(old)
            }
            IpAddr::V6(a) => {
                let old = self.v6.remove(&V6Key {
                    addr: u128::from(a),
                    len,
                })?;
                self.v6_per_length[usize::from(len)] -= 1;
                if self.v6_per_length[usize::from(len)] == 0 {
                    self.v6_lengths[usize::from(len / 64)] &= !(1 << (len % 64));
                }
                Some(old)
            }
        }
    }

    /// The value of exactly this prefix.
    pub fn get(&self, prefix: &Prefix) -> Option<&V> {
        match prefix.addr {
            IpAddr::V4(a) => self
                .v4
                .get(&((u64::from(prefix.len) << 32) | u64::from(u32::from(a)))),
            IpAddr::V6(a) => self.v6.get(&V6Key {
                addr: u128::from(a),
                len: prefix.len,
            }),
        }
    }

    /// The longest prefix containing `addr`, with its value.
    #[inline]
    pub fn longest_match(&self, addr: Addr) -> Option<(u8, &V)> {
        match addr {
            Addr::V4(a) => {
                let mut lengths = self.v4_lengths;
                while lengths != 0 {
                    let len = 63 - lengths.leading_zeros() as u8;
                    if let Some(v) = self
                        .v4
                        .get(&((u64::from(len) << 32) | u64::from(mask_v4(a, len))))
                    {
                        return Some((len, v));
                    }
                    lengths &= !(1 << len);
                }
                None
            }
            Addr::V6(a) => {
                for word in (0..3).rev() {
                    let mut lengths = self.v6_lengths[word];
                    while lengths != 0 {
                        let bit = 63 - lengths.leading_zeros() as u8;
                        let len = word as u8 * 64 + bit;
                        if let Some(v) = self.v6.get(&V6Key {
                            addr: mask_v6(a, len),
                            len,
                        }) {
                            return Some((len, v));
                        }
                        lengths &= !(1 << bit);
                    }
                }
                None
            }
        }
    }

    /// Whether any prefix contains `addr`.
    #[inline]
    pub fn contains(&self, addr: Addr) -> bool {
        self.longest_match(addr).is_some()
    }

    /// Every prefix with its value.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, &V)> {
        let v4 = self.v4.iter().map(|(k, v)| {
            (
                Prefix {
                    addr: IpAddr::V4(Ipv4Addr::from(*k as u32)),
                    len: (*k >> 32) as u8,
                },
                v,
            )
        });
        let v6 = self.v6.iter().map(|(k, v)| {
            (
                Prefix {
                    addr: IpAddr::V6(Ipv6Addr::from(k.addr)),
                    len: k.len,
                },
                v,
            )
        });
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        s.parse().expect("prefix")
    }

    #[test]
    fn parse_normalises_and_refuses() {
        assert_eq!(p("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(p("192.0.2.7").to_string(), "192.0.2.7/32");
        assert!(p("192.0.2.7").is_host());
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("::/129".parse::<Prefix>().is_err());
        assert!("banana/8".parse::<Prefix>().is_err());
        assert!(p("10.0.0.0/8").overlaps(&p("10.2.0.0/16")));
        assert!(!p("10.0.0.0/8").overlaps(&p("11.0.0.0/8")));
        assert_eq!(p("10.0.0.0/30").range_u128(), (0x0a00_0000, 0x0a00_0003));
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::with_capacity(8);
        t.insert(p("10.0.0.0/8"), 8u8).expect("room");
        t.insert(p("10.1.0.0/16"), 16).expect("room");
        t.insert(p("0.0.0.0/0"), 0).expect("room");
        t.insert(p("2001:db8::/32"), 32).expect("room");
        t.insert(p("2001:db8:1::/48"), 48).expect("room");
        fn lookup(t: &PrefixTable<u8>, s: &str) -> Option<(u8, u8)> {
            t.longest_match(Addr::from(s.parse::<IpAddr>().expect("ip")))
                .map(|(l, v)| (l, *v))
        }
        let at = |s: &str| lookup(&t, s);
        assert_eq!(at("10.1.2.3"), Some((16, 16)));
        assert_eq!(at("10.2.2.3"), Some((8, 8)));
        assert_eq!(at("11.0.0.1"), Some((0, 0)));
        assert_eq!(at("2001:db8:1::5"), Some((48, 48)));
        assert_eq!(at("2001:db8:2::5"), Some((32, 32)));
        assert_eq!(at("2001:db9::1"), None, "no IPv6 default route");
        t.remove(&p("10.1.0.0/16"));
        assert_eq!(lookup(&t, "10.1.2.3"), Some((8, 8)));
    }

    proptest! {
        #[test]
        fn agrees_with_a_linear_scan(
            prefixes in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..40),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            probes in proptest::collection::vec(any::<u32>(), 1..60),
        ) {
            let mut t = PrefixTable::with_capacity(64);
            let mut model: Vec<Prefix> = Vec::new();
            for (a, l) in prefixes {
                // Cluster addresses so prefixes overlap often.
                let pre = Prefix::new(IpAddr::V4(Ipv4Addr::from(a & 0xff0f_0f00)), l).expect("valid");
                t.insert(pre, pre).expect("room");
                if !model.contains(&pre) { model.push(pre); }
            }
            for r in removals {
                if model.is_empty() { break; }
                let pre = model.remove(r.index(model.len()));
                prop_assert_eq!(t.remove(&pre), Some(pre));
            }
            for a in probes {
                let ip = IpAddr::V4(Ipv4Addr::from(a & 0xff0f_0fff));
                let expected = model.iter().filter(|p| p.contains(ip)).max_by_key(|p| p.len());
                prop_assert_eq!(t.longest_match(Addr::from(ip)).map(|(_, v)| *v), expected.copied());
            }
        }
    }
}
