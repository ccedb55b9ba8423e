//! The worker loop with its pipeline, driven by a capture (no DPDK): window
//! reports add up to the traffic, and a consumer that stops reading costs
//! reports, never forwarding.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use levee_dataplane::pcap::{Record, LINKTYPE_ETHERNET};
use levee_dataplane::pipeline::{report_channels, Pipeline, PipelineConfig};
use levee_dataplane::replay::CaptureSource;
use levee_dataplane::stats::ReportCapacities;
use levee_dataplane::synth;
use levee_dataplane::tables::{PrefixTable, RuleTables, TableCapacities};
use levee_dataplane::worker::{Direction, WorkerContext, WorkerSettings};

/// `count` frames spread evenly over `seconds` of capture time.
fn capture(count: usize, seconds: u64) -> Arc<Vec<Record>> {
    let step = seconds * 1_000_000_000 / count as u64;
    Arc::new(
        synth::mixed_small_traffic(count, 3, 0)
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, data))| Record {
                linktype: LINKTYPE_ETHERNET,
                timestamp_ns: 1_700_000_000_000_000_000 + i as u64 * step,
                original_len: data.len() as u32,
                data,
            })
            .collect(),
    )
}

fn protected() -> Arc<PrefixTable<()>> {
    let mut t = PrefixTable::with_capacity(4);
    t.insert("10.0.0.0/24".parse().expect("prefix"), ())
        .expect("room");
    Arc::new(t)
}

#[test]
fn windows_add_up_to_the_traffic() {
    let records = capture(20_000, 2);
    let caps = ReportCapacities::default();
    let (mut links, sink) = report_channels(1, 64, 4, caps);
    let pipeline = Pipeline::new(
        0,
        RuleTables::new(TableCapacities::default(), 1),
        None,
        protected(),
        PipelineConfig::default(),
        links.pop(),
    );
    let (source, clock) = CaptureSource::new(Arc::clone(&records), Direction::Inbound, true);
    let mut worker = WorkerContext::new(
        vec![source],
        clock,
        WorkerSettings::default(),
        Arc::new(AtomicBool::new(false)),
        pipeline,
    );
    let mut windows = Vec::new();
    let take = |windows: &mut Vec<(u64, u64, u64, usize)>| {
        while let Ok(r) = sink.reports.try_recv() {
            let d = r.direction(Direction::Inbound);
            let dest: u64 = r.destinations.iter().map(|(_, s)| s.packets).sum();
            windows.push((d.packets(), d.forwarded_packets, dest, r.samples.len()));
            assert!(
                r.end_ns - r.start_ns <= 102_000_000,
                "a window lasts about 100 ms of capture time"
            );
            sink.recycle(r);
        }
    };
    while worker.poll_once() > 0 {
        take(&mut windows);
    }
    worker.finish();
    take(&mut windows);
    assert!(
        (19..=22).contains(&windows.len()),
        "{} windows over 2 s",
        windows.len()
    );
    let total: u64 = windows.iter().map(|w| w.0).sum();
    assert_eq!(
        total, 20_000,
        "every packet is counted in exactly one window"
    );
    assert_eq!(
        windows.iter().map(|w| w.1).sum::<u64>(),
        20_000,
        "all forwarded"
    );
    assert_eq!(
        windows.iter().map(|w| w.2).sum::<u64>(),
        20_000,
        "every packet went to a protected host"
    );
    let samples: usize = windows.iter().map(|w| w.3).sum();
    assert_eq!(samples, 20_000 / 64, "1 in 64 sampled");
    assert_eq!(worker.pipeline().reports_dropped(), 0);
}

#[test]
fn a_stalled_consumer_loses_reports_not_packets() {
    let records = capture(50_000, 5);
    let (mut links, sink) = report_channels(1, 2, 4, ReportCapacities::default());
    let pipeline = Pipeline::new(
        0,
        RuleTables::new(TableCapacities::default(), 1),
        None,
        protected(),
        PipelineConfig::default(),
        links.pop(),
    );
    let (source, clock) = CaptureSource::new(Arc::clone(&records), Direction::Inbound, true);
    let mut worker = WorkerContext::new(
        vec![source],
        clock,
        WorkerSettings::default(),
        Arc::new(AtomicBool::new(false)),
        pipeline,
    );
    // Nobody reads `sink.reports`.
    while worker.poll_once() > 0 {}
    worker.finish();
    let c = worker.counters().direction(Direction::Inbound);
    assert_eq!(c.rx_packets, 50_000);
    assert_eq!(c.tx_packets, 50_000, "forwarding went on at full rate");
    let dropped = worker.pipeline().reports_dropped();
    assert!(
        dropped >= 40,
        "about 50 windows, at most 3 delivered: {dropped} dropped"
    );
    assert_eq!(sink.reports.len(), 2, "the channel is full, nothing more");
    let first = sink.reports.try_recv().expect("a report");
    assert_eq!(first.sequence, 0);
}
