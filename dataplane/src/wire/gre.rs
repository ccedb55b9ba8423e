//! GRE (RFC 2784/2890): levee reads the version and the encapsulated protocol only.

use super::field::be16;
use super::Error;

pub const MIN_HEADER_LEN: usize = 4;

/// A view of a GRE header.
#[derive(Debug, Clone, Copy)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(GrePacket { buffer })
    }

    /// 0 for GRE, 1 for enhanced GRE (PPTP).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[1] & 0x07
    }

    /// The EtherType of the encapsulated payload.
    #[inline(always)]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deconstruct() {
        let g = GrePacket::new_checked(&[0x00u8, 0x00, 0x08, 0x00][..]).expect("valid");
        assert_eq!((g.version(), g.protocol()), (0, 0x0800));
        let pptp = GrePacket::new_checked(&[0x30u8, 0x81, 0x88, 0x0b][..]).expect("valid");
        assert_eq!((pptp.version(), pptp.protocol()), (1, 0x880b));
        assert_eq!(
            GrePacket::new_checked(&[0u8; 3][..]).err(),
            Some(Error::Truncated)
        );
    }
}
