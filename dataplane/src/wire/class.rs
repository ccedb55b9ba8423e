//! Traffic classes: what levee counts and detects on, derived from a parsed frame.

use super::meta::{Fragment, PacketMeta, ParseStatus};
use super::{ip_protocol, tcp::flags};

macro_rules! reflectors {
    ($( $(#[$doc:meta])* $variant:ident = $port:literal, $name:literal; )*) => {
        /// UDP services abused as amplifiers in reflection attacks: a flood of
        /// responses *from* their well-known port is the signature of the attack.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Reflector {
            $( $(#[$doc])* $variant, )*
        }

        /// Every reflector with its UDP source port, sorted by port.
        pub const REFLECTORS: &[(u16, Reflector)] = &[ $( ($port, Reflector::$variant), )* ];

        impl Reflector {
            pub const COUNT: usize = REFLECTORS.len();

            /// A stable snake_case name, for metrics and logs.
            pub fn name(self) -> &'static str {
                match self { $( Reflector::$variant => $name, )* }
            }

            /// The well-known UDP port the reflected traffic comes from.
            pub fn port(self) -> u16 {
                match self { $( Reflector::$variant => $port, )* }
            }
        }
    };
}

// Sources: US-CERT TA14-017A (UDP-based amplification attacks) and later advisories
// for the newer vectors; each is a service answering a small spoofed request with a
// much larger response. Keep the list sorted by port.
reflectors! {
    /// Quote of the Day.
    Qotd = 17, "qotd";
    /// Character Generator.
    Chargen = 19, "chargen";
    Dns = 53, "dns";
    Tftp = 69, "tftp";
    /// Sun RPC portmapper.
    Portmap = 111, "portmap";
    Ntp = 123, "ntp";
    /// NetBIOS name service.
    Netbios = 137, "netbios";
    Snmp = 161, "snmp";
    /// Connection-less LDAP.
    Cldap = 389, "cldap";
    /// Service Location Protocol (CVE-2023-29552).
    Slp = 427, "slp";
    /// IKE / ISAKMP.
    Isakmp = 500, "isakmp";
    Ripv1 = 520, "ripv1";
    /// MS SQL Server browser.
    MsSql = 1434, "mssql";
    Ssdp = 1900, "ssdp";
    /// Apple Remote Desktop.
    Ard = 3283, "ard";
    WsDiscovery = 3702, "ws_discovery";
    Mdns = 5353, "mdns";
    Coap = 5683, "coap";
    /// Ubiquiti discovery.
    Ubiquiti = 10001, "ubiquiti";
    /// Mitel MiCollab TP-240 (CVE-2022-26143).
    Tp240 = 10074, "tp240";
    Memcached = 11211, "memcached";
    /// Plex Media Server discovery.
    Plex = 32414, "plex";
    /// Jenkins auto-discovery.
    Jenkins = 33848, "jenkins";
    /// DVR DHDiscover.
    DhDiscover = 37810, "dhdiscover";
}

const _: () = {
    let mut i = 1;
    while i < REFLECTORS.len() {
        assert!(
            REFLECTORS[i - 1].0 < REFLECTORS[i].0,
            "REFLECTORS must be sorted by port"
        );
        i += 1;
    }
};

/// A bitmap of the reflectors' ports shifted right by `shift`: bit
/// `port >> shift` set for each reflector's port.
const fn reflector_port_bits<const WORDS: usize>(shift: u32) -> [u64; WORDS] {
    let mut bits = [0u64; WORDS];
    let mut i = 0;
    while i < REFLECTORS.len() {
        let at = (REFLECTORS[i].0 >> shift) as usize;
        bits[at / 64] |= 1 << (at % 64);
        i += 1;
    }
    bits
}

#[inline(always)]
fn has_bit(bits: &[u64], at: usize) -> bool {
    bits[at / 64] & (1 << (at % 64)) != 0
}

/// One bit per UDP port, set for reflector ports (8 KiB): most traffic is not from
/// a reflector, and one bit test costs far less than a search whose branches
/// random source ports would keep mispredicting.
static REFLECTOR_PORT_BITS: [u64; 1024] = reflector_port_bits(0);

/// One bit per high byte of a port, set where some reflector's port has it
/// (32 bytes, one cache line that stays in L1): 14 of 256, so nearly every
/// other source port is told apart without a load from the 8 KiB bitmap, which
/// the packets streaming through the cache keep evicting.
static REFLECTOR_HIGH_BYTE_BITS: [u64; 4] = reflector_port_bits(8);

/// The reflector whose well-known port is `port`, if any.
#[inline]
pub fn reflector_for_port(port: u16) -> Option<Reflector> {
    if !has_bit(&REFLECTOR_HIGH_BYTE_BITS, usize::from(port >> 8))
        || !has_bit(&REFLECTOR_PORT_BITS, usize::from(port))
    {
        return None;
    }
    REFLECTORS
        .binary_search_by_key(&port, |(p, _)| *p)
        .ok()
        .map(|i| REFLECTORS[i].1)
}

/// What kind of traffic a frame is, for counters and detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficClass {
    /// SYN without ACK.
    TcpSyn,
    TcpSynAck,
    /// ACK (possibly with PSH/URG/ECN bits), no SYN, RST or FIN.
    TcpAck,
    /// Any segment with RST.
    TcpRst,
    /// FIN, null, Xmas and other flag combinations.
    TcpOther,
    /// UDP not from a known reflector port.
    Udp,
    /// UDP from a reflector's well-known port.
    Reflected(Reflector),
    /// ICMP or ICMPv6.
    Icmp,
    /// Non-first fragments (no transport header).
    Fragment,
    Gre,
    /// IP with another protocol (ESP, SCTP...).
    OtherIp,
    /// Well-formed non-IP (ARP, LLDP...).
    NonIp,
    /// Did not parse; the reason is the meta's status.
    #[default]
    Malformed,
}

const FIXED_BEFORE_REFLECTED: usize = 6;

/// The class of a TCP segment by its flags byte.
const fn tcp_class(f: u8) -> TrafficClass {
    if f & flags::RST != 0 {
        TrafficClass::TcpRst
    } else if f & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK {
        TrafficClass::TcpSynAck
    } else if f & flags::SYN != 0 {
        TrafficClass::TcpSyn
    } else if f & flags::ACK != 0 && f & flags::FIN == 0 {
        TrafficClass::TcpAck
    } else {
        TrafficClass::TcpOther
    }
}

/// [`tcp_class`] of every flags byte.
static TCP_CLASSES: [TrafficClass; 256] = {
    let mut classes = [TrafficClass::TcpOther; 256];
    let mut f = 0;
    while f < 256 {
        classes[f] = tcp_class(f as u8);
        f += 1;
    }
    classes
};

/// The index of [`TCP_CLASSES`]' every class.
static TCP_CLASS_INDEXES: [u8; 256] = {
    let mut indexes = [0; 256];
    let mut f = 0;
    while f < 256 {
        indexes[f] = TCP_CLASSES[f].index() as u8;
        f += 1;
    }
    indexes
};

impl TrafficClass {
    /// Number of classes: the size of a counter array indexed by [`TrafficClass::index`].
    pub const COUNT: usize = FIXED_BEFORE_REFLECTED + Reflector::COUNT + 6;

    /// Classify a parsed frame.
    #[inline]
    pub fn of(meta: &PacketMeta) -> TrafficClass {
        match meta.status {
            ParseStatus::Ok => {}
            ParseStatus::NotIp => return TrafficClass::NonIp,
            _ => return TrafficClass::Malformed,
        }
        if meta.fragment == Fragment::NonFirst {
            return TrafficClass::Fragment;
        }
        match meta.protocol {
            ip_protocol::TCP => TrafficClass::of_tcp(meta.tcp_flags),
            ip_protocol::UDP => TrafficClass::of_udp(meta.src_port),
            ip_protocol::ICMP | ip_protocol::ICMPV6 => TrafficClass::Icmp,
            ip_protocol::GRE => TrafficClass::Gre,
            _ => TrafficClass::OtherIp,
        }
    }

    /// The class of a TCP segment with these flags: one load from a table
    /// (the chain of tests it holds is a branch per test that the mixed flags
    /// of real traffic keep mispredicting).
    #[inline(always)]
    pub fn of_tcp(flags: u8) -> TrafficClass {
        TCP_CLASSES[usize::from(flags)]
    }

    /// [`TrafficClass::of_tcp`] and its index, both from tables.
    #[inline(always)]
    pub fn indexed_of_tcp(flags: u8) -> (TrafficClass, u8) {
        (
            TCP_CLASSES[usize::from(flags)],
            TCP_CLASS_INDEXES[usize::from(flags)],
        )
    }

    /// The class of a UDP datagram from `src_port`.
    #[inline(always)]
    pub fn of_udp(src_port: u16) -> TrafficClass {
        match reflector_for_port(src_port) {
            Some(r) => TrafficClass::Reflected(r),
            None => TrafficClass::Udp,
        }
    }

    /// [`TrafficClass::of_udp`] and its index.
    #[inline(always)]
    pub fn indexed_of_udp(src_port: u16) -> (TrafficClass, u8) {
        match reflector_for_port(src_port) {
            Some(r) => (
                TrafficClass::Reflected(r),
                (FIXED_BEFORE_REFLECTED + r as usize) as u8,
            ),
            None => (TrafficClass::Udp, TrafficClass::Udp.index() as u8),
        }
    }

    /// A dense index in `0..COUNT`.
    #[inline(always)]
    pub const fn index(self) -> usize {
        let after = FIXED_BEFORE_REFLECTED + Reflector::COUNT;
        match self {
            TrafficClass::TcpSyn => 0,
            TrafficClass::TcpSynAck => 1,
            TrafficClass::TcpAck => 2,
            TrafficClass::TcpRst => 3,
            TrafficClass::TcpOther => 4,
            TrafficClass::Udp => 5,
            TrafficClass::Reflected(r) => FIXED_BEFORE_REFLECTED + r as usize,
            TrafficClass::Icmp => after,
            TrafficClass::Fragment => after + 1,
            TrafficClass::Gre => after + 2,
            TrafficClass::OtherIp => after + 3,
            TrafficClass::NonIp => after + 4,
            TrafficClass::Malformed => after + 5,
        }
    }

    /// Every class, in index order.
    /// The class of a stable name (`udp_ntp`, `tcp_syn`...).
    pub fn from_name(name: &str) -> Option<TrafficClass> {
        TrafficClass::all().find(|c| c.name() == name)
    }

    pub fn all() -> impl Iterator<Item = TrafficClass> {
        [
            TrafficClass::TcpSyn,
            TrafficClass::TcpSynAck,
            TrafficClass::TcpAck,
            TrafficClass::TcpRst,
            TrafficClass::TcpOther,
            TrafficClass::Udp,
        ]
        .into_iter()
        .chain(REFLECTORS.iter().map(|(_, r)| TrafficClass::Reflected(*r)))
        .chain([
            TrafficClass::Icmp,
            TrafficClass::Fragment,
            TrafficClass::Gre,
            TrafficClass::OtherIp,
            TrafficClass::NonIp,
            TrafficClass::Malformed,
        ])
    }

    /// A stable snake_case name, for metrics and logs (`udp_dns`, `tcp_syn`...).
    pub fn name(self) -> &'static str {
        match self {
            TrafficClass::TcpSyn => "tcp_syn",
            TrafficClass::TcpSynAck => "tcp_syn_ack",
            TrafficClass::TcpAck => "tcp_ack",
            TrafficClass::TcpRst => "tcp_rst",
            TrafficClass::TcpOther => "tcp_other",
            TrafficClass::Udp => "udp",
            TrafficClass::Reflected(r) => REFLECTED_NAMES[r as usize],
            TrafficClass::Icmp => "icmp",
            TrafficClass::Fragment => "fragment",
            TrafficClass::Gre => "gre",
            TrafficClass::OtherIp => "other_ip",
            TrafficClass::NonIp => "non_ip",
            TrafficClass::Malformed => "malformed",
        }
    }
}

/// `udp_<reflector>` names, built once at compile time from the reflector table.
const REFLECTED_NAMES: [&str; Reflector::COUNT] = [
    "udp_qotd",
    "udp_chargen",
    "udp_dns",
    "udp_tftp",
    "udp_portmap",
    "udp_ntp",
    "udp_netbios",
    "udp_snmp",
    "udp_cldap",
    "udp_slp",
    "udp_isakmp",
    "udp_ripv1",
    "udp_mssql",
    "udp_ssdp",
    "udp_ard",
    "udp_ws_discovery",
    "udp_mdns",
    "udp_coap",
    "udp_ubiquiti",
    "udp_tp240",
    "udp_memcached",
    "udp_plex",
    "udp_jenkins",
    "udp_dhdiscover",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        let all: Vec<TrafficClass> = TrafficClass::all().collect();
        assert_eq!(all.len(), TrafficClass::COUNT);
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
        let mut names: Vec<&str> = all.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TrafficClass::COUNT);
        for (_, r) in REFLECTORS {
            assert_eq!(
                TrafficClass::Reflected(*r).name(),
                format!("udp_{}", r.name())
            );
        }
    }

    #[test]
    fn reflector_ports() {
        for (port, r) in [
            (53, Reflector::Dns),
            (123, Reflector::Ntp),
            (1900, Reflector::Ssdp),
            (11211, Reflector::Memcached),
            (389, Reflector::Cldap),
            (19, Reflector::Chargen),
            (161, Reflector::Snmp),
            (3702, Reflector::WsDiscovery),
            (500, Reflector::Isakmp),
            (137, Reflector::Netbios),
            (5353, Reflector::Mdns),
            (3283, Reflector::Ard),
        ] {
            assert_eq!(reflector_for_port(port), Some(r));
            assert_eq!(r.port(), port);
        }
        assert_eq!(reflector_for_port(80), None);
        assert_eq!(reflector_for_port(0), None);
        assert_eq!(reflector_for_port(65535), None);
    }

    #[test]
    fn every_port_gets_the_reflector_a_search_of_the_list_finds() {
        for port in 0..=u16::MAX {
            let listed = REFLECTORS.iter().find(|(p, _)| *p == port).map(|(_, r)| *r);
            assert_eq!(reflector_for_port(port), listed, "port {port}");
        }
    }

    #[test]
    fn tcp_flags_and_udp_ports_are_classed_with_their_index() {
        use flags::{ACK, FIN, RST, SYN};
        for (f, class) in [
            (SYN, TrafficClass::TcpSyn),
            (SYN | 0x40 | 0x80, TrafficClass::TcpSyn),
            (SYN | ACK, TrafficClass::TcpSynAck),
            (ACK, TrafficClass::TcpAck),
            (ACK | 0x08 | 0x20, TrafficClass::TcpAck),
            (RST, TrafficClass::TcpRst),
            (RST | ACK | SYN, TrafficClass::TcpRst),
            (FIN | ACK, TrafficClass::TcpOther),
            (0, TrafficClass::TcpOther),
            (FIN | 0x08 | 0x20, TrafficClass::TcpOther),
        ] {
            assert_eq!(TrafficClass::of_tcp(f), class, "flags {f:#04x}");
        }
        for f in 0..=u8::MAX {
            let (class, index) = TrafficClass::indexed_of_tcp(f);
            assert_eq!(class, TrafficClass::of_tcp(f));
            assert_eq!(usize::from(index), class.index(), "flags {f:#04x}");
        }
        for port in 0..=u16::MAX {
            let (class, index) = TrafficClass::indexed_of_udp(port);
            assert_eq!(class, TrafficClass::of_udp(port));
            assert_eq!(usize::from(index), class.index(), "port {port}");
        }
    }
}
