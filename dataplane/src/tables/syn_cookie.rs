//! SYN authentication's challenge: a keyed cookie of a connection's 4-tuple
//! and a time slot, sent as the acknowledgement number of a SYN-ACK the worker
//! answers an unverified SYN with. The acknowledgement is wrong on purpose: a
//! real TCP stack in SYN-SENT answers an unacceptable SYN-ACK with an RST whose
//! sequence number is that acknowledgement (RFC 9293 3.10.7.3), and retransmits
//! its SYN; a spoofed source never sees the SYN-ACK, so it cannot send the RST.
//!
//! No state per challenge: the cookie is recomputed when the RST comes back.
//! The key is derived from a secret (from the OS) and the time slot, so it
//! rotates every slot; a cookie is accepted in its slot and the next. SipHash
//! (keyed, not invertible) so that a source that collects cookies for its own
//! addresses learns nothing about the key.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

/// A slot is 2^33 ns (about 8.6 s): a cookie is good for 8.6 to 17 s.
const SLOT_SHIFT: u32 = 33;

#[derive(Debug)]
pub struct SynCookies {
    secret: (u64, u64),
    slot: u64,
    /// The key of the current slot and of the one before.
    current: (u64, u64),
    previous: (u64, u64),
    /// Key changes so far.
    pub rotations: u64,
}

/// The two numbers a challenge carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The SYN-ACK's sequence number.
    pub seq: u32,
    /// The SYN-ACK's acknowledgement number: the cookie the RST must carry.
    pub cookie: u32,
}

fn os_random() -> (u64, u64) {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No OS random source readable: the process's randomly seeded hasher
        // rather than a fixed key.
        return (super::exact::random_u64(), super::exact::random_u64());
    }
    let (a, b) = bytes.split_at(8);
    (
        u64::from_le_bytes(a.try_into().unwrap_or_default()),
        u64::from_le_bytes(b.try_into().unwrap_or_default()),
    )
}

fn sip(key: (u64, u64), words: &[u64]) -> u64 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    for w in words {
        h.write_u64(*w);
    }
    h.finish()
}

impl SynCookies {
    /// Cookies under a secret from the OS's random source.
    pub fn random() -> Self {
        Self::with_secret(os_random())
    }

    pub fn with_secret(secret: (u64, u64)) -> Self {
        let mut c = SynCookies {
            secret,
            slot: 0,
            current: (0, 0),
            previous: (0, 0),
            rotations: 0,
        };
        c.current = c.key_of(0);
        c.previous = c.key_of(u64::MAX);
        c
    }

    fn key_of(&self, slot: u64) -> (u64, u64) {
        (
            sip(self.secret, &[slot, 0x6b65_795f_6c6f]),
            sip(self.secret, &[slot, 0x6b65_795f_6869]),
        )
    }

    #[inline]
    fn rotate_to(&mut self, now_ns: u64) {
        let slot = now_ns >> SLOT_SHIFT;
        if slot != self.slot {
            self.previous = if slot == self.slot + 1 {
                self.current
            } else {
                self.key_of(slot.wrapping_sub(1))
            };
            self.current = self.key_of(slot);
            self.slot = slot;
            self.rotations += 1;
        }
    }

    /// The keyed hash of a 4-tuple. Where both addresses' upper halves are
    /// zero (every IPv4-mapped one) they are left out: three words to hash
    /// instead of five, a fifth of the challenge path's hashing. The two
    /// encodings differ in length, which SipHash takes in, so none collide.
    #[inline]
    fn of(key: (u64, u64), client: u128, server: u128, ports: u32) -> u64 {
        let (client_high, server_high) = ((client >> 64) as u64, (server >> 64) as u64);
        if client_high | server_high == 0 {
            return sip(key, &[client as u64, server as u64, u64::from(ports)]);
        }
        sip(
            key,
            &[
                client as u64,
                client_high,
                server as u64,
                server_high,
                u64::from(ports),
            ],
        )
    }

    /// The challenge for a SYN from `client:client_port` to `server:server_port`
    /// (IPv4-mapped keys).
    #[inline]
    pub fn challenge(
        &mut self,
        client: u128,
        client_port: u16,
        server: u128,
        server_port: u16,
        now_ns: u64,
    ) -> Challenge {
        self.rotate_to(now_ns);
        let ports = u32::from(client_port) << 16 | u32::from(server_port);
        let h = Self::of(self.current, client, server, ports);
        Challenge {
            seq: (h >> 32) as u32,
            cookie: h as u32,
        }
    }

    /// Whether `value` (an RST's sequence number) is the cookie of a challenge
    /// of this slot or the last for that 4-tuple.
    #[inline]
    pub fn check(
        &mut self,
        client: u128,
        client_port: u16,
        server: u128,
        server_port: u16,
        value: u32,
        now_ns: u64,
    ) -> bool {
        self.rotate_to(now_ns);
        let ports = u32::from(client_port) << 16 | u32::from(server_port);
        Self::of(self.current, client, server, ports) as u32 == value
            || Self::of(self.previous, client, server, ports) as u32 == value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: u64 = 1 << SLOT_SHIFT;

    #[test]
    fn only_the_cookie_of_the_same_tuple_checks() {
        let mut c = SynCookies::with_secret((1, 2));
        let t = 1000 * SLOT;
        let ch = c.challenge(7, 40000, 9, 443, t);
        assert!(c.check(7, 40000, 9, 443, ch.cookie, t + 1));
        assert!(!c.check(7, 40000, 9, 443, ch.cookie ^ 1, t + 1));
        assert!(!c.check(8, 40000, 9, 443, ch.cookie, t + 1));
        assert!(!c.check(7, 40001, 9, 443, ch.cookie, t + 1));
        assert!(!c.check(7, 40000, 9, 80, ch.cookie, t + 1));
        // Another secret, another cookie.
        let mut other = SynCookies::with_secret((1, 3));
        assert!(!other.check(7, 40000, 9, 443, ch.cookie, t + 1));
        // IPv6 addresses (upper halves not zero) hash all their bits.
        let (v6, server6) = (0x2001_0db8u128 << 96 | 7, 0x2001_0db8u128 << 96 | 9);
        let ch6 = c.challenge(v6, 40000, server6, 443, t);
        assert!(c.check(v6, 40000, server6, 443, ch6.cookie, t + 1));
        assert!(!c.check(v6 ^ 1 << 100, 40000, server6, 443, ch6.cookie, t + 1));
        assert!(!c.check(v6, 40000, server6 ^ 1 << 127, 443, ch6.cookie, t + 1));
        assert_ne!(ch6.cookie, ch.cookie);
    }

    #[test]
    fn a_cookie_lives_through_one_key_rotation_and_not_two() {
        let mut c = SynCookies::with_secret((5, 6));
        let t = 77 * SLOT + SLOT - 10;
        let ch = c.challenge(1, 2, 3, 4, t);
        let r = c.rotations;
        assert!(c.check(1, 2, 3, 4, ch.cookie, t + 20), "next slot");
        assert_eq!(c.rotations, r + 1);
        assert_ne!(c.challenge(1, 2, 3, 4, t + 20).cookie, ch.cookie);
        assert!(
            !c.check(1, 2, 3, 4, ch.cookie, t + SLOT + 20),
            "two slots on"
        );
    }
}
