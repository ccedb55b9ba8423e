//! levee's dataplane: everything the poll-mode workers run.
//!
//! - [`dpdk`]: safe wrappers over DPDK (the only module with `unsafe`);
//! - [`worker`]: the poll-mode loop, generic over its packet I/O and clock;
//! - [`wire`]: zero-copy parsers and traffic classes;
//! - [`synth`]: synthetic frames and pcap writing for tests, demos and benchmarks.

pub mod dpdk;
pub mod pcap;
pub mod pipeline;
pub mod replay;
pub mod stats;
pub mod synth;
pub mod tables;
pub mod wire;
pub mod worker;
