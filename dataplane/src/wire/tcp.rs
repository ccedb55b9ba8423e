//! TCP headers (RFC 9293): ports, sequence numbers, flags, data offset.

use super::field::{be16, be32, Field};
use super::Error;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
}

pub const MIN_HEADER_LEN: usize = 20;

/// TCP flag bits as they sit in byte 13 (CWR..FIN).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        TcpSegment { buffer }
    }

    /// A view whose header (options included) fits in the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let segment = TcpSegment { buffer };
        let header_len = segment.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(segment)
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ.start)
    }

    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK.start)
    }

    /// Header length in bytes (data offset × 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW.start)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, // 40000 -> 80
        0x00, 0x00, 0x00, 0x64, // seq 100
        0x00, 0x00, 0x00, 0x00, // ack 0
        0x60, 0x02, 0xff, 0xff, // offset 6 (24 bytes), SYN, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    #[test]
    fn deconstruct_syn_with_option() {
        let s = TcpSegment::new_checked(&SYN[..]).expect("valid");
        assert_eq!((s.src_port(), s.dst_port()), (40000, 80));
        assert_eq!(s.seq_number(), 100);
        assert_eq!(s.ack_number(), 0);
        assert_eq!(s.header_len(), 24);
        assert_eq!(s.flags(), flags::SYN);
        assert_eq!(s.window(), 0xffff);
        assert!(s.payload().is_empty());
    }

    #[test]
    fn bad_data_offsets() {
        let mut b = SYN;
        b[12] = 0x40; // 16 bytes < 20
        assert_eq!(
            TcpSegment::new_checked(&b[..]).err(),
            Some(Error::BadHeaderLength)
        );
        let mut b = SYN;
        b[12] = 0xf0; // 60 bytes > 24
        assert_eq!(
            TcpSegment::new_checked(&b[..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            TcpSegment::new_checked(&SYN[..19]).err(),
            Some(Error::Truncated)
        );
    }
}
