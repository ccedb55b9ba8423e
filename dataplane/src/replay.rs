//! Capture files as a packet source: the same worker loop and pipeline as the
//! DPDK path, driven by the capture's own timestamps (`levee replay`).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::packet_io::{Clock, Direction, PacketBurst, PacketPath, TxOutcome, BURST_SIZE};
use crate::pcap::{Record, LINKTYPE_ETHERNET};
use crate::tables::{Addr, PrefixTable};

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
    fn sort_out(&mut self, keep: u32, reply: u32, replies: &mut Self) -> u32 {
        replies.records = self.records.clone();
        replies.len = 0;
        for i in 0..self.len {
            if reply & !keep & (1 << i) != 0 {
                replies.index[replies.len] = self.index[i];
                replies.len += 1;
            }
        }
        self.retain(keep) - replies.len as u32
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
    fn ns_of(&self, ticks: u64) -> u64 {
        ticks
    }
}

/// What the pipeline did with a capture record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    /// Not handed out (not Ethernet, or the replay stopped early).
    #[default]
    Unseen = 0,
    Forwarded,
    Dropped,
    /// A SYN levee would have answered with a SYN authentication challenge.
    Challenged,
}

/// Replays the Ethernet records of a capture, in bursts spanning at most
/// `max_burst_span_ns` of capture time so windows close on time.
#[derive(Debug)]
pub struct CaptureSource {
    records: Arc<Vec<Record>>,
    next: usize,
    clock: CaptureClock,
    direction: Direction,
    /// When set, each record's direction comes from these networks: toward
    /// them inbound, from them outbound (a burst never mixes directions).
    protected: Option<Arc<PrefixTable<()>>>,
    forward: bool,
    max_burst_span_ns: u64,
    /// Per record, once handed out: forwarded or dropped (kept only when asked).
    verdicts: Option<Vec<Verdict>>,
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
            protected: None,
            forward,
            max_burst_span_ns: 1_000_000,
            verdicts: None,
            skipped_non_ethernet: 0,
        };
        (source, clock)
    }

    /// Infer each record's direction from the protected networks: a packet to
    /// them is inbound, one from them outbound, anything else inbound.
    pub fn with_protected(mut self, protected: Arc<PrefixTable<()>>) -> Self {
        if !protected.is_empty() {
            self.protected = Some(protected);
        }
        self
    }

    /// Remember what the pipeline did with every record ([`CaptureSource::verdicts`]).
    pub fn with_verdicts(mut self) -> Self {
        self.verdicts = Some(vec![Verdict::Unseen; self.records.len()]);
        self
    }

    /// What became of each record, in capture order (with `with_verdicts`).
    pub fn verdicts(&self) -> Option<&[Verdict]> {
        self.verdicts.as_deref()
    }

    /// How many records have been handed out so far.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Whether every record has been handed out.
    pub fn done(&self) -> bool {
        self.next >= self.records.len()
    }

    fn direction_of(&self, frame: &[u8]) -> Direction {
        let Some(protected) = &self.protected else {
            return self.direction;
        };
        let m = crate::wire::parse(frame);
        let inside =
            |a: &[u8; 16]| Addr::from_meta(a, m.family).is_some_and(|a| protected.contains(a));
        if !inside(&m.dst) && inside(&m.src) {
            Direction::Outbound
        } else {
            Direction::Inbound
        }
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
        let mut burst_direction = None;
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
            let direction = self.direction_of(&rec.data);
            if *burst_direction.get_or_insert(direction) != direction {
                break;
            }
            self.clock.0.set(ts);
            burst.index[burst.len] = self.next as u32;
            burst.len += 1;
            if let Some(v) = &mut self.verdicts {
                v[self.next] = Verdict::Dropped;
            }
            self.next += 1;
        }
        if let Some(d) = burst_direction {
            self.direction = d;
        }
        burst.len
    }

    fn transmit(&mut self, burst: &mut RecordBurst) -> Option<TxOutcome> {
        let sent = burst.len as u32;
        if let Some(v) = &mut self.verdicts {
            for i in &burst.index[..burst.len] {
                v[*i as usize] = Verdict::Forwarded;
            }
        }
        burst.len = 0;
        self.forward.then_some(TxOutcome {
            sent,
            unsent: 0,
            unsent_bytes: 0,
        })
    }

    /// A capture is its own way back: what levee would have answered is
    /// recorded ([`Verdict::Challenged`]), never sent.
    fn answered_through(&self) -> Option<usize> {
        Some(0)
    }

    fn answer(&mut self, burst: &mut RecordBurst) -> Option<TxOutcome> {
        if let Some(v) = &mut self.verdicts {
            for i in &burst.index[..burst.len] {
                v[*i as usize] = Verdict::Challenged;
            }
        }
        burst.len = 0;
        None
    }
}
