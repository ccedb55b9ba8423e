//! Per-source accounting toward targets under attack: a fixed-size table of one
//! worker, counting each source's packets of the attack's classes per second.
//! A source that goes over its limit is reported once in that second; the table
//! never allocates and needs no clearing (a slot of an earlier second is free).

use crate::tables::fold_hash;

/// Seconds are the accounting period: limits are in packets per second.
const PERIOD_NS: u64 = 1_000_000_000;
/// Slots probed before a source is given up on (and counted as overflow).
const PROBES: usize = 8;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    src: u128,
    /// The second this slot counts (0: never used).
    epoch: u32,
    target: u16,
    packets: u32,
}

/// One worker's per-source counters.
#[derive(Clone, Debug)]
pub struct SourceAccounting {
    slots: Box<[Slot]>,
    mask: usize,
    /// Sources that found no slot.
    pub overflow: u64,
}

impl SourceAccounting {
    /// The NUMA node of the slots (their middle page), if the kernel says.
    pub fn memory_node(&self) -> Option<u32> {
        crate::cpu::memory_node(&self.slots[self.slots.len() / 2])
    }

    /// A table of `capacity` slots (rounded up to a power of two).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(PROBES).next_power_of_two();
        SourceAccounting {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            mask: n - 1,
            overflow: 0,
        }
    }

    /// Count one packet of `src` toward watched target `target`; returns its
    /// count this second when that count just went over `limit` (once per
    /// second per source and target), `None` otherwise.
    #[inline]
    pub fn count(&mut self, src: u128, target: u16, limit: u32, now_ns: u64) -> Option<u32> {
        // +1 so that no live slot has epoch 0.
        let epoch = ((now_ns / PERIOD_NS) as u32).wrapping_add(1);
        let h = fold_hash(src, u64::from(target));
        let start = (h >> 40) as usize;
        for i in 0..PROBES {
            let slot = &mut self.slots[(start + i) & self.mask];
            if slot.epoch == epoch && slot.src == src && slot.target == target {
                slot.packets = slot.packets.saturating_add(1);
                return (slot.packets == limit.saturating_add(1)).then_some(slot.packets);
            }
            if slot.epoch != epoch {
                *slot = Slot {
                    src,
                    epoch,
                    target,
                    packets: 1,
                };
                return (limit == 0).then_some(1);
            }
        }
        self.overflow += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_reported_once_a_second_when_it_goes_over() {
        let mut a = SourceAccounting::new(64);
        let t0 = 5 * PERIOD_NS;
        let over: Vec<u32> = (0..30).filter_map(|_| a.count(7, 0, 10, t0)).collect();
        assert_eq!(over, [11]);
        // Another target is counted apart; the next second starts afresh.
        assert_eq!((0..11).filter_map(|_| a.count(7, 1, 10, t0)).count(), 1);
        assert_eq!(
            (0..10)
                .filter_map(|_| a.count(7, 0, 10, t0 + PERIOD_NS))
                .count(),
            0
        );
        assert_eq!(a.count(7, 0, 10, t0 + PERIOD_NS), Some(11));
    }

    #[test]
    fn a_full_neighbourhood_counts_overflow_instead_of_evicting() {
        let mut a = SourceAccounting::new(8);
        for src in 0..8u128 {
            a.count(src, 0, 100, PERIOD_NS);
        }
        assert_eq!(a.overflow, 0);
        a.count(1000, 0, 100, PERIOD_NS);
        assert_eq!(a.overflow, 1);
        // A second later every slot is free again.
        a.count(1000, 0, 100, 2 * PERIOD_NS);
        assert_eq!(a.overflow, 1);
    }
}
