//! What every packet source gives the worker loop and the pipeline: bursts of
//! frames, paths that receive and send them, and a clock. A leaf: it imports
//! nothing of levee, so the pure dataplane (wire, tables, stats, pipeline,
//! worker, replay) builds without DPDK; the DPDK implementations live in
//! `crate::dpdk`, the capture's in `crate::replay`.

use crate::named_enum;

/// Packets moved per rx/tx call, as in DPDK's own examples.
pub const BURST_SIZE: usize = 32;

/// What became of a transmitted burst.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    pub sent: u32,
    /// Packets the TX queue did not take (full ring); they were freed.
    pub unsent: u32,
    pub unsent_bytes: u64,
}

named_enum! {
    /// Which way a packet travels through the bump in the wire.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Direction {
        /// From the outside (Internet-facing) port to the inside (protected) port.
        Inbound => "inbound",
        /// From the inside port to the outside port.
        Outbound => "outbound",
    }
}

impl Direction {}

/// A burst of received packets the worker can inspect and trim.
pub trait PacketBurst: Default {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes of packet `i` (empty if out of range).
    fn frame(&self, i: usize) -> &[u8];
    /// Hint that packet `i` will be read soon.
    fn prefetch(&self, _i: usize) {}
    /// Keep the packets whose bit is set in `keep`, drop the rest; returns how many
    /// were dropped.
    fn retain(&mut self, keep: u32) -> u32;
    /// Drop every packet still held.
    fn clear(&mut self);
    /// The bytes of packet `i`, writable; `None` where frames cannot be
    /// changed (a capture being replayed), so nothing can be answered.
    fn frame_mut(&mut self, _i: usize) -> Option<&mut [u8]> {
        None
    }
    /// Cut packet `i` to `len` bytes (after rewriting it shorter).
    fn truncate(&mut self, _i: usize, _len: usize) {}
    /// Keep the packets of `keep`, move those of `reply` to `replies`, drop
    /// the rest; returns how many were dropped. Bursts that cannot answer
    /// drop the replies too.
    fn sort_out(&mut self, keep: u32, reply: u32, replies: &mut Self) -> u32 {
        let _ = (reply, replies);
        self.retain(keep)
    }
}

/// Where a worker receives packets and where it sends those it forwards.
pub trait PacketPath {
    type Burst: PacketBurst;
    /// The direction of the traffic received on this path.
    fn direction(&self) -> Direction;
    /// Receive up to [`BURST_SIZE`] packets into `burst` (emptied first).
    fn receive(&mut self, burst: &mut Self::Burst) -> usize;
    /// Send every packet of `burst` to the peer; `None` when this path has no
    /// peer (monitor mode), in which case the caller drops them.
    fn transmit(&mut self, burst: &mut Self::Burst) -> Option<TxOutcome>;
    /// The index (among the worker's paths) of the path whose transmit leaves
    /// by the port this path receives on: where answers to its packets (SYN
    /// authentication challenges) are sent. `None`: nothing is answered.
    fn answered_through(&self) -> Option<usize> {
        None
    }
    /// Send answers (rewritten packets) out of the port this path transmits
    /// on; `None` when they cannot be sent.
    fn answer(&mut self, burst: &mut Self::Burst) -> Option<TxOutcome> {
        self.transmit(burst)
    }
}

/// A monotonic tick source and its rate.
pub trait Clock: std::fmt::Debug {
    fn now(&self) -> u64;
    fn hz(&self) -> u64;
    /// The clock's ticks at the moment the CPU's cycle counter read `cycles`
    /// (just now). A clock that is the cycle counter takes them as they are,
    /// which saves the worker a read per burst (each costs tens of cycles); any
    /// other clock reads itself.
    fn ticks_at(&self, cycles: u64) -> u64 {
        let _ = cycles;
        self.now()
    }
    /// `ticks` of this clock in nanoseconds.
    fn ns_of(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.hz().max(1))) as u64
    }
    /// The time in nanoseconds (the time base of rule expiry and windows).
    fn now_ns(&self) -> u64 {
        self.ns_of(self.now())
    }
}
