//! `levee replay FILE`: the dataplane's parse/filter/count over a capture, with the
//! capture's timestamps as the clock, printing each window and the totals.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use levee_dataplane::pcap;
use levee_dataplane::replay::CaptureSource;
use levee_dataplane::stats::WindowReport;
use levee_dataplane::worker::{Direction, WorkerContext, WorkerSettings};
use serde_json::json;

use crate::config::{Config, Mode};
use crate::windows::{direction_json, direction_line, WindowTotals};
use crate::Failure;

/// RFC 3339 UTC with milliseconds, from capture nanoseconds.
pub fn rfc3339_ms(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

pub fn replay(file: &Path, config: &Config, json_output: bool) -> Result<WindowTotals, Failure> {
    let input = std::fs::File::open(file)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("cannot open {}: {e}", file.display())))?;
    let records = pcap::read_capture(std::io::BufReader::new(input))
        .map_err(|e| Failure::Usage(anyhow::anyhow!("{}: {e}", file.display())))?;
    let records = Arc::new(records);
    let first_ns = records.first().map_or(0, |r| r.timestamp_ns);

    let dataplane = crate::setup::build(config, 1, first_ns)?;
    let crate::setup::Dataplane { publisher: _publisher, mut pipelines, sink } = dataplane;
    let pipeline = pipelines.pop().ok_or_else(|| Failure::Runtime(anyhow::anyhow!("no pipeline")))?;
    let (source, clock) = CaptureSource::new(Arc::clone(&records), Direction::Inbound, config.mode == Mode::Inline);
    let stop = Arc::new(AtomicBool::new(false));
    let settings = WorkerSettings { stats_interval_ms: config.dpdk.stats_interval_ms };
    let mut worker = WorkerContext::new(vec![source], clock, settings, stop, pipeline);

    let mut totals = WindowTotals::default();
    let print = |r: &WindowReport, totals: &mut WindowTotals| {
        totals.add(r);
        let inbound = r.direction(Direction::Inbound);
        if json_output {
            let line = json!({
                "type": "window",
                "sequence": r.sequence,
                "start": rfc3339_ms(r.start_ns),
                "end": rfc3339_ms(r.end_ns),
                "inbound": direction_json(inbound),
                "destinations": r.destinations.len(),
            });
            println!("{line}");
        } else if inbound.packets() > 0 {
            println!("{} window {:>5}: {}", rfc3339_ms(r.start_ns), r.sequence, direction_line(inbound));
        }
    };
    loop {
        let got = worker.poll_once();
        while let Ok(report) = sink.reports.try_recv() {
            print(&report, &mut totals);
            sink.recycle(report);
        }
        if got == 0 {
            break;
        }
    }
    worker.finish();
    drop(worker);
    while let Ok(report) = sink.reports.try_recv() {
        print(&report, &mut totals);
        sink.recycle(report);
    }
    Ok(totals)
}

/// Print the totals after the windows.
pub fn print_totals(file: &Path, totals: &WindowTotals, json_output: bool) {
    if json_output {
        let mut t = totals.to_json();
        t["type"] = json!("totals");
        t["file"] = json!(file.display().to_string());
        println!("{t}");
    } else {
        println!("{}: {} windows; inbound {}", file.display(), totals.windows, direction_line(&totals.directions[0]));
    }
}
