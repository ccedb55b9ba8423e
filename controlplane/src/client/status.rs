//! `levee status`: the node, its ports and workers.

use serde_json::Value;

use super::{cell, rows, table, Client};
use crate::Failure;

pub fn run(client: &Client) -> Result<(), Failure> {
    let status = client.get("/api/v1/status", &[])?;
    client.print(&status, render);
    Ok(())
}

fn render(s: &Value) -> String {
    let mut out = format!(
        "levee {} on {} ({} mode, {}), up {} s; {} open incident(s)\n",
        cell(&s["version"]),
        cell(&s["node_id"]),
        cell(&s["mode"]),
        cell(&s["dpdk_version"]),
        cell(&s["uptime_seconds"]),
        cell(&s["open_incidents"]),
    );
    let ports: Vec<Vec<String>> = rows(&s["ports"], |p| {
        vec![
            cell(&p["role"]),
            cell(&p["name"]),
            cell(&p["driver"]),
            if p["link_up"].as_bool() == Some(true) {
                "up".into()
            } else {
                "down".into()
            },
            format!("{:.0}", p["rx_pps"].as_f64().unwrap_or(0.0)),
            format!("{:.0}", p["tx_pps"].as_f64().unwrap_or(0.0)),
            cell(&p["rx_missed"]),
        ]
    });
    out.push_str(&table(
        &[
            "ROLE", "PORT", "DRIVER", "LINK", "RX PPS", "TX PPS", "MISSED",
        ],
        &ports,
    ));
    let workers: Vec<Vec<String>> = rows(&s["workers"], |w| {
        vec![
            cell(&w["lcore"]),
            cell(&w["rx_packets"]),
            cell(&w["dropped_packets"]),
            format!("{:.0}%", w["busy_ratio"].as_f64().unwrap_or(0.0) * 100.0),
            cell(&w["cycles_per_burst"]["p50"]),
            cell(&w["cycles_per_burst"]["p99"]),
        ]
    });
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
    if let Some(rules) = s["rules"].as_object() {
        let parts: Vec<String> = rules.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("rules: {}\n", parts.join(", ")));
    }
    out
}
