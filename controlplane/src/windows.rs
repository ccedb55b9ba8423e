//! Window reports merged over workers and time: what `levee run` and `levee
//! replay` print until detection consumes them.

use std::collections::BTreeMap;

use levee_dataplane::packet_io::Direction;
use levee_dataplane::stats::{DefenceCounters, DirectionWindow, DropReason, WindowReport};
use levee_dataplane::wire::{ParseStatus, TrafficClass};
use serde_json::{json, Map, Value};

/// Sums of window reports.
#[derive(Debug, Default, Clone)]
pub struct WindowTotals {
    pub windows: u64,
    pub directions: [DirectionWindow; 2],
    pub rule_drops: BTreeMap<u32, (u64, u64)>,
    pub samples: u64,
    /// Highest "reports dropped" any worker reported, per worker.
    pub reports_dropped: BTreeMap<u16, u64>,
    pub destinations_overflow: u64,
    /// Non-empty bursts, and the p50/p99 of the cycles per burst of the last
    /// window (measured on a sample of them).
    pub bursts: u64,
    pub burst_cycles_p50: u64,
    pub burst_cycles_p99: u64,
    /// Each worker's cycles per burst in its latest window.
    pub worker_cycles: BTreeMap<u16, BurstCycles>,
    /// SYN authentication, out-of-state TCP and known sources.
    pub defences: DefenceCounters,
}

/// Cycles per burst of one worker's window, from its HdrHistogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BurstCycles {
    pub bursts: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl WindowTotals {
    pub fn add(&mut self, r: &WindowReport) {
        self.windows += 1;
        for d in Direction::ALL {
            self.directions[d as usize].add(r.direction(d));
        }
        for (rule, drops) in r.rule_drops.iter() {
            let e = self.rule_drops.entry(*rule).or_default();
            e.0 += drops.packets;
            e.1 += drops.bytes;
        }
        self.samples += r.samples.len() as u64;
        let d = self.reports_dropped.entry(r.worker).or_default();
        *d = (*d).max(r.reports_dropped);
        self.destinations_overflow += r.destinations_overflow;
        self.defences.add(&r.defences);
        self.bursts += r.bursts;
        if !r.burst_cycles.is_empty() {
            self.burst_cycles_p50 = r.burst_cycles.value_at_quantile(0.5);
            self.burst_cycles_p99 = r.burst_cycles.value_at_quantile(0.99);
            let h = &r.burst_cycles;
            self.worker_cycles.insert(
                r.worker,
                BurstCycles {
                    bursts: r.bursts,
                    mean: h.mean(),
                    p50: h.value_at_quantile(0.5),
                    p90: h.value_at_quantile(0.9),
                    p99: h.value_at_quantile(0.99),
                    max: h.max(),
                },
            );
        }
    }

    pub fn reports_dropped(&self) -> u64 {
        self.reports_dropped.values().sum()
    }

    pub fn to_json(&self) -> Value {
        let mut dirs = Map::new();
        for d in Direction::ALL {
            dirs.insert(
                d.name().into(),
                direction_json(&self.directions[d as usize]),
            );
        }
        json!({
            "windows": self.windows,
            "directions": dirs,
            "rule_drops": self.rule_drops.iter().map(|(r, (p, b))| json!({"rule_id": r, "packets": p, "bytes": b})).collect::<Vec<_>>(),
            "samples": self.samples,
            "reports_dropped": self.reports_dropped(),
            "destinations_overflow": self.destinations_overflow,
            "bursts": self.bursts,
            "burst_cycles_p50": self.burst_cycles_p50,
            "burst_cycles_p99": self.burst_cycles_p99,
            "defences": defences_json(&self.defences),
        })
    }
}

/// The TCP defences' and known sources' counters, by stable names.
pub fn defences_json(d: &DefenceCounters) -> Value {
    json!({
        "challenges": d.challenges,
        "challenges_unsent": d.challenges_unsent,
        "verified": d.verified,
        "handshakes": d.handshakes,
        "failed": d.failed,
        "grace_passes": d.grace_passes,
        "known_passes": d.known_passes,
        "verified_refused": d.verified_refused,
        "connections_refused": d.connections_refused,
    })
}

/// Non-zero counters of one direction, by stable names.
pub fn direction_json(w: &DirectionWindow) -> Value {
    let mut classes = Map::new();
    for c in TrafficClass::all() {
        let i = c.index();
        if w.class_packets[i] > 0 {
            classes.insert(
                c.name().into(),
                json!({"packets": w.class_packets[i], "bytes": w.class_bytes[i]}),
            );
        }
    }
    let mut statuses = Map::new();
    for s in ParseStatus::ALL {
        if w.parse_status[s as usize] > 0 && s != ParseStatus::Ok {
            statuses.insert(s.name().into(), json!(w.parse_status[s as usize]));
        }
    }
    let mut dropped = Map::new();
    for r in DropReason::ALL {
        if w.dropped_packets[r as usize] > 0 {
            dropped.insert(r.name().into(), json!({"packets": w.dropped_packets[r as usize], "bytes": w.dropped_bytes[r as usize]}));
        }
    }
    json!({
        "packets": w.packets(),
        "bytes": w.bytes(),
        "forwarded_packets": w.forwarded_packets,
        "forwarded_bytes": w.forwarded_bytes,
        "allowlisted": w.allowlisted,
        "classes": classes,
        "not_parsed": statuses,
        "dropped": dropped,
    })
}

/// A one-line human summary of one direction.
pub fn direction_line(w: &DirectionWindow) -> String {
    let mut classes: Vec<(u64, &str)> = TrafficClass::all()
        .filter(|c| w.class_packets[c.index()] > 0)
        .map(|c| (w.class_packets[c.index()], c.name()))
        .collect();
    classes.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
    let top: Vec<String> = classes
        .iter()
        .take(4)
        .map(|(n, c)| format!("{c} {n}"))
        .collect();
    format!(
        "{} pkts {} B, forwarded {}, dropped {} [{}]",
        w.packets(),
        w.bytes(),
        w.forwarded_packets,
        w.dropped(),
        top.join(", ")
    )
}
