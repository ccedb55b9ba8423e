//! The Internet checksum (RFC 1071).

/// The 16-bit one's complement sum of `data` added to `initial`, folded.
/// Any `initial` with up to 65,535 bytes of data (any IP packet) fits the
/// 32-bit sum.
pub fn ones_complement_sum(initial: u32, data: &[u8]) -> u16 {
    // Folded first, so that a large `initial` leaves room for the data's words.
    let mut sum = (initial & 0xffff) + (initial >> 16);
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
