//! IPv4 headers (RFC 791), options included.

use std::net::Ipv4Addr;

use super::field::{array, be16, Field};
use super::Error;

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SOURCE: Field = 12..16;
    pub const DESTINATION: Field = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// A view whose header (options included) and total length both fit in the
    /// buffer; the buffer may be longer (Ethernet padding).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let data_len = buffer.as_ref().len();
        if data_len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = Ipv4Packet { buffer };
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = packet.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if header_len > data_len {
            return Err(Error::Truncated);
        }
        let total = usize::from(packet.total_len());
        if total < header_len {
            return Err(Error::LengthTooSmall);
        }
        if total > data_len {
            return Err(Error::LengthTooLarge);
        }
        Ok(packet)
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN.start)
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    pub fn dont_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FLAG_DONT_FRAGMENT != 0
    }

    #[inline(always)]
    pub fn more_fragments(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FLAG_MORE_FRAGMENTS != 0
    }

    /// Fragment offset in bytes.
    #[inline(always)]
    pub fn fragment_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FRAGMENT_OFFSET_MASK) * 8
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline(always)]
    pub fn source(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SOURCE)
    }

    #[inline(always)]
    pub fn destination(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::DESTINATION)
    }

    pub fn source_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.source())
    }

    pub fn destination_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.destination())
    }

    /// Option bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The payload up to the total length (Ethernet padding excluded).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 24-byte header with one 4-byte option (router alert), UDP, 8 bytes payload,
    /// first fragment (MF set, offset 0).
    const PACKET: [u8; 32] = [
        0x46, 0x00, 0x00, 0x20, // version 4, IHL 6, total 32
        0x12, 0x34, 0x20, 0x00, // ident, MF, offset 0
        0x40, 0x11, 0x00, 0x00, // TTL 64, UDP, checksum
        0xc0, 0x00, 0x02, 0x01, // 192.0.2.1
        0x0a, 0x00, 0x00, 0x01, // 10.0.0.1
        0x94, 0x04, 0x00, 0x00, // router alert option
        0x00, 0x35, 0x04, 0xd2, 0x00, 0x08, 0x00, 0x00, // UDP 53 -> 1234
    ];

    #[test]
    fn deconstruct_with_options() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).expect("valid");
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 32);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.more_fragments());
        assert!(!p.dont_fragment());
        assert_eq!(p.fragment_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.source_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.destination_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &PACKET[24..]);
    }

    #[test]
    fn non_first_fragment_offset() {
        let mut b = PACKET;
        b[6] = 0x00;
        b[7] = 0xb9; // offset 185 * 8 = 1480, MF clear
        let p = Ipv4Packet::new_checked(&b[..]).expect("valid");
        assert_eq!(p.fragment_offset(), 1480);
        assert!(!p.more_fragments());
    }

    #[test]
    fn padding_after_total_length_is_not_payload() {
        let mut b = PACKET.to_vec();
        b.extend_from_slice(&[0; 14]);
        let p = Ipv4Packet::new_checked(&b[..]).expect("padding allowed");
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn lies_are_refused() {
        let mut b = PACKET;
        b[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::BadHeaderLength)
        );
        let mut b = PACKET;
        b[0] = 0x65; // version 6
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::BadVersion)
        );
        let mut b = PACKET;
        b[3] = 0x40; // total 64 > 32
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::LengthTooLarge)
        );
        let mut b = PACKET;
        b[3] = 0x10; // total 16 < header 24
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::LengthTooSmall)
        );
        let mut b = PACKET;
        b[0] = 0x4f; // IHL 15 = 60 bytes > buffer
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Truncated)
        );
        for len in 0..MIN_HEADER_LEN {
            assert_eq!(
                Ipv4Packet::new_checked(&PACKET[..len]).err(),
                Some(Error::Truncated)
            );
        }
    }
}
