//! The Internet checksum (RFC 1071).

/// The 16-bit one's complement sum of `data` added to `initial`, folded.
pub fn ones_complement_sum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The TCP/UDP checksum of `segment` under the pseudo-header of `src`, `dst`
/// (both 4 or both 16 bytes) and `protocol`.
pub fn transport(src: &[u8], dst: &[u8], protocol: u8, segment: &[u8]) -> u16 {
    let len = segment.len() as u32;
    let mut sum = u32::from(ones_complement_sum(0, src));
    sum += u32::from(ones_complement_sum(0, dst));
    sum += u32::from(protocol) + (len >> 16) + (len & 0xffff);
    !ones_complement_sum(sum, segment)
}
