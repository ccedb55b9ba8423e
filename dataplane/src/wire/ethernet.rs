//! Ethernet II frames and 802.1Q / 802.1ad (QinQ) VLAN tags.

use super::field::{array, be16, Field};
use super::Error;

/// EtherType values levee acts on.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag still seen on some switches.
    pub const QINQ_OLD: u16 = 0x9100;

    /// Whether `t` introduces a VLAN tag.
    #[inline(always)]
    pub fn is_vlan(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_OLD)
    }
}

mod field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// A view without length checks; accessors may panic on a short buffer.
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// A view over a buffer long enough for the header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    pub fn destination(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::DESTINATION)
    }

    pub fn source(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::SOURCE)
    }

    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// Everything after the 14-byte header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

mod vlan_field {
    use super::Field;
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of a VLAN tag (after the TPID that announced it).
pub const VLAN_TAG_LEN: usize = vlan_field::PAYLOAD;

/// A view of the 4 bytes that follow a VLAN TPID: TCI and the next EtherType.
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < VLAN_TAG_LEN {
            return Err(Error::Truncated);
        }
        Ok(VlanTag { buffer })
    }

    /// The 12-bit VLAN identifier.
    #[inline(always)]
    pub fn vlan_id(&self) -> u16 {
        be16(self.buffer.as_ref(), vlan_field::TCI.start) & 0x0fff
    }

    /// The 3-bit priority code point.
    pub fn priority(&self) -> u8 {
        (self.buffer.as_ref()[vlan_field::TCI.start] >> 5) & 0x7
    }

    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), vlan_field::ETHERTYPE.start)
    }

    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[vlan_field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source
        0x81, 0x00, // 802.1Q
        0xa0, 0x64, // PCP 5, VLAN 100
        0x08, 0x00, // IPv4
    ];

    #[test]
    fn deconstruct_ethernet_and_vlan() {
        let eth = EthernetFrame::new_checked(&FRAME[..]).expect("long enough");
        assert_eq!(eth.destination(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(eth.source(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(eth.ethertype(), ethertype::VLAN);
        let tag = VlanTag::new_checked(eth.payload()).expect("tag");
        assert_eq!(tag.vlan_id(), 100);
        assert_eq!(tag.priority(), 5);
        assert_eq!(tag.ethertype(), ethertype::IPV4);
        assert!(tag.payload().is_empty());
    }

    #[test]
    fn short_buffers_are_refused() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME[..len]).err(),
                Some(Error::Truncated)
            );
        }
        assert_eq!(
            VlanTag::new_checked(&FRAME[14..17]).err(),
            Some(Error::Truncated)
        );
    }
}
