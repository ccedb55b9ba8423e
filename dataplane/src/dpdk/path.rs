//! The DPDK side of the worker loop's interfaces: mbuf bursts, a port's queues
//! as a packet path, and the TSC as the clock.

use super::{tsc, tsc_hz, Eal, MbufBurst, RxQueue, TxQueue};
use crate::packet_io::{Clock, Direction, PacketBurst, PacketPath, TxOutcome};

/// The CPU's time-stamp counter, as calibrated by the EAL. Its nanoseconds are
/// aligned on the wall clock at start-up, so times the control plane records
/// (rule expiry, incident starts) mean the same after a restart.
#[derive(Clone, Copy, Debug)]
pub struct TscClock {
    hz: u64,
    /// Nanoseconds per tick in 32.32 fixed point.
    ns_per_tick_q32: u128,
    /// Unix time in ns minus the TSC's ns at start-up.
    offset_ns: u64,
}

impl TscClock {
    pub fn new(eal: &Eal) -> Self {
        let hz = tsc_hz(eal).max(1);
        let ns_per_tick_q32 = (1_000_000_000u128 << 32) / u128::from(hz);
        let tsc_ns = ((u128::from(tsc()) * ns_per_tick_q32) >> 32) as u64;
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        TscClock {
            hz,
            ns_per_tick_q32,
            offset_ns: unix_ns.wrapping_sub(tsc_ns),
        }
    }
}

impl Clock for TscClock {
    #[inline(always)]
    fn now(&self) -> u64 {
        tsc()
    }
    fn hz(&self) -> u64 {
        self.hz
    }
    #[inline(always)]
    fn ticks_at(&self, cycles: u64) -> u64 {
        // On x86_64 the TSC is what `cpu::cycles` reads.
        #[cfg(target_arch = "x86_64")]
        {
            cycles
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cycles;
            tsc()
        }
    }
    #[inline(always)]
    fn ns_of(&self, ticks: u64) -> u64 {
        (((u128::from(ticks) * self.ns_per_tick_q32) >> 32) as u64).wrapping_add(self.offset_ns)
    }
    #[inline(always)]
    fn now_ns(&self) -> u64 {
        self.ns_of(tsc())
    }
}

impl PacketBurst for MbufBurst {
    #[inline(always)]
    fn len(&self) -> usize {
        MbufBurst::len(self)
    }
    #[inline(always)]
    fn frame(&self, i: usize) -> &[u8] {
        MbufBurst::frame(self, i)
    }
    #[inline(always)]
    fn prefetch(&self, i: usize) {
        MbufBurst::prefetch(self, i);
    }
    #[inline(always)]
    fn retain(&mut self, keep: u32) -> u32 {
        MbufBurst::retain(self, keep)
    }
    #[inline(always)]
    fn clear(&mut self) {
        self.free_all();
    }
    #[inline(always)]
    fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        Some(MbufBurst::frame_mut(self, i))
    }
    #[inline(always)]
    fn truncate(&mut self, i: usize, len: usize) {
        MbufBurst::truncate(self, i, len);
    }
    #[inline(always)]
    fn sort_out(&mut self, keep: u32, reply: u32, replies: &mut Self) -> u32 {
        MbufBurst::sort_out(self, keep, reply, replies)
    }
}

/// One RX queue of a port and, in inline mode, the TX queue of its peer port.
#[derive(Debug)]
pub struct DpdkPath {
    pub rx: RxQueue,
    pub tx: Option<TxQueue>,
    pub direction: Direction,
    /// The path transmitting out of `rx`'s port (inline mode).
    pub answered_through: Option<usize>,
}

impl PacketPath for DpdkPath {
    type Burst = MbufBurst;

    fn direction(&self) -> Direction {
        self.direction
    }
    #[inline(always)]
    fn receive(&mut self, burst: &mut MbufBurst) -> usize {
        burst.receive(&mut self.rx)
    }
    #[inline(always)]
    fn transmit(&mut self, burst: &mut MbufBurst) -> Option<TxOutcome> {
        self.tx.as_mut().map(|tx| burst.transmit(tx))
    }
    fn answered_through(&self) -> Option<usize> {
        self.answered_through
    }
}
