//! Token buckets, kept per worker so they need no atomics: one per signature rule
//! with a rate-limit action, and a direct-mapped table of per-source buckets for a
//! traffic class (for example SYNs per source).

use super::prefix::Addr;
use crate::wire::TrafficClass;

/// A token bucket in nanosecond time: `rate` tokens per second, at most `burst`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenBucket {
    /// Tokens scaled by 2^16 so fractional refills are not lost.
    tokens: u64,
    last_ns: u64,
    /// The remainder of the last refill's division, so no fraction is ever lost.
    carry: u64,
    rate_per_sec: u64,
    burst: u64,
}

const SCALE: u64 = 1 << 16;

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u64, burst: u64, now_ns: u64) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            tokens: burst * SCALE,
            last_ns: now_ns,
            carry: 0,
            rate_per_sec,
            burst,
        }
    }

    /// Take one token if there is one.
    #[inline]
    pub fn allow(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        if elapsed > 0 {
            // rate * elapsed / 1e9 tokens in SCALE units, in 128 bits so no
            // realistic rate or gap overflows, carrying the remainder forward.
            let numerator = u128::from(self.rate_per_sec) * u128::from(elapsed) * u128::from(SCALE)
                + u128::from(self.carry);
            let added = u64::try_from(numerator / 1_000_000_000).unwrap_or(u64::MAX);
            self.carry = (numerator % 1_000_000_000) as u64;
            self.tokens = self.tokens.saturating_add(added).min(self.burst * SCALE);
            if self.tokens == self.burst * SCALE {
                self.carry = 0;
            }
            self.last_ns = now_ns;
        }
        if self.tokens >= SCALE {
            self.tokens -= SCALE;
            true
        } else {
            false
        }
    }
}

/// A per-source limit for one traffic class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLimit {
    pub class: TrafficClass,
    /// Packets per second per source (this worker's share).
    pub pps: u32,
    pub burst: u32,
    /// Reported as the rule that dropped the packet.
    pub rule_id: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct SourceSlot {
    source: u128,
    family_v6: bool,
    used: bool,
    bucket: TokenBucket,
}

/// Per-source token buckets in a fixed direct-mapped table. A source that lands on
/// a slot held by another takes it over with a full bucket: memory stays bounded
/// whatever the number of sources, at the price of forgetting idle ones. (Against
/// spoofed sources per-source limits are futile anyway; signatures handle those.)
#[derive(Debug, Clone)]
pub struct SourceRateLimiter {
    limit: Option<SourceLimit>,
    slots: Box<[SourceSlot]>,
    mask: usize,
    seed: u64,
    pub evictions: u64,
}

impl SourceRateLimiter {
    /// `slots` is rounded up to a power of two.
    pub fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        SourceRateLimiter {
            limit: None,
            slots: vec![SourceSlot::default(); n].into_boxed_slice(),
            mask: n - 1,
            seed: super::exact::random_u64() | 1,
            evictions: 0,
        }
    }

    /// Set or clear the limit; existing buckets are forgotten.
    pub fn set_limit(&mut self, limit: Option<SourceLimit>) {
        self.limit = limit;
        self.slots.fill(SourceSlot::default());
    }

    pub fn limit(&self) -> Option<SourceLimit> {
        self.limit
    }

    /// `Some(rule_id)` when a packet of `class` from `source` is over its limit.
    #[inline]
    pub fn check(&mut self, class: TrafficClass, source: Addr, now_ns: u64) -> Option<u32> {
        let limit = self.limit?;
        if limit.class != class {
            return None;
        }
        let (key, v6) = match source {
            Addr::V4(a) => (u128::from(a), false),
            Addr::V6(a) => (a, true),
        };
        // splitmix64's finaliser: every output bit depends on every input bit,
        // so a run of neighbouring addresses spreads over all slots. (A bare
        // multiply keeps low-bit patterns and, for some multipliers, folds a
        // /21 of sources onto a few hundred slots.)
        let mut h = (key as u64) ^ ((key >> 64) as u64).rotate_left(31) ^ u64::from(v6) ^ self.seed;
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let slot = &mut self.slots[h as usize & self.mask];
        if !slot.used || slot.source != key || slot.family_v6 != v6 {
            if slot.used {
                self.evictions += 1;
            }
            *slot = SourceSlot {
                source: key,
                family_v6: v6,
                used: true,
                bucket: TokenBucket::new(u64::from(limit.pps), u64::from(limit.burst), now_ns),
            };
        }
        if slot.bucket.allow(now_ns) {
            None
        } else {
            Some(limit.rule_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::new(1000, 10, 0);
        assert_eq!((0..20).filter(|_| b.allow(0)).count(), 10, "the burst");
        assert!(!b.allow(500_000), "half a token after 0.5 ms");
        assert!(b.allow(1_000_000), "one token after 1 ms");
        // One second later: capped at the burst.
        assert_eq!((0..2000).filter(|_| b.allow(1_001_000_000)).count(), 10);
        // A steady 1000 pps over one second of 1 µs ticks lets ~1000 through.
        let mut b = TokenBucket::new(1000, 1, 0);
        let passed = (0..1_000_000u64).filter(|t| b.allow(t * 1000)).count();
        assert!((999..=1001).contains(&passed), "{passed}");
    }

    #[test]
    fn neighbouring_sources_do_not_collide_whatever_the_seed() {
        // 2048 consecutive addresses (a /21 botnet) in 65536 slots: a good spread
        // evicts a few dozen; a bare multiply with an unlucky key evicts most.
        for _ in 0..64 {
            let mut r = SourceRateLimiter::new(65_536);
            r.set_limit(Some(SourceLimit {
                class: TrafficClass::TcpSyn,
                pps: 5,
                burst: 5,
                rule_id: 1,
            }));
            for round in 0..3 {
                for a in 0..2048u32 {
                    r.check(TrafficClass::TcpSyn, Addr::V4(0xc633_0000 + a), round);
                }
            }
            assert!(r.evictions < 400, "{} evictions", r.evictions);
        }
    }

    #[test]
    fn per_source_limits_only_their_class() {
        let mut r = SourceRateLimiter::new(1024);
        let limit = SourceLimit {
            class: TrafficClass::TcpSyn,
            pps: 10,
            burst: 5,
            rule_id: 77,
        };
        r.set_limit(Some(limit));
        let a = Addr::V4(0xc000_0201);
        let b = Addr::V4(0xc000_0202);
        let drops_a = (0..100)
            .filter(|_| r.check(TrafficClass::TcpSyn, a, 0).is_some())
            .count();
        assert_eq!(drops_a, 95);
        assert_eq!(
            r.check(TrafficClass::TcpSyn, b, 0),
            None,
            "another source has its own bucket"
        );
        assert_eq!(
            r.check(TrafficClass::Udp, a, 0),
            None,
            "other classes are not limited"
        );
        assert_eq!(r.check(TrafficClass::TcpSyn, a, 0), Some(77));
        r.set_limit(None);
        assert_eq!(r.check(TrafficClass::TcpSyn, a, 0), None);
    }
}
