//! `levee incidents list|show|resolve`.

use serde_json::Value;

use super::{cell, rows, table, Client};
use crate::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Incidents, newest first.
    List {
        /// open or resolved.
        #[arg(long)]
        status: Option<String>,
        /// Only incidents active at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only incidents against this IP or prefix.
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// One incident with its events and rules.
    Show { id: String },
    /// Resolve an open incident by hand; its rules come out.
    Resolve { id: String },
}

pub fn run(client: &Client, action: Action) -> Result<(), Failure> {
    match action {
        Action::List {
            status,
            since,
            target,
            limit,
            offset,
        } => {
            let mut q = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
            for (k, v) in [("status", status), ("since", since), ("target", target)] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let v = client.get("/api/v1/incidents", &q)?;
            client.print(&v, |v| {
                let rows: Vec<Vec<String>> = rows(&v["incidents"], row);
                let mut out = table(
                    &[
                        "ID", "STATUS", "TYPE", "SEVERITY", "TARGET", "PEAK PPS", "STARTED",
                        "SECONDS",
                    ],
                    &rows,
                );
                out.push_str(&format!(
                    "{} of {} incident(s)\n",
                    rows.len(),
                    cell(&v["total"])
                ));
                out
            });
        }
        Action::Show { id } => {
            let v = client.get(&format!("/api/v1/incidents/{id}"), &[])?;
            client.print(&v, show);
        }
        Action::Resolve { id } => {
            let v = client.post_empty(&format!("/api/v1/incidents/{id}/resolve"))?;
            client.print(&v, |e| {
                format!(
                    "{} resolved at {}\n",
                    cell(&e["incident_id"]),
                    cell(&e["resolved_at"])
                )
            });
        }
    }
    Ok(())
}

fn row(i: &Value) -> Vec<String> {
    vec![
        cell(&i["incident_id"]),
        cell(&i["status"]),
        cell(&i["attack_type"]),
        cell(&i["severity"]),
        cell(&i["target"]),
        cell(&i["peak_pps"]),
        cell(&i["started_at"]),
        cell(&i["duration_seconds"]),
    ]
}

fn show(v: &Value) -> String {
    let i = &v["incident"];
    let mut out = String::new();
    for (k, field) in [
        ("id", "incident_id"),
        ("status", "status"),
        ("type", "attack_type"),
        ("severity", "severity"),
        ("target", "target"),
        ("peak pps", "peak_pps"),
        ("peak bps", "peak_bps"),
        ("started", "started_at"),
        ("resolved", "resolved_at"),
        ("seconds", "duration_seconds"),
        ("spoofing likely", "spoofing_likely"),
        ("carpet bombing", "carpet_bombing"),
        ("forensic pcap", "forensic_pcap"),
    ] {
        out.push_str(&format!("{k:<16} {}\n", cell(&i[field])));
    }
    let attackers: Vec<String> = i["attacker_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    out.push_str(&format!(
        "{:<16} {}\n",
        "attackers",
        if attackers.is_empty() {
            "-".into()
        } else {
            attackers.join(", ")
        }
    ));
    out.push_str("\nevents:\n");
    let events: Vec<Vec<String>> = rows(&v["events"], |e| {
        vec![
            cell(&e["at"]),
            cell(&e["event"]),
            cell(&e["attack_type"]),
            cell(&e["peak_pps"]),
        ]
    });
    out.push_str(&table(&["AT", "EVENT", "TYPE", "PEAK PPS"], &events));
    out.push_str("\nrules:\n");
    let rules: Vec<Vec<String>> =
        <Vec<crate::resources::rules::RuleView> as serde::Deserialize>::deserialize(&v["rules"])
            .map(|rules| rules.iter().map(super::rules::row).collect())
            .unwrap_or_default();
    out.push_str(&table(super::rules::HEADER, &rules));
    out
}
