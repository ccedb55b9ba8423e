//! Capture files: classic pcap (libpcap) and pcapng (Wireshark/dumpcap), read
//! into memory with their timestamps and link types, and written for generated
//! traffic. Corrupt input is an error that says what is wrong, never a panic.

use std::io::{self, Read, Write};

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record levee accepts; a larger declared length means a corrupt file.
const MAX_RECORD: u32 = 256 * 1024;

/// Errors reading a capture. The text is the message shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("cannot read the capture: {0}")]
    Io(#[from] io::Error),
    #[error("not a pcap file (magic number {0:#010x})")]
    BadMagic(u32),
    #[error("corrupt capture: record {index} declares {len} bytes (limit {MAX_RECORD})")]
    RecordTooLarge { index: u64, len: u32 },
    #[error("corrupt capture: record {index} is cut short")]
    Truncated { index: u64 },
    #[error("not a capture file: shorter than a pcap or pcapng header")]
    TooShort,
    #[error("corrupt pcapng: {0}")]
    BadBlock(String),
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The frame's link type (LINKTYPE_ETHERNET for everything levee parses).
    pub linktype: u32,
    /// Capture time in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The frame's length on the wire (may exceed `data.len()` if snapped).
    pub original_len: u32,
    pub data: Vec<u8>,
}

/// Writes a classic pcap with microsecond timestamps.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        out.write_all(&MAGIC_MICROS.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?; // thiszone
        out.write_all(&0u32.to_le_bytes())?; // sigfigs
        out.write_all(&65535u32.to_le_bytes())?; // snaplen
        out.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { out })
    }

    pub fn write(&mut self, timestamp_ns: u64, frame: &[u8]) -> io::Result<()> {
        let secs = u32::try_from(timestamp_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let micros = ((timestamp_ns % 1_000_000_000) / 1000) as u32;
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too large"))?;
        self.out.write_all(&secs.to_le_bytes())?;
        self.out.write_all(&micros.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(frame)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads every record of a pcap or pcapng capture, told apart by their magic.
pub fn read_capture<R: Read>(mut input: R) -> Result<Vec<Record>, PcapError> {
    let mut magic = [0u8; 4];
    if read_full(&mut input, &mut magic)? < 4 {
        return Err(PcapError::TooShort);
    }
    if magic == PCAPNG_SHB.to_le_bytes() {
        read_pcapng_after_magic(input)
    } else {
        read_pcap_after_magic(magic, input).map(|(_, records)| records)
    }
}

/// Reads every record of a classic pcap (either byte order, micro- or nanosecond
/// timestamps); returns the link type and the records.
pub fn read_pcap<R: Read>(mut input: R) -> Result<(u32, Vec<Record>), PcapError> {
    let mut magic = [0u8; 4];
    if read_full(&mut input, &mut magic)? < 4 {
        return Err(PcapError::TooShort);
    }
    read_pcap_after_magic(magic, input)
}

fn read_pcap_after_magic<R: Read>(
    magic: [u8; 4],
    mut input: R,
) -> Result<(u32, Vec<Record>), PcapError> {
    let mut header = [0u8; 24];
    header[..4].copy_from_slice(&magic);
    if read_full(&mut input, &mut header[4..])? < 20 {
        return Err(PcapError::TooShort);
    }
    let magic_le = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let (big_endian, nanos) = match magic_le {
        MAGIC_MICROS => (false, false),
        MAGIC_NANOS => (false, true),
        m if m.swap_bytes() == MAGIC_MICROS => (true, false),
        m if m.swap_bytes() == MAGIC_NANOS => (true, true),
        m => return Err(PcapError::BadMagic(m)),
    };
    let u32_at = |b: &[u8], at: usize| {
        let bytes = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    };
    let linktype = u32_at(&header, 20);
    let mut records = Vec::new();
    let mut index = 0u64;
    loop {
        let mut rh = [0u8; 16];
        match read_full(&mut input, &mut rh)? {
            0 => break,
            16 => {}
            _ => return Err(PcapError::Truncated { index }),
        }
        let (secs, frac, caplen, origlen) = (
            u32_at(&rh, 0),
            u32_at(&rh, 4),
            u32_at(&rh, 8),
            u32_at(&rh, 12),
        );
        if caplen > MAX_RECORD {
            return Err(PcapError::RecordTooLarge { index, len: caplen });
        }
        let mut data = vec![0u8; caplen as usize];
        if read_full(&mut input, &mut data)? != data.len() {
            return Err(PcapError::Truncated { index });
        }
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        records.push(Record {
            linktype,
            timestamp_ns: u64::from(secs) * 1_000_000_000 + frac_ns,
            original_len: origlen,
            data,
        });
        index += 1;
    }
    Ok((linktype, records))
}

const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
/// Largest pcapng block levee accepts.
const MAX_BLOCK: u32 = 16 * 1024 * 1024;

/// An interface of a pcapng section: link type, snap length and timestamp unit.
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    /// Nanoseconds per timestamp unit, or units per nanosecond when `per_ns`.
    ns_per_unit: u64,
    units_per_ns: u64,
}

impl Interface {
    fn timestamp_ns(&self, units: u64) -> u64 {
        if self.units_per_ns > 1 {
            units / self.units_per_ns
        } else {
            units.saturating_mul(self.ns_per_unit)
        }
    }
}

/// Reads a pcapng after its first 4 bytes (the SHB block type): every section,
/// every interface (each with its own link type and timestamp resolution).
fn read_pcapng_after_magic<R: Read>(mut input: R) -> Result<Vec<Record>, PcapError> {
    let bad = |m: String| PcapError::BadBlock(m);
    let mut records = Vec::new();
    let mut big_endian = false;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut block_type = PCAPNG_SHB;
    let mut first = true;
    loop {
        if !first {
            let mut t = [0u8; 4];
            match read_full(&mut input, &mut t)? {
                0 => break,
                4 => {}
                _ => return Err(bad("block header cut short".into())),
            }
            block_type = if big_endian {
                u32::from_be_bytes(t)
            } else {
                u32::from_le_bytes(t)
            };
        }
        first = false;
        let mut len_bytes = [0u8; 4];
        input
            .read_exact(&mut len_bytes)
            .map_err(|_| bad("block length cut short".into()))?;
        if block_type == PCAPNG_SHB {
            // The byte-order magic decides how this section (and its length) is read.
            let mut bom = [0u8; 4];
            input
                .read_exact(&mut bom)
                .map_err(|_| bad("section header cut short".into()))?;
            big_endian = match u32::from_le_bytes(bom) {
                PCAPNG_BYTE_ORDER_MAGIC => false,
                m if m.swap_bytes() == PCAPNG_BYTE_ORDER_MAGIC => true,
                m => return Err(bad(format!("unknown byte-order magic {m:#010x}"))),
            };
            interfaces.clear();
        }
        let u32_of = |b: [u8; 4]| {
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let total = u32_of(len_bytes);
        let header = if block_type == PCAPNG_SHB { 12 } else { 8 };
        if total < header + 4 || total % 4 != 0 || total > MAX_BLOCK {
            return Err(bad(format!(
                "block of type {block_type:#x} has invalid length {total}"
            )));
        }
        let mut body = vec![0u8; (total - header - 4) as usize];
        input
            .read_exact(&mut body)
            .map_err(|_| bad(format!("block of type {block_type:#x} cut short")))?;
        let mut trailer = [0u8; 4];
        input
            .read_exact(&mut trailer)
            .map_err(|_| bad("block trailer cut short".into()))?;
        if u32_of(trailer) != total {
            return Err(bad(format!(
                "block of type {block_type:#x}: trailing length differs from leading length"
            )));
        }
        let u16_at = |b: &[u8], at: usize| {
            let v = [b[at], b[at + 1]];
            if big_endian {
                u16::from_be_bytes(v)
            } else {
                u16::from_le_bytes(v)
            }
        };
        let u32_at = |b: &[u8], at: usize| u32_of([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        match block_type {
            PCAPNG_IDB => {
                if body.len() < 8 {
                    return Err(bad("interface description too short".into()));
                }
                let mut iface = Interface {
                    linktype: u32::from(u16_at(&body, 0)),
                    snaplen: u32_at(&body, 4),
                    ns_per_unit: 1000,
                    units_per_ns: 1,
                };
                // Options: if_tsresol (code 9) changes the timestamp unit.
                let mut at = 8;
                while at + 4 <= body.len() {
                    let (code, len) = (u16_at(&body, at), usize::from(u16_at(&body, at + 2)));
                    if code == 0 || at + 4 + len > body.len() {
                        break;
                    }
                    if code == 9 && len >= 1 {
                        let r = body[at + 4];
                        let exp = u32::from(r & 0x7f);
                        let units_per_sec: u128 = if r & 0x80 == 0 {
                            10u128.pow(exp.min(30))
                        } else {
                            1u128 << exp.min(100)
                        };
                        if units_per_sec <= 1_000_000_000 {
                            iface.ns_per_unit = (1_000_000_000 / units_per_sec) as u64;
                            iface.units_per_ns = 1;
                        } else {
                            iface.ns_per_unit = 1;
                            iface.units_per_ns =
                                u64::try_from(units_per_sec / 1_000_000_000).unwrap_or(u64::MAX);
                        }
                    }
                    at += 4 + len.div_ceil(4) * 4;
                }
                interfaces.push(iface);
            }
            PCAPNG_EPB => {
                if body.len() < 20 {
                    return Err(bad("enhanced packet block too short".into()));
                }
                let iface_id = u32_at(&body, 0) as usize;
                let iface = *interfaces
                    .get(iface_id)
                    .ok_or_else(|| bad(format!("packet on undeclared interface {iface_id}")))?;
                let units = (u64::from(u32_at(&body, 4)) << 32) | u64::from(u32_at(&body, 8));
                let caplen = u32_at(&body, 12);
                let origlen = u32_at(&body, 16);
                if caplen as usize > body.len() - 20 {
                    return Err(PcapError::Truncated {
                        index: records.len() as u64,
                    });
                }
                records.push(Record {
                    linktype: iface.linktype,
                    timestamp_ns: iface.timestamp_ns(units),
                    original_len: origlen,
                    data: body[20..20 + caplen as usize].to_vec(),
                });
            }
            PCAPNG_SPB => {
                let iface = *interfaces
                    .first()
                    .ok_or_else(|| bad("simple packet before any interface".into()))?;
                if body.len() < 4 {
                    return Err(bad("simple packet block too short".into()));
                }
                let origlen = u32_at(&body, 0);
                let caplen = (origlen as usize)
                    .min(body.len() - 4)
                    .min(if iface.snaplen == 0 {
                        usize::MAX
                    } else {
                        iface.snaplen as usize
                    });
                records.push(Record {
                    linktype: iface.linktype,
                    timestamp_ns: records.last().map_or(0, |r: &Record| r.timestamp_ns),
                    original_len: origlen,
                    data: body[4..4 + caplen].to_vec(),
                });
            }
            // Section headers were handled above; name resolution, statistics,
            // custom and unknown blocks carry nothing levee needs.
            _ => {}
        }
    }
    Ok(records)
}

/// Writes a pcapng with one Ethernet interface and nanosecond timestamps.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapngWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        // Section header: type, length 28, byte-order magic, version 1.0, section length unknown.
        let mut shb = Vec::with_capacity(28);
        shb.extend_from_slice(&PCAPNG_SHB.to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        shb.extend_from_slice(&PCAPNG_BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        out.write_all(&shb)?;
        // Interface: Ethernet, snaplen 65535, if_tsresol = 9 (nanoseconds), end of options.
        let mut idb = Vec::with_capacity(32);
        idb.extend_from_slice(&PCAPNG_IDB.to_le_bytes());
        idb.extend_from_slice(&32u32.to_le_bytes());
        idb.extend_from_slice(&(LINKTYPE_ETHERNET as u16).to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&65535u32.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]);
        idb.extend_from_slice(&32u32.to_le_bytes());
        out.write_all(&idb)?;
        Ok(PcapngWriter { out })
    }

    pub fn write(&mut self, timestamp_ns: u64, frame: &[u8]) -> io::Result<()> {
        self.write_head(timestamp_ns, frame, frame.len())
    }

    /// Write the first bytes of a longer frame (a sampled packet head).
    pub fn write_head(
        &mut self,
        timestamp_ns: u64,
        frame: &[u8],
        original_len: usize,
    ) -> io::Result<()> {
        let caplen = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too large"))?;
        let origlen = u32::try_from(original_len.max(frame.len()))
            .map_err(|_| io::Error::other("frame too large"))?;
        let padded = frame.len().div_ceil(4) * 4;
        let total = (32 + padded) as u32;
        self.out.write_all(&PCAPNG_EPB.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(&0u32.to_le_bytes())?;
        self.out
            .write_all(&((timestamp_ns >> 32) as u32).to_le_bytes())?;
        self.out.write_all(&(timestamp_ns as u32).to_le_bytes())?;
        self.out.write_all(&caplen.to_le_bytes())?;
        self.out.write_all(&origlen.to_le_bytes())?;
        self.out.write_all(frame)?;
        self.out.write_all(&[0u8; 3][..padded - frame.len()])?;
        self.out.write_all(&total.to_le_bytes())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Like read_exact, but returns how many bytes it got before end of file.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET).expect("vec write");
        w.write(1_500_000_123_000, &[1, 2, 3]).expect("vec write");
        w.write(1_500_000_124_000, &[4; 60]).expect("vec write");
        let bytes = w.finish().expect("vec write");
        let (linktype, records) = read_pcap(&bytes[..]).expect("valid capture");
        assert_eq!(linktype, LINKTYPE_ETHERNET);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data, vec![1, 2, 3]);
        assert_eq!(records[0].timestamp_ns, 1_500_000_123_000);
        assert_eq!(records[1].data, vec![4; 60]);
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        assert!(matches!(
            read_pcap(&b"not a pcap at all, really not"[..]),
            Err(PcapError::BadMagic(_))
        ));
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET).expect("vec write");
        w.write(0, &[9; 100]).expect("vec write");
        let bytes = w.finish().expect("vec write");
        for cut in 25..bytes.len() {
            assert!(
                matches!(
                    read_pcap(&bytes[..cut]),
                    Err(PcapError::Truncated { index: 0 })
                ),
                "cut at {cut}"
            );
        }
        let mut huge = bytes.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_pcap(&huge[..]),
            Err(PcapError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn pcapng_round_trips_with_nanosecond_timestamps() {
        let mut w = PcapngWriter::new(Vec::new()).expect("vec write");
        w.write(1_700_000_000_123_456_789, &[1, 2, 3, 4, 5])
            .expect("vec write");
        w.write(1_700_000_001_000_000_001, &[6; 64])
            .expect("vec write");
        let bytes = w.finish().expect("vec write");
        let records = read_capture(&bytes[..]).expect("valid pcapng");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data, vec![1, 2, 3, 4, 5]);
        assert_eq!(records[0].timestamp_ns, 1_700_000_000_123_456_789);
        assert_eq!(records[1].timestamp_ns, 1_700_000_001_000_000_001);
        assert_eq!(records[1].linktype, LINKTYPE_ETHERNET);
    }

    #[test]
    fn corrupt_pcapng_is_an_error_at_every_cut() {
        let mut w = PcapngWriter::new(Vec::new()).expect("vec write");
        w.write(5, &[1; 61]).expect("vec write");
        let bytes = w.finish().expect("vec write");
        for cut in 4..bytes.len() {
            // A cut exactly between blocks is a shorter, valid capture.
            if cut == 28 || cut == 60 {
                continue;
            }
            assert!(read_capture(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_len = bytes.clone();
        bad_len[4] = 27; // SHB length not a multiple of 4
        assert!(matches!(
            read_capture(&bad_len[..]),
            Err(PcapError::BadBlock(_))
        ));
        let mut undeclared = bytes;
        undeclared[68] = 3; // EPB on interface 3
        assert!(matches!(
            read_capture(&undeclared[..]),
            Err(PcapError::BadBlock(_))
        ));
    }
}
