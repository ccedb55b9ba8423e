//! Capture files as a packet source: the same worker loop and pipeline as the
//! DPDK path, driven by the capture's own timestamps (`levee replay`).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::dpdk::{TxOutcome, BURST_SIZE};
use crate::pcap::{Record, LINKTYPE_ETHERNET};
use crate::worker::{Clock, Direction, PacketBurst, PacketPath};

/// A burst of capture records (indices into the shared capture).
#[derive(Debug, Default)]
pub struct RecordBurst {
    records: Option<Arc<Vec<Record>>>,
    index: [u32; BURST_SIZE],
    len: usize,
}

impl PacketBurst for RecordBurst {
    fn len(&self) -> usize {
        self.len
    }
    fn frame(&self, i: usize) -> &[u8] {
        match &self.records {
            Some(r) if i < self.len => r
                .get(self.index[i] as usize)
                .map_or(&[], |rec| &rec.data[..]),
            _ => &[],
        }
    }
    fn retain(&mut self, keep: u32) -> u32 {
        let mut kept = 0;
        for i in 0..self.len {
            if keep & (1 << i) != 0 {
                self.index[kept] = self.index[i];
                kept += 1;
            }
        }
        let dropped = (self.len - kept) as u32;
        self.len = kept;
        dropped
    }
    fn clear(&mut self) {
        self.len = 0;
    }
}

/// The capture clock: the timestamp of the last packet handed out.
#[derive(Clone, Debug, Default)]
pub struct CaptureClock(Rc<Cell<u64>>);

impl Clock for CaptureClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
    fn hz(&self) -> u64 {
        1_000_000_000
    }
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

/// Replays the Ethernet records of a capture, in bursts spanning at most
/// `max_burst_span_ns` of capture time so windows close on time.
#[derive(Debug)]
pub struct CaptureSource {
    records: Arc<Vec<Record>>,
    next: usize,
    clock: CaptureClock,
    direction: Direction,
    forward: bool,
    max_burst_span_ns: u64,
    /// Records skipped because their link type is not Ethernet.
    pub skipped_non_ethernet: u64,
}

impl CaptureSource {
    /// `forward`: whether passing packets count as transmitted (inline) or are
    /// only observed (monitor).
    pub fn new(
        records: Arc<Vec<Record>>,
        direction: Direction,
        forward: bool,
    ) -> (CaptureSource, CaptureClock) {
        let clock = CaptureClock::default();
        if let Some(first) = records.first() {
            clock.0.set(first.timestamp_ns);
        }
        let source = CaptureSource {
            records,
            next: 0,
            clock: clock.clone(),
            direction,
            forward,
            max_burst_span_ns: 1_000_000,
            skipped_non_ethernet: 0,
        };
        (source, clock)
    }

    /// Whether every record has been handed out.
    pub fn done(&self) -> bool {
        self.next >= self.records.len()
    }
}

impl PacketPath for CaptureSource {
    type Burst = RecordBurst;

    fn direction(&self) -> Direction {
        self.direction
    }

    fn receive(&mut self, burst: &mut RecordBurst) -> usize {
        burst.len = 0;
        burst.records = Some(Arc::clone(&self.records));
        let mut first_ts = None;
        while burst.len < BURST_SIZE && self.next < self.records.len() {
            let rec = &self.records[self.next];
            if rec.linktype != LINKTYPE_ETHERNET {
                self.skipped_non_ethernet += 1;
                self.next += 1;
                continue;
            }
            // Captures are not always in time order (several interfaces): time
            // never goes backwards for the pipeline.
            let ts = rec.timestamp_ns.max(self.clock.0.get());
            let start = *first_ts.get_or_insert(ts);
            if ts > start + self.max_burst_span_ns {
                break;
            }
            self.clock.0.set(ts);
            burst.index[burst.len] = self.next as u32;
            burst.len += 1;
            self.next += 1;
        }
        burst.len
    }

    fn transmit(&mut self, burst: &mut RecordBurst) -> Option<TxOutcome> {
        let sent = burst.len as u32;
        burst.len = 0;
        self.forward.then_some(TxOutcome {
            sent,
            unsent: 0,
            unsent_bytes: 0,
        })
    }
}
