//! One view per window of everything the workers counted: reports of the same
//! window slot (start time / window length) from every worker, merged.

use std::collections::BTreeMap;

use levee_dataplane::packet_io::Direction;
use levee_dataplane::stats::{
    DestinationStats, DirectionWindow, HeavyHitter, OverLimit, PacketShape, Sample, WindowReport,
    ADMIT_ONE_IN,
};
use levee_dataplane::wire::TrafficClass;

/// The merged counters of one window.
#[derive(Debug, Clone, Default)]
pub struct WindowView {
    /// Window number: start time / window length.
    pub slot: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// The configured window length in seconds (rates divide by it).
    pub seconds: f64,
    pub inbound: DirectionWindow,
    /// Per protected destination (IPv4-mapped address).
    pub destinations: BTreeMap<u128, DestinationStats>,
    /// Heaviest inbound sources per traffic class, counts scaled by sampling.
    pub top_sources: Vec<Vec<HeavyHitter>>,
    pub samples: Vec<Sample>,
    /// Sources the workers found over their limit toward targets under attack.
    pub over_limit: Vec<OverLimit>,
    /// Over-limit sources the reports had no room for.
    pub over_limit_overflow: u64,
    /// Sampled (protected host, peer it sent to) pairs, one in
    /// [`levee_dataplane::pipeline::PEER_ONE_IN`] of the outbound packets.
    pub peers: Vec<(u128, u128)>,
    /// Sampled pairs the reports had no room for.
    pub peers_overflow: u64,
    /// Packets from the protected side (none: levee sees one direction only,
    /// as in monitor mode, and cannot tell whether hosts answer).
    pub outbound_packets: u64,
    /// Sampled shapes of inbound packets to protected hosts.
    pub shapes: Vec<PacketShape>,
    pub workers: usize,
    /// The count a source can get from one admission to a class's sketch
    /// alone (see `SpaceSaving`; index = class index): only counts beyond it
    /// show a source was seen again.
    pub admission_quantum: Vec<u64>,
}

impl WindowView {
    fn new(slot: u64, seconds: f64) -> Self {
        WindowView {
            slot,
            seconds,
            top_sources: vec![Vec::new(); TrafficClass::COUNT],
            admission_quantum: vec![0; TrafficClass::COUNT],
            ..WindowView::default()
        }
    }

    fn add(&mut self, r: &WindowReport) {
        if self.workers == 0 || r.start_ns < self.start_ns {
            self.start_ns = r.start_ns;
        }
        self.end_ns = self.end_ns.max(r.end_ns);
        self.workers += 1;
        self.inbound.add(r.direction(Direction::Inbound));
        self.outbound_packets += r.direction(Direction::Outbound).packets();
        for (k, s) in r.destinations.iter() {
            self.destinations.entry(*k).or_default().add(s);
        }
        for (class, sketch) in r.top_sources.iter().enumerate() {
            // Sketch counts are already in packets (each update carries its weight).
            for h in sketch.top() {
                let merged = &mut self.top_sources[class];
                match merged.iter_mut().find(|m| m.key == h.key) {
                    Some(m) => {
                        m.count += h.count;
                        m.error += h.error;
                    }
                    None => merged.push(h),
                }
            }
        }
        self.samples.extend_from_slice(&r.samples);
        self.over_limit.extend_from_slice(&r.over_limit);
        self.over_limit_overflow += r.over_limit_overflow;
        self.peers.extend_from_slice(&r.peers);
        self.peers_overflow += r.peers_overflow;
        self.shapes.extend_from_slice(&r.shapes);
        for (quantum, weight) in self.admission_quantum.iter_mut().zip(r.top_sources_weight) {
            *quantum = (*quantum).max(weight * u64::from(ADMIT_ONE_IN));
        }
    }
}

/// Merges reports into windows, emitting a window once every worker has moved
/// past it (or it is three windows old: a stalled worker does not hold detection).
#[derive(Debug)]
pub struct Aggregator {
    window_ns: u64,
    workers: usize,
    pending: BTreeMap<u64, WindowView>,
    latest_slot: Vec<u64>,
}

impl Aggregator {
    pub fn new(window_ms: u64, workers: usize) -> Self {
        Aggregator {
            window_ns: window_ms.max(1) * 1_000_000,
            workers: workers.max(1),
            pending: BTreeMap::new(),
            latest_slot: vec![0; workers.max(1)],
        }
    }

    pub fn add(&mut self, r: &WindowReport) -> Vec<WindowView> {
        let slot = r.start_ns / self.window_ns;
        let seconds = self.window_ns as f64 / 1e9;
        self.pending
            .entry(slot)
            .or_insert_with(|| WindowView::new(slot, seconds))
            .add(r);
        if let Some(l) = self.latest_slot.get_mut(usize::from(r.worker)) {
            *l = (*l).max(slot);
        }
        let everyone_past = self.latest_slot.iter().copied().min().unwrap_or(0);
        let newest = self.latest_slot.iter().copied().max().unwrap_or(0);
        let mut ready = Vec::new();
        while let Some((&first, _)) = self.pending.iter().next() {
            let complete = self.pending[&first].workers >= self.workers;
            if complete || first < everyone_past || first + 3 <= newest {
                if let Some(v) = self.pending.remove(&first) {
                    ready.push(v);
                }
            } else {
                break;
            }
        }
        ready
    }

    /// Everything still pending (end of a replay or a run).
    pub fn flush(&mut self) -> Vec<WindowView> {
        std::mem::take(&mut self.pending).into_values().collect()
    }
}
