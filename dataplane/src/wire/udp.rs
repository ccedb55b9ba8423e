//! UDP headers (RFC 768).

use super::field::{be16, Field};
use super::Error;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        UdpDatagram { buffer }
    }

    /// A view over at least a full header. The length field is not trusted; use
    /// [`UdpDatagram::length_consistent`] to judge it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(UdpDatagram { buffer })
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Whether the length field covers the header and fits in the buffer.
    pub fn length_consistent(&self) -> bool {
        let len = usize::from(self.length());
        (HEADER_LEN..=self.buffer.as_ref().len()).contains(&len)
    }

    /// The payload after the header (up to the buffer's end).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deconstruct() {
        let b = [0x00, 0x35, 0xc3, 0x50, 0x00, 0x0c, 0xab, 0xcd, 1, 2, 3, 4];
        let d = UdpDatagram::new_checked(&b[..]).expect("valid");
        assert_eq!((d.src_port(), d.dst_port()), (53, 50000));
        assert_eq!(d.length(), 12);
        assert_eq!(d.checksum(), 0xabcd);
        assert!(d.length_consistent());
        assert_eq!(d.payload(), &[1, 2, 3, 4]);
        assert!(!UdpDatagram::new_checked(&b[..10])
            .expect("header")
            .length_consistent());
        assert_eq!(
            UdpDatagram::new_checked(&b[..7]).err(),
            Some(Error::Truncated)
        );
    }
}
