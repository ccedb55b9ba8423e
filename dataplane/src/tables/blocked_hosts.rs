//! The blocklist's IPv4 hosts: an open-addressing table whose slots hold the
//! entry itself (address, rule, expiry: 16 bytes, four to a cache line).
//!
//! A botnet flood is millions of packets from blocked hosts, and each one's
//! lookup is a cache miss in a table far larger than the caches. With the
//! entries kept apart from the probed slots ([`ExactTable`]'s dense values) a
//! hit took two misses, the slot and then its entry; here it takes one.
//! Slots are four times the capacity, as there, so a miss (legitimate
//! traffic) ends within one line too. Address 0 marks an empty slot;
//! 0.0.0.0 itself, if blocked, is kept aside.
//!
//! [`ExactTable`]: super::exact::ExactTable

use super::exact::Probe;
use super::{BlockEntry, TableError};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    /// 0: empty.
    addr: u32,
    rule_id: u32,
    expires_at_ns: u64,
}

impl Slot {
    #[inline(always)]
    fn entry(&self) -> BlockEntry {
        BlockEntry {
            rule_id: self.rule_id,
            expires_at_ns: self.expires_at_ns,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Slot>() == 16, "four slots a line");

/// Addresses per bulk lookup (a burst).
pub const BULK_MAX: usize = 64;

/// A preallocated table from IPv4 addresses (host order) to blocklist entries.
#[derive(Clone, Debug)]
pub struct BlockedHosts {
    slots: Box<[Slot]>,
    /// The entry of 0.0.0.0, which cannot have a slot.
    zero: Option<BlockEntry>,
    probe: Probe,
    len: usize,
    capacity: usize,
}

impl BlockedHosts {
    /// A table for up to `capacity` hosts, at most a quarter full.
    pub fn with_capacity(capacity: usize) -> Self {
        let (probe, capacity) = Probe::for_capacity(capacity);
        BlockedHosts {
            slots: vec![Slot::default(); probe.slots()].into_boxed_slice(),
            zero: None,
            probe,
            len: 0,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Memory held by the slots, in bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// The NUMA node of the slots (their middle page), if the kernel says.
    pub fn memory_node(&self) -> Option<u32> {
        crate::cpu::memory_node(&self.slots[self.slots.len() / 2])
    }

    #[inline(always)]
    fn home(&self, addr: u32) -> usize {
        self.probe.home(&addr)
    }

    /// The slot holding `addr` (not 0), or the empty slot its probe ends on.
    #[inline(always)]
    fn probe(&self, addr: u32, mut i: usize) -> (usize, bool) {
        loop {
            let slot = &self.slots[i];
            if slot.addr == addr {
                return (i, true);
            }
            if slot.addr == 0 {
                return (i, false);
            }
            i = self.probe.next(i);
        }
    }

    #[inline]
    pub fn get(&self, addr: u32) -> Option<BlockEntry> {
        if addr == 0 {
            return self.zero;
        }
        match self.probe(addr, self.home(addr)) {
            (i, true) => Some(self.slots[i].entry()),
            _ => None,
        }
    }

    /// Look up a burst: every home slot is prefetched before any is probed,
    /// so the burst's misses overlap. `out[i]` is the rule of `addrs[i]`'s
    /// entry if it is live at `now_ns`.
    #[inline]
    pub fn find_bulk(&self, addrs: &[u32], now_ns: u64, out: &mut [Option<u32>]) {
        let n = addrs.len().min(out.len()).min(BULK_MAX);
        let mut homes = [0usize; BULK_MAX];
        for i in 0..n {
            let h = self.home(addrs[i]);
            homes[i] = h;
            crate::cpu::prefetch(&self.slots[h]);
        }
        for i in 0..n {
            let entry = match addrs[i] {
                0 => self.zero,
                addr => match self.probe(addr, homes[i]) {
                    (s, true) => Some(self.slots[s].entry()),
                    _ => None,
                },
            };
            out[i] = entry.filter(|e| e.live(now_ns)).map(|e| e.rule_id);
        }
    }

    /// Insert or replace. A new host beyond the capacity is refused.
    pub fn insert(
        &mut self,
        addr: u32,
        entry: BlockEntry,
    ) -> Result<Option<BlockEntry>, TableError> {
        let full = self.len == self.capacity;
        let previous = if addr == 0 {
            if self.zero.is_none() && full {
                return Err(TableError::Full {
                    capacity: self.capacity,
                });
            }
            self.zero.replace(entry)
        } else {
            let (i, found) = self.probe(addr, self.home(addr));
            if !found && full {
                return Err(TableError::Full {
                    capacity: self.capacity,
                });
            }
            let previous = found.then(|| self.slots[i].entry());
            self.slots[i] = Slot {
                addr,
                rule_id: entry.rule_id,
                expires_at_ns: entry.expires_at_ns,
            };
            previous
        };
        self.len += usize::from(previous.is_none());
        Ok(previous)
    }

    /// Remove a host; the rest of its probe run shifts back (no tombstones).
    pub fn remove(&mut self, addr: u32) -> Option<BlockEntry> {
        let removed = if addr == 0 {
            self.zero.take()?
        } else {
            let (hole, found) = self.probe(addr, self.home(addr));
            if !found {
                return None;
            }
            let removed = self.slots[hole].entry();
            self.probe
                .shift_back(&mut self.slots, hole, |s| s.addr == 0, |s| s.addr);
            removed
        };
        self.len -= 1;
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn entry(rule_id: u32) -> BlockEntry {
        BlockEntry {
            rule_id,
            expires_at_ns: u64::from(rule_id) * 10,
        }
    }

    #[test]
    fn a_full_table_refuses_new_hosts_but_replaces_and_takes_zero_in_turn() {
        let mut t = BlockedHosts::with_capacity(2);
        assert_eq!(t.insert(0, entry(1)), Ok(None));
        assert_eq!(t.insert(7, entry(2)), Ok(None));
        assert_eq!(t.insert(8, entry(3)), Err(TableError::Full { capacity: 2 }));
        assert_eq!(
            t.insert(7, entry(4)),
            Ok(Some(entry(2))),
            "a replacement fits"
        );
        assert_eq!(t.insert(0, entry(5)), Ok(Some(entry(1))));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(0), Some(entry(5)));
        assert_eq!(t.get(0), None);
        assert_eq!(t.insert(8, entry(6)), Ok(None), "the room freed is used");
        assert_eq!(t.insert(0, entry(7)), Err(TableError::Full { capacity: 2 }));
        assert_eq!((t.get(7), t.get(8)), (Some(entry(4)), Some(entry(6))));
    }

    proptest! {
        /// Inserts, replacements and removals against a HashMap, in a small
        /// table so that probe runs are long and removals shift them back;
        /// every lookup, single and in bulk, agrees after every step.
        #[test]
        fn agrees_with_a_hashmap(ops in proptest::collection::vec((0u8..3, 0u32..48, any::<u32>()), 1..400)) {
            let mut t = BlockedHosts::with_capacity(32);
            let mut m: HashMap<u32, BlockEntry> = HashMap::new();
            for (op, addr, rule) in ops {
                // Spread over the address space, 0 among them.
                let addr = addr.wrapping_mul(0x0101_0101);
                match op {
                    0 | 1 => {
                        let e = entry(rule);
                        let expected = if m.len() < 32 || m.contains_key(&addr) {
                            Ok(m.insert(addr, e))
                        } else {
                            Err(TableError::Full { capacity: 32 })
                        };
                        prop_assert_eq!(t.insert(addr, e), expected);
                    }
                    _ => prop_assert_eq!(t.remove(addr), m.remove(&addr)),
                }
                prop_assert_eq!(t.len(), m.len());
                let addrs: Vec<u32> = (0u32..48).map(|a| a.wrapping_mul(0x0101_0101)).collect();
                // Half the entries have expired at this time (rule * 10 ns).
                let now = u64::from(u32::MAX) * 5;
                let mut bulk = vec![None; addrs.len()];
                for chunk in 0..addrs.len().div_ceil(BULK_MAX) {
                    let at = chunk * BULK_MAX..((chunk + 1) * BULK_MAX).min(addrs.len());
                    t.find_bulk(&addrs[at.clone()], now, &mut bulk[at]);
                }
                for (a, found) in addrs.iter().zip(&bulk) {
                    prop_assert_eq!(t.get(*a), m.get(a).copied());
                    let live = m.get(a).filter(|e| now < e.expires_at_ns).map(|e| e.rule_id);
                    prop_assert_eq!(*found, live);
                }
            }
        }
    }
}
