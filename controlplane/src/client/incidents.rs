//! `levee incidents list|show|resolve`.

use super::{table, Client};
use crate::resources::incidents::{IncidentDetail, IncidentList, IncidentView};
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
            client.print_as(&v, |list: IncidentList| {
                let rows: Vec<Vec<String>> = list.incidents.iter().map(row).collect();
                let mut out = table(
                    &[
                        "ID", "STATUS", "TYPE", "SEVERITY", "TARGET", "PEAK PPS", "STARTED",
                        "SECONDS",
                    ],
                    &rows,
                );
                out.push_str(&format!("{} of {} incident(s)\n", rows.len(), list.total));
                out
            })?;
        }
        Action::Show { id } => {
            let v = client.get(&format!("/api/v1/incidents/{id}"), &[])?;
            client.print_as(&v, show)?;
        }
        Action::Resolve { id } => {
            let v = client.post_empty(&format!("/api/v1/incidents/{id}/resolve"))?;
            client.print_as(&v, |e: IncidentView| {
                format!(
                    "{} resolved at {}\n",
                    e.incident_id,
                    e.resolved_at.as_deref().unwrap_or("-")
                )
            })?;
        }
    }
    Ok(())
}

fn row(i: &IncidentView) -> Vec<String> {
    vec![
        i.incident_id.clone(),
        i.status.clone(),
        i.attack_type.clone(),
        i.severity.clone(),
        i.target.clone(),
        i.peak_pps.to_string(),
        i.started_at.clone(),
        i.duration_seconds.to_string(),
    ]
}

fn show(d: IncidentDetail) -> String {
    let i = &d.incident;
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let mut out = String::new();
    for (k, value) in [
        ("id", i.incident_id.clone()),
        ("status", i.status.clone()),
        ("type", i.attack_type.clone()),
        ("severity", i.severity.clone()),
        ("target", i.target.clone()),
        ("peak pps", i.peak_pps.to_string()),
        ("peak bps", i.peak_bps.to_string()),
        ("started", i.started_at.clone()),
        ("resolved", or_dash(i.resolved_at.as_deref())),
        ("seconds", i.duration_seconds.to_string()),
        ("spoofing likely", i.spoofing_likely.to_string()),
        ("carpet bombing", i.carpet_bombing.to_string()),
        ("forensic pcap", or_dash(i.forensic_pcap.as_deref())),
    ] {
        out.push_str(&format!("{k:<16} {value}\n"));
    }
    out.push_str(&format!(
        "{:<16} {}\n",
        "attackers",
        if i.attacker_ips.is_empty() {
            "-".into()
        } else {
            i.attacker_ips.join(", ")
        }
    ));
    out.push_str("\nevents:\n");
    let events: Vec<Vec<String>> = d
        .events
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.event.clone(),
                e.attack_type.clone(),
                e.peak_pps.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["AT", "EVENT", "TYPE", "PEAK PPS"], &events));
    out.push_str("\nrules:\n");
    let rules: Vec<Vec<String>> = d.rules.iter().map(super::rules::row).collect();
    out.push_str(&table(super::rules::HEADER, &rules));
    out
}
