//! `/api/v1/status`: the node, its ports and workers, its current rates.

use std::collections::BTreeMap;

use levee_dataplane::stats::{DirectionWindow, DropReason};
use levee_dataplane::wire::TrafficClass;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::windows::BurstCycles;

/// Packets and bytes per second of one direction, by class and drop reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectionRates {
    pub pps: f64,
    pub bps: f64,
    pub forwarded_pps: f64,
    pub dropped_pps: f64,
    pub dropped_bps: f64,
    /// class name -> (pps, bps), classes with traffic only.
    pub classes: BTreeMap<String, (f64, f64)>,
    /// drop reason -> pps.
    pub dropped: BTreeMap<String, f64>,
}

impl DirectionRates {
    /// Rates between two running totals `seconds` apart.
    pub fn between(old: &DirectionWindow, new: &DirectionWindow, seconds: f64) -> Self {
        let s = seconds.max(1e-9);
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / s;
        let mut r = DirectionRates {
            pps: per(old.packets(), new.packets()),
            bps: per(old.bytes(), new.bytes()) * 8.0,
            forwarded_pps: per(old.forwarded_packets, new.forwarded_packets),
            dropped_pps: per(old.dropped(), new.dropped()),
            dropped_bps: 0.0,
            classes: Default::default(),
            dropped: Default::default(),
        };
        for c in TrafficClass::all() {
            let i = c.index();
            let pps = per(old.class_packets[i], new.class_packets[i]);
            if pps > 0.0 {
                r.classes.insert(
                    c.name().to_owned(),
                    (pps, per(old.class_bytes[i], new.class_bytes[i]) * 8.0),
                );
            }
        }
        for reason in DropReason::ALL {
            let i = reason as usize;
            let pps = per(old.dropped_packets[i], new.dropped_packets[i]);
            r.dropped_bps += per(old.dropped_bytes[i], new.dropped_bytes[i]) * 8.0;
            if pps > 0.0 {
                r.dropped.insert(reason.name().to_owned(), pps);
            }
        }
        r
    }
}

/// One second of traffic, for charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatePoint {
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    pub inbound: DirectionRates,
    pub outbound: DirectionRates,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    pub name: String,
    /// `outside`, `inside` or `monitor`.
    pub role: String,
    pub driver: String,
    pub link_up: bool,
    pub speed_mbps: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_bps: f64,
    pub tx_bps: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub lcore: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub dropped_packets: u64,
    pub tx_failed_packets: u64,
    pub bursts: u64,
    /// Share of the last second spent on bursts that carried packets.
    pub busy_ratio: f64,
    /// Cycles per burst in the worker's latest window.
    pub cycles_per_burst: BurstCycles,
    /// Window reports this worker could not hand over (full channel).
    pub reports_dropped: u64,
}

/// The current rates of both directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub inbound: DirectionRates,
    pub outbound: DirectionRates,
}

/// How full one rule table is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableFill {
    pub table: String,
    pub entries: usize,
    pub capacity: usize,
}

/// `GET /api/v1/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: String,
    pub version: String,
    pub dpdk_version: String,
    /// `inline` or `monitor`.
    pub mode: String,
    pub started_at: String,
    pub uptime_seconds: u64,
    pub ports: Vec<PortStatus>,
    pub workers: Vec<WorkerStatus>,
    pub window_reports_dropped: u64,
    /// The last second's rates (none before the first second).
    pub rates: Option<Rates>,
    pub open_incidents: usize,
    /// Rules by state.
    pub rules: BTreeMap<String, usize>,
    pub tables: Vec<TableFill>,
    /// The TCP defences' counters since start.
    pub defences: Value,
}
