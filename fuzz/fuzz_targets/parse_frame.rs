//! Any bytes as an Ethernet frame: the parser must not panic, what it reports
//! must stay inside the frame, and its fast path for plain IPv4 must agree with
//! the general parser.
#![no_main]

use levee_dataplane::wire::{parse, parse_general, ParseStatus, TrafficClass};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let m = parse(frame);
    assert!(usize::from(m.l4_offset) <= frame.len());
    if m.status == ParseStatus::Ok {
        assert!(usize::from(m.ip_len) + 14 <= frame.len());
    }
    assert!(m.class.index() < TrafficClass::COUNT);
    assert_eq!(m, parse_general(frame));
});
