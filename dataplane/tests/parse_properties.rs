//! Property tests: no input makes the parser panic or claim more than the frame
//! holds, and mutations of valid frames stay within the documented statuses.

use levee_dataplane::synth;
use levee_dataplane::wire::{parse, parse_general, Fragment, L3Family, ParseStatus, TrafficClass};
use proptest::prelude::*;

/// Invariants every parse result must satisfy, whatever the input.
fn check_invariants(frame: &[u8]) {
    let m = parse(frame);
    assert_eq!(
        m,
        parse_general(frame),
        "the fast path for plain IPv4 agrees with the general parser"
    );
    assert_eq!(
        usize::from(m.frame_len),
        frame.len().min(usize::from(u16::MAX))
    );
    assert!(
        usize::from(m.l4_offset) <= frame.len(),
        "transport offset inside the frame"
    );
    if m.status == ParseStatus::Ok {
        assert_ne!(m.family, L3Family::None);
        assert!(
            usize::from(m.ip_len) + 14 <= frame.len(),
            "IP length within the frame"
        );
        assert_ne!(m.class, TrafficClass::Malformed);
    }
    if !m.status.is_well_formed() {
        assert_eq!(m.class, TrafficClass::Malformed);
    }
    if m.fragment == Fragment::NonFirst {
        assert_eq!((m.src_port, m.dst_port, m.l4_offset), (0, 0, 0));
    }
    assert!(usize::from(m.vlan_count) <= levee_dataplane::wire::MAX_VLAN_TAGS);
    assert!(m.class.index() < TrafficClass::COUNT);
    assert_eq!(usize::from(m.class_index), m.class.index());
}

fn valid_frames() -> Vec<Vec<u8>> {
    synth::labelled_mix(1).into_iter().map(|(f, _)| f).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..1600)) {
        check_invariants(&frame);
    }

    /// Random bytes behind a plausible Ethernet + IP prefix, to get past the first
    /// checks far more often than uniform bytes do.
    #[test]
    fn ip_shaped_garbage_never_panics(
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), Just(0x88a8)],
        first in any::<u8>(),
        rest in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.push(first);
        f.extend(rest);
        check_invariants(&f);
    }

    /// Untagged IPv4 headers whose fields sit on and around the fast path's
    /// bounds (header length, total length, fragment bits, protocol, TCP data
    /// offset): wherever it takes a frame, it says what the general parser says.
    #[test]
    fn plain_ipv4_headers_parse_as_the_general_parser_does(
        ver_ihl in prop_oneof![Just(0x45u8), Just(0x46), Just(0x44), Just(0x55), any::<u8>()],
        flags_frag in prop_oneof![Just(0u16), Just(0x4000), Just(0x2000), Just(0x0001), Just(0x8000), any::<u16>()],
        protocol in prop_oneof![Just(6u8), Just(17), Just(1), Just(47), any::<u8>()],
        data_offset in prop_oneof![Just(0x50u8), Just(0x40), Just(0x60), Just(0xf0), any::<u8>()],
        len in 0usize..140,
        total_delta in -30i32..30,
        tail in proptest::collection::vec(any::<u8>(), 140),
    ) {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&tail);
        f.truncate(len.max(14));
        let ip_room = f.len().saturating_sub(14) as i32;
        let total = (ip_room + total_delta).clamp(0, 0xffff) as u16;
        let mut set = |at: usize, v: u8| if let Some(b) = f.get_mut(at) { *b = v };
        set(14, ver_ihl);
        set(16, (total >> 8) as u8);
        set(17, total as u8);
        set(20, (flags_frag >> 8) as u8);
        set(21, flags_frag as u8);
        set(23, protocol);
        set(46, data_offset);
        check_invariants(&f);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..64,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let frames = valid_frames();
        let mut f = frames[which % frames.len()].clone();
        for (at, byte) in flips {
            let len = f.len();
            f[at % len] = byte;
        }
        let cut = cut % (f.len() + 1);
        check_invariants(&f[..cut]);
        check_invariants(&f);
    }
}
