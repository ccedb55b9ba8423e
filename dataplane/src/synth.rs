//! Synthetic traffic: well-formed Ethernet/IPv4 frames with correct checksums, and
//! a reproducible mix of small UDP and TCP frames for demos, tests and benchmarks.

use std::net::Ipv4Addr;

/// IPv4 protocol numbers used here.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// Addressing of a frame.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
}

/// An Ethernet/IPv4/UDP frame carrying `payload`.
pub fn udp_frame(e: &Endpoints, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + payload.len());
    l4.extend_from_slice(&e.src_port.to_be_bytes());
    l4.extend_from_slice(&e.dst_port.to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    let sum = transport_checksum(e.src, e.dst, PROTO_UDP, &l4);
    l4[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
    ipv4_frame(e, PROTO_UDP, &l4)
}

/// An Ethernet/IPv4/TCP frame (20-byte header) with `flags` and `payload`.
pub fn tcp_frame(e: &Endpoints, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(20 + payload.len());
    l4.extend_from_slice(&e.src_port.to_be_bytes());
    l4.extend_from_slice(&e.dst_port.to_be_bytes());
    l4.extend_from_slice(&seq.to_be_bytes());
    l4.extend_from_slice(&ack.to_be_bytes());
    l4.push(5 << 4);
    l4.push(flags);
    l4.extend_from_slice(&65535u16.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 0]);
    l4.extend_from_slice(payload);
    let sum = transport_checksum(e.src, e.dst, PROTO_TCP, &l4);
    l4[16..18].copy_from_slice(&sum.to_be_bytes());
    ipv4_frame(e, PROTO_TCP, &l4)
}

/// Wrap an L4 segment in IPv4 (no options, DF clear) and Ethernet II.
pub fn ipv4_frame(e: &Endpoints, protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 20 + l4.len());
    f.extend_from_slice(&e.dst_mac);
    f.extend_from_slice(&e.src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + l4.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = e.ttl;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&e.src.octets());
    ip[16..20].copy_from_slice(&e.dst.octets());
    let sum = !ones_complement_sum(0, &ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    // Pad to the Ethernet minimum (without FCS), as a NIC would.
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// The 16-bit one's complement sum of `data` added to `initial`, folded.
pub fn ones_complement_sum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn transport_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = protocol;
    pseudo[10..12].copy_from_slice(&(segment.len() as u16).to_be_bytes());
    let partial = u32::from(ones_complement_sum(0, &pseudo));
    !ones_complement_sum(partial, segment)
}

/// A small, fast, reproducible PRNG (xorshift64*), so generated captures are the
/// same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The kinds of frame in [`mixed_small_traffic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixKind {
    UdpSmall,
    TcpSyn,
    TcpAck,
    UdpDns,
}

/// A reproducible mix of small frames (60-128 bytes): UDP, TCP SYN and ACK, DNS-like
/// UDP, from many sources in 198.18.0.0/15 (the benchmarking range) to hosts in
/// 10.0.0.0/24, spaced 10 µs apart from `start_ns`.
pub fn mixed_small_traffic(count: usize, seed: u64, start_ns: u64) -> Vec<(u64, MixKind, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let src = Ipv4Addr::from(0xc612_0000u32 | (rng.below(1 << 17) as u32));
            let dst = Ipv4Addr::new(10, 0, 0, 1 + rng.below(254) as u8);
            let e = Endpoints {
                src_mac: [0x02, 0, 0, 0, 0, 1],
                dst_mac: [0x02, 0, 0, 0, 0, 2],
                src,
                dst,
                src_port: 1024 + rng.below(60000) as u16,
                dst_port: [80, 443, 53, 27015][rng.below(4) as usize],
                ttl: 48 + rng.below(16) as u8,
            };
            let payload_len = rng.below(60) as usize;
            let payload: Vec<u8> = (0..payload_len).map(|_| rng.next_u64() as u8).collect();
            let (kind, frame) = match rng.below(10) {
                0..=3 => (MixKind::UdpSmall, udp_frame(&e, &payload)),
                4..=5 => (MixKind::TcpSyn, tcp_frame(&e, tcp_flags::SYN, rng.next_u64() as u32, 0, &[])),
                6..=8 => (MixKind::TcpAck, tcp_frame(&e, tcp_flags::ACK | tcp_flags::PSH, 1, 1, &payload)),
                _ => (MixKind::UdpDns, udp_frame(&Endpoints { dst_port: 53, ..e }, &payload)),
            };
            (start_ns + i as u64 * 10_000, kind, frame)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let e = Endpoints {
            src_mac: [2; 6],
            dst_mac: [4; 6],
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(10, 0, 0, 1),
            src_port: 1234,
            dst_port: 53,
            ttl: 64,
        };
        let f = udp_frame(&e, b"hello");
        assert_eq!(ones_complement_sum(0, &f[14..34]), 0xffff, "header sums to all ones");
        assert_eq!(f.len(), 60, "padded to the Ethernet minimum");
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[23], PROTO_UDP);
    }

    #[test]
    fn mix_is_reproducible_and_small() {
        let a = mixed_small_traffic(500, 7, 0);
        let b = mixed_small_traffic(500, 7, 0);
        assert_eq!(a, b);
        assert!(a.iter().all(|(_, _, f)| (60..=128).contains(&f.len())));
        for kind in [MixKind::UdpSmall, MixKind::TcpSyn, MixKind::TcpAck, MixKind::UdpDns] {
            assert!(a.iter().any(|(_, k, _)| *k == kind), "{kind:?} present");
        }
    }
}
