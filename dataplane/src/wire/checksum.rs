//! The Internet checksum (RFC 1071).

/// The 16-bit one's complement sum of `data` added to `initial`, folded.
/// Summed four bytes at a time into 64 bits (2^16 is 1 in one's complement
/// arithmetic, so a 32-bit word adds its two halves), folded once at the
/// end: a SYN-ACK's checksums were an eighth of the challenge path's time two
/// bytes at a time. Any `initial` with up to 65,535 bytes of data (any IP
/// packet) fits.
pub fn ones_complement_sum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(initial);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071's definition, one 16-bit word at a time.
    fn reference(initial: u32, data: &[u8]) -> u16 {
        let mut sum = u64::from(initial);
        for (i, b) in data.iter().enumerate() {
            sum += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc_1071_example() {
        // Section 3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(0, &data), 0xddf2);
        assert_eq!(ones_complement_sum(0, &data[..7]), reference(0, &data[..7]));
    }

    #[test]
    fn the_largest_initial_sums_and_the_longest_packet_do_not_overflow() {
        let ones = vec![0xff; 65_535];
        for initial in [u32::MAX, 0xffff_0000, 0x0001_0000, 0xffff, 0] {
            assert_eq!(
                ones_complement_sum(initial, &ones),
                reference(initial, &ones)
            );
            assert_eq!(
                ones_complement_sum(initial, &ones[..7]),
                reference(initial, &ones[..7])
            );
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_word_by_word_sum(
            initial in any::<u32>(),
            data in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assert_eq!(ones_complement_sum(initial, &data), reference(initial, &data));
        }
    }
}
