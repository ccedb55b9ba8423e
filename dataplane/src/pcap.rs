//! Classic pcap files (libpcap format): a writer for generated captures and a
//! reader for comparing captures in tests and tools.

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
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
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

/// Reads every record of a classic pcap (either byte order, micro- or nanosecond
/// timestamps).
pub fn read_pcap<R: Read>(mut input: R) -> Result<(u32, Vec<Record>), PcapError> {
    let mut header = [0u8; 24];
    input.read_exact(&mut header)?;
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
        if big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) }
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
        let (secs, frac, caplen, origlen) = (u32_at(&rh, 0), u32_at(&rh, 4), u32_at(&rh, 8), u32_at(&rh, 12));
        if caplen > MAX_RECORD {
            return Err(PcapError::RecordTooLarge { index, len: caplen });
        }
        let mut data = vec![0u8; caplen as usize];
        if read_full(&mut input, &mut data)? != data.len() {
            return Err(PcapError::Truncated { index });
        }
        let frac_ns = if nanos { u64::from(frac) } else { u64::from(frac) * 1000 };
        records.push(Record { timestamp_ns: u64::from(secs) * 1_000_000_000 + frac_ns, original_len: origlen, data });
        index += 1;
    }
    Ok((linktype, records))
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
        assert!(matches!(read_pcap(&b"not a pcap at all, really not"[..]), Err(PcapError::BadMagic(_))));
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET).expect("vec write");
        w.write(0, &[9; 100]).expect("vec write");
        let bytes = w.finish().expect("vec write");
        for cut in 25..bytes.len() {
            assert!(matches!(read_pcap(&bytes[..cut]), Err(PcapError::Truncated { index: 0 })), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_pcap(&huge[..]), Err(PcapError::RecordTooLarge { .. })));
    }
}
