//! Any bytes as a capture file: pcap/pcapng reading must return records or an
//! error, never panic or allocate without bound.
#![no_main]

use levee_dataplane::pcap::read_capture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = read_capture(data) {
        for r in records {
            let _ = levee_dataplane::wire::parse(&r.data);
        }
    }
});
