//! The pipeline's own cost per burst of 32 frames, without any driver: the
//! configurations of `scripts/bench-dataplane.sh` (the same 1024-frame mix,
//! the same tables; under attack, every destination watched with the
//! classes of the mix) handed to `Pipeline::process_burst` from memory. The
//! script's figures also carry net_pcap's copy and net_null's free, and the
//! host's noise on both; this is the pipeline alone, for telling two versions
//! of it apart:
//!
//!   cargo bench -p levee-dataplane --bench pipeline [-- CASE...]
//!   PIPELINE_BENCH_ROUNDS=300 cargo bench ...     (default 100 rounds)
//!
//! The cases take turns in rounds of 2,000 bursts (about a millisecond each),
//! and each prints its least and median time per burst: on a shared host
//! whose speed comes and goes, the least is the figure two builds compare on
//! (run them in turn, `scripts/bench-pipeline-ab.sh`). Not criterion: it runs
//! one case after the other, and a slow spell of the host then falls on one
//! case alone. The clock advances 3.2 µs a burst (10 Mpps), so windows close
//! every 31,250 bursts as they would at that rate; reports are recycled in
//! place (no control plane reads them here).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use levee_dataplane::packet_io::{Direction, PacketBurst, BURST_SIZE};
use levee_dataplane::pipeline::{Pipeline, PipelineConfig};
use levee_dataplane::synth;
use levee_dataplane::tables::{
    mapped_key, Prefix, PrefixTable, RuleTables, SignatureRule, SignatureSet, TableCapacities,
    TableCommand, WatchSet, WatchedTarget,
};
use levee_dataplane::wire::TrafficClass;

/// The tables on huge pages, as in the appliance.
#[global_allocator]
static ALLOCATOR: levee_dataplane::memory::HugePageAllocator =
    levee_dataplane::memory::HugePageAllocator;

/// A burst of frames held in memory (indices into the mix).
#[derive(Default)]
struct FrameBurst {
    frames: Arc<Vec<Vec<u8>>>,
    index: [u32; BURST_SIZE],
    len: usize,
}

impl PacketBurst for FrameBurst {
    fn len(&self) -> usize {
        self.len
    }
    fn frame(&self, i: usize) -> &[u8] {
        match self.index.get(i) {
            Some(&at) if i < self.len => self.frames.get(at as usize).map_or(&[], |f| &f[..]),
            _ => &[],
        }
    }
    fn retain(&mut self, keep: u32) -> u32 {
        let dropped = (self.len as u32).saturating_sub(keep.count_ones());
        self.len = 0;
        dropped
    }
    fn clear(&mut self) {
        self.len = 0;
    }
}

/// The bench script's capture: 1024 small frames, seed 7, from 198.18.0.0/15
/// to 10.0.0.0/24.
fn frames() -> Arc<Vec<Vec<u8>>> {
    Arc::new(
        synth::mixed_small_traffic(1024, 7, 0)
            .into_iter()
            .map(|(_, _, f)| f)
            .collect(),
    )
}

/// `n` distinct IPv4 hosts outside 198.18.0.0/15 (a splitmix sequence).
fn blocked_elsewhere(n: usize) -> Vec<Ipv4Addr> {
    let mut x = 11u64;
    let mut out = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    while out.len() < n {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let a = Ipv4Addr::from((z ^ (z >> 31)) as u32);
        if a.octets()[..2] != [198, 18] && a.octets()[..2] != [198, 19] && seen.insert(a) {
            out.push(a);
        }
    }
    out
}

/// The script's 200 signature rules over the protected /24, none of which the
/// mix matches (IP lengths 1400-1500), so each is evaluated and none drops.
fn signatures() -> SignatureSet {
    let protos: [(u8, [u16; 4]); 2] = [(17, [53, 123, 27015, 443]), (6, [80, 443, 22, 25])];
    let rules = (0..200u32)
        .map(|i| {
            let (protocol, ports) = protos[i as usize % 2];
            let port = ports[(i as usize / 2) % 4];
            SignatureRule {
                destination: Some("10.0.0.0/24".parse().expect("prefix")),
                protocol: Some(protocol),
                dst_ports: Some((port, port + (i / 8) as u16)),
                ip_length: Some((1400 + (i % 50) as u16, 1500)),
                ..SignatureRule::drop_all(1000 + i)
            }
        })
        .collect();
    SignatureSet::new(rules).expect("valid rules")
}

fn block(tables: &mut RuleTables, hosts: impl IntoIterator<Item = Ipv4Addr>) {
    for a in hosts {
        let command = TableCommand::Block {
            prefix: Prefix::host(IpAddr::V4(a)),
            rule_id: 1,
            expires_at_ns: u64::MAX,
        };
        tables.apply(command, 0).expect("room");
    }
}

/// What the tables hold besides the signatures.
enum Scenario {
    NoBlocklist,
    /// 1M blocked hosts, none a source of the mix.
    BlocklistElsewhere,
    /// 100,000 hosts, none a source of the mix, and every destination of the
    /// mix watched as a target under attack (its traffic accounted per
    /// source), as in the script's line for the pipeline under attack; each
    /// target knowing this many peers from peacetime, none a source of the mix
    /// (a host's most: `PEERS_PER_HOST`).
    UnderAttack {
        known: u32,
    },
    /// 1M blocked hosts: every address of 198.18.0.0/15, then others.
    EverySourceBlocked,
}

fn pipeline(rules: bool, scenario: Scenario) -> Pipeline {
    let capacities = TableCapacities {
        blocked_hosts: 1 << 20,
        ..TableCapacities::default()
    };
    let mut tables = RuleTables::new(capacities, 1);
    let mut protected = PrefixTable::with_capacity(4);
    if rules {
        protected
            .insert("10.0.0.0/24".parse().expect("prefix"), ())
            .expect("room");
        tables
            .apply(TableCommand::Signatures(Arc::new(signatures())), 0)
            .expect("signatures");
    }
    match scenario {
        Scenario::NoBlocklist => {}
        Scenario::BlocklistElsewhere => block(&mut tables, blocked_elsewhere(1 << 20)),
        Scenario::UnderAttack { known } => {
            block(&mut tables, blocked_elsewhere(100_000));
            let targets = (1..=254u8)
                .map(|host| {
                    let target = Prefix::host(IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)));
                    // Peers in 100.64.0.0/10, which the mix never sends from.
                    let known = (0..known)
                        .map(|i| mapped_key(IpAddr::V4(Ipv4Addr::from(0x6440_0000 | (i * 37)))))
                        .collect();
                    WatchedTarget::new(target, TrafficClass::all(), u32::MAX, u32::MAX, known)
                })
                .collect();
            tables
                .apply(TableCommand::Watch(Arc::new(WatchSet::new(targets))), 0)
                .expect("watch");
        }
        Scenario::EverySourceBlocked => {
            let bench = (0..1u32 << 17).map(|i| Ipv4Addr::from(0xc612_0000 | i));
            block(
                &mut tables,
                bench.chain(blocked_elsewhere((1 << 20) - (1 << 17))),
            );
        }
    }
    Pipeline::new(
        0,
        tables,
        None,
        Arc::new(protected),
        PipelineConfig::default(),
        None,
    )
}

/// Nanoseconds per burst over `bursts` bursts of `case`.
fn measure(case: &mut Case, frames: &Arc<Vec<Vec<u8>>>, bursts: u32) -> f64 {
    let started = Instant::now();
    let mut kept = 0u32;
    for _ in 0..bursts {
        // A compare, not `%`: a division per frame would cost the pipeline's
        // parse of it again.
        for slot in case.burst.index.iter_mut() {
            *slot = case.next as u32;
            case.next += 1;
            if case.next == frames.len() {
                case.next = 0;
            }
        }
        case.burst.len = BURST_SIZE;
        case.now_ns += 3_200;
        let verdict = case
            .pipeline
            .process_burst(&mut case.burst, Direction::Inbound, case.now_ns);
        kept = kept.wrapping_add(black_box(verdict.keep).count_ones());
        case.burst.clear();
        case.pipeline.after_poll(case.now_ns);
    }
    black_box(kept);
    started.elapsed().as_nanos() as f64 / f64::from(bursts)
}

struct Case {
    name: &'static str,
    pipeline: Pipeline,
    burst: FrameBurst,
    next: usize,
    now_ns: u64,
    rounds: Vec<f64>,
}

fn main() {
    // `cargo bench` passes `--bench`; anything else names the cases to run.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: usize = std::env::var("PIPELINE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let frames = frames();
    let mut cases: Vec<Case> = [
        ("forwarding", false, Scenario::NoBlocklist),
        ("full", true, Scenario::BlocklistElsewhere),
        ("full_without_blocklist", true, Scenario::NoBlocklist),
        ("drop", true, Scenario::EverySourceBlocked),
        ("under_attack", true, Scenario::UnderAttack { known: 0 }),
        (
            "under_attack_known_peers",
            true,
            Scenario::UnderAttack { known: 8192 },
        ),
    ]
    .into_iter()
    .filter(|(name, _, _)| wanted.is_empty() || wanted.iter().any(|w| w == name))
    .map(|(name, rules, scenario)| Case {
        name,
        pipeline: pipeline(rules, scenario),
        burst: FrameBurst {
            frames: Arc::clone(&frames),
            ..FrameBurst::default()
        },
        next: 0,
        now_ns: 1_000_000_000,
        rounds: Vec::with_capacity(rounds),
    })
    .collect();
    // Warm up: the tables into the caches, the sketch plans past the first window.
    for case in &mut cases {
        measure(case, &frames, 40_000);
    }
    // The cases take turns, a round of 2,000 bursts (about a millisecond) each, so
    // that the host's slow spells fall on every case alike.
    for _ in 0..rounds {
        for case in &mut cases {
            let ns = measure(case, &frames, 2_000);
            case.rounds.push(ns);
        }
    }
    println!(
        "{:<24} {:>12} {:>12} {:>12}   ({} rounds of 2,000 bursts of {} frames)",
        "pipeline", "least ns/burst", "median", "ns/packet", rounds, BURST_SIZE
    );
    for case in &mut cases {
        case.rounds.sort_by(f64::total_cmp);
        let least = case.rounds[0];
        let median = case.rounds[case.rounds.len() / 2];
        println!(
            "{:<24} {:>14.0} {:>12.0} {:>12.1}",
            case.name,
            least,
            median,
            least / BURST_SIZE as f64
        );
    }
}
