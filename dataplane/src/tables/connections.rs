//! The TCP connections of the protected hosts, as one worker sees them, so that
//! during an ACK, RST or flag flood the segments of no known connection can be
//! dropped (out-of-state TCP).
//!
//! A connection is learnt from the protected side: every TCP segment a
//! protected host sends (a SYN-ACK to a new client, the SYN of a connection it
//! opens, data, ACKs) records its 4-tuple for [`IDLE_FOR_NS`]; an RST it sends
//! forgets it. A host only sends on connections it has, so spoofed segments can
//! never enter the table. Both directions of a connection reach the same
//! worker (the symmetric RSS key), so each worker's table is complete for its
//! share of the traffic.
//!
//! Connections older than the table (open before levee started, and silent
//! since) cannot be known: for [`ConnectionTable::grace_ns`] after the table
//! starts, segments of unknown connections are let through (and counted).

use super::exact::{random_u64, TableKey};
use super::fingerprints::{seconds, FingerprintTable, Insertion};
use crate::wire::PacketMeta;

/// How long a connection stays known after its protected end last sent.
pub const IDLE_FOR_NS: u64 = 300 * 1_000_000_000;
const HASH_M: u64 = 0xd6e8_feb8_6659_fd93;

#[derive(Clone, Debug)]
pub struct ConnectionTable {
    table: FingerprintTable,
    seed: u64,
    /// When the table saw its first segment (0: not yet).
    started_ns: u64,
    /// How long after the start unknown segments still pass.
    pub grace_ns: u64,
}

impl ConnectionTable {
    /// The NUMA node of the table, if the kernel says.
    pub fn memory_node(&self) -> Option<u32> {
        self.table.memory_node()
    }

    pub fn new(entries: usize, grace_ns: u64) -> Self {
        ConnectionTable {
            table: FingerprintTable::new(entries),
            seed: random_u64(),
            started_ns: 0,
            grace_ns,
        }
    }

    #[inline(always)]
    fn fingerprint(
        &self,
        remote: &[u8; 16],
        remote_port: u16,
        local: &[u8; 16],
        local_port: u16,
    ) -> u64 {
        let r = u128::from_be_bytes(*remote);
        let l = u128::from_be_bytes(*local);
        let ports = u128::from(u32::from(remote_port) << 16 | u32::from(local_port));
        (r ^ l.rotate_left(61) ^ ports << 96).hash(HASH_M, self.seed)
            ^ l.hash(HASH_M, self.seed.rotate_left(23))
    }

    /// A TCP segment a protected host sent (`m.src` is the protected end).
    #[inline]
    pub fn sent(&mut self, m: &PacketMeta, now_ns: u64) {
        use crate::wire::tcp::flags::RST;
        if self.started_ns == 0 {
            self.started_ns = now_ns.max(1);
        }
        let f = self.fingerprint(&m.dst, m.dst_port, &m.src, m.src_port);
        if m.tcp_flags & RST != 0 {
            self.table.remove(f);
        } else {
            let _: Insertion = self.table.insert(
                f,
                seconds(now_ns.saturating_add(IDLE_FOR_NS)),
                seconds(now_ns),
            );
        }
    }

    /// Whether an inbound TCP segment (`m.dst` is the protected end) belongs
    /// to a known connection.
    #[inline]
    pub fn knows(&self, m: &PacketMeta, now_ns: u64) -> bool {
        let f = self.fingerprint(&m.src, m.src_port, &m.dst, m.dst_port);
        self.table.contains(f, seconds(now_ns))
    }

    /// Whether connections older than the table may still be unknown to it.
    #[inline]
    pub fn in_grace(&self, now_ns: u64) -> bool {
        self.started_ns == 0 || now_ns < self.started_ns.saturating_add(self.grace_ns)
    }

    /// Connections the table had no room for.
    pub fn refused(&self) -> u64 {
        self.table.refused
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Live connections (a scan: for tests).
    pub fn live(&self, now_ns: u64) -> usize {
        self.table.live(seconds(now_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::flags::{ACK, PSH, RST, SYN};
    use crate::wire::L3Family;

    const S: u64 = 1_000_000_000;

    fn seg(src: u128, sport: u16, dst: u128, dport: u16, flags: u8) -> PacketMeta {
        PacketMeta {
            family: L3Family::Ipv4,
            protocol: 6,
            src: src.to_be_bytes(),
            dst: dst.to_be_bytes(),
            src_port: sport,
            dst_port: dport,
            tcp_flags: flags,
            ..PacketMeta::default()
        }
    }

    #[test]
    fn the_servers_segments_make_a_connection_known_and_its_rst_forgets_it() {
        let mut t = ConnectionTable::new(1024, 10 * S);
        let (server, client) = (0xffff_0a00_0001u128, 0xffff_c633_6414u128);
        let t0 = 1_000 * S;
        assert!(t.in_grace(t0));
        t.sent(&seg(server, 443, client, 41000, SYN | ACK), t0);
        assert!(t.in_grace(t0 + 9 * S));
        assert!(!t.in_grace(t0 + 10 * S));
        assert!(t.knows(&seg(client, 41000, server, 443, ACK), t0 + S));
        // Another port, another client, the reverse roles: unknown.
        assert!(!t.knows(&seg(client, 41001, server, 443, ACK), t0 + S));
        assert!(!t.knows(&seg(client + 1, 41000, server, 443, ACK), t0 + S));
        assert!(!t.knows(&seg(server, 443, client, 41000, ACK), t0 + S));
        // It is forgotten when idle, and kept alive by the server's segments.
        assert!(!t.knows(&seg(client, 41000, server, 443, ACK), t0 + IDLE_FOR_NS + S));
        t.sent(
            &seg(server, 443, client, 41000, PSH | ACK),
            t0 + IDLE_FOR_NS,
        );
        assert!(t.knows(&seg(client, 41000, server, 443, ACK), t0 + IDLE_FOR_NS + S));
        t.sent(&seg(server, 443, client, 41000, RST), t0 + IDLE_FOR_NS + S);
        assert!(!t.knows(
            &seg(client, 41000, server, 443, ACK),
            t0 + IDLE_FOR_NS + 2 * S
        ));
    }

    #[test]
    fn a_full_table_refuses_and_counts() {
        let mut t = ConnectionTable::new(8, 0);
        let server = 0xffff_0a00_0001u128;
        for port in 1..=1000u16 {
            t.sent(&seg(server, 443, 0xffff_c633_6414, port, ACK), S);
        }
        assert!(t.refused() > 0);
        assert_eq!(t.live(S) as u64 + t.refused(), 1000);
    }
}
