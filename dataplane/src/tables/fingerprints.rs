//! A fixed-size set of 64-bit fingerprints, each with an expiry: the shape of
//! every per-worker state table of the TCP defences (verified sources, known
//! connections). Four ways per bucket, one cache line per bucket; an insertion
//! into a bucket whose four entries are all live is refused and counted
//! (never an eviction: a flood must not push the legitimate entries out).
//! Allocated once, owned by one worker: no allocation, no lock, one cache line
//! read per lookup.

const WAYS: usize = 4;

#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// 0 marks an empty way (fingerprints always have their low bit set).
    tags: [u64; WAYS],
    /// Expiry in whole seconds of the pipeline clock.
    until_s: [u32; WAYS],
}

/// What an insertion did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insertion {
    Added,
    Refreshed,
    /// The bucket holds four live entries: nothing was stored.
    Full,
}

#[derive(Clone, Debug)]
pub struct FingerprintTable {
    buckets: Box<[Bucket]>,
    mask: usize,
    /// Insertions refused because their bucket was full.
    pub refused: u64,
}

/// Seconds of a pipeline time in ns (u32 holds them until 2106).
#[inline(always)]
pub fn seconds(now_ns: u64) -> u32 {
    (now_ns / 1_000_000_000) as u32
}

impl FingerprintTable {
    /// The NUMA node of the buckets (their middle page), if the kernel says.
    pub fn memory_node(&self) -> Option<u32> {
        crate::cpu::memory_node(&self.buckets[self.buckets.len() / 2])
    }

    /// Room for about `entries` fingerprints (rounded up to whole buckets, a
    /// power of two of them).
    pub fn new(entries: usize) -> Self {
        let buckets = entries.div_ceil(WAYS).max(1).next_power_of_two();
        FingerprintTable {
            buckets: vec![Bucket::default(); buckets].into_boxed_slice(),
            mask: buckets - 1,
            refused: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    #[inline(always)]
    fn bucket(&self, fingerprint: u64) -> usize {
        // The high bits choose the bucket; the whole value is the tag.
        (fingerprint >> 40) as usize & self.mask
    }

    /// Store `fingerprint` until `until_s` (or push its expiry out to it).
    #[inline]
    pub fn insert(&mut self, fingerprint: u64, until_s: u32, now_s: u32) -> Insertion {
        let tag = fingerprint | 1;
        let b = self.bucket(tag);
        let bucket = &mut self.buckets[b];
        let mut free = None;
        for w in 0..WAYS {
            if bucket.tags[w] == tag {
                bucket.until_s[w] = bucket.until_s[w].max(until_s);
                return Insertion::Refreshed;
            }
            if free.is_none() && (bucket.tags[w] == 0 || bucket.until_s[w] <= now_s) {
                free = Some(w);
            }
        }
        match free {
            Some(w) => {
                bucket.tags[w] = tag;
                bucket.until_s[w] = until_s;
                Insertion::Added
            }
            None => {
                self.refused += 1;
                Insertion::Full
            }
        }
    }

    /// Hint that `fingerprint`'s bucket will be read soon.
    #[inline(always)]
    pub fn prefetch(&self, fingerprint: u64) {
        if let Some(bucket) = self.buckets.get(self.bucket(fingerprint | 1)) {
            crate::cpu::prefetch(bucket);
        }
    }

    /// Whether `fingerprint` is held and not expired.
    #[inline]
    pub fn contains(&self, fingerprint: u64, now_s: u32) -> bool {
        let tag = fingerprint | 1;
        let bucket = &self.buckets[self.bucket(tag)];
        (0..WAYS).any(|w| bucket.tags[w] == tag && bucket.until_s[w] > now_s)
    }

    /// Forget `fingerprint` (a connection reset).
    #[inline]
    pub fn remove(&mut self, fingerprint: u64) {
        let tag = fingerprint | 1;
        let b = self.bucket(tag);
        let bucket = &mut self.buckets[b];
        for w in 0..WAYS {
            if bucket.tags[w] == tag {
                bucket.tags[w] = 0;
            }
        }
    }

    /// Live entries (a scan: for tests and reports, not the packet path).
    pub fn live(&self, now_s: u32) -> usize {
        self.buckets
            .iter()
            .map(|b| {
                (0..WAYS)
                    .filter(|w| b.tags[*w] != 0 && b.until_s[*w] > now_s)
                    .count()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_until_they_expire_and_refresh_in_place() {
        let mut t = FingerprintTable::new(64);
        assert_eq!(t.insert(42 << 40, 100, 10), Insertion::Added);
        assert!(t.contains(42 << 40, 99));
        assert!(!t.contains(42 << 40, 100));
        assert!(!t.contains(43 << 40, 50));
        assert_eq!(t.insert(42 << 40, 200, 50), Insertion::Refreshed);
        assert!(t.contains(42 << 40, 150));
        t.remove(42 << 40);
        assert!(!t.contains(42 << 40, 150));
    }

    #[test]
    fn a_full_bucket_refuses_and_counts_and_an_expired_way_is_reused() {
        let mut t = FingerprintTable::new(4); // one bucket
        for i in 0..4u64 {
            assert_eq!(t.insert((i + 1) << 1, 100, 0), Insertion::Added);
        }
        assert_eq!(t.insert(99 << 1, 100, 0), Insertion::Full);
        assert_eq!(t.refused, 1);
        assert!(!t.contains(99 << 1, 1));
        // Every earlier entry is still there: nothing was evicted.
        assert!((0..4u64).all(|i| t.contains((i + 1) << 1, 1)));
        // Once they expire, the way is free again.
        assert_eq!(t.insert(99 << 1, 300, 100), Insertion::Added);
        assert!(t.contains(99 << 1, 101));
        assert_eq!(t.live(101), 1);
    }
}
