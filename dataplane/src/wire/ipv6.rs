//! IPv6 headers (RFC 8200) and the extension headers levee walks.

use std::net::Ipv6Addr;

use super::field::{array, be16, Field};
use super::Error;

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SOURCE: Field = 8..24;
    pub const DESTINATION: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Next-header values of the extension headers levee knows.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// A view whose fixed header and declared payload fit in the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let data_len = buffer.as_ref().len();
        if data_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = Ipv6Packet { buffer };
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        if HEADER_LEN + usize::from(packet.payload_len()) > data_len {
            return Err(Error::LengthTooLarge);
        }
        Ok(packet)
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        let d = self.buffer.as_ref();
        (d[0] << 4) | (d[1] >> 4)
    }

    pub fn flow_label(&self) -> u32 {
        let d = self.buffer.as_ref();
        (u32::from(d[1] & 0x0f) << 16) | (u32::from(d[2]) << 8) | u32::from(d[3])
    }

    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline(always)]
    pub fn source(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::SOURCE)
    }

    #[inline(always)]
    pub fn destination(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::DESTINATION)
    }

    pub fn source_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.source())
    }

    pub fn destination_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.destination())
    }

    /// The payload (extension headers included) up to the declared length.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

/// One extension header: what follows it and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionHeader {
    pub next_header: u8,
    /// Bytes from the start of this header to the start of the next.
    pub len: usize,
    /// For a fragment header: offset in bytes and the more-fragments flag.
    pub fragment: Option<(u16, bool)>,
}

/// Whether `nh` is an extension header that [`extension_header`] can step over.
#[inline(always)]
pub fn is_walkable_extension(nh: u8) -> bool {
    use next_header::*;
    matches!(
        nh,
        HOP_BY_HOP | ROUTING | FRAGMENT | AH | DESTINATION_OPTIONS
    )
}

/// Read the extension header of kind `kind` at the start of `data`.
#[inline]
pub fn extension_header(kind: u8, data: &[u8]) -> Result<ExtensionHeader, Error> {
    if data.len() < 8 {
        return Err(Error::Truncated);
    }
    let next = data[0];
    let (len, fragment) = match kind {
        next_header::FRAGMENT => {
            let off_flags = be16(data, 2);
            (8, Some((off_flags & 0xfff8, off_flags & 1 != 0)))
        }
        // AH counts its length in 4-byte units, minus 2.
        next_header::AH => ((usize::from(data[1]) + 2) * 4, None),
        _ => ((usize::from(data[1]) + 1) * 8, None),
    };
    if len > data.len() {
        return Err(Error::Truncated);
    }
    Ok(ExtensionHeader {
        next_header: next,
        len,
        fragment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0x0a, 0xbc, 0xde];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.push(next);
        p.push(57);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn deconstruct_fixed_header() {
        let b = packet(17, &[0; 8]);
        let p = Ipv6Packet::new_checked(&b[..]).expect("valid");
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x00);
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 57);
        assert_eq!(
            p.source_addr(),
            "2001:db8::1".parse::<Ipv6Addr>().expect("addr")
        );
        assert_eq!(
            p.destination_addr(),
            "2001:db8::2".parse::<Ipv6Addr>().expect("addr")
        );
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn extension_headers() {
        // Hop-by-hop, 8 bytes, next = routing.
        assert_eq!(
            extension_header(next_header::HOP_BY_HOP, &[43, 0, 0, 0, 0, 0, 0, 0]),
            Ok(ExtensionHeader {
                next_header: 43,
                len: 8,
                fragment: None
            })
        );
        // Routing, 24 bytes.
        let mut routing = vec![60, 2];
        routing.resize(24, 0);
        assert_eq!(
            extension_header(next_header::ROUTING, &routing).map(|e| e.len),
            Ok(24)
        );
        assert_eq!(
            extension_header(next_header::ROUTING, &routing[..16]),
            Err(Error::Truncated)
        );
        // Fragment, offset 1480, more fragments.
        let frag = [17, 0, 0x05, 0xc9, 0, 0, 0, 1];
        assert_eq!(
            extension_header(next_header::FRAGMENT, &frag),
            Ok(ExtensionHeader {
                next_header: 17,
                len: 8,
                fragment: Some((1480, true))
            })
        );
        // AH with payload length 4: (4 + 2) * 4 = 24 bytes.
        let mut ah = vec![6, 4];
        ah.resize(24, 0);
        assert_eq!(
            extension_header(next_header::AH, &ah).map(|e| e.len),
            Ok(24)
        );
        assert_eq!(
            extension_header(next_header::AH, &[6]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn payload_length_lies_are_refused() {
        let mut b = packet(17, &[0; 8]);
        b[5] = 9;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).err(),
            Some(Error::LengthTooLarge)
        );
        let mut b = packet(17, &[0; 8]);
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).err(),
            Some(Error::BadVersion)
        );
        for len in 0..HEADER_LEN {
            assert_eq!(
                Ipv6Packet::new_checked(&b[..len]).err(),
                Some(Error::Truncated)
            );
        }
    }
}
