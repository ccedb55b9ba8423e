//! Synthetic traffic: well-formed Ethernet/IPv4 frames with correct checksums, and
//! a reproducible mix of small UDP and TCP frames for demos, tests and benchmarks.

use std::net::{Ipv4Addr, Ipv6Addr};

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

pub use crate::wire::checksum::ones_complement_sum;

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

/// Insert VLAN tags `(tpid, vlan id)` after the MAC addresses of an Ethernet frame.
pub fn with_vlan_tags(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for (tpid, id) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&frame[12..]);
    f
}

/// An Ethernet/IPv4/ICMP frame (type, code, 4 bytes rest-of-header, payload).
pub fn icmp_frame(e: &Endpoints, icmp_type: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![icmp_type, code, 0, 0, 0, 1, 0, 1];
    l4.extend_from_slice(payload);
    let sum = !ones_complement_sum(0, &l4);
    l4[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4_frame(e, 1, &l4)
}

/// A non-first IPv4 fragment at `offset_bytes` (a multiple of 8) of a datagram
/// of `protocol`, carrying `data`.
pub fn ipv4_later_fragment(
    e: &Endpoints,
    protocol: u8,
    offset_bytes: u16,
    more: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut f = ipv4_frame(e, protocol, data);
    let flags_frag = (offset_bytes / 8) | if more { 0x2000 } else { 0 };
    f[20..22].copy_from_slice(&flags_frag.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = !ones_complement_sum(0, &f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f
}

/// An Ethernet/IPv6 frame: fixed header with `next_header`, then `payload`
/// (extension headers and the upper layer, as given).
pub fn ipv6_frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    next_header: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.push(next_header);
    f.push(hop_limit);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(payload);
    f
}

/// A UDP datagram over IPv6 with a correct checksum.
pub fn udp6_frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + payload.len());
    l4.extend_from_slice(&src_port.to_be_bytes());
    l4.extend_from_slice(&dst_port.to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, PROTO_UDP]);
    let partial = u32::from(ones_complement_sum(0, &pseudo));
    let sum = !ones_complement_sum(partial, &l4);
    l4[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
    ipv6_frame(src, dst, 64, PROTO_UDP, &l4)
}

/// A frame of every shape levee distinguishes, each with the name of the traffic
/// class it must be counted under: IPv4 and IPv6, every TCP flag class, UDP from
/// each reflector port, ICMP, fragments, GRE, other IP, VLAN and QinQ tags, ARP.
pub fn labelled_mix(seed: u64) -> Vec<(Vec<u8>, &'static str)> {
    use crate::wire::{TrafficClass, REFLECTORS};
    let mut rng = Rng::new(seed);
    let mut endpoints = |dst_port: u16| Endpoints {
        src_mac: [0x02, 0, 0, 0, 0, 1],
        dst_mac: [0x02, 0, 0, 0, 0, 2],
        src: Ipv4Addr::from(0xcb00_7100u32 | (rng.below(256) as u32)),
        dst: Ipv4Addr::new(10, 0, 0, 1 + (rng.below(200) as u8)),
        src_port: 1024 + rng.below(50000) as u16,
        dst_port,
        ttl: 30 + rng.below(200) as u8,
    };
    let mut mix: Vec<(Vec<u8>, &'static str)> = Vec::new();
    for (flags, class) in [
        (tcp_flags::SYN, "tcp_syn"),
        (tcp_flags::SYN | tcp_flags::ACK, "tcp_syn_ack"),
        (tcp_flags::ACK, "tcp_ack"),
        (tcp_flags::ACK | tcp_flags::PSH, "tcp_ack"),
        (tcp_flags::RST, "tcp_rst"),
        (tcp_flags::RST | tcp_flags::ACK, "tcp_rst"),
        (tcp_flags::FIN | tcp_flags::ACK, "tcp_other"),
        (0, "tcp_other"),
    ] {
        mix.push((tcp_frame(&endpoints(443), flags, 1, 0, b"data"), class));
    }
    mix.push((udp_frame(&endpoints(27015), &[7; 40]), "udp"));
    for (port, reflector) in REFLECTORS {
        let e = Endpoints {
            src_port: *port,
            ..endpoints(40000)
        };
        let name = TrafficClass::Reflected(*reflector).name();
        mix.push((udp_frame(&e, &[0x5a; 200]), name));
    }
    mix.push((icmp_frame(&endpoints(0), 8, 0, &[1; 56]), "icmp"));
    mix.push((icmp_frame(&endpoints(0), 3, 3, &[2; 28]), "icmp"));
    mix.push((
        ipv4_later_fragment(&endpoints(0), PROTO_UDP, 1480, true, &[3; 200]),
        "fragment",
    ));
    mix.push((
        ipv4_later_fragment(&endpoints(0), PROTO_UDP, 2960, false, &[4; 100]),
        "fragment",
    ));
    mix.push((
        ipv4_frame(&endpoints(0), 47, &[0, 0, 0x08, 0x00, 0x45, 0, 0, 20]),
        "gre",
    ));
    mix.push((ipv4_frame(&endpoints(0), 50, &[0; 32]), "other_ip"));
    let vlan = udp_frame(
        &Endpoints {
            src_port: 123,
            ..endpoints(5000)
        },
        &[9; 468],
    );
    mix.push((with_vlan_tags(&vlan, &[(0x8100, 100)]), "udp_ntp"));
    mix.push((
        with_vlan_tags(&vlan, &[(0x88a8, 300), (0x8100, 42)]),
        "udp_ntp",
    ));
    let syn = tcp_frame(&endpoints(80), tcp_flags::SYN, 9, 0, &[]);
    mix.push((with_vlan_tags(&syn, &[(0x8100, 7)]), "tcp_syn"));
    let v6src: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    let v6dst: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    mix.push((udp6_frame(v6src, v6dst, 53, 33000, &[1; 300]), "udp_dns"));
    mix.push((udp6_frame(v6src, v6dst, 33000, 53, &[1; 30]), "udp"));
    mix.push((
        ipv6_frame(v6src, v6dst, 64, 58, &[128, 0, 0, 0, 0, 1, 0, 1]),
        "icmp",
    ));
    // IPv6 hop-by-hop (PadN) then a non-first fragment of UDP.
    let mut ext = vec![44, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[17, 0, 0x05, 0xa8, 0, 0, 0, 9]);
    ext.extend_from_slice(&[0; 64]);
    mix.push((ipv6_frame(v6src, v6dst, 64, 0, &ext), "fragment"));
    let mut arp = vec![
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06,
    ];
    arp.extend_from_slice(&[
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ]);
    arp.resize(60, 0);
    mix.push((arp, "non_ip"));
    mix
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
                4..=5 => (
                    MixKind::TcpSyn,
                    tcp_frame(&e, tcp_flags::SYN, rng.next_u64() as u32, 0, &[]),
                ),
                6..=8 => (
                    MixKind::TcpAck,
                    tcp_frame(&e, tcp_flags::ACK | tcp_flags::PSH, 1, 1, &payload),
                ),
                _ => (
                    MixKind::UdpDns,
                    udp_frame(&Endpoints { dst_port: 53, ..e }, &payload),
                ),
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
        assert_eq!(
            ones_complement_sum(0, &f[14..34]),
            0xffff,
            "header sums to all ones"
        );
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
        for kind in [
            MixKind::UdpSmall,
            MixKind::TcpSyn,
            MixKind::TcpAck,
            MixKind::UdpDns,
        ] {
            assert!(a.iter().any(|(_, k, _)| *k == kind), "{kind:?} present");
        }
    }
}
