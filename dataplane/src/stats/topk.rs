//! Space-Saving (Metwally et al.): the heaviest sources of a stream in K counters,
//! with sample-and-hold admission (Estan and Varghese) for newcomers.
//!
//! A key already tracked is counted exactly, at the cost of one hash probe. A key
//! not tracked while the sketch is full replaces the minimum only once in
//! [`ADMIT_ONE_IN`] such arrivals, carrying that many arrivals' weight: under a
//! spoofed flood (every packet a new source) plain Space-Saving would scan for
//! the minimum on every packet, which costs more than everything else a worker
//! does per packet. A source heavier than N/K still enters after a handful of its
//! packets and is then counted exactly; `error` bounds the overestimate.

use crate::tables::ExactTable;

/// Newcomers to a full sketch: one in this many replaces the minimum.
pub const ADMIT_ONE_IN: u32 = 8;

/// One tracked key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeavyHitter {
    pub key: u128,
    pub count: u64,
    /// Upper bound of the overestimate in `count`.
    pub error: u64,
}

/// A Space-Saving sketch over u128 keys (addresses, IPv4-mapped), preallocated.
#[derive(Clone, Debug)]
pub struct SpaceSaving {
    admit_countdown: u32,
    keys: Box<[u128]>,
    counts: Box<[u64]>,
    errors: Box<[u64]>,
    len: usize,
    index: ExactTable<u128, u32>,
}

impl SpaceSaving {
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        SpaceSaving {
            admit_countdown: ADMIT_ONE_IN,
            keys: vec![0; k].into_boxed_slice(),
            counts: vec![0; k].into_boxed_slice(),
            errors: vec![0; k].into_boxed_slice(),
            len: 0,
            index: ExactTable::with_capacity(k),
        }
    }

    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Count `weight` occurrences of `key`. Never allocates.
    #[inline]
    pub fn add(&mut self, key: u128, weight: u64) {
        if let Some(i) = self.index.get(&key) {
            self.counts[*i as usize] += weight;
            return;
        }
        if self.len < self.keys.len() {
            let i = self.len;
            self.keys[i] = key;
            self.counts[i] = weight;
            self.errors[i] = 0;
            // Capacity is K and at most K keys are ever indexed.
            let _ = self.index.insert(key, i as u32);
            self.len += 1;
            return;
        }
        self.admit_countdown -= 1;
        if self.admit_countdown != 0 {
            return;
        }
        self.admit_countdown = ADMIT_ONE_IN;
        let weight = weight * u64::from(ADMIT_ONE_IN);
        // Replace the minimum: the newcomer inherits its count as error bound.
        let (i, min) = self
            .counts
            .iter()
            .enumerate()
            .fold(
                (0, u64::MAX),
                |(bi, bm), (i, c)| if *c < bm { (i, *c) } else { (bi, bm) },
            );
        self.index.remove(&self.keys[i]);
        self.keys[i] = key;
        self.counts[i] = min + weight;
        self.errors[i] = min;
        let _ = self.index.insert(key, i as u32);
    }

    /// The tracked keys, heaviest first (allocates: for the control plane).
    pub fn top(&self) -> Vec<HeavyHitter> {
        let mut v: Vec<HeavyHitter> = (0..self.len)
            .map(|i| HeavyHitter {
                key: self.keys[i],
                count: self.counts[i],
                error: self.errors[i],
            })
            .collect();
        v.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
        v
    }

    pub fn clear(&mut self) {
        if self.len > 0 {
            self.index.clear();
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;

    #[test]
    fn heavy_sources_are_found_with_bounded_error() {
        let mut s = SpaceSaving::new(32);
        let mut rng = Rng::new(5);
        let mut truth = std::collections::HashMap::new();
        let n = 200_000u64;
        for _ in 0..n {
            // 5 heavy sources (40% of traffic) among 100 000 light ones.
            let key = if rng.below(10) < 4 {
                u128::from(rng.below(5))
            } else {
                1000 + u128::from(rng.below(100_000))
            };
            *truth.entry(key).or_insert(0u64) += 1;
            s.add(key, 1);
        }
        let top = s.top();
        for heavy in 0..5u128 {
            let hit = top
                .iter()
                .find(|h| h.key == heavy)
                .expect("every heavy source is tracked");
            let real = truth[&heavy];
            // Admission may miss a few of a newcomer's first packets; once held,
            // it is counted exactly, and the error bound covers the inherited count.
            assert!(
                hit.count + u64::from(ADMIT_ONE_IN) * 4 >= real,
                "{hit:?} vs {real}"
            );
            assert!(
                hit.count.saturating_sub(hit.error) <= real,
                "{hit:?} vs {real}"
            );
        }
        assert_eq!(
            top.iter().take(5).filter(|h| h.key < 5).count(),
            5,
            "the heavy ones rank first"
        );
        s.clear();
        assert!(s.top().is_empty());
    }
}
