//! Whole-frame parsing: every header and variant deconstructed from byte arrays,
//! and hostile frames that must each give a specific status without panicking.

use super::*;
use std::net::IpAddr;

const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = MACS.to_vec();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Ethernet with VLAN tags (tpid, vlan id) in order, then `ethertype`.
fn eth_tagged(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = MACS.to_vec();
    for (tpid, id) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(protocol: u8, flags_frag: u16, options: &[u8], l4: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 5 + options.len() / 4;
    let total = (ihl * 4 + l4.len()) as u16;
    let mut p = vec![0x40 | ihl as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0xab, 0xcd]);
    p.extend_from_slice(&flags_frag.to_be_bytes());
    p.extend_from_slice(&[57, protocol, 0, 0]);
    p.extend_from_slice(&[203, 0, 113, 10]);
    p.extend_from_slice(&[10, 0, 0, 1]);
    p.extend_from_slice(options);
    p.extend_from_slice(l4);
    p
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next);
    p.push(61);
    p.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]);
    p.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ]);
    p.extend_from_slice(payload);
    p
}

/// An 8-byte generic extension header (hop-by-hop, routing, destination options).
fn ext(next: u8) -> Vec<u8> {
    vec![next, 0, 0, 0, 0, 0, 0, 0]
}

fn frag6(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let v = offset | u16::from(more);
    let mut h = vec![next, 0];
    h.extend_from_slice(&v.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 7]);
    h
}

fn udp(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = src.to_be_bytes().to_vec();
    d.extend_from_slice(&dst.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

fn tcp(src: u16, dst: u16, flags: u8) -> Vec<u8> {
    let mut s = src.to_be_bytes().to_vec();
    s.extend_from_slice(&dst.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s
}

fn icmp(t: u8, c: u8) -> Vec<u8> {
    vec![t, c, 0, 0, 0, 1, 0, 1]
}

fn v4_addr(m: &PacketMeta) -> (IpAddr, IpAddr) {
    (m.src_ip().expect("ip"), m.dst_ip().expect("ip"))
}

#[test]
fn ipv4_udp_dns_response() {
    let f = eth(0x0800, &ipv4(17, 0, &[], &udp(53, 40000, &[0xaa; 100])));
    let m = parse(&f);
    assert_eq!(m.status, ParseStatus::Ok);
    assert_eq!(m.family, L3Family::Ipv4);
    assert_eq!(
        v4_addr(&m),
        (
            "203.0.113.10".parse().expect("ip"),
            "10.0.0.1".parse().expect("ip")
        )
    );
    assert_eq!(m.src[10..12], [0xff, 0xff], "IPv4-mapped");
    assert_eq!((m.protocol, m.src_port, m.dst_port), (17, 53, 40000));
    assert_eq!(m.ttl, 57);
    assert_eq!(usize::from(m.frame_len), f.len());
    assert_eq!(usize::from(m.ip_len), f.len() - 14);
    assert_eq!(m.l4_offset, 34);
    assert_eq!(m.fragment, Fragment::None);
    assert_eq!(m.class, TrafficClass::Reflected(Reflector::Dns));
}

#[test]
fn ipv4_options_move_the_transport_header() {
    let options = [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]; // router alert, NOPs, EOL
    let f = eth(
        0x0800,
        &ipv4(6, 0, &options, &tcp(1234, 80, tcp::flags::SYN)),
    );
    let m = parse(&f);
    assert_eq!(m.status, ParseStatus::Ok);
    assert_eq!(m.l4_offset, 14 + 28);
    assert_eq!(
        (m.src_port, m.dst_port, m.tcp_flags),
        (1234, 80, tcp::flags::SYN)
    );
    assert_eq!(m.class, TrafficClass::TcpSyn);
}

#[test]
fn tcp_flag_classes() {
    use tcp::flags::*;
    for (flags, class) in [
        (SYN, TrafficClass::TcpSyn),
        (SYN | ECE | CWR, TrafficClass::TcpSyn),
        (SYN | ACK, TrafficClass::TcpSynAck),
        (ACK, TrafficClass::TcpAck),
        (ACK | PSH, TrafficClass::TcpAck),
        (RST, TrafficClass::TcpRst),
        (RST | ACK, TrafficClass::TcpRst),
        (FIN | ACK, TrafficClass::TcpOther),
        (0, TrafficClass::TcpOther),
        (FIN | PSH | URG, TrafficClass::TcpOther),
    ] {
        let m = parse(&eth(0x0800, &ipv4(6, 0, &[], &tcp(5555, 443, flags))));
        assert_eq!(m.class, class, "flags {flags:#04x}");
        assert_eq!(m.tcp_flags, flags);
    }
}

#[test]
fn icmp_gre_and_other_protocols() {
    let m = parse(&eth(0x0800, &ipv4(1, 0, &[], &icmp(8, 0))));
    assert_eq!(
        (m.class, m.icmp_type, m.icmp_code),
        (TrafficClass::Icmp, 8, 0)
    );
    let m = parse(&eth(0x0800, &ipv4(47, 0, &[], &[0, 0, 0x08, 0x00, 0x45])));
    assert_eq!((m.class, m.gre_protocol), (TrafficClass::Gre, 0x0800));
    let m = parse(&eth(0x0800, &ipv4(50, 0, &[], &[0; 16])));
    assert_eq!(
        (m.status, m.class, m.protocol),
        (ParseStatus::Ok, TrafficClass::OtherIp, 50)
    );
    let m = parse(&eth(0x0800, &ipv4(132, 0, &[], &[0; 12])));
    assert_eq!(m.class, TrafficClass::OtherIp, "SCTP");
}

#[test]
fn reflector_classes_come_from_the_source_port() {
    for (port, r) in REFLECTORS {
        let m = parse(&eth(
            0x0800,
            &ipv4(17, 0, &[], &udp(*port, 33333, &[1; 20])),
        ));
        assert_eq!(m.class, TrafficClass::Reflected(*r));
    }
    let m = parse(&eth(0x0800, &ipv4(17, 0, &[], &udp(33333, 53, &[1; 20]))));
    assert_eq!(
        m.class,
        TrafficClass::Udp,
        "a query *to* port 53 is not a reflection"
    );
}

#[test]
fn ipv4_fragments_first_and_non_first() {
    let first = parse(&eth(
        0x0800,
        &ipv4(17, 0x2000, &[], &udp(123, 9999, &[0; 64])),
    ));
    assert_eq!(first.fragment, Fragment::First);
    assert_eq!(
        (first.src_port, first.class),
        (123, TrafficClass::Reflected(Reflector::Ntp))
    );
    let later = parse(&eth(0x0800, &ipv4(17, 185, &[], &[0xee; 64])));
    assert_eq!(later.status, ParseStatus::Ok);
    assert_eq!(later.fragment, Fragment::NonFirst);
    assert_eq!(
        (later.src_port, later.l4_offset),
        (0, 0),
        "no transport header in a later fragment"
    );
    assert_eq!(later.class, TrafficClass::Fragment);
    let last = parse(&eth(0x0800, &ipv4(17, 0x2000 | 10, &[], &[0xee; 64])));
    assert_eq!(
        last.fragment,
        Fragment::NonFirst,
        "MF with an offset is still non-first"
    );
}

#[test]
fn vlan_and_qinq() {
    let inner = ipv4(17, 0, &[], &udp(1000, 2000, &[]));
    let m = parse(&eth_tagged(&[(0x8100, 0x0064)], 0x0800, &inner));
    assert_eq!(
        (m.status, m.vlan_count, m.vlan),
        (ParseStatus::Ok, 1, [100, 0])
    );
    assert_eq!(m.l4_offset, 14 + 4 + 20);
    let m = parse(&eth_tagged(
        &[(0x88a8, 0x2c8), (0x8100, 0xa00a)],
        0x0800,
        &inner,
    ));
    assert_eq!(
        (m.status, m.vlan_count, m.vlan),
        (ParseStatus::Ok, 2, [712, 10]),
        "PCP bits masked off"
    );
    assert_eq!(m.src_port, 1000);
    let m = parse(&eth_tagged(
        &[(0x9100, 5), (0x8100, 6)],
        0x86dd,
        &ipv6(17, &udp(1, 2, &[])),
    ));
    assert_eq!(
        (m.status, m.family, m.vlan),
        (ParseStatus::Ok, L3Family::Ipv6, [5, 6])
    );
}

#[test]
fn ten_stacked_vlan_tags_are_refused() {
    let tags: Vec<(u16, u16)> = (0..10).map(|i| (0x8100, i)).collect();
    let m = parse(&eth_tagged(
        &tags,
        0x0800,
        &ipv4(17, 0, &[], &udp(1, 2, &[])),
    ));
    assert_eq!(m.status, ParseStatus::TooManyVlanTags);
    assert_eq!(m.class, TrafficClass::Malformed);
    let ok: Vec<(u16, u16)> = (0..MAX_VLAN_TAGS as u16).map(|i| (0x8100, i)).collect();
    assert_eq!(
        parse(&eth_tagged(&ok, 0x0800, &ipv4(17, 0, &[], &udp(1, 2, &[])))).status,
        ParseStatus::Ok
    );
}

#[test]
fn non_ip_is_well_formed_but_not_ip() {
    let arp = eth(
        0x0806,
        &[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ],
    );
    let m = parse(&arp);
    assert_eq!(
        (m.status, m.family, m.class),
        (ParseStatus::NotIp, L3Family::None, TrafficClass::NonIp)
    );
    assert!(m.status.is_well_formed());
    assert_eq!(m.src_ip(), None);
    let lldp = eth_tagged(&[(0x8100, 3)], 0x88cc, &[0; 20]);
    assert_eq!(parse(&lldp).status, ParseStatus::NotIp);
}

#[test]
fn ipv6_with_extension_chain() {
    use ipv6::next_header::*;
    // hop-by-hop -> routing (24 bytes) -> destination options -> AH (16 bytes) -> TCP SYN-ACK
    let mut payload = ext(ROUTING);
    let mut routing = vec![DESTINATION_OPTIONS, 2];
    routing.resize(24, 0);
    payload.extend(routing);
    payload.extend(ext(AH));
    let mut ah = vec![6, 2];
    ah.resize(16, 0);
    payload.extend(ah);
    payload.extend(tcp(443, 50000, tcp::flags::SYN | tcp::flags::ACK));
    let f = eth(0x86dd, &ipv6(HOP_BY_HOP, &payload));
    let m = parse(&f);
    assert_eq!(m.status, ParseStatus::Ok);
    assert_eq!(m.family, L3Family::Ipv6);
    assert_eq!(m.protocol, 6);
    assert_eq!(m.l4_offset, (14 + 40 + 8 + 24 + 8 + 16) as u16);
    assert_eq!((m.src_port, m.dst_port), (443, 50000));
    assert_eq!(m.class, TrafficClass::TcpSynAck);
    assert_eq!(m.ttl, 61, "hop limit");
    assert_eq!(m.src_ip(), Some("2001:db8::10".parse().expect("ip")));
    assert_eq!(usize::from(m.ip_len), f.len() - 14);
}

#[test]
fn ipv6_fragments_and_icmpv6() {
    use ipv6::next_header::*;
    let mut first = frag6(17, 0, true);
    first.extend(udp(11211, 4444, &[0; 32]));
    let m = parse(&eth(0x86dd, &ipv6(FRAGMENT, &first)));
    assert_eq!(
        (m.fragment, m.class),
        (
            Fragment::First,
            TrafficClass::Reflected(Reflector::Memcached)
        )
    );
    let mut later = frag6(17, 1448, false);
    later.extend([0u8; 40]);
    let m = parse(&eth(0x86dd, &ipv6(FRAGMENT, &later)));
    assert_eq!(
        (m.status, m.fragment, m.class, m.protocol),
        (
            ParseStatus::Ok,
            Fragment::NonFirst,
            TrafficClass::Fragment,
            17
        )
    );
    let m = parse(&eth(0x86dd, &ipv6(58, &icmp(128, 0))));
    assert_eq!((m.class, m.icmp_type), (TrafficClass::Icmp, 128));
    let m = parse(&eth(0x86dd, &ipv6(ESP, &[0; 24])));
    assert_eq!(
        (m.status, m.protocol, m.class),
        (ParseStatus::Ok, 50, TrafficClass::OtherIp),
        "ESP stops the walk"
    );
    let m = parse(&eth(0x86dd, &ipv6(NO_NEXT_HEADER, &[])));
    assert_eq!((m.status, m.protocol), (ParseStatus::Ok, 59));
    let mut unknown = ext(253);
    unknown.extend([0; 8]);
    let m = parse(&eth(0x86dd, &ipv6(DESTINATION_OPTIONS, &unknown)));
    assert_eq!(
        (m.status, m.protocol, m.class),
        (ParseStatus::Ok, 253, TrafficClass::OtherIp),
        "unknown header stops the walk"
    );
}

#[test]
fn ipv4_length_lies() {
    let good = eth(0x0800, &ipv4(17, 0, &[], &udp(1, 2, &[0; 10])));
    let mut f = good.clone();
    f[14] = 0x44;
    assert_eq!(parse(&f).status, ParseStatus::Ipv4BadHeaderLength);
    let mut f = good.clone();
    f[14] = 0x40;
    assert_eq!(parse(&f).status, ParseStatus::Ipv4BadHeaderLength, "IHL 0");
    let mut f = good.clone();
    f[16..18].copy_from_slice(&1500u16.to_be_bytes());
    assert_eq!(parse(&f).status, ParseStatus::Ipv4LengthTooLarge);
    let mut f = good.clone();
    f[16..18].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(parse(&f).status, ParseStatus::Ipv4LengthTooSmall);
    let mut f = good.clone();
    f[14] = 0x55;
    assert_eq!(parse(&f).status, ParseStatus::Ipv4BadVersion);
    // Total length shorter than the frame (Ethernet padding) is fine; the UDP header
    // must still fit inside the total length.
    let mut f = good.clone();
    f.extend([0; 20]);
    assert_eq!(parse(&f).status, ParseStatus::Ok);
    let mut f = good;
    f[16..18].copy_from_slice(&24u16.to_be_bytes());
    assert_eq!(
        parse(&f).status,
        ParseStatus::L4Truncated,
        "UDP header beyond the total length"
    );
}

#[test]
fn tcp_data_offset_lies() {
    let mut f = eth(0x0800, &ipv4(6, 0, &[], &tcp(1, 2, 2)));
    f[34 + 12] = 0x30;
    assert_eq!(parse(&f).status, ParseStatus::TcpBadHeaderLength);
    f[34 + 12] = 0xf0;
    assert_eq!(parse(&f).status, ParseStatus::L4Truncated);
}

#[test]
fn ipv6_payload_length_lies() {
    let good = eth(0x86dd, &ipv6(17, &udp(1, 2, &[0; 8])));
    let mut f = good.clone();
    f[18..20].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(parse(&f).status, ParseStatus::Ipv6LengthTooLarge);
    let mut f = good.clone();
    f[18..20].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(
        parse(&f).status,
        ParseStatus::L4Truncated,
        "payload too short for the UDP header"
    );
    let mut f = good;
    f[14] = 0x45;
    assert_eq!(parse(&f).status, ParseStatus::Ipv6BadVersion);
}

#[test]
fn ipv6_extension_chains_that_loop_or_overrun() {
    use ipv6::next_header::*;
    // A "loop": every hop-by-hop header names another hop-by-hop header.
    let mut chain = Vec::new();
    for _ in 0..20 {
        chain.extend(ext(HOP_BY_HOP));
    }
    let m = parse(&eth(0x86dd, &ipv6(HOP_BY_HOP, &chain)));
    assert_eq!(m.status, ParseStatus::Ipv6ExtensionChainTooLong);
    // A header whose length runs past the packet.
    let mut long = ext(17);
    long[1] = 30; // (30 + 1) * 8 bytes
    let m = parse(&eth(0x86dd, &ipv6(ROUTING, &long)));
    assert_eq!(m.status, ParseStatus::Ipv6ExtensionTruncated);
    // A chain cut in the middle of a header.
    let m = parse(&eth(0x86dd, &ipv6(DESTINATION_OPTIONS, &[17, 0, 0])));
    assert_eq!(m.status, ParseStatus::Ipv6ExtensionTruncated);
    // Exactly the cap is still fine.
    let mut capped = Vec::new();
    for _ in 0..MAX_IPV6_EXTENSIONS - 1 {
        capped.extend(ext(DESTINATION_OPTIONS));
    }
    capped.extend(ext(17));
    capped.extend(udp(1, 2, &[]));
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(DESTINATION_OPTIONS, &capped))).status,
        ParseStatus::Ok
    );
}

/// Frames with no padding, so every cut removes meaningful bytes.
fn valid_frames() -> Vec<Vec<u8>> {
    use ipv6::next_header::*;
    let mut v6chain = ext(ROUTING);
    v6chain.extend(ext(FRAGMENT));
    v6chain.extend(frag6(6, 0, true));
    v6chain.extend(tcp(1, 2, 2));
    vec![
        eth(0x0800, &ipv4(17, 0, &[], &udp(53, 1, &[7; 30]))),
        eth(0x0800, &ipv4(6, 0, &[1, 1, 1, 0], &tcp(80, 1, 0x12))),
        eth(0x0800, &ipv4(1, 0, &[], &icmp(0, 0))),
        eth(0x0800, &ipv4(47, 0, &[], &[0, 0, 0x86, 0xdd])),
        eth_tagged(
            &[(0x88a8, 1), (0x8100, 2)],
            0x0800,
            &ipv4(17, 0, &[], &udp(1, 2, &[])),
        ),
        eth(0x86dd, &ipv6(HOP_BY_HOP, &v6chain)),
        eth(0x86dd, &ipv6(58, &icmp(129, 0))),
    ]
}

#[test]
fn truncation_at_every_offset_gives_a_specific_status() {
    for f in valid_frames() {
        assert_eq!(parse(&f).status, ParseStatus::Ok, "the full frame parses");
        for cut in 0..f.len() {
            let m = parse(&f[..cut]);
            assert_ne!(m.status, ParseStatus::Ok, "cut at {cut} of {f:02x?}");
            assert_eq!(m.class, TrafficClass::Malformed);
            if cut < 14 {
                assert_eq!(m.status, ParseStatus::EthernetTruncated);
            }
        }
    }
}
