//! [`parse`]: a whole frame into a [`PacketMeta`].

use crate::named_enum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ethernet::{
    ethertype, EthernetFrame, VlanTag, HEADER_LEN as ETH_HEADER_LEN, VLAN_TAG_LEN,
};
use super::gre::GrePacket;
use super::icmp::IcmpMessage;
use super::ip_protocol;
use super::ipv4::Ipv4Packet;
use super::ipv6::{self, Ipv6Packet};
use super::tcp::TcpSegment;
use super::udp::UdpDatagram;
use super::{Error, TrafficClass};

/// VLAN tags levee steps over (QinQ is two; a third is tolerated). More is refused.
pub const MAX_VLAN_TAGS: usize = 3;
/// IPv6 extension headers walked before giving up on a chain.
pub const MAX_IPV6_EXTENSIONS: usize = 8;

named_enum! {
    /// How far parsing got, and why it stopped if the frame is not usable.
    /// `Ok` and `NotIp` frames are well-formed; every other value is a reason to
    /// count and (by default) drop.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    #[repr(u8)]
    pub enum ParseStatus {
        #[default]
        Ok => "ok",
        /// Well-formed Ethernet carrying something else than IP (ARP, LLDP...).
        NotIp => "not_ip",
        EthernetTruncated => "ethernet_truncated",
        VlanTruncated => "vlan_truncated",
        TooManyVlanTags => "too_many_vlan_tags",
        Ipv4Truncated => "ipv4_truncated",
        Ipv4BadVersion => "ipv4_bad_version",
        /// IHL below 5.
        Ipv4BadHeaderLength => "ipv4_bad_header_length",
        /// Total length larger than the frame.
        Ipv4LengthTooLarge => "ipv4_length_too_large",
        /// Total length smaller than the header.
        Ipv4LengthTooSmall => "ipv4_length_too_small",
        Ipv6Truncated => "ipv6_truncated",
        Ipv6BadVersion => "ipv6_bad_version",
        /// Payload length larger than the frame.
        Ipv6LengthTooLarge => "ipv6_length_too_large",
        /// An extension header runs past the packet.
        Ipv6ExtensionTruncated => "ipv6_extension_truncated",
        /// More than [`MAX_IPV6_EXTENSIONS`] extension headers.
        Ipv6ExtensionChainTooLong => "ipv6_extension_chain_too_long",
        /// The transport header does not fit in the IP payload.
        L4Truncated => "l4_truncated",
        /// TCP data offset below 5.
        TcpBadHeaderLength => "tcp_bad_header_length",
    }
}

impl ParseStatus {
    /// Whether the frame is well-formed (IP or not).
    #[inline(always)]
    pub fn is_well_formed(self) -> bool {
        matches!(self, ParseStatus::Ok | ParseStatus::NotIp)
    }
}

/// The network layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum L3Family {
    #[default]
    None,
    Ipv4,
    Ipv6,
}

/// Where a packet sits in a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Fragment {
    /// Not fragmented.
    #[default]
    None,
    /// Offset 0 with more fragments to come: carries the transport header.
    First,
    /// Offset > 0: no transport header.
    NonFirst,
}

/// The compact facts levee keeps about a frame. `Copy`, one cache line.
///
/// Addresses are 16 bytes for both families: IPv4 addresses are stored
/// IPv4-mapped (`::ffff:a.b.c.d`), so one key type serves every table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Length of the whole frame.
    pub frame_len: u16,
    /// IP total length (IPv4) or 40 + payload length (IPv6).
    pub ip_len: u16,
    pub src_port: u16,
    pub dst_port: u16,
    /// Outer and inner VLAN ids (0 when absent).
    pub vlan: [u16; 2],
    /// EtherType carried by GRE, when `protocol` is GRE.
    pub gre_protocol: u16,
    /// Offset of the transport header in the frame (0 if none was parsed).
    pub l4_offset: u16,
    pub status: ParseStatus,
    pub family: L3Family,
    /// IP protocol (IPv4) or the upper-layer next header after the extension
    /// chain (IPv6).
    pub protocol: u8,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub ttl: u8,
    pub fragment: Fragment,
    pub vlan_count: u8,
    pub class: TrafficClass,
    /// `class.index()`, worked out once: the counters index by it several
    /// times per packet, and the match behind `index` is an indirect jump that
    /// mixed traffic keeps mispredicting.
    pub class_index: u8,
}

const _: () = assert!(
    std::mem::size_of::<PacketMeta>() <= 64,
    "PacketMeta fits a cache line"
);

impl PacketMeta {
    /// Source address (`None` unless the frame is IP).
    pub fn src_ip(&self) -> Option<IpAddr> {
        self.addr(&self.src)
    }

    /// Destination address (`None` unless the frame is IP).
    pub fn dst_ip(&self) -> Option<IpAddr> {
        self.addr(&self.dst)
    }

    fn addr(&self, a: &[u8; 16]) -> Option<IpAddr> {
        match self.family {
            L3Family::None => None,
            L3Family::Ipv4 => Some(IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))),
            L3Family::Ipv6 => Some(IpAddr::V6(Ipv6Addr::from(*a))),
        }
    }
}

#[inline(always)]
fn mapped_v4(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// Parse a frame. Never panics and never reads past `frame`.
#[inline]
pub fn parse(frame: &[u8]) -> PacketMeta {
    let mut meta = PacketMeta::default();
    parse_to(frame, &mut meta);
    meta
}

/// Parse a frame into `meta` in place (the worker's burst array): no copy of the
/// result, which costs a store-forwarding stall per packet when returned by value.
/// Always inlined, with the general parser out of line: inlined whole, the
/// pair was large enough that the compiler now and then made a call of it,
/// plain IPv4 included, as an unrelated change to the worker moved its
/// budget (perf: 7% of a full-pipeline worker in the call).
#[inline(always)]
pub fn parse_to(frame: &[u8], meta: &mut PacketMeta) {
    if !parse_plain_ipv4(frame, meta) {
        parse_general_classified(frame, meta);
    }
}

#[inline(never)]
fn parse_general_classified(frame: &[u8], meta: &mut PacketMeta) {
    parse_general_to(frame, meta);
    classify(meta);
}

/// The traffic class of parsed fields, and its index.
#[inline(always)]
fn classify(meta: &mut PacketMeta) {
    meta.class = TrafficClass::of(meta);
    meta.class_index = meta.class.index() as u8;
}

/// The general parser alone, without the fast path for plain IPv4: the
/// reference [`parse`] is held to (property tests), for tests and benches.
pub fn parse_general(frame: &[u8]) -> PacketMeta {
    let mut meta = PacketMeta::default();
    parse_general_to(frame, &mut meta);
    classify(&mut meta);
    meta
}

/// The bulk of real traffic in one pass of fixed offsets: an untagged IPv4
/// frame without options or fragmentation carrying UDP or TCP, with every
/// length the general parser checks in range. Anything else (or a header
/// these checks would not let through) returns false and gets the general
/// parser, whose result (classified) this one matches field for field. The
/// class comes from the protocol known here, not from the general match on
/// every field that decides it.
#[inline(always)]
fn parse_plain_ipv4(frame: &[u8], meta: &mut PacketMeta) -> bool {
    // 14 + 20 + 20: Ethernet, IPv4 without options, a TCP header (UDP frames
    // are padded to at least 60 bytes on the wire).
    let Some(h) = frame.first_chunk::<54>() else {
        return false;
    };
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let total = be16(16);
    let ip_room = frame.len() - ETH_HEADER_LEN;
    // EtherType IPv4, version 4 with a 20-byte header, no fragment offset and
    // no more fragments, the total length holding the header and within the
    // frame.
    if be16(12) != ethertype::IPV4
        || h[14] != 0x45
        || be16(20) & 0x3fff != 0
        || usize::from(total) > ip_room
    {
        return false;
    }
    let protocol = h[23];
    let l4_room = usize::from(total).wrapping_sub(20);
    let src_port = be16(34);
    let (tcp_flags, (class, class_index)) = match protocol {
        ip_protocol::UDP if total >= 28 => (0, TrafficClass::indexed_of_udp(src_port)),
        ip_protocol::TCP if total >= 40 => {
            let header_len = usize::from(h[46] >> 4) * 4;
            if header_len < 20 || header_len > l4_room {
                return false;
            }
            (h[47], TrafficClass::indexed_of_tcp(h[47]))
        }
        _ => return false,
    };
    *meta = PacketMeta {
        src: mapped_v4([h[26], h[27], h[28], h[29]]),
        dst: mapped_v4([h[30], h[31], h[32], h[33]]),
        frame_len: u16::try_from(frame.len()).unwrap_or(u16::MAX),
        ip_len: total,
        src_port,
        dst_port: be16(36),
        l4_offset: 34,
        status: ParseStatus::Ok,
        family: L3Family::Ipv4,
        protocol,
        tcp_flags,
        ttl: h[22],
        class,
        class_index,
        ..PacketMeta::default()
    };
    true
}

#[inline(always)]
fn parse_general_to(frame: &[u8], meta: &mut PacketMeta) {
    *meta = PacketMeta {
        frame_len: u16::try_from(frame.len()).unwrap_or(u16::MAX),
        ..PacketMeta::default()
    };
    meta.status = parse_into(frame, meta);
}

#[inline(always)]
fn parse_into(frame: &[u8], meta: &mut PacketMeta) -> ParseStatus {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return ParseStatus::EthernetTruncated;
    };
    let mut ethertype = eth.ethertype();
    let mut offset = ETH_HEADER_LEN;
    while ethertype::is_vlan(ethertype) {
        if usize::from(meta.vlan_count) == MAX_VLAN_TAGS {
            return ParseStatus::TooManyVlanTags;
        }
        let Ok(tag) = VlanTag::new_checked(&frame[offset..]) else {
            return ParseStatus::VlanTruncated;
        };
        if let Some(slot) = meta.vlan.get_mut(usize::from(meta.vlan_count)) {
            *slot = tag.vlan_id();
        }
        meta.vlan_count += 1;
        ethertype = tag.ethertype();
        offset += VLAN_TAG_LEN;
    }
    match ethertype {
        ethertype::IPV4 => parse_ipv4(frame, offset, meta),
        ethertype::IPV6 => parse_ipv6(frame, offset, meta),
        _ => ParseStatus::NotIp,
    }
}

#[inline(always)]
fn parse_ipv4(frame: &[u8], offset: usize, meta: &mut PacketMeta) -> ParseStatus {
    let ip = match Ipv4Packet::new_checked(&frame[offset..]) {
        Ok(ip) => ip,
        Err(Error::Truncated) => return ParseStatus::Ipv4Truncated,
        Err(Error::BadVersion) => return ParseStatus::Ipv4BadVersion,
        Err(Error::BadHeaderLength) => return ParseStatus::Ipv4BadHeaderLength,
        Err(Error::LengthTooSmall) => return ParseStatus::Ipv4LengthTooSmall,
        Err(Error::LengthTooLarge) => return ParseStatus::Ipv4LengthTooLarge,
    };
    meta.family = L3Family::Ipv4;
    meta.src = mapped_v4(ip.source());
    meta.dst = mapped_v4(ip.destination());
    meta.ip_len = ip.total_len();
    meta.ttl = ip.ttl();
    meta.protocol = ip.protocol();
    let frag_offset = ip.fragment_offset();
    if frag_offset != 0 {
        meta.fragment = Fragment::NonFirst;
        return ParseStatus::Ok;
    }
    if ip.more_fragments() {
        meta.fragment = Fragment::First;
    }
    let l4_offset = offset + ip.header_len();
    parse_l4(ip.protocol(), ip.payload(), l4_offset, meta)
}

#[inline(always)]
fn parse_ipv6(frame: &[u8], offset: usize, meta: &mut PacketMeta) -> ParseStatus {
    let ip = match Ipv6Packet::new_checked(&frame[offset..]) {
        Ok(ip) => ip,
        Err(Error::BadVersion) => return ParseStatus::Ipv6BadVersion,
        Err(Error::LengthTooLarge) => return ParseStatus::Ipv6LengthTooLarge,
        Err(_) => return ParseStatus::Ipv6Truncated,
    };
    meta.family = L3Family::Ipv6;
    meta.src = ip.source();
    meta.dst = ip.destination();
    meta.ip_len =
        u16::try_from(ipv6::HEADER_LEN + usize::from(ip.payload_len())).unwrap_or(u16::MAX);
    meta.ttl = ip.hop_limit();
    let payload = ip.payload();
    let mut next = ip.next_header();
    let mut at = 0usize;
    let mut walked = 0usize;
    while ipv6::is_walkable_extension(next) {
        if walked == MAX_IPV6_EXTENSIONS {
            meta.protocol = next;
            return ParseStatus::Ipv6ExtensionChainTooLong;
        }
        let Ok(ext) = ipv6::extension_header(next, &payload[at..]) else {
            meta.protocol = next;
            return ParseStatus::Ipv6ExtensionTruncated;
        };
        walked += 1;
        at += ext.len;
        next = ext.next_header;
        if let Some((frag_offset, more)) = ext.fragment {
            if frag_offset != 0 {
                meta.fragment = Fragment::NonFirst;
                meta.protocol = next;
                return ParseStatus::Ok;
            }
            if more {
                meta.fragment = Fragment::First;
            }
        }
    }
    meta.protocol = next;
    let l4_offset = offset + ipv6::HEADER_LEN + at;
    parse_l4(next, &payload[at..], l4_offset, meta)
}

#[inline(always)]
fn parse_l4(protocol: u8, payload: &[u8], l4_offset: usize, meta: &mut PacketMeta) -> ParseStatus {
    let l4_offset = u16::try_from(l4_offset).unwrap_or(u16::MAX);
    match protocol {
        ip_protocol::UDP => {
            let Ok(udp) = UdpDatagram::new_checked(payload) else {
                return ParseStatus::L4Truncated;
            };
            meta.src_port = udp.src_port();
            meta.dst_port = udp.dst_port();
        }
        ip_protocol::TCP => {
            let tcp = match TcpSegment::new_checked(payload) {
                Ok(tcp) => tcp,
                Err(Error::BadHeaderLength) => return ParseStatus::TcpBadHeaderLength,
                Err(_) => return ParseStatus::L4Truncated,
            };
            meta.src_port = tcp.src_port();
            meta.dst_port = tcp.dst_port();
            meta.tcp_flags = tcp.flags();
        }
        ip_protocol::ICMP | ip_protocol::ICMPV6 => {
            let Ok(icmp) = IcmpMessage::new_checked(payload) else {
                return ParseStatus::L4Truncated;
            };
            meta.icmp_type = icmp.msg_type();
            meta.icmp_code = icmp.code();
        }
        ip_protocol::GRE => {
            let Ok(gre) = GrePacket::new_checked(payload) else {
                return ParseStatus::L4Truncated;
            };
            meta.gre_protocol = gre.protocol();
        }
        // ESP, SCTP, anything else: the protocol number is all levee needs.
        _ => return ParseStatus::Ok,
    }
    meta.l4_offset = l4_offset;
    ParseStatus::Ok
}

/// The destination address in the first bytes of a frame (a sampled head), whose
/// lengths may point past what was kept: only the headers up to the address must
/// be present.
pub fn head_destination(head: &[u8]) -> Option<IpAddr> {
    head_addresses(head).map(|(_, d)| d)
}

/// Source and destination addresses of a sampled head (see [`head_destination`]).
pub fn head_addresses(head: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let eth = EthernetFrame::new_checked(head).ok()?;
    let mut ethertype = eth.ethertype();
    let mut offset = ETH_HEADER_LEN;
    let mut tags = 0;
    while ethertype::is_vlan(ethertype) && tags < MAX_VLAN_TAGS {
        let tag = VlanTag::new_checked(head.get(offset..)?).ok()?;
        ethertype = tag.ethertype();
        offset += VLAN_TAG_LEN;
        tags += 1;
    }
    match ethertype {
        ethertype::IPV4 => {
            let b = head.get(offset + 12..offset + 20)?;
            Some((
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
            ))
        }
        ethertype::IPV6 => {
            let s: [u8; 16] = head.get(offset + 8..offset + 24)?.try_into().ok()?;
            let d: [u8; 16] = head.get(offset + 24..offset + 40)?.try_into().ok()?;
            Some((IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    /// The fast path takes what it is for (plain IPv4 UDP and TCP of the
    /// labelled mix) and leaves everything else to the general parser; where
    /// it takes a frame, both agree (more in the property tests).
    #[test]
    fn the_fast_path_takes_plain_ipv4_udp_and_tcp_only() {
        let mut taken = 0;
        for (frame, class) in synth::labelled_mix(3) {
            let mut fast = PacketMeta::default();
            let plain = frame.len() >= 54
                && frame[12..14] == [0x08, 0x00]
                && frame[14] == 0x45
                && frame[20..22] == [0, 0]
                && matches!(frame[23], ip_protocol::UDP | ip_protocol::TCP);
            assert_eq!(parse_plain_ipv4(&frame, &mut fast), plain, "{class}");
            if plain {
                taken += 1;
                classify(&mut fast);
                assert_eq!(fast, parse_general(&frame), "{class}");
            }
        }
        assert!(taken >= 20, "the mix has plain UDP and TCP frames: {taken}");
    }
}
