//! `levee rules list|add|approve|delete|export`.

use serde_json::{json, Value};

use super::{cell, rows, table, Client};
use crate::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Rules, by id.
    List {
        /// staged, active, expired, removed or refused.
        #[arg(long)]
        state: Option<String>,
    },
    /// Add a manual rule (the allowlist and the caps apply).
    #[command(subcommand)]
    Add(NewRule),
    /// Apply a staged rule.
    Approve { id: u32 },
    /// Take a staged or active rule out.
    Delete { id: u32 },
    /// Print the active rules as firewall text.
    Export {
        /// iptables, ip6tables or nftables.
        #[arg(long, default_value = "iptables")]
        format: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum NewRule {
    /// Drop everything from a source address or prefix.
    Block {
        source: String,
        #[command(flatten)]
        common: Common,
    },
    /// Drop (or rate-limit) traffic toward a destination that matches.
    Signature {
        #[arg(long)]
        destination: String,
        /// tcp, udp, icmp, icmpv6, gre or a number.
        #[arg(long)]
        protocol: String,
        #[arg(long)]
        src_port: Option<u16>,
        #[arg(long)]
        dst_port: Option<u16>,
        /// FLAGS/MASK, e.g. S/SA for SYN without ACK.
        #[arg(long)]
        tcp_flags: Option<String>,
        /// Match only non-first fragments.
        #[arg(long)]
        fragments: bool,
        /// Rate-limit to this many packets/s instead of dropping.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Instead of dropping (TCP): syn_authentication or connection_state.
        #[arg(long)]
        check: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// How long the rule lasts: seconds or 30m, 1h, 7d... (default: the node's).
    #[arg(long)]
    ttl: Option<String>,
    #[arg(long)]
    reason: Option<String>,
}

pub const HEADER: &[&str] = &["ID", "STATE", "INCIDENT", "MATCH", "EXPIRES", "REASON"];

/// A rule's match in a few words.
fn describe(m: &Value) -> String {
    match m["kind"].as_str() {
        Some("block") => format!("block {}", cell(&m["source"])),
        Some("signature") => {
            let mut s = format!(
                "to {} proto {}",
                cell(&m["destination"]),
                cell(&m["protocol"])
            );
            for (k, label) in [
                ("src_port", "sport"),
                ("dst_port", "dport"),
                ("tcp_flags", "flags"),
            ] {
                if !m[k].is_null() {
                    s.push_str(&format!(" {label} {}", cell(&m[k])));
                }
            }
            if m["non_first_fragments"].as_bool() == Some(true) {
                s.push_str(" fragments");
            }
            match (m["check"].as_str(), m["rate_limit_pps"].as_u64()) {
                (Some("syn_authentication"), _) => s.push_str(" authenticate SYNs"),
                (Some("connection_state"), _) => s.push_str(" drop out-of-state"),
                (Some(other), _) => s.push_str(&format!(" {other}")),
                (None, Some(pps)) => s.push_str(&format!(" limit {pps}/s")),
                (None, None) => s.push_str(" drop"),
            }
            s
        }
        Some("source_limit") => format!("{} per source {}/s", cell(&m["class"]), cell(&m["pps"])),
        _ => m.to_string(),
    }
}

pub fn row(r: &Value) -> Vec<String> {
    let reason = match r["note"].as_str() {
        Some(note) => format!("{} [{note}]", cell(&r["reason"])),
        None => cell(&r["reason"]),
    };
    vec![
        cell(&r["id"]),
        cell(&r["state"]),
        cell(&r["incident_id"]),
        describe(&r["match"]),
        cell(&r["expires_at"]),
        reason,
    ]
}

fn ttl_seconds(ttl: &Option<String>) -> Result<Option<u64>, Failure> {
    ttl.as_deref()
        .map(|t| {
            t.parse::<u64>()
                .ok()
                .or_else(|| humantime::parse_duration(t).ok().map(|d| d.as_secs()))
                .ok_or_else(|| {
                    Failure::Usage(anyhow::anyhow!(
                        "--ttl: {t:?} is not a duration (seconds, or 30m, 1h, 7d)"
                    ))
                })
        })
        .transpose()
}

fn one_rule(r: &Value) -> String {
    table(HEADER, &[row(r)])
}

pub fn run(client: &Client, action: Action) -> Result<(), Failure> {
    match action {
        Action::List { state } => {
            let q: Vec<(&str, String)> = state.map(|s| ("state", s)).into_iter().collect();
            let v = client.get("/api/v1/rules", &q)?;
            client.print(&v, |v| {
                let rows: Vec<Vec<String>> = rows(&v["rules"], row);
                table(HEADER, &rows)
            });
        }
        Action::Add(new) => {
            let body = match new {
                NewRule::Block { source, common } => json!({
                    "kind": "block",
                    "source": source,
                    "ttl_seconds": ttl_seconds(&common.ttl)?,
                    "reason": common.reason,
                }),
                NewRule::Signature {
                    destination,
                    protocol,
                    src_port,
                    dst_port,
                    tcp_flags,
                    fragments,
                    rate_limit,
                    check,
                    common,
                } => json!({
                    "kind": "signature",
                    "destination": destination,
                    "protocol": protocol.parse::<u8>().map_or(json!(protocol), |n| json!(n)),
                    "src_port": src_port,
                    "dst_port": dst_port,
                    "tcp_flags": tcp_flags,
                    "non_first_fragments": fragments,
                    "rate_limit_pps": rate_limit,
                    "check": check,
                    "ttl_seconds": ttl_seconds(&common.ttl)?,
                    "reason": common.reason,
                }),
            };
            // Leave out what was not given, so the API's defaults apply.
            let body = Value::Object(
                body.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
            let v = client.post("/api/v1/rules", Some(&body))?;
            client.print(&v, one_rule);
        }
        Action::Approve { id } => {
            let v = client.post(&format!("/api/v1/rules/{id}/approve"), None)?;
            client.print(&v, one_rule);
        }
        Action::Delete { id } => {
            let v = client.delete(&format!("/api/v1/rules/{id}"))?;
            client.print(&v, one_rule);
        }
        Action::Export { format } => {
            let text = client.get_text("/api/v1/rules/export", &[("format", format)])?;
            print!("{text}");
        }
    }
    Ok(())
}
