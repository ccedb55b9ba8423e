//! The fields of a signature rule that are written as text, each with one
//! parser (`FromStr`) and one printer (`Display`), so the configuration, the
//! API, the CLI and the mitigator accept and write the same spellings.

use std::fmt;
use std::str::FromStr;

/// One TCP flag: its letter in `FLAGS/MASK` notation, its bit, and its names
/// in iptables and nftables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlag {
    pub letter: char,
    pub bit: u8,
    pub iptables: &'static str,
    pub nft: &'static str,
}

/// The TCP flags, in the order of their bits.
pub const TCP_FLAGS: [TcpFlag; 8] = [
    flag('F', 0x01, "FIN", "fin"),
    flag('S', 0x02, "SYN", "syn"),
    flag('R', 0x04, "RST", "rst"),
    flag('P', 0x08, "PSH", "psh"),
    flag('A', 0x10, "ACK", "ack"),
    flag('U', 0x20, "URG", "urg"),
    flag('E', 0x40, "ECE", "ecn"),
    flag('C', 0x80, "CWR", "cwr"),
];

const fn flag(letter: char, bit: u8, iptables: &'static str, nft: &'static str) -> TcpFlag {
    TcpFlag {
        letter,
        bit,
        iptables,
        nft,
    }
}

/// A match on TCP flags: the bits of `mask` must equal those of `value`.
/// Written `FLAGS/MASK` (`S/SA`: SYN set, ACK clear; `/S`: SYN clear);
/// `FLAGS` alone means those flags set, the others ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlags {
    pub mask: u8,
    pub value: u8,
}

impl TcpFlags {
    /// The flags among `bits`, in bit order.
    pub fn of(bits: u8) -> impl Iterator<Item = &'static TcpFlag> {
        TCP_FLAGS.iter().filter(move |f| bits & f.bit != 0)
    }
}

/// Why a rule field's text was refused; the text is the message (the caller
/// names the field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(String);

impl FromStr for TcpFlags {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<TcpFlags, FieldError> {
        let refused = || {
            FieldError(format!(
                "{s:?} is not FLAGS/MASK in the letters FSRPAUEC (e.g. \"S/SA\": SYN without ACK)"
            ))
        };
        let bits = |part: &str| -> Option<u8> {
            if part.is_empty() {
                return None;
            }
            part.chars().try_fold(0u8, |acc, c| {
                let c = c.to_ascii_uppercase();
                TCP_FLAGS
                    .iter()
                    .find(|f| f.letter == c)
                    .map(|f| acc | f.bit)
            })
        };
        let (value, mask) = match s.trim().split_once('/') {
            Some((v, m)) => (
                if v.is_empty() {
                    0
                } else {
                    bits(v).ok_or_else(refused)?
                },
                bits(m).ok_or_else(refused)?,
            ),
            None => {
                let v = bits(s.trim()).ok_or_else(refused)?;
                (v, v)
            }
        };
        if value & !mask != 0 {
            return Err(FieldError(format!(
                "{s:?}: every flag before the / must also be in the mask after it"
            )));
        }
        Ok(TcpFlags { mask, value })
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for flag in TcpFlags::of(self.value) {
            write!(f, "{}", flag.letter)?;
        }
        f.write_str("/")?;
        for flag in TcpFlags::of(self.mask) {
            write!(f, "{}", flag.letter)?;
        }
        Ok(())
    }
}

/// An IP protocol number, written by name where it has one levee knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpProtocol(pub u8);

const PROTOCOL_NAMES: [(&str, u8); 6] = [
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("icmpv6", 58),
];

impl FromStr for IpProtocol {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<IpProtocol, FieldError> {
        let name = s.trim().to_ascii_lowercase();
        let name = if name == "ipv6-icmp" {
            "icmpv6".into()
        } else {
            name
        };
        if let Some((_, n)) = PROTOCOL_NAMES.iter().find(|(p, _)| *p == name) {
            return Ok(IpProtocol(*n));
        }
        name.parse::<u8>().map(IpProtocol).map_err(|_| {
            FieldError(format!(
                "{s:?} is not tcp, udp, icmp, icmpv6, gre, esp or a number 0-255"
            ))
        })
    }
}

impl IpProtocol {
    /// A protocol given as a number (TOML or JSON integer).
    pub fn number(n: i64) -> Result<IpProtocol, FieldError> {
        u8::try_from(n)
            .map(IpProtocol)
            .map_err(|_| FieldError(format!("{n} is not a protocol number 0-255")))
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PROTOCOL_NAMES.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_flags_parse_and_print_the_same_notation() {
        for (text, mask, value, printed) in [
            ("S/SA", 0x12, 0x02, "S/SA"),
            ("s/sa", 0x12, 0x02, "S/SA"),
            ("/S", 0x02, 0x00, "/S"),
            ("SA", 0x12, 0x12, "SA/SA"),
            ("R/R", 0x04, 0x04, "R/R"),
        ] {
            let f: TcpFlags = text.parse().expect(text);
            assert_eq!((f.mask, f.value), (mask, value), "{text}");
            assert_eq!(f.to_string(), printed);
            assert_eq!(printed.parse::<TcpFlags>().expect(printed), f);
        }
        for bad in ["", "/", "S/", "X/S", "SA/S", "S A"] {
            let err = bad.parse::<TcpFlags>().expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn protocols_by_name_or_number() {
        for (text, n) in [
            ("tcp", 6),
            ("UDP", 17),
            ("icmpv6", 58),
            ("ipv6-icmp", 58),
            ("esp", 50),
            ("132", 132),
        ] {
            assert_eq!(text.parse::<IpProtocol>().expect(text), IpProtocol(n));
        }
        assert_eq!(IpProtocol(17).to_string(), "udp");
        assert_eq!(IpProtocol(132).to_string(), "132");
        assert!("sctp".parse::<IpProtocol>().is_err());
        assert!("256".parse::<IpProtocol>().is_err());
        assert!(IpProtocol::number(-1).is_err());
        assert_eq!(IpProtocol::number(47).expect("gre"), IpProtocol(47));
    }
}
