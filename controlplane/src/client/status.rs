//! `levee status`: the node, its ports and workers.

use super::{table, Client};
use crate::resources::status::Status;
use crate::Failure;

pub fn run(client: &Client) -> Result<(), Failure> {
    let status = client.get("/api/v1/status", &[])?;
    client.print_as(&status, |s: Status| render(&s))
}

fn render(s: &Status) -> String {
    let mut out = format!(
        "levee {} on {} ({} mode, {}), up {} s; {} open incident(s)\n",
        s.version, s.node_id, s.mode, s.dpdk_version, s.uptime_seconds, s.open_incidents,
    );
    let ports: Vec<Vec<String>> = s
        .ports
        .iter()
        .map(|p| {
            vec![
                p.role.clone(),
                p.name.clone(),
                p.driver.clone(),
                if p.link_up { "up" } else { "down" }.into(),
                format!("{:.0}", p.rx_pps),
                format!("{:.0}", p.tx_pps),
                p.rx_missed.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "ROLE", "PORT", "DRIVER", "LINK", "RX PPS", "TX PPS", "MISSED",
        ],
        &ports,
    ));
    let workers: Vec<Vec<String>> = s
        .workers
        .iter()
        .map(|w| {
            vec![
                w.lcore.to_string(),
                w.rx_packets.to_string(),
                w.dropped_packets.to_string(),
                format!("{:.0}%", w.busy_ratio * 100.0),
                w.cycles_per_burst.p50.to_string(),
                w.cycles_per_burst.p99.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "LCORE",
            "RX PACKETS",
            "DROPPED",
            "BUSY",
            "CYCLES P50",
            "CYCLES P99",
        ],
        &workers,
    ));
    let parts: Vec<String> = s.rules.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out.push_str(&format!("rules: {}\n", parts.join(", ")));
    out
}
