//! ICMP (RFC 792) and ICMPv6 (RFC 4443): type and code, the same layout.

use super::Error;

pub const HEADER_LEN: usize = 4;

/// A view of an ICMP or ICMPv6 message header.
#[derive(Debug, Clone, Copy)]
pub struct IcmpMessage<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpMessage<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        IcmpMessage { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IcmpMessage { buffer })
    }

    #[inline(always)]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    #[inline(always)]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deconstruct_echo_request() {
        let m = IcmpMessage::new_checked(&[8u8, 0, 0xf7, 0xff][..]).expect("valid");
        assert_eq!((m.msg_type(), m.code()), (8, 0));
        assert_eq!(
            IcmpMessage::new_checked(&[8u8, 0, 0][..]).err(),
            Some(Error::Truncated)
        );
    }
}
