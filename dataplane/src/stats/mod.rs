//! What a worker counts in one window (default 100 ms) and hands to the control
//! plane: packets and bytes per traffic class and direction, drops by reason and
//! by rule, per-destination counters for the protected networks (with TTL and
//! source-spread statistics for judging spoofing), the heaviest sources of each
//! class, sampled packet heads and a histogram of cycles per burst.
//!
//! A [`WindowReport`] is allocated once, up front, and recycled: the worker fills
//! it, sends it, and takes an emptied one back, so counting never allocates.

mod sources;
mod topk;

pub use sources::SourceAccounting;
pub use topk::{HeavyHitter, SpaceSaving, ADMIT_ONE_IN};

use crate::named_enum;
use crate::packet_io::Direction;
use crate::tables::{fold_hash, Addr, Decision, ExactTable, PrefixSet};
use crate::wire::{L3Family, PacketMeta, ParseStatus, TrafficClass};

/// Bytes kept from each sampled packet.
pub const SAMPLE_BYTES: usize = 128;

/// Sizes of the bounded parts of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportCapacities {
    /// Protected destination hosts tracked per window.
    pub destinations: usize,
    /// Rules whose drops are counted per window.
    pub rules: usize,
    /// K of each class's top-sources sketch.
    pub top_sources: usize,
    /// Sampled packets kept per window.
    pub samples: usize,
    /// Sources over their limit reported per window.
    pub over_limit: usize,
    /// Sampled (protected host, peer) pairs per window.
    pub peers: usize,
    /// Sampled shapes of inbound packets to protected hosts per window.
    pub shapes: usize,
}

impl Default for ReportCapacities {
    fn default() -> Self {
        ReportCapacities {
            destinations: 1024,
            rules: 1024,
            top_sources: 64,
            samples: 256,
            over_limit: 4096,
            peers: 512,
            shapes: 1024,
        }
    }
}

named_enum! {
    /// Why a packet was dropped.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum DropReason {
        Blocklist => "blocklist",
        Signature => "signature",
        SignatureRateLimit => "signature_rate_limit",
        SourceRateLimit => "source_rate_limit",
        /// Did not parse, and the policy drops such frames.
        Malformed => "malformed",
        /// Not IP, and the policy drops non-IP.
        NonIp => "non_ip",
        /// Forwarded by the pipeline, refused by a full TX queue.
        TxFull => "tx_full",
        /// An unverified SYN, answered with a SYN authentication challenge.
        SynChallenge => "syn_challenge",
        /// An unverified SYN that could not be challenged.
        UnverifiedSyn => "unverified_syn",
        /// A client's answer to a challenge (its RST), consumed.
        ChallengeAnswer => "challenge_answer",
        /// A TCP segment of no known connection.
        OutOfState => "out_of_state",
    }
}

impl DropReason {
    /// Why `decision` drops its packet, if it does: a load from a table by the
    /// decision's kind (the match compiled into an indirect jump per packet,
    /// which LLVM merged with any test for the common case put before it).
    #[inline(always)]
    pub fn of(decision: Decision) -> Option<DropReason> {
        const BY_KIND: [Option<DropReason>; Decision::KINDS] = {
            let mut table = [None; Decision::KINDS];
            let mut kind = 0;
            while kind < Decision::KINDS {
                table[kind] = DropReason::of_judged(Decision::of_kind(kind));
                kind += 1;
            }
            table
        };
        BY_KIND[decision.kind()]
    }

    const fn of_judged(decision: Decision) -> Option<DropReason> {
        match decision {
            Decision::Pass
            | Decision::Allowlisted
            | Decision::Authenticate { .. }
            | Decision::RequireState { .. } => None,
            Decision::Blocked { .. } => Some(DropReason::Blocklist),
            Decision::Challenged { .. } => Some(DropReason::SynChallenge),
            Decision::Unverified { .. } => Some(DropReason::UnverifiedSyn),
            Decision::ChallengeAnswer => Some(DropReason::ChallengeAnswer),
            Decision::OutOfState { .. } => Some(DropReason::OutOfState),
            Decision::Signature { .. } => Some(DropReason::Signature),
            Decision::SignatureRateLimited { .. } => Some(DropReason::SignatureRateLimit),
            Decision::SourceRateLimited { .. } => Some(DropReason::SourceRateLimit),
        }
    }
}

/// Counters of one direction in one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectionWindow {
    pub class_packets: [u64; TrafficClass::COUNT],
    pub class_bytes: [u64; TrafficClass::COUNT],
    pub parse_status: [u64; ParseStatus::COUNT],
    pub dropped_packets: [u64; DropReason::COUNT],
    pub dropped_bytes: [u64; DropReason::COUNT],
    /// Packets that passed because their source is allowlisted (even if a rule matched).
    pub allowlisted: u64,
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
}

impl Default for DirectionWindow {
    fn default() -> Self {
        DirectionWindow {
            class_packets: [0; TrafficClass::COUNT],
            class_bytes: [0; TrafficClass::COUNT],
            parse_status: [0; ParseStatus::COUNT],
            dropped_packets: [0; DropReason::COUNT],
            dropped_bytes: [0; DropReason::COUNT],
            allowlisted: 0,
            forwarded_packets: 0,
            forwarded_bytes: 0,
        }
    }
}

impl DirectionWindow {
    /// Count a packet of `len` bytes in class `class`; returns the window's
    /// count of the class, this packet included.
    #[inline(always)]
    pub fn count_class(&mut self, class: usize, len: u64) -> u64 {
        let packets = self.class_packets[class] + 1;
        self.class_packets[class] = packets;
        self.class_bytes[class] += len;
        packets
    }

    pub fn packets(&self) -> u64 {
        self.class_packets.iter().sum()
    }

    pub fn bytes(&self) -> u64 {
        self.class_bytes.iter().sum()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped_packets.iter().sum()
    }

    /// Add another window's counters.
    pub fn add(&mut self, o: &DirectionWindow) {
        let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.class_packets, &o.class_packets);
        add(&mut self.class_bytes, &o.class_bytes);
        add(&mut self.parse_status, &o.parse_status);
        add(&mut self.dropped_packets, &o.dropped_packets);
        add(&mut self.dropped_bytes, &o.dropped_bytes);
        self.allowlisted += o.allowlisted;
        self.forwarded_packets += o.forwarded_packets;
        self.forwarded_bytes += o.forwarded_bytes;
    }
}

/// One traffic class's packets and bytes toward a destination, side by side
/// so a packet touches one cache line for both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCount {
    pub packets: u32,
    pub bytes: u32,
}

/// Counters for one protected destination host in one window. Laid out for
/// the worker's per-packet update, which touches two cache lines: the first
/// holds the totals, the source bits and the low byte of each TTL bucket's
/// count; a class's pair of counters sits in one more. A TTL bucket's count
/// carries into `ttl_high` once in 256 packets (the histogram in a line of its
/// own was a third line per packet, which the many hosts of mixed traffic
/// bring in from L2 each time).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationStats {
    pub packets: u64,
    pub bytes: u64,
    /// One bit per hashed source (linear counting): estimates distinct sources.
    pub source_bits: [u64; 4],
    /// The TTL / hop limit histogram in 16 buckets of 16 (see
    /// [`DestinationStats::ttl_buckets`]): each bucket's count mod 256 here,
    /// its count / 256 in `ttl_high`.
    ttl_low: [u8; 16],
    pub classes: [ClassCount; TrafficClass::COUNT],
    ttl_high: [u32; 16],
}

const _: () = assert!(
    std::mem::offset_of!(DestinationStats, classes) == 64,
    "the totals, the source bits and the TTL buckets' low bytes fill one line"
);

impl Default for DestinationStats {
    fn default() -> Self {
        DestinationStats {
            packets: 0,
            bytes: 0,
            source_bits: [0; 4],
            ttl_low: [0; 16],
            classes: [ClassCount::default(); TrafficClass::COUNT],
            ttl_high: [0; 16],
        }
    }
}

/// Slots of [`WindowReport`]'s index of IPv4 destinations (32 KiB).
const V4_PLACES: usize = 4096;

/// An IPv4 host and its place in the destination table plus one (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HostPlace {
    addr: u32,
    place: u32,
}

impl DestinationStats {
    /// Count one packet.
    #[inline(always)]
    fn count(&mut self, m: &PacketMeta) {
        let len = u32::from(m.frame_len);
        let class = usize::from(m.class_index);
        self.packets += 1;
        self.bytes += u64::from(len);
        if let Some(c) = self.classes.get_mut(class) {
            c.packets = c.packets.saturating_add(1);
            c.bytes = c.bytes.saturating_add(len);
        }
        let bucket = usize::from(m.ttl >> 4);
        let low = self.ttl_low[bucket].wrapping_add(1);
        self.ttl_low[bucket] = low;
        if low == 0 {
            self.ttl_high[bucket] += 1;
        }
        let src = u128::from_be_bytes(m.src);
        let h = fold_hash(src, 0) >> 56;
        self.source_bits[(h >> 6) as usize] |= 1 << (h & 63);
    }

    /// Estimated distinct sources (linear counting over 256 bits; saturates near
    /// 1500, which already says "many").
    pub fn distinct_sources(&self) -> f64 {
        let m: f64 = 256.0;
        let zeros = f64::from(256 - self.source_bits.iter().map(|w| w.count_ones()).sum::<u32>());
        if zeros == 0.0 {
            m * m.ln()
        } else {
            m * (m / zeros).ln()
        }
    }

    /// Packets per TTL / hop limit bucket of 16 (bucket i: TTLs 16i..16i+15).
    pub fn ttl_buckets(&self) -> [u32; 16] {
        std::array::from_fn(|i| {
            self.ttl_high[i]
                .saturating_mul(256)
                .saturating_add(u32::from(self.ttl_low[i]))
        })
    }

    /// Set a TTL bucket's count (tests, and summing windows).
    pub fn set_ttl_bucket(&mut self, bucket: usize, packets: u32) {
        if let (Some(low), Some(high)) =
            (self.ttl_low.get_mut(bucket), self.ttl_high.get_mut(bucket))
        {
            *low = packets as u8;
            *high = packets >> 8;
        }
    }

    pub fn add(&mut self, o: &DestinationStats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        for (mine, theirs) in self.classes.iter_mut().zip(&o.classes) {
            mine.packets = mine.packets.saturating_add(theirs.packets);
            mine.bytes = mine.bytes.saturating_add(theirs.bytes);
        }
        let (mine, theirs) = (self.ttl_buckets(), o.ttl_buckets());
        for i in 0..16 {
            self.set_ttl_bucket(i, mine[i].saturating_add(theirs[i]));
        }
        for i in 0..4 {
            self.source_bits[i] |= o.source_bits[i];
        }
    }
}

/// Drops attributed to one rule in one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleDrops {
    pub packets: u64,
    pub bytes: u64,
}

/// A source that went over its per-source limit toward a watched target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverLimit {
    pub target: crate::tables::Prefix,
    /// IPv4-mapped key.
    pub src: u128,
    /// Its packets this second so far, in this worker.
    pub packets: u32,
    /// Whether the target knew the source from peacetime.
    pub known: bool,
}

/// What a signature can match of an inbound packet to a protected host, with
/// its source and destination (IPv4-mapped keys): sampled for the control
/// plane's peacetime profile and attack signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketShape {
    pub src: u128,
    pub dst: u128,
    pub class: TrafficClass,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub ip_len: u16,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    pub tcp_flags: u8,
    pub non_first_fragment: bool,
}

impl PacketShape {
    #[inline]
    pub fn of(m: &PacketMeta) -> PacketShape {
        PacketShape {
            src: u128::from_be_bytes(m.src),
            dst: u128::from_be_bytes(m.dst),
            class: m.class,
            protocol: m.protocol,
            src_port: m.src_port,
            dst_port: m.dst_port,
            ip_len: m.ip_len,
            ttl: m.ttl,
            tcp_flags: m.tcp_flags,
            non_first_fragment: m.fragment == crate::wire::Fragment::NonFirst,
        }
    }
}

/// The head of a sampled packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub timestamp_ns: u64,
    pub original_len: u16,
    pub captured_len: u8,
    pub direction: Direction,
    pub data: [u8; SAMPLE_BYTES],
}

/// The sums of a burst's packets, counted in [`WindowReport::count_into`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstTally {
    /// Bytes of every packet counted.
    pub bytes: u64,
    /// Packets that parsed.
    pub parsed: u64,
    pub allowlisted: u64,
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
}

/// One burst in this many has its cycles measured and recorded: the clock read
/// at its end and the histogram's update cost a few per cent of the forwarding
/// path when every burst paid them, and a window's quantiles need no more.
pub const BURST_CYCLES_ONE_IN: u64 = 8;

/// Everything one worker counted in one window.
#[derive(Debug)]
pub struct WindowReport {
    pub worker: u16,
    /// The worker's window number.
    pub sequence: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub directions: [DirectionWindow; 2],
    /// Per protected destination host (IPv4-mapped key).
    pub destinations: ExactTable<u128, DestinationStats>,
    /// Packets to protected destinations that found the table full.
    pub destinations_overflow: u64,
    /// IPv4 destinations' places in `destinations`, by the address's low
    /// bits: see [`WindowReport::count_destination`].
    v4_places: Box<[HostPlace]>,
    /// Drops by rule. Complete once the window is closed: the drops of the
    /// latest rule wait in `pending_rule_drops` until another rule drops or
    /// [`WindowReport::flush_rule_drops`] runs.
    pub rule_drops: ExactTable<u32, RuleDrops>,
    pub rule_drops_overflow: u64,
    /// The latest dropping rule and its drops not yet in `rule_drops`: an
    /// attack's packets come in runs dropped by one rule, and a run costs one
    /// table update, not one per packet.
    pending_rule_drops: Option<(u32, RuleDrops)>,
    /// One sketch per traffic class (index = class index); inbound sources.
    pub top_sources: Vec<SpaceSaving>,
    /// Each update of a class's sketch counts this many packets (1-in-N
    /// sampling of updates; index = class index).
    pub top_sources_weight: [u64; TrafficClass::COUNT],
    pub samples: Vec<Sample>,
    /// Sources that went over their limit toward a target under attack.
    pub over_limit: Vec<OverLimit>,
    /// Over-limit sources that found no room in `over_limit`.
    pub over_limit_overflow: u64,
    /// Sampled peers the protected hosts sent to: (host, peer), IPv4-mapped keys.
    pub peers: Vec<(u128, u128)>,
    /// Sampled peers that found no room in `peers`.
    pub peers_overflow: u64,
    /// Sampled shapes of inbound packets to protected hosts.
    pub shapes: Vec<PacketShape>,
    /// Non-empty bursts in this window.
    pub bursts: u64,
    /// TSC cycles per non-empty burst, of one burst in
    /// [`BURST_CYCLES_ONE_IN`] (the first of the window among them).
    pub burst_cycles: hdrhistogram::Histogram<u64>,
    /// Reports this worker could not deliver before this one (channel full or
    /// no free report), cumulative.
    pub reports_dropped: u64,
    /// What the TCP defences and known sources did in this window.
    pub defences: DefenceCounters,
}

/// The work of SYN authentication, out-of-state TCP and known sources in one
/// window (the drops themselves are also counted by reason).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefenceCounters {
    /// SYN-ACK challenges written (sent, or in a replay: would have been sent).
    pub challenges: u64,
    /// Challenges the port could not send (monitor mode, a replay, a full TX queue).
    pub challenges_unsent: u64,
    /// Sources verified by the answer to a challenge.
    pub verified: u64,
    /// Sources verified by completing a handshake with a protected server.
    pub handshakes: u64,
    /// RSTs toward a target under SYN authentication that answer no challenge.
    pub failed: u64,
    /// Segments of unknown connections let through while the connection
    /// table was younger than its grace.
    pub grace_passes: u64,
    /// Packets of known sources that passed a rule toward a target under attack.
    pub known_passes: u64,
    /// Verifications and connections the full tables refused (cumulative).
    pub verified_refused: u64,
    pub connections_refused: u64,
}

impl DefenceCounters {
    pub fn add(&mut self, o: &DefenceCounters) {
        self.challenges += o.challenges;
        self.challenges_unsent += o.challenges_unsent;
        self.verified += o.verified;
        self.handshakes += o.handshakes;
        self.failed += o.failed;
        self.grace_passes += o.grace_passes;
        self.known_passes += o.known_passes;
        self.verified_refused += o.verified_refused;
        self.connections_refused += o.connections_refused;
    }
}

impl WindowReport {
    /// Allocate a report; the only allocation a report ever makes.
    pub fn new(capacities: ReportCapacities) -> Box<WindowReport> {
        Box::new(WindowReport {
            worker: 0,
            sequence: 0,
            start_ns: 0,
            end_ns: 0,
            directions: [DirectionWindow::default(), DirectionWindow::default()],
            destinations: ExactTable::with_capacity(capacities.destinations),
            destinations_overflow: 0,
            v4_places: vec![HostPlace::default(); V4_PLACES].into_boxed_slice(),
            rule_drops: ExactTable::with_capacity(capacities.rules),
            rule_drops_overflow: 0,
            pending_rule_drops: None,
            top_sources: (0..TrafficClass::COUNT)
                .map(|_| SpaceSaving::new(capacities.top_sources))
                .collect(),
            top_sources_weight: [1; TrafficClass::COUNT],
            samples: Vec::with_capacity(capacities.samples),
            over_limit: Vec::with_capacity(capacities.over_limit),
            over_limit_overflow: 0,
            peers: Vec::with_capacity(capacities.peers),
            peers_overflow: 0,
            shapes: Vec::with_capacity(capacities.shapes),
            bursts: 0,
            // 1 cycle to 2^40 cycles at 2 significant digits: fixed size, and
            // recording never allocates.
            burst_cycles: hdrhistogram::Histogram::new_with_bounds(1, 1 << 40, 2)
                .expect("valid histogram bounds"),
            reports_dropped: 0,
            defences: DefenceCounters::default(),
        })
    }

    /// A copy with the same room: the bounded lists (samples, sources over
    /// their limit, peers, shapes) are full when their length reaches their
    /// capacity, so a derived clone, whose lists have only the room their
    /// contents take, would record none of them.
    pub fn copy(&self) -> Box<WindowReport> {
        use crate::tables::with_room;
        Box::new(WindowReport {
            worker: self.worker,
            sequence: self.sequence,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            directions: self.directions.clone(),
            destinations: self.destinations.clone(),
            destinations_overflow: self.destinations_overflow,
            v4_places: self.v4_places.clone(),
            rule_drops: self.rule_drops.clone(),
            rule_drops_overflow: self.rule_drops_overflow,
            pending_rule_drops: self.pending_rule_drops,
            top_sources: self.top_sources.clone(),
            top_sources_weight: self.top_sources_weight,
            samples: with_room(&self.samples),
            over_limit: with_room(&self.over_limit),
            over_limit_overflow: self.over_limit_overflow,
            peers: with_room(&self.peers),
            peers_overflow: self.peers_overflow,
            shapes: with_room(&self.shapes),
            bursts: self.bursts,
            burst_cycles: self.burst_cycles.clone(),
            reports_dropped: self.reports_dropped,
            defences: self.defences,
        })
    }

    /// Empty every counter for reuse, keeping the memory.
    pub fn reset(&mut self) {
        self.directions = [DirectionWindow::default(), DirectionWindow::default()];
        self.destinations.clear();
        self.destinations_overflow = 0;
        self.v4_places.fill(HostPlace::default());
        self.rule_drops.clear();
        self.rule_drops_overflow = 0;
        self.pending_rule_drops = None;
        for s in &mut self.top_sources {
            s.clear();
        }
        self.samples.clear();
        self.over_limit.clear();
        self.over_limit_overflow = 0;
        self.peers.clear();
        self.peers_overflow = 0;
        self.shapes.clear();
        self.bursts = 0;
        self.burst_cycles.reset();
        self.defences = DefenceCounters::default();
    }

    pub fn direction(&self, d: Direction) -> &DirectionWindow {
        &self.directions[d as usize]
    }

    /// Count one packet: its class, size and the decision.
    #[inline(always)]
    pub fn count(
        &mut self,
        d: Direction,
        m: &PacketMeta,
        drop: Option<DropReason>,
        rule_id: Option<u32>,
        allowlisted: bool,
    ) {
        let mut tally = BurstTally::default();
        self.count_into(&mut tally, d, m, drop, rule_id, allowlisted);
        self.add_tally(d, &tally);
    }

    /// Count one packet of a burst: what differs from packet to packet (its
    /// class, a drop's reason, a failed parse) goes into the counters, the
    /// sums into `tally`, a local the compiler keeps in registers; the burst's
    /// [`WindowReport::add_tally`] adds them once. (Each counter written per
    /// packet is a load and a store the next packet of the kind waits on:
    /// perf put these at a sixth of the forwarding path.) Returns the
    /// window's count of the packet's class, this packet included.
    #[inline(always)]
    pub fn count_into(
        &mut self,
        tally: &mut BurstTally,
        d: Direction,
        m: &PacketMeta,
        drop: Option<DropReason>,
        rule_id: Option<u32>,
        allowlisted: bool,
    ) -> u64 {
        let len = u64::from(m.frame_len);
        tally.bytes += len;
        let w = &mut self.directions[d as usize];
        let class_packets = w.count_class(usize::from(m.class_index), len);
        if m.status == ParseStatus::Ok {
            tally.parsed += 1;
        } else {
            w.parse_status[m.status as usize] += 1;
        }
        tally.allowlisted += u64::from(allowlisted);
        match drop {
            Some(reason) => self.add_drops(d, reason, rule_id, 1, len),
            None => {
                tally.forwarded_packets += 1;
                tally.forwarded_bytes += len;
            }
        }
        class_packets
    }

    /// Add a burst's sums (see [`WindowReport::count_into`]).
    #[inline(always)]
    pub fn add_tally(&mut self, d: Direction, tally: &BurstTally) {
        let w = &mut self.directions[d as usize];
        w.parse_status[ParseStatus::Ok as usize] += tally.parsed;
        w.allowlisted += tally.allowlisted;
        w.forwarded_packets += tally.forwarded_packets;
        w.forwarded_bytes += tally.forwarded_bytes;
    }

    /// Count `packets` drops for one reason (and rule) of `bytes` in all.
    #[inline(always)]
    pub fn add_drops(
        &mut self,
        d: Direction,
        reason: DropReason,
        rule_id: Option<u32>,
        packets: u64,
        bytes: u64,
    ) {
        let w = &mut self.directions[d as usize];
        w.dropped_packets[reason as usize] += packets;
        w.dropped_bytes[reason as usize] += bytes;
        let Some(id) = rule_id else {
            return;
        };
        match &mut self.pending_rule_drops {
            Some((pending, drops)) if *pending == id => {
                drops.packets += packets;
                drops.bytes += bytes;
            }
            _ => self.start_rule_run(id, RuleDrops { packets, bytes }),
        }
    }

    /// Another rule drops: the last one's run goes into the table. Out of
    /// line, so the forwarding path stays compact.
    #[inline(never)]
    fn start_rule_run(&mut self, id: u32, drops: RuleDrops) {
        self.flush_rule_drops();
        self.pending_rule_drops = Some((id, drops));
    }

    /// Put the pending drops of the latest rule into `rule_drops` (before the
    /// report leaves the worker).
    pub fn flush_rule_drops(&mut self) {
        let Some((id, run)) = self.pending_rule_drops.take() else {
            return;
        };
        match self.rule_drops.get_mut(&id) {
            Some(r) => {
                r.packets += run.packets;
                r.bytes += run.bytes;
            }
            None => {
                if self.rule_drops.insert(id, run).is_err() {
                    self.rule_drops_overflow += run.packets;
                }
            }
        }
    }

    /// Per-destination statistics of a packet to a protected host. An IPv4
    /// host's place in the table is remembered in a direct-mapped index by
    /// the address's low bits, so that its packets after the first take one
    /// load instead of hashing and probing the table (half of this function's
    /// time): the hosts of protected prefixes up to a /20 never share a slot,
    /// and hosts that do share one take turns through the table. The table is
    /// only added to in a window, so a place stays its host's until
    /// [`WindowReport::reset`] empties both. Inlined into the burst's pass:
    /// as a call per packet its prologue was a tenth of its time.
    #[inline(always)]
    pub fn count_destination(&mut self, m: &PacketMeta) {
        let key = u128::from_be_bytes(m.dst);
        let place = match self.indexed_place(m) {
            Some(place) => Some(place),
            None => {
                let place = self.find_or_add_destination(key);
                if m.family == L3Family::Ipv4 {
                    let addr = key as u32;
                    let slot = addr as usize & (V4_PLACES - 1);
                    if let (Some(p), Some(h)) = (place, self.v4_places.get_mut(slot)) {
                        *h = HostPlace { addr, place: p + 1 };
                    }
                }
                place
            }
        };
        if let Some(stats) = place.and_then(|p| self.destinations.value_mut(p)) {
            stats.count(m);
        }
    }

    /// The place in the destination table of an IPv4 destination the index
    /// holds.
    #[inline(always)]
    fn indexed_place(&self, m: &PacketMeta) -> Option<u32> {
        if m.family != L3Family::Ipv4 {
            return None;
        }
        let addr = u32::from_be_bytes([m.dst[12], m.dst[13], m.dst[14], m.dst[15]]);
        match self.v4_places.get(addr as usize & (V4_PLACES - 1)) {
            Some(h) if h.addr == addr && h.place != 0 => Some(h.place - 1),
            _ => None,
        }
    }

    /// Count a packet if its destination is a protected host. A host already
    /// in the IPv4 index is protected (no other enters it): found there, its
    /// packet is counted without asking `protected`, which is the rest of a
    /// burst's packets to hosts seen this window.
    #[inline(always)]
    pub fn count_if_protected(&mut self, m: &PacketMeta, protected: &PrefixSet) -> bool {
        if let Some(place) = self.indexed_place(m) {
            if let Some(stats) = self.destinations.value_mut(place) {
                stats.count(m);
            }
            return true;
        }
        match Addr::from_meta(&m.dst, m.family) {
            Some(dst) if protected.contains(dst) => {
                self.count_destination(m);
                true
            }
            _ => false,
        }
    }

    #[inline]
    fn find_or_add_destination(&mut self, key: u128) -> Option<u32> {
        match self
            .destinations
            .place_or_insert(key, DestinationStats::default())
        {
            Ok(place) => Some(place),
            Err(_) => {
                self.destinations_overflow += 1;
                None
            }
        }
    }

    /// Report a source over its limit, if there is room this window.
    #[inline(never)]
    pub fn over_limit(&mut self, o: OverLimit) {
        if self.over_limit.len() < self.over_limit.capacity() {
            self.over_limit.push(o);
        } else {
            self.over_limit_overflow += 1;
        }
    }

    /// Remember a peer a protected host sent to, if there is room this window.
    #[inline]
    pub fn peer(&mut self, host: u128, peer: u128) {
        if self.peers.len() < self.peers.capacity() {
            self.peers.push((host, peer));
        } else {
            self.peers_overflow += 1;
        }
    }

    /// Keep the shape of a packet to a protected host, if there is room.
    #[inline]
    pub fn shape(&mut self, m: &PacketMeta) {
        if self.shapes.len() < self.shapes.capacity() {
            self.shapes.push(PacketShape::of(m));
        }
    }

    /// Keep the head of a packet, if there is room this window.
    #[inline]
    pub fn sample(&mut self, d: Direction, timestamp_ns: u64, frame: &[u8]) {
        if self.samples.len() < self.samples.capacity() {
            let n = frame.len().min(SAMPLE_BYTES);
            let mut data = [0u8; SAMPLE_BYTES];
            data[..n].copy_from_slice(&frame[..n]);
            self.samples.push(Sample {
                timestamp_ns,
                original_len: u16::try_from(frame.len()).unwrap_or(u16::MAX),
                captured_len: n as u8,
                direction: d,
                data,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP packet from 1.2.3.4 to 10.0.0.1 (TTL 64).
    fn udp_from_1_2_3_4() -> PacketMeta {
        crate::wire::parse(&crate::synth::udp_frame(
            &crate::synth::Endpoints {
                src_mac: [2; 6],
                dst_mac: [4; 6],
                src: std::net::Ipv4Addr::new(1, 2, 3, 4),
                dst: std::net::Ipv4Addr::new(10, 0, 0, 1),
                src_port: 1,
                dst_port: 2,
                ttl: 64,
            },
            &[],
        ))
    }

    #[test]
    fn drop_reasons_by_kind_are_those_of_the_match() {
        let rule_id = 42;
        let decisions = [
            (Decision::Pass, None),
            (Decision::Allowlisted, None),
            (Decision::Authenticate { rule_id }, None),
            (Decision::RequireState { rule_id }, None),
            (Decision::Blocked { rule_id }, Some(DropReason::Blocklist)),
            (Decision::Signature { rule_id }, Some(DropReason::Signature)),
            (
                Decision::SignatureRateLimited { rule_id },
                Some(DropReason::SignatureRateLimit),
            ),
            (
                Decision::SourceRateLimited { rule_id },
                Some(DropReason::SourceRateLimit),
            ),
            (
                Decision::Challenged { rule_id },
                Some(DropReason::SynChallenge),
            ),
            (
                Decision::Unverified { rule_id },
                Some(DropReason::UnverifiedSyn),
            ),
            (
                Decision::OutOfState { rule_id },
                Some(DropReason::OutOfState),
            ),
            (Decision::ChallengeAnswer, Some(DropReason::ChallengeAnswer)),
        ];
        assert_eq!(decisions.len(), Decision::KINDS);
        for (decision, reason) in decisions {
            assert_eq!(DropReason::of(decision), reason, "{decision:?}");
            assert_eq!(decision.drops(), reason.is_some(), "{decision:?}");
        }
    }

    #[test]
    fn a_copy_keeps_the_room_of_every_bounded_list() {
        let mut r = WindowReport::new(ReportCapacities::default());
        r.peer(1, 2);
        let c = r.copy();
        assert_eq!(c.peers, r.peers);
        for (copy, original) in [
            (c.samples.capacity(), r.samples.capacity()),
            (c.over_limit.capacity(), r.over_limit.capacity()),
            (c.peers.capacity(), r.peers.capacity()),
            (c.shapes.capacity(), r.shapes.capacity()),
        ] {
            assert_eq!(copy, original);
        }
    }

    #[test]
    fn drops_by_rule_add_up_across_runs_once_flushed() {
        let m = udp_from_1_2_3_4();
        let mut r = WindowReport::new(ReportCapacities::default());
        let len = u64::from(m.frame_len);
        for id in [7, 7, 9, 7, 7, 7, 9] {
            r.count(
                Direction::Inbound,
                &m,
                Some(DropReason::Blocklist),
                Some(id),
                false,
            );
        }
        r.count(Direction::Inbound, &m, None, None, false);
        r.flush_rule_drops();
        r.flush_rule_drops();
        let drops = |id| r.rule_drops.get(&id).copied();
        assert_eq!(
            drops(7),
            Some(RuleDrops {
                packets: 5,
                bytes: 5 * len
            })
        );
        assert_eq!(
            drops(9),
            Some(RuleDrops {
                packets: 2,
                bytes: 2 * len
            })
        );
        assert_eq!(r.rule_drops.len(), 2);
        r.reset();
        r.flush_rule_drops();
        assert!(
            r.rule_drops.is_empty(),
            "a reset forgets the pending run too"
        );
    }

    /// Hosts whose addresses share the index's slot (same low 12 bits), an
    /// IPv6 host and a host beyond the table's room, in an interleaved order:
    /// each host's count is its own, none is lost but the one refused, and a
    /// reset leaves no place behind.
    #[test]
    fn each_destination_is_counted_apart_whatever_its_slot() {
        let m = udp_from_1_2_3_4();
        let to = |dst: std::net::IpAddr| {
            let mut mi = m;
            mi.dst = match dst {
                std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                std::net::IpAddr::V6(a) => {
                    mi.family = crate::wire::L3Family::Ipv6;
                    a.octets()
                }
            };
            mi
        };
        let hosts: Vec<PacketMeta> = [
            "10.0.0.1",
            "10.0.16.1",
            "10.1.0.1",
            "2001:db8::1",
            "10.0.0.2",
        ]
        .iter()
        .map(|h| to(h.parse().expect("address")))
        .collect();
        let capacities = ReportCapacities {
            destinations: 4,
            ..ReportCapacities::default()
        };
        let mut r = WindowReport::new(capacities);
        let order = [0, 1, 0, 0, 2, 1, 3, 0, 4, 2, 2, 1, 3, 4, 0];
        for round in 0..2 {
            for &h in &order {
                r.count_destination(&hosts[h]);
            }
            for (h, meta) in hosts.iter().enumerate().take(4) {
                let expected = order.iter().filter(|&&o| o == h).count() as u64;
                let stats = r.destinations.get(&u128::from_be_bytes(meta.dst));
                assert_eq!(
                    stats.map(|s| s.packets),
                    Some(expected),
                    "host {h}, round {round}"
                );
            }
            assert_eq!(r.destinations.len(), 4);
            assert_eq!(
                r.destinations_overflow, 2,
                "the fifth host found no room, twice"
            );
            r.reset();
            assert!(r.destinations.is_empty());
        }
    }

    /// Only packets to protected hosts are counted, whether their host is
    /// already in the window's IPv4 index or not: an unprotected host whose
    /// address shares the index slot of a protected one, or an IPv6 host
    /// outside the protected prefix, is not.
    #[test]
    fn only_protected_destinations_are_counted() {
        use crate::tables::PrefixTable;
        let mut table = PrefixTable::with_capacity(4);
        for p in ["10.0.0.0/24", "2001:db8::/64"] {
            table.insert(p.parse().expect("prefix"), ()).expect("room");
        }
        let protected = PrefixSet::new(table);
        let v4 = |d: [u8; 4]| {
            let mut m = udp_from_1_2_3_4();
            m.dst[12..].copy_from_slice(&d);
            m
        };
        let v6 = |d: &str| {
            let mut m = udp_from_1_2_3_4();
            m.family = L3Family::Ipv6;
            m.dst = d.parse::<std::net::Ipv6Addr>().expect("v6").octets();
            m
        };
        // 10.0.16.5 takes the index slot of 10.0.0.5 (the same low 12 bits).
        let packets = [
            (v4([10, 0, 0, 5]), true),
            (v4([10, 0, 16, 5]), false),
            (v4([10, 0, 0, 5]), true),
            (v4([10, 0, 16, 5]), false),
            (v6("2001:db8::1"), true),
            (v6("2001:db9::1"), false),
            (v6("2001:db8::1"), true),
        ];
        let mut r = WindowReport::new(ReportCapacities::default());
        for (m, counted) in &packets {
            assert_eq!(
                r.count_if_protected(m, &protected),
                *counted,
                "{:?}",
                m.dst_ip()
            );
        }
        let packets_of = |r: &WindowReport, m: &PacketMeta| {
            r.destinations
                .get(&u128::from_be_bytes(m.dst))
                .map(|s| s.packets)
        };
        assert_eq!(packets_of(&r, &v4([10, 0, 0, 5])), Some(2));
        assert_eq!(packets_of(&r, &v6("2001:db8::1")), Some(2));
        assert_eq!(r.destinations.len(), 2, "nothing else is counted");
    }

    /// A TTL bucket's count carries out of its low byte every 256 packets:
    /// counted and summed across the carry, every bucket stays exact.
    #[test]
    fn ttl_buckets_count_past_their_low_byte() {
        let m = udp_from_1_2_3_4();
        let mut r = WindowReport::new(ReportCapacities::default());
        let counts = [(64u8, 600u32), (200, 255), (3, 256), (130, 1)];
        for &(ttl, packets) in &counts {
            for _ in 0..packets {
                r.count_destination(&PacketMeta { ttl, ..m });
            }
        }
        let stats = *r
            .destinations
            .get(&u128::from_be_bytes(m.dst))
            .expect("tracked");
        let mut expected = [0u32; 16];
        for &(ttl, packets) in &counts {
            expected[usize::from(ttl >> 4)] = packets;
        }
        assert_eq!(stats.ttl_buckets(), expected);
        let mut sum = stats;
        sum.add(&stats);
        assert_eq!(sum.ttl_buckets(), expected.map(|n| 2 * n));
        assert_eq!(sum.packets, 2 * 1112);
    }

    #[test]
    fn distinct_source_estimate() {
        let mut d = DestinationStats::default();
        assert!(d.distinct_sources() < 0.5);
        let m = udp_from_1_2_3_4();
        let mut r = WindowReport::new(ReportCapacities::default());
        for i in 0..100u32 {
            let mut mi = m;
            mi.src[12..16].copy_from_slice(&i.to_be_bytes());
            r.count_destination(&mi);
        }
        let key = u128::from_be_bytes(m.dst);
        let stats = r.destinations.get(&key).expect("tracked");
        assert_eq!(stats.packets, 100);
        let est = stats.distinct_sources();
        assert!(
            (70.0..140.0).contains(&est),
            "estimate {est} for 100 sources"
        );
        assert_eq!(stats.ttl_buckets()[4], 100, "TTL 64 is in bucket 4");
        d.add(stats);
        assert_eq!(d.packets, 100);
    }
}
