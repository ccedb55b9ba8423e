//! The SYN authentication challenge, written over the SYN it answers: the
//! frame is turned round in place (MACs, addresses and ports swapped, VLAN
//! tags kept) into a SYN-ACK without options or payload, so the worker sends
//! it back out the port the SYN came in on without allocating.
//!
//! Only plain frames are answered: IPv4 without options or IPv6 without
//! extension headers, TCP straight after, not tunnelled, not fragmented. For
//! anything else [`write_syn_ack`] returns `None` and leaves the frame as it was.

use super::tcp::flags::{ACK, SYN};
use super::{Fragment, L3Family, PacketMeta, ParseStatus};

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
const TCP_HEADER: usize = 20;
/// The smallest Ethernet frame without its FCS.
const MIN_FRAME: usize = 60;
/// The window the challenge offers (the client never sends on it).
const WINDOW: u16 = 1024;

/// Turn the SYN in `frame` (parsed as `m`) into a SYN-ACK carrying `seq` and
/// `ack`; returns the new frame length, or `None` if the frame is not one
/// that can be answered (it is then unchanged).
pub fn write_syn_ack(frame: &mut [u8], m: &PacketMeta, seq: u32, ack: u32) -> Option<usize> {
    if m.status != ParseStatus::Ok
        || m.protocol != 6
        || m.fragment != Fragment::None
        || m.tcp_flags & (SYN | ACK) != SYN
    {
        return None;
    }
    let l4 = usize::from(m.l4_offset);
    let (l3, ethertype) = match m.family {
        L3Family::Ipv4 => (l4.checked_sub(20)?, ETHERTYPE_IPV4),
        L3Family::Ipv6 => (l4.checked_sub(40)?, ETHERTYPE_IPV6),
        L3Family::None => return None,
    };
    let end = l4 + TCP_HEADER;
    if l3 < 14 || frame.len() < end || frame.get(l3 - 2..l3)? != ethertype {
        return None;
    }
    match m.family {
        // IPv4 without options, carrying TCP.
        L3Family::Ipv4 if frame[l3] == 0x45 && frame[l3 + 9] == 6 => {}
        // IPv6 whose next header is TCP itself.
        L3Family::Ipv6 if frame[l3] >> 4 == 6 && frame[l3 + 6] == 6 => {}
        _ => return None,
    }

    // Ethernet: back to the sender.
    let (dst_mac, src_mac) = frame[..12].split_at_mut(6);
    dst_mac.swap_with_slice(src_mac);

    // The checksums are summed from the values written, not read back from
    // the frame: a 4-byte load over bytes just stored one or two at a time
    // cannot be forwarded from the stores and waits for them (14% of the
    // challenge path's samples). The addresses come from the parsed meta.
    let (new_src, new_dst) = (&m.dst, &m.src);
    let (sport, dport) = (m.dst_port, m.src_port);
    let addresses = match m.family {
        L3Family::Ipv4 => words(&new_src[12..]) + words(&new_dst[12..]),
        _ => words(new_src) + words(new_dst),
    };

    // IP: addresses swapped, a fresh header around 20 bytes of TCP.
    match m.family {
        L3Family::Ipv4 => {
            // Version and header length, DSCP/ECN 0; total length;
            // identification 0; DF; TTL 64 and TCP.
            const FIXED: [u16; 5] = [0x4500, (20 + TCP_HEADER) as u16, 0, 0x4000, 0x4006];
            let sum = !fold(FIXED.iter().map(|w| u64::from(*w)).sum::<u64>() + addresses);
            let mut ip = [0u8; 20];
            for (at, w) in FIXED.iter().enumerate() {
                ip[2 * at..2 * at + 2].copy_from_slice(&w.to_be_bytes());
            }
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ip[12..16].copy_from_slice(&new_src[12..]);
            ip[16..20].copy_from_slice(&new_dst[12..]);
            frame[l3..l4].copy_from_slice(&ip);
        }
        _ => {
            let ip = &mut frame[l3..l4];
            ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
            ip[4..6].copy_from_slice(&(TCP_HEADER as u16).to_be_bytes());
            ip[7] = 64;
            ip[8..24].copy_from_slice(new_src);
            ip[24..40].copy_from_slice(new_dst);
        }
    }

    // TCP: ports swapped, SYN-ACK, no options.
    let offset_and_flags = u16::from_be_bytes([(TCP_HEADER as u8 / 4) << 4, SYN | ACK]);
    let sum = !fold(
        addresses
            + 6
            + TCP_HEADER as u64
            + u64::from(sport)
            + u64::from(dport)
            + u64::from(seq >> 16)
            + u64::from(seq & 0xffff)
            + u64::from(ack >> 16)
            + u64::from(ack & 0xffff)
            + u64::from(offset_and_flags)
            + u64::from(WINDOW),
    );
    let mut tcp = [0u8; TCP_HEADER];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12..14].copy_from_slice(&offset_and_flags.to_be_bytes());
    tcp[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    frame[l4..end].copy_from_slice(&tcp);

    // What followed (options, payload) is cut; a short frame is padded.
    let len = end.max(MIN_FRAME.min(frame.len()));
    frame[end..len].fill(0);
    Some(len)
}

/// The sum of `bytes` as big-endian 16-bit words (an even count).
#[inline(always)]
fn words(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum()
}

/// A sum of 16-bit words folded into 16 bits, one's complement.
#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;
    use crate::wire::checksum::{ones_complement_sum, transport};
    use crate::wire::parse;

    fn ends() -> synth::Endpoints {
        synth::Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "198.51.100.20".parse().expect("ip"),
            dst: "10.0.0.1".parse().expect("ip"),
            src_port: 41000,
            dst_port: 443,
            ttl: 50,
        }
    }

    #[test]
    fn a_syn_becomes_a_syn_ack_back_to_its_sender() {
        // A SYN with options and a payload, in a VLAN tag.
        let syn = synth::tcp_frame(&ends(), SYN, 7000, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut f = synth::with_vlan_tags(&syn, &[(0x8100, 42)]);
        let m = parse(&f);
        let len = write_syn_ack(&mut f, &m, 0xdead_beef, 0x1234_5678).expect("answered");
        f.truncate(len);
        assert_eq!(len, 60, "14 + 4 + 20 + 20 = 58, padded to 60");
        let r = parse(&f);
        assert_eq!(r.status, ParseStatus::Ok);
        assert_eq!(r.src_ip(), Some("10.0.0.1".parse().expect("ip")));
        assert_eq!(r.dst_ip(), Some("198.51.100.20".parse().expect("ip")));
        assert_eq!((r.src_port, r.dst_port), (443, 41000));
        assert_eq!(r.tcp_flags, SYN | ACK);
        assert_eq!(r.vlan[0], 42);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 1], "to the sender's MAC");
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 2]);
        let l3 = 18;
        assert_eq!(
            ones_complement_sum(0, &f[l3..l3 + 20]),
            0xffff,
            "IPv4 checksum"
        );
        assert_eq!(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]), 40);
        let tcp = &f[l3 + 20..l3 + 40];
        assert_eq!(
            transport(&f[l3 + 12..l3 + 16], &f[l3 + 16..l3 + 20], 6, tcp),
            0
        );
        assert_eq!(&tcp[4..8], &0xdead_beefu32.to_be_bytes());
        assert_eq!(&tcp[8..12], &0x1234_5678u32.to_be_bytes());
        assert_eq!(tcp[12] >> 4, 5, "no options");
    }

    #[test]
    fn an_ipv6_syn_is_answered_over_ipv6() {
        let src: std::net::Ipv6Addr = "2001:db8:1::20".parse().expect("ip");
        let dst: std::net::Ipv6Addr = "2001:db8::1".parse().expect("ip");
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&41000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = SYN;
        let mut f = synth::ipv6_frame(src, dst, 60, 6, &tcp);
        let m = parse(&f);
        assert_eq!(m.status, ParseStatus::Ok);
        let len = write_syn_ack(&mut f, &m, 1, 2).expect("answered");
        f.truncate(len);
        let r = parse(&f);
        assert_eq!(r.src_ip(), Some(dst.into()));
        assert_eq!(r.dst_ip(), Some(src.into()));
        assert_eq!(r.tcp_flags, SYN | ACK);
        assert_eq!(
            transport(&f[22..38], &f[38..54], 6, &f[54..74]),
            0,
            "TCP checksum"
        );
    }

    #[test]
    fn frames_that_cannot_be_answered_are_left_alone() {
        let mut ack = synth::tcp_frame(&ends(), ACK, 1, 1, b"");
        let before = ack.clone();
        let m = parse(&ack);
        assert_eq!(write_syn_ack(&mut ack, &m, 1, 2), None, "not a SYN");
        let mut syn = synth::tcp_frame(&ends(), SYN, 1, 0, b"");
        let mut m = parse(&syn);
        m.fragment = Fragment::First;
        assert_eq!(write_syn_ack(&mut syn, &m, 1, 2), None, "a fragment");
        assert_eq!(ack, before);
        // Lying offsets never panic.
        let mut m = parse(&syn);
        m.l4_offset = 2000;
        assert_eq!(write_syn_ack(&mut syn, &m, 1, 2), None);
        m.l4_offset = 21;
        assert_eq!(write_syn_ack(&mut syn, &m, 1, 2), None);
    }

    proptest::proptest! {
        /// Whatever the addresses, ports and numbers, both checksums of the
        /// SYN-ACK verify (summed over the frame as written, independently of
        /// how they were worked out) and every field is the one meant.
        #[test]
        fn every_syn_ack_has_valid_checksums(
            src: u32, dst: u32, src6: u128, dst6: u128,
            src_port: u16, dst_port: u16, seq: u32, ack: u32,
        ) {
            let e = synth::Endpoints {
                src: src.into(),
                dst: dst.into(),
                src_port,
                dst_port,
                ..ends()
            };
            let mut f = synth::tcp_frame(&e, SYN, 1, 0, b"");
            let m = parse(&f);
            proptest::prop_assume!(m.status == ParseStatus::Ok);
            let len = write_syn_ack(&mut f, &m, seq, ack).expect("answered");
            let f = &f[..len];
            proptest::prop_assert_eq!(ones_complement_sum(0, &f[14..34]), 0xffff);
            proptest::prop_assert_eq!(transport(&f[26..30], &f[30..34], 6, &f[34..54]), 0);
            let r = parse(f);
            proptest::prop_assert_eq!((r.src, r.dst), (m.dst, m.src));
            proptest::prop_assert_eq!((r.src_port, r.dst_port), (dst_port, src_port));
            proptest::prop_assert_eq!(&f[38..46], &[seq.to_be_bytes(), ack.to_be_bytes()].concat()[..]);

            let mut tcp = vec![0u8; 20];
            tcp[0..2].copy_from_slice(&src_port.to_be_bytes());
            tcp[2..4].copy_from_slice(&dst_port.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = SYN;
            let mut f = synth::ipv6_frame(src6.into(), dst6.into(), 60, 6, &tcp);
            let m = parse(&f);
            proptest::prop_assume!(m.status == ParseStatus::Ok);
            let len = write_syn_ack(&mut f, &m, seq, ack).expect("answered");
            let f = &f[..len];
            proptest::prop_assert_eq!(transport(&f[22..38], &f[38..54], 6, &f[54..74]), 0);
            let r = parse(f);
            proptest::prop_assert_eq!((r.src, r.dst), (m.dst, m.src));
        }
    }
}
