//! The per-burst work of a worker: parse -> allowlist -> blocklist / signatures /
//! rate limits -> verdict -> count; plus, between bursts, the table mailbox and
//! the window roll-over that hands a [`WindowReport`] to the control plane.
//!
//! Nothing here blocks, allocates or makes a system call: reports are recycled
//! through a pair of bounded channels and a full channel drops the report (and
//! counts it) rather than wait.

use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::packet_io::{Direction, PacketBurst, BURST_SIZE};
use crate::stats::{
    BurstTally, DropReason, OverLimit, ReportCapacities, SourceAccounting, SpaceSaving,
    WindowReport, BURST_CYCLES_ONE_IN,
};
use crate::tables::{
    Addr, ConnectionTable, Decision, HandshakeTracker, PrefixSet, PrefixTable, RuleTables,
    SynCookies, TableMailbox,
};
use crate::wire::{self, PacketMeta, ParseStatus, TrafficClass};

/// What to do with frames the rules cannot judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramePolicy {
    Forward,
    Drop,
}

/// Settings of the pipeline.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub window_ms: u64,
    /// Keep the head of 1 packet in N (0: no sampling).
    pub sample_one_in: u32,
    /// Feed at least 1 packet in N of each class to its top-sources sketch
    /// (each update counts N). Under load a class is sampled more sparsely, so
    /// that its sketch takes at most [`TOP_SOURCE_SAMPLES_PER_KEY`] times its
    /// capacity updates per window.
    pub top_sources_one_in: u32,
    /// Frames that do not parse (truncated, lying lengths...).
    pub malformed: FramePolicy,
    /// Well-formed frames that are not IP (ARP, LLDP...).
    pub non_ip: FramePolicy,
    pub capacities: ReportCapacities,
    /// For how long after the connection table starts segments of unknown
    /// connections still pass a connection state check (connections older than
    /// the table).
    pub connection_grace_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            window_ms: 100,
            sample_one_in: 64,
            top_sources_one_in: 4,
            malformed: FramePolicy::Drop,
            non_ip: FramePolicy::Forward,
            capacities: ReportCapacities::default(),
            connection_grace_ms: 60_000,
        }
    }
}

/// What became of a burst: the packets to forward, and those rewritten into
/// answers to send back out the port they came in on (bit i = packet i), with
/// the bytes received and the bytes of the packets kept (as received), which
/// the worker's counters need and the parse has read already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstVerdict {
    pub keep: u32,
    pub reply: u32,
    pub bytes: u64,
    pub kept_bytes: u64,
}

/// A worker's end of the report channels.
#[derive(Debug)]
pub struct ReportLink {
    to_control: Sender<Box<WindowReport>>,
    free: Receiver<Box<WindowReport>>,
    /// The free channel's other end, for the worker to put its reports back
    /// once it has moved them into memory of its own node.
    refill: Sender<Box<WindowReport>>,
}

/// The control plane's end: receives reports, returns them once read.
#[derive(Debug)]
pub struct ReportSink {
    pub reports: Receiver<Box<WindowReport>>,
    free: Vec<Sender<Box<WindowReport>>>,
}

impl ReportSink {
    /// Give a report back to the worker that sent it.
    pub fn recycle(&self, mut report: Box<WindowReport>) {
        report.reset();
        if let Some(tx) = self.free.get(usize::from(report.worker)) {
            // The free channel holds every report of its worker, so it has room.
            let _ = tx.try_send(report);
        }
    }
}

/// Report channels for `workers` workers: `depth` reports in flight to the control
/// plane in all, and per worker one report to fill plus `spare` to swap in.
pub fn report_channels(
    workers: usize,
    depth: usize,
    spare: usize,
    capacities: ReportCapacities,
) -> (Vec<ReportLink>, ReportSink) {
    let (to_control, reports) = bounded(depth.max(1));
    let mut links = Vec::new();
    let mut free_senders = Vec::new();
    for w in 0..workers {
        let (free_tx, free_rx) = bounded(spare.max(1) + 1);
        for _ in 0..spare.max(1) + 1 {
            let mut r = WindowReport::new(capacities);
            r.worker = w as u16;
            let _ = free_tx.try_send(r);
        }
        links.push(ReportLink {
            to_control: to_control.clone(),
            free: free_rx,
            refill: free_tx.clone(),
        });
        free_senders.push(free_tx);
    }
    (
        links,
        ReportSink {
            reports,
            free: free_senders,
        },
    )
}

/// One worker's pipeline state.
#[derive(Debug)]
pub struct Pipeline {
    pub tables: RuleTables,
    mailbox: Option<TableMailbox>,
    /// The protected networks (this worker's copy, asked on every packet).
    protected: PrefixSet,
    config: PipelineConfig,
    report: Box<WindowReport>,
    spare: Option<Box<WindowReport>>,
    link: Option<ReportLink>,
    worker: u16,
    window_ns: u64,
    window_end_ns: u64,
    sequence: u64,
    reports_dropped: u64,
    sample_countdown: u32,
    /// When each class's top-sources sketch is fed.
    top_sampling: SketchSampling,
    metas: [PacketMeta; BURST_SIZE],
    decisions: [Decision; BURST_SIZE],
    /// Clients that completed a handshake: a SYN rate limit lets them through.
    pub handshakes: HandshakeTracker,
    /// Per-source counters toward the targets under attack.
    pub sources: SourceAccounting,
    /// SYN authentication's keyed cookies.
    pub cookies: SynCookies,
    /// The protected hosts' TCP connections (out-of-state TCP).
    pub connections: ConnectionTable,
    /// Table counts already reported (the tables count since the start):
    /// verified refused, connections refused, handshakes completed.
    reported: [u64; 3],
    peer_countdown: u32,
    shape_countdown: u32,
}

/// A class's top-sources sketch takes at most this many updates per window
/// for each source it can hold. Space-Saving's own resolution is a K-th of the
/// updates it took; with 128 updates per key, a source at that resolution has
/// about 128 of them, and sampling adds less than a tenth to its error. Beyond
/// that, more updates cost a flood's worth of cycles and tell nothing more.
pub const TOP_SOURCE_SAMPLES_PER_KEY: u64 = 128;

/// Source slots of each worker's per-source accounting (32 bytes each).
const SOURCE_SLOTS: usize = 1 << 17;
/// One outbound packet in this many from a protected host names a peer.
pub const PEER_ONE_IN: u32 = 8;
/// One inbound packet in this many to a protected host has its shape sampled.
const SHAPE_ONE_IN: u32 = 8;

/// Handshakes in flight and verified sources each worker keeps track of.
const HANDSHAKE_SLOTS: usize = 1 << 15;
/// Sources each worker can hold as verified (16 bytes each).
const VERIFIED_SLOTS: usize = 1 << 18;
/// Connections each worker's table holds (16 bytes each).
const CONNECTION_SLOTS: usize = 1 << 19;

/// A big-endian u32 at `at` in `frame`, if it is there.
#[inline(always)]
fn be_u32(frame: &[u8], at: usize) -> Option<u32> {
    frame
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

impl Pipeline {
    pub fn new(
        worker: u16,
        tables: RuleTables,
        mailbox: Option<TableMailbox>,
        protected: Arc<PrefixTable<()>>,
        config: PipelineConfig,
        link: Option<ReportLink>,
    ) -> Self {
        let mut report = link
            .as_ref()
            .and_then(|l| l.free.try_recv().ok())
            .unwrap_or_else(|| WindowReport::new(config.capacities));
        report.worker = worker;
        let top_sampling = SketchSampling::new(config.top_sources_one_in);
        report.top_sources_weight = top_sampling.weights();
        Pipeline {
            tables,
            mailbox,
            protected: PrefixSet::new((*protected).clone()),
            report,
            spare: None,
            link,
            worker,
            window_ns: config.window_ms.max(1) * 1_000_000,
            window_end_ns: 0,
            sequence: 0,
            reports_dropped: 0,
            sample_countdown: config.sample_one_in,
            top_sampling,
            metas: [PacketMeta::default(); BURST_SIZE],
            decisions: [Decision::Pass; BURST_SIZE],
            handshakes: HandshakeTracker::new(HANDSHAKE_SLOTS, VERIFIED_SLOTS),
            sources: SourceAccounting::new(SOURCE_SLOTS),
            cookies: SynCookies::random(),
            connections: ConnectionTable::new(
                CONNECTION_SLOTS,
                config.connection_grace_ms.saturating_mul(1_000_000),
            ),
            reported: [0; 3],
            peer_countdown: PEER_ONE_IN,
            shape_countdown: SHAPE_ONE_IN,
            config,
        }
    }

    /// Copy this worker's tables and reports into memory of the calling
    /// thread's NUMA node, and say which node they are on now (`None`: the
    /// kernel does not say, or they are not all on one). The main thread builds
    /// them; Linux places a page on the node of the CPU that first writes it, so
    /// the worker calls this on its own lcore before its loop, and every lookup
    /// of the loop stays on its socket. Allocates (once, before any packet).
    pub fn move_to_local_memory(&mut self) -> Option<u32> {
        self.tables = self.tables.clone();
        self.protected = self.protected.clone();
        self.handshakes = self.handshakes.clone();
        self.sources = self.sources.clone();
        self.connections = self.connections.clone();
        self.report = self.report.copy();
        self.spare = self.spare.take().map(|r| r.copy());
        if let Some(link) = &self.link {
            let held: Vec<Box<WindowReport>> = link.free.try_iter().collect();
            for report in held {
                // The channel held them a moment ago: it has room for them.
                let _ = link.refill.try_send(report.copy());
            }
        }
        self.memory_node()
    }

    /// The NUMA node of this worker's tables and current report, if the kernel
    /// says and they are all on one.
    pub fn memory_node(&self) -> Option<u32> {
        let first = self.tables.memory_node()?;
        [
            self.handshakes.memory_node(),
            self.sources.memory_node(),
            self.connections.memory_node(),
            self.report.destinations.memory_node(),
        ]
        .iter()
        .all(|n| *n == Some(first))
        .then_some(first)
    }

    /// Reports that could not be delivered so far.
    pub fn reports_dropped(&self) -> u64 {
        self.reports_dropped
    }

    /// The window being counted (for tests and replay).
    pub fn current_report(&self) -> &WindowReport {
        &self.report
    }

    /// Judge and count a burst received in direction `d`; returns the packets
    /// to forward and those rewritten into answers.
    #[inline]
    pub fn process_burst<B: PacketBurst>(
        &mut self,
        burst: &mut B,
        d: Direction,
        now_ns: u64,
    ) -> BurstVerdict {
        if self.window_end_ns == 0 {
            self.start_window(now_ns);
        }
        let n = burst.len().min(BURST_SIZE);
        for i in 0..n {
            burst.prefetch(i + 2);
            wire::parse_to(burst.frame(i), &mut self.metas[i]);
        }
        self.tables
            .decide_burst(&self.metas[..n], now_ns, &mut self.decisions[..n]);
        let mut keep = 0u32;
        let mut reply = 0u32;
        let track_destinations = !self.protected.is_empty();
        // Handshakes are followed only while a SYN rate limit is in force (a
        // spoofed SYN flood's answer), so other traffic pays nothing.
        let track_handshakes = self.tables.syn_rate_limited();
        // What this burst's packets need, decided once: these tests come before
        // the per-packet ones (protocol, status) so that a burst with nothing
        // of the kind to do pays one well-predicted branch, not a protocol test
        // that mixed traffic mispredicts. The tables change only between bursts.
        let inbound = d == Direction::Inbound;
        let tcp_defended = inbound && self.tables.tcp_defended();
        let tcp_work = !inbound || tcp_defended;
        let watching = inbound && !self.tables.watch().is_empty();
        let learn_peers = !inbound && track_destinations;
        let count_destinations = inbound && track_destinations;
        // The burst in a few passes, each a short loop doing one thing: one
        // loop doing everything would carry every counter and table through
        // every packet, and the calls in it would spill them.
        if track_handshakes || tcp_work || watching || learn_peers {
            if tcp_defended {
                for (m, decision) in self.metas[..n].iter().zip(&self.decisions[..n]) {
                    if matches!(decision, Decision::Authenticate { .. }) {
                        self.handshakes
                            .prefetch_verified(u128::from_be_bytes(m.src));
                    }
                }
            }
            for i in 0..n {
                let m = &self.metas[i];
                if m.status != ParseStatus::Ok {
                    continue;
                }
                if track_handshakes && m.protocol == 6 {
                    self.decisions[i] = follow_handshake(
                        &mut self.handshakes,
                        m,
                        burst.frame(i),
                        d,
                        self.decisions[i],
                        now_ns,
                    );
                }
                if tcp_work && m.protocol == 6 {
                    if tcp_defended {
                        let decision = self.decisions[i];
                        self.decisions[i] = self.defend_tcp(burst, i, decision, now_ns);
                        if matches!(self.decisions[i], Decision::Challenged { .. }) {
                            reply |= 1 << i;
                        }
                    } else if !inbound {
                        self.connections.sent(m, now_ns);
                    }
                }
                let m = &self.metas[i];
                if watching {
                    self.decisions[i] = watch(
                        &self.tables,
                        &mut self.sources,
                        &mut self.report,
                        m,
                        self.decisions[i],
                        now_ns,
                    );
                }
                if learn_peers {
                    self.peer_countdown -= 1;
                    if self.peer_countdown == 0 {
                        self.peer_countdown = PEER_ONE_IN;
                        learn_peer(&self.protected, &mut self.report, m);
                    }
                }
            }
        }
        let mut tally = BurstTally::default();
        // Most bursts are all packets that parsed and that the tables judged
        // alike: all passed, or in a flood all dropped by one rule. The burst's
        // leading run of packets with the first one's decision is counted by
        // class and size alone, in a loop that carries nothing else, and its
        // outcome once; from the first packet that differs, the general count
        // takes over.
        let lead = self.decisions[0];
        let mut run = 0;
        {
            // The direction's counters and the sketches borrowed apart, and
            // the bytes summed in a local: through the report, the call to
            // feed a sketch made the loop reload its counters' address and
            // keep its sum in memory, every packet waiting on the one before.
            let report = &mut *self.report;
            let window = &mut report.directions[d as usize];
            let sketches = &mut report.top_sources[..];
            let mut bytes = 0;
            while run < n {
                let m = &self.metas[run];
                if m.status != ParseStatus::Ok || self.decisions[run] != lead {
                    break;
                }
                let len = u64::from(m.frame_len);
                let class = usize::from(m.class_index);
                bytes += len;
                let class_count = window.count_class(class, len);
                self.top_sampling.offer(d, class, class_count, m, sketches);
                run += 1;
            }
            tally.bytes = bytes;
        }
        if run > 0 {
            tally.parsed = run as u64;
            match DropReason::of(lead) {
                None => {
                    tally.forwarded_packets = run as u64;
                    tally.forwarded_bytes = tally.bytes;
                    if lead == Decision::Allowlisted {
                        tally.allowlisted = run as u64;
                    }
                    keep |= u32::MAX
                        .checked_shr(BURST_SIZE as u32 - run as u32)
                        .unwrap_or(0);
                }
                Some(reason) => {
                    self.report
                        .add_drops(d, reason, lead.rule_id(), run as u64, tally.bytes)
                }
            }
        }
        // The report and the policies taken once: through `self`, the calls
        // in the loop made it reload them for every packet.
        let report = &mut *self.report;
        let non_ip = (self.config.non_ip == FramePolicy::Drop).then_some(DropReason::NonIp);
        let malformed =
            (self.config.malformed == FramePolicy::Drop).then_some(DropReason::Malformed);
        for i in run..n {
            let m = &self.metas[i];
            let decision = self.decisions[i];
            let drop = match m.status {
                ParseStatus::Ok => DropReason::of(decision),
                ParseStatus::NotIp => non_ip,
                _ => malformed,
            };
            let class_count = report.count_into(
                &mut tally,
                d,
                m,
                drop,
                decision.rule_id(),
                matches!(decision, Decision::Allowlisted),
            );
            let class = usize::from(m.class_index);
            self.top_sampling
                .offer(d, class, class_count, m, &mut report.top_sources);
            if drop.is_none() {
                keep |= 1 << i;
            }
        }
        report.add_tally(d, &tally);
        if count_destinations {
            let mut countdown = self.shape_countdown;
            for m in &self.metas[..n] {
                if m.status != ParseStatus::Ok {
                    continue;
                }
                if report.count_if_protected(m, &self.protected) {
                    countdown -= 1;
                    if countdown == 0 {
                        countdown = SHAPE_ONE_IN;
                        report.shape(m);
                    }
                }
            }
            self.shape_countdown = countdown;
        }
        // 1 packet in N sampled: straight to the packets due, not a countdown
        // per packet (the countdown is at least 1: the next packet due is
        // `countdown - 1` packets on).
        let one_in = self.config.sample_one_in as usize;
        if one_in > 0 {
            let mut due = self.sample_countdown.max(1) as usize - 1;
            while due < n {
                self.report.sample(d, now_ns, burst.frame(due));
                due += one_in;
            }
            self.sample_countdown = (due - n + 1) as u32;
        }
        BurstVerdict {
            keep,
            reply,
            bytes: tally.bytes,
            kept_bytes: tally.forwarded_bytes,
        }
    }

    /// SYN authentication and connection state for an inbound TCP segment.
    #[inline]
    fn defend_tcp<B: PacketBurst>(
        &mut self,
        burst: &mut B,
        i: usize,
        decision: Decision,
        now_ns: u64,
    ) -> Decision {
        use crate::wire::tcp::flags::{ACK, RST, SYN};
        let m = &self.metas[i];
        let src = u128::from_be_bytes(m.src);
        let dst = u128::from_be_bytes(m.dst);
        // A client's RST carrying a cookie answers a challenge: its source is
        // real. The RST is the answer, not traffic for the server.
        if self.tables.syn_authenticating()
            && m.tcp_flags & RST != 0
            && !matches!(decision, Decision::Blocked { .. })
        {
            let seq = be_u32(burst.frame(i), usize::from(m.l4_offset) + 4);
            if seq.is_some_and(|seq| {
                self.cookies
                    .check(src, m.src_port, dst, m.dst_port, seq, now_ns)
            }) {
                self.report.defences.verified += 1;
                // A full table refuses (counted at the window's end); the
                // source then meets another challenge next time.
                let _ = self.handshakes.challenge_answered(src, now_ns);
                return Decision::ChallengeAnswer;
            }
            self.report.defences.failed += 1;
        }
        match decision {
            Decision::Authenticate { rule_id } => {
                if m.tcp_flags & (SYN | ACK) != SYN || self.handshakes.verified(src, now_ns) {
                    return Decision::Pass;
                }
                let challenge = self
                    .cookies
                    .challenge(src, m.src_port, dst, m.dst_port, now_ns);
                self.report.defences.challenges += 1;
                let meta = *m;
                match burst.frame_mut(i) {
                    Some(frame) => match crate::wire::challenge::write_syn_ack(
                        frame,
                        &meta,
                        challenge.seq,
                        challenge.cookie,
                    ) {
                        Some(len) => {
                            burst.truncate(i, len);
                            Decision::Challenged { rule_id }
                        }
                        None => {
                            self.report.defences.challenges -= 1;
                            Decision::Unverified { rule_id }
                        }
                    },
                    // A replay: the challenge levee would have sent (the
                    // worker counts it unsent).
                    None => Decision::Challenged { rule_id },
                }
            }
            Decision::RequireState { rule_id } => {
                // A SYN opens a connection: SYN authentication's business.
                if m.tcp_flags & (SYN | ACK) == SYN || self.connections.knows(m, now_ns) {
                    Decision::Pass
                } else if self.connections.in_grace(now_ns) {
                    self.report.defences.grace_passes += 1;
                    Decision::Pass
                } else {
                    Decision::OutOfState { rule_id }
                }
            }
            other => other,
        }
    }

    /// Answers the worker could not send (no way back, or a full TX queue).
    #[inline]
    pub fn count_unsent_answers(&mut self, answers: u64) {
        self.report.defences.challenges_unsent += answers;
    }

    /// Packets the TX queue refused after the pipeline let them through.
    #[inline]
    pub fn count_tx_full(&mut self, d: Direction, packets: u64, bytes: u64) {
        let w = &mut self.report.directions[d as usize];
        w.dropped_packets[DropReason::TxFull as usize] += packets;
        w.dropped_bytes[DropReason::TxFull as usize] += bytes;
        w.forwarded_packets -= packets.min(w.forwarded_packets);
        w.forwarded_bytes -= bytes.min(w.forwarded_bytes);
    }

    /// Count a non-empty burst; whether its cycles are to be measured (one in
    /// [`BURST_CYCLES_ONE_IN`], the window's first among them).
    #[inline(always)]
    pub fn count_burst(&mut self) -> bool {
        self.report.bursts += 1;
        self.report.bursts % BURST_CYCLES_ONE_IN == 1
    }

    #[inline]
    pub fn record_burst_cycles(&mut self, cycles: u64) {
        let _ = self.report.burst_cycles.record(cycles.max(1));
    }

    /// Between bursts: apply table changes, and close the window if it is over.
    #[inline]
    pub fn after_poll(&mut self, now_ns: u64) {
        if let Some(mailbox) = &mut self.mailbox {
            mailbox.drain(&mut self.tables, now_ns, 64);
        }
        if self.window_end_ns != 0 && now_ns >= self.window_end_ns {
            self.roll_window(now_ns);
        }
    }

    /// Send the current window now (at the end of a run).
    pub fn finish(&mut self, now_ns: u64) {
        if self.window_end_ns != 0 {
            self.roll_window(now_ns.max(self.report.start_ns));
        }
    }

    fn start_window(&mut self, now_ns: u64) {
        self.report.start_ns = now_ns;
        self.window_end_ns = now_ns + self.window_ns;
    }

    fn roll_window(&mut self, now_ns: u64) {
        self.report.flush_rule_drops();
        let totals = [
            self.handshakes.refused(),
            self.connections.refused(),
            self.handshakes.completed,
        ];
        let d = &mut self.report.defences;
        d.verified_refused = totals[0] - self.reported[0];
        d.connections_refused = totals[1] - self.reported[1];
        d.handshakes = totals[2] - self.reported[2];
        self.reported = totals;
        let floor = self.config.top_sources_one_in;
        let budget = TOP_SOURCE_SAMPLES_PER_KEY * self.config.capacities.top_sources.max(1) as u64;
        let inbound = &self.report.direction(Direction::Inbound).class_packets;
        self.top_sampling.plan(floor, budget, inbound);
        self.report.end_ns = now_ns;
        self.report.sequence = self.sequence;
        self.report.reports_dropped = self.reports_dropped;
        self.sequence += 1;
        let next = self
            .spare
            .take()
            .or_else(|| self.link.as_ref().and_then(|l| l.free.try_recv().ok()));
        match (next, &self.link) {
            (Some(next), Some(link)) => {
                let full = std::mem::replace(&mut self.report, next);
                if let Err(TrySendError::Full(mut back) | TrySendError::Disconnected(mut back)) =
                    link.to_control.try_send(full)
                {
                    // Nobody is taking reports: keep the memory, lose the window.
                    self.reports_dropped += 1;
                    back.reset();
                    self.spare = Some(back);
                }
            }
            (next, _) => {
                // No free report to continue in (or no consumer at all): this
                // window's report is lost; count it and reuse the memory.
                self.spare = next;
                self.reports_dropped += u64::from(self.link.is_some());
                self.report.reset();
            }
        }
        self.report.worker = self.worker;
        self.report.top_sources_weight = self.top_sampling.weights();
        // Windows are contiguous: the next starts where this one was due to end,
        // unless the worker was idle for longer than a window.
        let start = if now_ns < self.window_end_ns + self.window_ns {
            self.window_end_ns
        } else {
            now_ns
        };
        self.start_window(start);
    }
}

/// When each class's top-sources sketch takes a packet: per class
/// (index = class index) the window's 1 in N, and per direction the window's
/// count of the class at which its next update is due (`u64::MAX`: never;
/// outbound traffic and frames that do not parse feed no sketch). The class
/// counters are the clock: a packet costs a compare, not a countdown of its
/// own, whose store the next packet of its class would wait on (perf put the
/// countdowns at a sixth of the forwarding path).
#[derive(Debug)]
struct SketchSampling {
    one_in: [u32; TrafficClass::COUNT],
    due: [[u64; TrafficClass::COUNT]; 2],
    /// Draws the gaps between a sketch's updates (see `sketch_gap`).
    rng: u64,
}

impl SketchSampling {
    fn new(one_in: u32) -> Self {
        let one_in = [one_in.max(1); TrafficClass::COUNT];
        let mut inbound = one_in.map(u64::from);
        inbound[TrafficClass::Malformed.index()] = u64::MAX;
        inbound[TrafficClass::NonIp.index()] = u64::MAX;
        let mut due = [[u64::MAX; TrafficClass::COUNT]; 2];
        due[Direction::Inbound as usize] = inbound;
        SketchSampling {
            one_in,
            due,
            rng: crate::tables::random_u64() | 1,
        }
    }

    /// A packet that brought its class's count in direction `d` to `count`:
    /// fed to the class's sketch if its update is due.
    #[inline(always)]
    fn offer(
        &mut self,
        d: Direction,
        class: usize,
        count: u64,
        m: &PacketMeta,
        sketches: &mut [SpaceSaving],
    ) {
        if self.due[d as usize].get(class) == Some(&count) {
            self.feed(d, class, m, sketches);
        }
    }

    /// Feed a due packet to its class's sketch and draw the class's next
    /// update. Out of line: one packet in `one_in` comes here.
    #[inline(never)]
    fn feed(&mut self, d: Direction, class: usize, m: &PacketMeta, sketches: &mut [SpaceSaving]) {
        let (Some(&one_in), Some(due)) =
            (self.one_in.get(class), self.due[d as usize].get_mut(class))
        else {
            return;
        };
        *due += u64::from(sketch_gap(&mut self.rng, one_in));
        if let Some(sketch) = sketches.get_mut(class) {
            sketch.add(u128::from_be_bytes(m.src), u64::from(one_in));
        }
    }

    /// The next window's rates, from the inbound packets of each class in the
    /// window closing: 1 in `floor`, or sparser where that would feed a
    /// sketch more than `budget` updates.
    fn plan(&mut self, floor: u32, budget: u64, packets: &[u64; TrafficClass::COUNT]) {
        let due = &mut self.due[Direction::Inbound as usize];
        for ((one_in, due), packets) in self.one_in.iter_mut().zip(due).zip(packets) {
            let needed = u32::try_from(packets.div_ceil(budget.max(1))).unwrap_or(u32::MAX);
            *one_in = needed.max(floor).max(1);
            if *due == u64::MAX {
                continue;
            }
            // The next window counts from 0. A wait longer than the new rate
            // would skip the class's first packets of the window; a shorter
            // one is its fair share.
            *due = due.saturating_sub(*packets).clamp(1, u64::from(*one_in));
        }
    }

    /// Each class's weight per update this window (its 1 in N).
    fn weights(&self) -> [u64; TrafficClass::COUNT] {
        self.one_in.map(u64::from)
    }
}

/// Packets until a class's next sketch update when it samples 1 in `one_in`:
/// drawn from 1..=2*one_in-1, one_in on average. A fixed gap would alias with
/// traffic that repeats with a period dividing it (sources sent in turn): every
/// update could fall on one source, which would then look heavy.
#[inline]
fn sketch_gap(rng: &mut u64, one_in: u32) -> u32 {
    // xorshift64: a few cycles, and only on sampled packets.
    let mut x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    let span = u64::from(one_in.min(1 << 30)) * 2 - 1;
    1 + ((u128::from(x) * u128::from(span)) >> 64) as u32
}

/// A packet toward a target under attack: a known source passes signatures
/// and rate limits; the attack's classes are counted per source, and a
/// source over its limit is reported.
#[inline(never)]
fn watch(
    tables: &RuleTables,
    sources: &mut SourceAccounting,
    report: &mut WindowReport,
    m: &PacketMeta,
    decision: Decision,
    now_ns: u64,
) -> Decision {
    // A blocked source is dealt with: neither passed nor counted again.
    if matches!(decision, Decision::Blocked { .. }) {
        return decision;
    }
    let watch = tables.watch();
    let Some((index, target)) = watch.target_of(u128::from_be_bytes(m.dst)) else {
        return decision;
    };
    let counted = target.counts_index(usize::from(m.class_index));
    let limited = matches!(
        decision,
        Decision::Signature { .. }
            | Decision::SignatureRateLimited { .. }
            | Decision::SourceRateLimited { .. }
    );
    if !counted && !limited {
        return decision;
    }
    let src = u128::from_be_bytes(m.src);
    let known = target.is_known(src);
    if counted {
        let share = tables.watch_share(index, known);
        if let Some(packets) = sources.count(src, index as u16, share, now_ns) {
            report.over_limit(OverLimit {
                target: target.target,
                src,
                packets,
                known,
            });
        }
    }
    if limited && known {
        report.defences.known_passes += 1;
        Decision::Pass
    } else {
        decision
    }
}

/// A protected host sending to a peer: the peer exchanged traffic with it.
/// SYN-ACKs and ICMP are left out: a spoofed flood's backscatter goes to
/// addresses that never asked.
#[inline(never)]
fn learn_peer(protected: &PrefixSet, report: &mut WindowReport, m: &PacketMeta) {
    use crate::wire::tcp::flags::{RST, SYN};
    // SYN-ACKs, RSTs and ICMP are what a host sends to whoever wrote to it
    // (the backscatter of a spoofed flood): no conversation.
    if m.protocol == 1 || m.protocol == 58 || (m.protocol == 6 && m.tcp_flags & (SYN | RST) != 0) {
        return;
    }
    let from_protected = Addr::from_meta(&m.src, m.family).is_some_and(|a| protected.contains(a));
    if from_protected {
        report.peer(u128::from_be_bytes(m.src), u128::from_be_bytes(m.dst));
    }
}

/// Learn from a TCP segment's part in a handshake, and let a verified client's
/// SYN past a signature rate limit.
#[inline]
fn follow_handshake(
    tracker: &mut HandshakeTracker,
    m: &PacketMeta,
    frame: &[u8],
    d: Direction,
    decision: Decision,
    now_ns: u64,
) -> Decision {
    use crate::wire::tcp::flags::{ACK, SYN};
    let l4 = usize::from(m.l4_offset);
    let syn_ack = m.tcp_flags & (SYN | ACK);
    match d {
        Direction::Outbound if syn_ack == SYN | ACK => {
            if let Some(seq) = be_u32(frame, l4 + 4) {
                tracker.syn_ack_sent(u128::from_be_bytes(m.dst), m.dst_port, seq, now_ns);
            }
            decision
        }
        Direction::Inbound if syn_ack == ACK => {
            if let Some(ack) = be_u32(frame, l4 + 8) {
                tracker.ack_received(u128::from_be_bytes(m.src), m.src_port, ack, now_ns);
            }
            decision
        }
        Direction::Inbound
            if syn_ack == SYN
                && matches!(decision, Decision::SignatureRateLimited { .. })
                && tracker.verified(u128::from_be_bytes(m.src), now_ns) =>
        {
            Decision::Pass
        }
        _ => decision,
    }
}
