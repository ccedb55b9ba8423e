//! `levee replay FILE`: the dataplane's parse/filter/count, the detector and the
//! mitigation over a capture, with the capture's timestamps as the clock. Prints
//! the incident events as they happen, then the rules (and optionally every
//! window), as text or one JSON object per line.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use levee_dataplane::packet_io::Direction;
use levee_dataplane::pcap;
use levee_dataplane::replay::{CaptureSource, Verdict};
use levee_dataplane::stats::WindowReport;
use levee_dataplane::tables::TablePublisher;
use levee_dataplane::worker::{WorkerContext, WorkerSettings};
use serde_json::json;

use crate::clock::rfc3339_ms;
use crate::config::{Config, Mode};
use crate::detect::{IncidentEvent, WindowView};
use crate::engine::ControlLoop;
use crate::rule::Rule;
use crate::windows::{direction_json, direction_line, WindowTotals};
use crate::Failure;

/// What to print.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub json: bool,
    pub windows: bool,
}

/// Where `levee replay` writes the frames the pipeline forwarded and dropped.
#[derive(Clone, Debug, Default)]
pub struct Dumps {
    pub forwarded: Option<std::path::PathBuf>,
    pub dropped: Option<std::path::PathBuf>,
    pub challenged: Option<std::path::PathBuf>,
}

impl Dumps {
    fn wanted(&self) -> bool {
        self.forwarded.is_some() || self.dropped.is_some() || self.challenged.is_some()
    }

    /// Write each record whose verdict is one of `want` to `path`, with its timestamp.
    fn write(
        path: &Path,
        records: &[pcap::Record],
        verdicts: &[Verdict],
        want: &[Verdict],
    ) -> Result<(), Failure> {
        let fail = |e: std::io::Error| {
            Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", path.display()))
        };
        let file = std::fs::File::create(path).map_err(fail)?;
        let mut w = pcap::PcapWriter::new(std::io::BufWriter::new(file), pcap::LINKTYPE_ETHERNET)
            .map_err(fail)?;
        for (r, v) in records.iter().zip(verdicts) {
            if want.contains(v) {
                w.write(r.timestamp_ns, &r.data).map_err(fail)?;
            }
        }
        w.finish().map_err(fail)?;
        Ok(())
    }
}

/// Everything a replay produced.
#[derive(Debug, Default)]
pub struct ReplayResult {
    pub totals: WindowTotals,
    pub events: Vec<IncidentEvent>,
    pub rules: Vec<Rule>,
}

impl ReplayResult {
    /// A one-line account for the end of the text output.
    pub fn summary(&self) -> String {
        let created = self
            .events
            .iter()
            .filter(|e| e.event == "incident.created")
            .count();
        let resolved = self
            .events
            .iter()
            .filter(|e| e.event == "incident.resolved")
            .count();
        format!(
            "{created} incident(s) created, {resolved} resolved, {} rule(s)",
            self.rules.len()
        )
    }
}

pub fn replay(
    file: &Path,
    config: &Config,
    out: Output,
    dumps: &Dumps,
) -> Result<ReplayResult, Failure> {
    let input = std::fs::File::open(file)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("cannot open {}: {e}", file.display())))?;
    let size = input.metadata().map_or(0, |m| m.len());
    let reading = progress(size, "reading");
    let records = pcap::read_capture(std::io::BufReader::new(reading.wrap_read(input)))
        .map_err(|e| Failure::Usage(anyhow::anyhow!("{}: {e}", file.display())))?;
    reading.finish_and_clear();
    let records = Arc::new(records);
    let first_ns = records.first().map_or(0, |r| r.timestamp_ns);

    let dataplane = crate::setup::build(config, 1, first_ns, &mut |_| {})?;
    let crate::setup::Dataplane {
        mut publisher,
        mut pipelines,
        sink,
    } = dataplane;
    let pipeline = pipelines
        .pop()
        .ok_or_else(|| Failure::Runtime(anyhow::anyhow!("no pipeline")))?;
    let (source, clock) = CaptureSource::new(
        Arc::clone(&records),
        Direction::Inbound,
        config.mode == Mode::Inline,
    );
    // Both directions, told apart by the protected networks, so what needs the
    // protected hosts' own traffic (handshakes, known sources) works offline too.
    let mut source = source.with_protected(Arc::new(config.protected_networks()));
    if dumps.wanted() {
        source = source.with_verdicts();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let settings = WorkerSettings {
        stats_interval_ms: config.dpdk.stats_interval_ms,
    };
    let mut worker = WorkerContext::new(vec![source], clock, settings, stop, pipeline);
    let mut control = ControlLoop::new(config, 1);
    let mut events = Vec::new();

    let handle = |report: Box<WindowReport>,
                  control: &mut ControlLoop,
                  publisher: &mut TablePublisher,
                  events: &mut Vec<IncidentEvent>| {
        for (view, evs) in control.report(&report, publisher) {
            print_window(&view, out);
            for e in evs {
                print_event(&e, out);
                events.push(e);
            }
        }
        sink.recycle(report);
    };
    let replaying = progress(records.len() as u64, "replaying");
    loop {
        let got = worker.poll_once();
        while let Ok(report) = sink.reports.try_recv() {
            // Windows and events print above the bar.
            replaying.suspend(|| handle(report, &mut control, &mut publisher, &mut events));
        }
        if let Some(source) = worker.paths().first() {
            replaying.set_position(source.position() as u64);
        }
        if got == 0 {
            break;
        }
    }
    replaying.finish_and_clear();
    worker.finish();
    if let Some(verdicts) = worker.paths().first().and_then(CaptureSource::verdicts) {
        if let Some(path) = &dumps.forwarded {
            Dumps::write(path, &records, verdicts, &[Verdict::Forwarded])?;
        }
        if let Some(path) = &dumps.dropped {
            Dumps::write(
                path,
                &records,
                verdicts,
                &[Verdict::Dropped, Verdict::Challenged],
            )?;
        }
        if let Some(path) = &dumps.challenged {
            Dumps::write(path, &records, verdicts, &[Verdict::Challenged])?;
        }
    }
    drop(worker);
    while let Ok(report) = sink.reports.try_recv() {
        handle(report, &mut control, &mut publisher, &mut events);
    }
    for view in control.aggregator.flush() {
        print_window(&view, out);
        for e in control.window(&view, &mut publisher) {
            print_event(&e, out);
            events.push(e);
        }
    }
    let rules: Vec<Rule> = control.mitigator.rules().cloned().collect();
    /// Rules listed one by one in the text output; the rest are counted.
    const TEXT_RULES: usize = 8;
    for (i, r) in rules.iter().enumerate() {
        if out.json {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["type"] = json!("rule");
            println!("{v}");
        } else if i < TEXT_RULES {
            println!(
                "rule {} [{:?}] {}: {}",
                r.id,
                r.state,
                serde_json::to_string(&r.matches).unwrap_or_default(),
                r.reason
            );
        } else if i == TEXT_RULES {
            println!(
                "... and {} more rule(s) (--json lists them all)",
                rules.len() - TEXT_RULES
            );
        }
    }
    // Captures of incidents still open when the capture ends hold what was seen.
    let open: Vec<String> = control.detector.active().map(|i| i.id.clone()).collect();
    for id in open {
        control.forensics.write(&id);
    }
    Ok(ReplayResult {
        totals: control.totals,
        events,
        rules,
    })
}

/// A progress bar on stderr for a step of `len` units (bytes or records), or
/// nothing when stderr is not a terminal (a pipe, a log, a test): the bar is
/// for a person watching a large capture go by.
fn progress(len: u64, step: &'static str) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let style = indicatif::ProgressStyle::with_template(
        "levee replay: {msg:9} [{bar:40}] {percent:>3}% ({eta} left)",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr())
        .with_style(style)
        .with_message(step)
}

fn print_window(view: &WindowView, out: Output) {
    if !out.windows {
        return;
    }
    if out.json {
        let line = json!({
            "type": "window",
            "window": view.slot,
            "start": rfc3339_ms(view.start_ns),
            "end": rfc3339_ms(view.end_ns),
            "inbound": direction_json(&view.inbound),
            "destinations": view.destinations.len(),
        });
        println!("{line}");
    } else if view.inbound.packets() > 0 {
        println!(
            "{} window: {}",
            rfc3339_ms(view.start_ns),
            direction_line(&view.inbound)
        );
    }
}

fn print_event(e: &IncidentEvent, out: Output) {
    if out.json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        println!(
            "{} {} {} {} -> {} (peak {} pps, {} bps, severity {:?}, {} attackers{}{})",
            e.at,
            e.event,
            e.incident_id,
            e.attack_type.name(),
            e.target,
            e.peak_pps,
            e.peak_bps,
            e.severity,
            e.attacker_ips.len(),
            if e.spoofing_likely {
                ", spoofing likely"
            } else {
                ""
            },
            if e.event == "incident.created" {
                format!(", {} ms after onset", e.detection_ms)
            } else {
                String::new()
            },
        );
    }
}

/// Print the totals after everything else.
pub fn print_totals(file: &Path, totals: &WindowTotals, json_output: bool) {
    if json_output {
        let mut t = totals.to_json();
        t["type"] = json!("totals");
        t["file"] = json!(file.display().to_string());
        println!("{t}");
    } else {
        println!(
            "{}: {} windows; inbound {}",
            file.display(),
            totals.windows,
            direction_line(&totals.directions[0])
        );
        let d = &totals.defences;
        if d.challenges > 0 {
            // A capture cannot answer: every challenge stays unanswered, so
            // each unverified SYN is one the server would not have seen.
            println!(
                "{}: SYN authentication: {} challenges levee would have sent (a replay cannot send them, so no source answers)",
                file.display(),
                d.challenges
            );
        }
        let out_of_state = totals.directions[0].dropped_packets
            [levee_dataplane::stats::DropReason::OutOfState as usize];
        if out_of_state > 0 || d.grace_passes > 0 {
            println!(
                "{}: connection state: {} segments of no known connection dropped, {} passed within the grace after start",
                file.display(),
                out_of_state,
                d.grace_passes
            );
        }
    }
}
