//! Zero-copy packet parsing: header views in the style of smoltcp's `wire`
//! (`Packet<T: AsRef<[u8]>>`, field offsets as const ranges, `new_checked` that
//! validates lengths once so the accessors cannot read out of bounds), and
//! [`parse`], which turns a frame into a compact [`PacketMeta`].
//!
//! Nothing here panics or reads past the frame, whatever the bytes: a frame that
//! does not parse yields a [`ParseStatus`] saying why, which callers count.
//! Pure Rust, no DPDK: workers, `levee replay` and the fuzzers share it.
#![deny(unsafe_code)]

pub mod challenge;
pub mod checksum;
mod class;
pub mod ethernet;
mod field;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
mod meta;
pub mod tcp;
pub mod udp;

pub use class::{reflector_for_port, Reflector, TrafficClass, REFLECTORS};
pub use meta::{
    head_addresses, head_destination, parse, parse_general, parse_to, Fragment, L3Family,
    PacketMeta, ParseStatus, MAX_IPV6_EXTENSIONS, MAX_VLAN_TAGS,
};

/// Why a header view refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the header")]
    Truncated,
    #[error("wrong IP version")]
    BadVersion,
    #[error("header length field below the minimum")]
    BadHeaderLength,
    #[error("length field larger than the buffer")]
    LengthTooLarge,
    #[error("length field smaller than the header")]
    LengthTooSmall,
}

/// IP protocol numbers levee classifies.
pub mod ip_protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const ICMPV6: u8 = 58;
}

#[cfg(test)]
mod tests;
