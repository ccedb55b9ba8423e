//! Bursts of mbufs owned by a worker.

use super::port::{RxQueue, TxQueue};
use super::Mempool;
use crate::packet_io::{TxOutcome, BURST_SIZE};

/// Up to [`BURST_SIZE`] mbufs owned by one worker. Whatever the burst still holds
/// when it is dropped goes back to its mempool.
#[derive(Debug)]
pub struct MbufBurst {
    mbufs: [*mut dpdk_sys::rte_mbuf; BURST_SIZE],
    len: usize,
}

// SAFETY: the burst owns its mbufs exclusively; DPDK lets any thread free an mbuf
// to its (MP/MC) mempool, so moving ownership to another thread is sound.
unsafe impl Send for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        MbufBurst {
            mbufs: [std::ptr::null_mut(); BURST_SIZE],
            len: 0,
        }
    }
}

impl MbufBurst {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Receive up to a burst from `rx`, after freeing anything still held.
    #[inline]
    pub fn receive(&mut self, rx: &mut RxQueue) -> usize {
        self.free_all();
        let (port, queue) = rx.ids();
        // SAFETY: `rx` is the exclusive handle on this queue (taken once), the port is
        // started and alive while `rx` lives, and `mbufs` has room for BURST_SIZE.
        let n = unsafe {
            dpdk_sys::levee_rx_burst(port, queue, self.mbufs.as_mut_ptr(), BURST_SIZE as u16)
        };
        self.len = usize::from(n).min(BURST_SIZE);
        self.len
    }

    /// The frame bytes of packet `i` (first segment; levee's pools hold a full
    /// Ethernet frame in one segment). Empty if `i` is out of range.
    #[inline(always)]
    pub fn frame(&self, i: usize) -> &[u8] {
        if i >= self.len {
            return &[];
        }
        let m = self.mbufs[i];
        // SAFETY: slots below `len` hold valid mbufs owned by this burst; the data of
        // the first segment is data_len bytes at buf_addr + data_off, and it stays
        // valid and unaliased by writers while the burst (borrowed here) owns it.
        unsafe {
            let data = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
            std::slice::from_raw_parts(data, usize::from((*m).data_len))
        }
    }

    /// The frame bytes of packet `i`, writable (empty if `i` is out of range).
    #[inline(always)]
    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        if i >= self.len {
            return &mut [];
        }
        let m = self.mbufs[i];
        // SAFETY: as in `frame`; the burst is borrowed mutably, so nothing else
        // reads or writes the data while the slice lives.
        unsafe {
            let data = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
            std::slice::from_raw_parts_mut(data, usize::from((*m).data_len))
        }
    }

    /// Cut packet `i` to its first `len` bytes (never longer than it is).
    #[inline]
    pub fn truncate(&mut self, i: usize, len: usize) {
        if i < self.len {
            let m = self.mbufs[i];
            // SAFETY: the mbuf is valid and owned by this burst; levee's frames are
            // one segment, so the packet length is the segment's data length, and
            // shrinking both keeps the mbuf consistent.
            unsafe {
                let len = (len as u16).min((*m).data_len);
                (*m).data_len = len;
                (*m).pkt_len = u32::from(len);
            }
        }
    }

    /// Prefetch the first cache line of packet `i`'s data.
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        if i < self.len {
            let m = self.mbufs[i];
            // SAFETY: the mbuf is valid (slot below len), so its data pointer is in
            // bounds of its buffer; a prefetch never faults.
            unsafe {
                let data = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
                crate::cpu::prefetch_ptr(data);
            }
        }
    }

    /// Keep the packets whose bit is set in `keep` (bit i = packet i), in order;
    /// free the others. Returns how many were freed.
    #[inline]
    pub fn retain(&mut self, keep: u32) -> u32 {
        let all = if self.len == BURST_SIZE {
            u32::MAX
        } else {
            (1u32 << self.len) - 1
        };
        if keep & all == all {
            return 0;
        }
        if keep & all == 0 {
            // A flood's burst, all dropped: freed as they are, without sorting.
            let freed = self.len as u32;
            // SAFETY: the slots below len hold valid mbufs this burst owns;
            // they are freed once, and the burst is emptied.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), freed) };
            self.len = 0;
            return freed;
        }
        self.split(keep, 0, None)
    }

    /// Keep the packets of `keep` in order, move those of `reply` (in order) to
    /// `replies` (emptied first), free the rest. Returns how many were freed.
    #[inline]
    pub fn sort_out(&mut self, keep: u32, reply: u32, replies: &mut MbufBurst) -> u32 {
        replies.free_all();
        let reply = reply & !keep;
        if reply == 0 {
            return self.retain(keep);
        }
        self.split(keep, reply, Some(replies))
    }

    /// One pass: packets of `keep` stay, those of `reply` move to `replies`
    /// (which has room: it is empty and holds a burst), the rest are freed.
    #[inline]
    fn split(&mut self, keep: u32, reply: u32, mut replies: Option<&mut MbufBurst>) -> u32 {
        let mut kept = 0;
        let mut freed = 0;
        // Freed together at the end: one call returns them to the mempool in
        // bulk (perf: freeing one by one was 5% of the drop path).
        let mut dropped = [std::ptr::null_mut(); BURST_SIZE];
        for i in 0..self.len {
            let m = self.mbufs[i];
            if keep & (1 << i) != 0 {
                self.mbufs[kept] = m;
                kept += 1;
                continue;
            }
            if reply & (1 << i) != 0 {
                if let Some(r) = replies.as_deref_mut() {
                    r.mbufs[r.len] = m;
                    r.len += 1;
                    continue;
                }
            }
            dropped[freed] = m;
            freed += 1;
        }
        if freed > 0 {
            // SAFETY: the first `freed` slots hold valid mbufs that left this
            // burst above (each once), so each is freed exactly once.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(dropped.as_mut_ptr(), freed as u32) };
        }
        self.len = kept;
        freed as u32
    }

    /// Transmit the whole burst on `tx`. Packets the queue does not take are freed
    /// and reported; the burst is empty afterwards.
    #[inline]
    pub fn transmit(&mut self, tx: &mut TxQueue) -> TxOutcome {
        if self.len == 0 {
            return TxOutcome::default();
        }
        let (port, queue) = tx.ids();
        // SAFETY: `tx` is the exclusive handle on this queue; slots below len hold
        // valid mbufs whose ownership passes to the driver for the first `sent`.
        let sent = unsafe {
            dpdk_sys::levee_tx_burst(port, queue, self.mbufs.as_mut_ptr(), self.len as u16)
        };
        let sent = usize::from(sent).min(self.len);
        let mut outcome = TxOutcome {
            sent: sent as u32,
            ..TxOutcome::default()
        };
        for i in sent..self.len {
            outcome.unsent += 1;
            outcome.unsent_bytes += self.frame(i).len() as u64;
        }
        if sent < self.len {
            // SAFETY: the slots sent..len still hold mbufs we own (the driver took
            // only the first `sent`); they are freed once and the burst emptied.
            unsafe {
                dpdk_sys::rte_pktmbuf_free_bulk(
                    self.mbufs.as_mut_ptr().add(sent),
                    (self.len - sent) as u32,
                );
            }
        }
        self.len = 0;
        outcome
    }

    /// Allocate an mbuf from `pool`, copy `frame` into it and append it to the burst.
    /// For tests and tools that inject packets; returns false if the burst is full,
    /// the pool is empty or the frame does not fit in one mbuf.
    pub fn push_copy(&mut self, pool: &Mempool, frame: &[u8]) -> bool {
        let Ok(len) = u16::try_from(frame.len()) else {
            return false;
        };
        if self.len == BURST_SIZE {
            return false;
        }
        // SAFETY: the pool is a valid pktmbuf pool while borrowed.
        let m = unsafe { dpdk_sys::levee_pktmbuf_alloc(pool.as_ptr()) };
        if m.is_null() {
            return false;
        }
        // SAFETY: m is a fresh mbuf we own; append returns room for len bytes or null.
        let room = unsafe { dpdk_sys::levee_pktmbuf_append(m, len) };
        if room.is_null() {
            // SAFETY: m is ours and not stored anywhere else.
            unsafe { dpdk_sys::levee_pktmbuf_free(m) };
            return false;
        }
        // SAFETY: room points to len writable bytes inside m's data buffer.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), room.cast::<u8>(), frame.len()) };
        self.mbufs[self.len] = m;
        self.len += 1;
        true
    }

    /// Free every mbuf the burst holds.
    #[inline]
    pub fn free_all(&mut self) {
        if self.len > 0 {
            // SAFETY: slots below len hold valid mbufs owned by this burst; they are
            // freed once and the burst emptied.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}
