//! Sources that proved they are real: by completing a TCP handshake with a
//! protected server, or by answering a SYN authentication challenge. A
//! class-wide SYN rate limit or SYN authentication lets their new connections
//! through.
//!
//! A spoofed source never sees the server's SYN-ACK, so it cannot send the ACK
//! that acknowledges it: the worker remembers each outbound SYN-ACK's sequence
//! number by (client, port), and an inbound ACK that acknowledges it verifies the
//! client for a while. The pending handshakes are a fixed array indexed by a
//! keyed hash (a newer entry replaces an older one in its slot); the verified
//! sources a [`FingerprintTable`] that refuses (and counts) when full, so a
//! flood cannot push verified sources out. Allocated once, owned by one
//! worker: no allocation, no lock, constant work per packet.

use super::exact::{random_u64, TableKey};
use super::fingerprints::{seconds, FingerprintTable, Insertion};

/// How long a completed handshake vouches for its source.
pub const VERIFIED_FOR_NS: u64 = 600 * 1_000_000_000;
/// How long an unanswered SYN-ACK is remembered.
const PENDING_FOR_NS: u64 = 10 * 1_000_000_000;
const HASH_M: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    client: u128,
    port: u16,
    expected_ack: u32,
    until_ns: u64,
}

#[derive(Clone, Debug)]
pub struct HandshakeTracker {
    pending: Box<[Pending]>,
    verified: FingerprintTable,
    pending_mask: usize,
    seed: u64,
    /// Handshakes completed (sources verified or refreshed).
    pub completed: u64,
    /// Sources verified by a challenge's answer.
    pub answered: u64,
}

impl HandshakeTracker {
    /// The NUMA node of the verified sources' table, if the kernel says.
    pub fn memory_node(&self) -> Option<u32> {
        self.verified.memory_node()
    }

    /// Room for about `pending` handshakes in flight and `verified` sources
    /// (each rounded up to a power of two).
    pub fn new(pending: usize, verified: usize) -> HandshakeTracker {
        let pending = pending.max(2).next_power_of_two();
        HandshakeTracker {
            pending: vec![Pending::default(); pending].into_boxed_slice(),
            verified: FingerprintTable::new(verified),
            pending_mask: pending - 1,
            seed: random_u64(),
            completed: 0,
            answered: 0,
        }
    }

    #[inline(always)]
    fn pending_slot(&self, client: u128, port: u16) -> usize {
        (client ^ (u128::from(port) << 64 | u128::from(port))).hash(HASH_M, self.seed) as usize
            & self.pending_mask
    }

    #[inline(always)]
    fn fingerprint(&self, source: u128) -> u64 {
        source.hash(HASH_M, self.seed.rotate_left(29))
    }

    /// Vouch for `source` for [`VERIFIED_FOR_NS`]; false when the table had
    /// no room (counted in [`HandshakeTracker::refused`]).
    #[inline]
    fn vouch(&mut self, source: u128, now_ns: u64) -> bool {
        let until = seconds(now_ns.saturating_add(VERIFIED_FOR_NS));
        let f = self.fingerprint(source);
        self.verified.insert(f, until, seconds(now_ns)) != Insertion::Full
    }

    /// `source` answered a challenge: it is verified.
    #[inline]
    pub fn challenge_answered(&mut self, source: u128, now_ns: u64) -> bool {
        self.answered += 1;
        self.vouch(source, now_ns)
    }

    /// Verifications refused because the verified table was full.
    pub fn refused(&self) -> u64 {
        self.verified.refused
    }

    /// Room in the verified table.
    pub fn verified_capacity(&self) -> usize {
        self.verified.capacity()
    }

    /// A protected server answered `client:port`'s SYN with sequence number `seq`.
    #[inline]
    pub fn syn_ack_sent(&mut self, client: u128, port: u16, seq: u32, now_ns: u64) {
        let slot = self.pending_slot(client, port);
        self.pending[slot] = Pending {
            client,
            port,
            expected_ack: seq.wrapping_add(1),
            until_ns: now_ns.saturating_add(PENDING_FOR_NS),
        };
    }

    /// `source:port` sent an ACK (without SYN) acknowledging `ack`.
    #[inline]
    pub fn ack_received(&mut self, source: u128, port: u16, ack: u32, now_ns: u64) {
        let slot = self.pending_slot(source, port);
        let p = self.pending[slot];
        if p.until_ns > now_ns && p.client == source && p.port == port && p.expected_ack == ack {
            self.pending[slot].until_ns = 0;
            self.vouch(source, now_ns);
            self.completed += 1;
        }
    }

    /// Hint that [`HandshakeTracker::verified`] will be asked about `source`
    /// soon: a flood's new sources each take a cache miss in the table of
    /// verified ones, and a burst's misses then overlap.
    #[inline(always)]
    pub fn prefetch_verified(&self, source: u128) {
        self.verified.prefetch(self.fingerprint(source));
    }

    /// Whether `source` completed a handshake recently.
    #[inline]
    pub fn verified(&self, source: u128, now_ns: u64) -> bool {
        self.verified
            .contains(self.fingerprint(source), seconds(now_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn only_the_ack_of_the_servers_syn_ack_verifies() {
        let mut t = HandshakeTracker::new(1024, 1024);
        let client = 0xc633_6407u128;
        t.syn_ack_sent(client, 40000, 1000, S);
        // Wrong port, wrong number, wrong source: nothing.
        t.ack_received(client, 40001, 1001, S);
        t.ack_received(client, 40000, 1000, S);
        t.ack_received(client + 1, 40000, 1001, S);
        assert!(!t.verified(client, S));
        t.ack_received(client, 40000, 1001, S + 1);
        assert!(t.verified(client, S + 2));
        assert_eq!(t.completed, 1);
        // A replayed ACK does not count twice; the vouching ends.
        t.ack_received(client, 40000, 1001, S + 3);
        assert_eq!(t.completed, 1);
        assert!(!t.verified(client, S + 1 + VERIFIED_FOR_NS + S));
    }

    #[test]
    fn a_full_verified_table_refuses_counts_and_keeps_what_it_holds() {
        let mut t = HandshakeTracker::new(16, 4);
        let capacity = t.verified_capacity() as u128;
        let mut held = Vec::new();
        for source in 1..=capacity * 8 {
            if t.challenge_answered(source, S) {
                held.push(source);
            }
        }
        assert!(
            t.refused() > 0,
            "a table of {capacity} took {} sources",
            held.len()
        );
        assert_eq!(held.len() as u64 + t.refused(), (capacity * 8) as u64);
        assert!(held.iter().all(|s| t.verified(*s, S + 1)));
    }

    #[test]
    fn an_ack_after_the_syn_ack_was_forgotten_verifies_nothing() {
        let mut t = HandshakeTracker::new(16, 16);
        t.syn_ack_sent(7, 80, u32::MAX, S);
        t.ack_received(7, 80, 0, S + PENDING_FOR_NS + 1);
        assert!(!t.verified(7, S + PENDING_FOR_NS + 2));
        // The sequence number wraps.
        t.syn_ack_sent(7, 80, u32::MAX, S);
        t.ack_received(7, 80, 0, S + 1);
        assert!(t.verified(7, S + 2));
    }

    #[test]
    fn spoofed_acks_without_syn_acks_verify_nobody() {
        let mut t = HandshakeTracker::new(4096, 4096);
        let mut x = 12345u64;
        for i in 0..100_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t.ack_received(u128::from(x >> 32), (x >> 16) as u16, x as u32, S + i);
        }
        assert_eq!(t.completed, 0);
    }
}
