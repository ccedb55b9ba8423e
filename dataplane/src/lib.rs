//! levee's dataplane: everything the poll-mode workers run.
//!
//! - [`packet_io`]: what a packet source gives the loop (bursts, paths, a clock);
//!   a leaf every other module may use;
//! - [`cpu`]: a prefetch and the cycle counter;
//! - [`named_enum!`]: enums with stable names, `ALL` and `COUNT` from one table;
//! - [`wire`]: zero-copy parsers and traffic classes;
//! - [`tables`]: the lock-free rule tables and their publication;
//! - [`stats`]: per-window counters and reports;
//! - [`pipeline`]: one burst judged and counted (tables + stats);
//! - [`worker`]: the poll-mode loop over any packet source;
//! - [`replay`], [`pcap`]: capture files as a packet source;
//! - [`synth`]: synthetic frames for tests, demos and benchmarks;
//! - [`dpdk`] (feature `dpdk`, on by default): safe wrappers over DPDK and its
//!   packet source. Everything else builds and tests without DPDK.

pub mod cpu;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
mod named;
pub mod packet_io;
pub mod pcap;
pub mod pipeline;
pub mod replay;
pub mod stats;
pub mod synth;
pub mod tables;
pub mod wire;
pub mod worker;
