//! The per-packet path allocates nothing: a counting global allocator watches the
//! worker thread while it polls, counts, rolls windows and applies rule changes.
// A global allocator can only be written with `unsafe`; it only counts and delegates.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use levee_dataplane::packet_io::Direction;
use levee_dataplane::pcap::{Record, LINKTYPE_ETHERNET};
use levee_dataplane::pipeline::{report_channels, Pipeline, PipelineConfig};
use levee_dataplane::replay::CaptureSource;
use levee_dataplane::stats::ReportCapacities;
use levee_dataplane::synth;
use levee_dataplane::tables::{
    PrefixTable, RuleTables, SignatureRule, TableCapacities, TablePublisher,
};
use levee_dataplane::worker::{WorkerContext, WorkerSettings};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: delegates to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn polling_counting_and_rolling_windows_allocate_nothing() {
    let mut frames: Vec<Vec<u8>> = synth::labelled_mix(9).into_iter().map(|(f, _)| f).collect();
    frames.extend(
        synth::mixed_small_traffic(2000, 4, 0)
            .into_iter()
            .map(|(_, _, f)| f),
    );
    frames.push(vec![0xff; 20]); // malformed
    let records: Arc<Vec<Record>> = Arc::new(
        (0..40_000usize)
            .map(|i| {
                let data = frames[i % frames.len()].clone();
                Record {
                    linktype: LINKTYPE_ETHERNET,
                    timestamp_ns: i as u64 * 50_000,
                    original_len: data.len() as u32,
                    data,
                }
            })
            .collect(),
    );
    let caps = TableCapacities::default();
    let (mut publisher, mut mailboxes) = TablePublisher::new(1, caps, 1024);
    let (mut links, sink) = report_channels(1, 8, 4, ReportCapacities::default());
    let mut protected = PrefixTable::with_capacity(2);
    protected
        .insert("10.0.0.0/24".parse().expect("prefix"), ())
        .expect("room");
    let pipeline = Pipeline::new(
        0,
        RuleTables::new(caps, 1),
        mailboxes.pop(),
        Arc::new(protected),
        PipelineConfig::default(),
        links.pop(),
    );
    let (source, clock) = CaptureSource::new(records, Direction::Inbound, true);
    let mut worker = WorkerContext::new(
        vec![source],
        clock,
        WorkerSettings::default(),
        Arc::new(AtomicBool::new(false)),
        pipeline,
    );

    // As a worker starts: copies of its tables and reports, which must keep
    // their room, or the loop below would allocate.
    worker.pipeline_mut().move_to_local_memory();

    // Rules that make every stage work: blocklist hits, a signature, a prefix.
    publisher
        .block("198.18.0.0/15".parse().expect("prefix"), 1, u64::MAX)
        .expect("room");
    publisher
        .block("203.0.113.5".parse().expect("ip"), 2, u64::MAX)
        .expect("room");
    publisher
        .set_signatures(vec![SignatureRule {
            protocol: Some(1),
            ..SignatureRule::drop_all(3)
        }])
        .expect("valid");
    publisher.flush();

    // Warm up: the first window and the mailbox.
    for _ in 0..100 {
        worker.poll_once();
    }
    let mut polls = 0;
    loop {
        // The control plane's side runs outside the watch: it may allocate.
        while let Ok(r) = sink.reports.try_recv() {
            sink.recycle(r);
        }
        publisher
            .block(
                format!("192.0.2.{}", polls % 250).parse().expect("ip"),
                4,
                u64::MAX,
            )
            .expect("room");
        publisher.flush();
        WATCHING.with(|w| w.set(true));
        let got = worker.poll_once();
        WATCHING.with(|w| w.set(false));
        polls += 1;
        if got == 0 {
            break;
        }
    }
    assert!(polls > 1000, "{polls} polls");
    let stats = worker.counters().direction(Direction::Inbound);
    assert!(
        stats.dropped_packets > 0 && stats.tx_packets > 0,
        "both verdicts exercised: {stats:?}"
    );
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations on the worker's path"
    );
}
