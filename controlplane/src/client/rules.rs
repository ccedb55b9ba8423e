//! `levee rules list|add|approve|delete|export`.

use super::{table, Client};
use crate::resources::rules::{self as resources, Protocol, RuleList, RuleView};
use crate::rule::{RuleMatch, SignatureCheck};
use crate::rule_fields::IpProtocol;
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
fn describe(m: &RuleMatch) -> String {
    match m {
        RuleMatch::Block { source } => format!("block {source}"),
        RuleMatch::Signature {
            destination,
            protocol,
            src_port,
            dst_port,
            tcp_flags,
            non_first_fragments,
            rate_limit_pps,
            check,
            ..
        } => {
            let mut s = format!("to {destination} proto {}", IpProtocol(*protocol));
            if let Some(p) = src_port {
                s.push_str(&format!(" sport {p}"));
            }
            if let Some(p) = dst_port {
                s.push_str(&format!(" dport {p}"));
            }
            if let Some(f) = tcp_flags {
                s.push_str(&format!(" flags {f}"));
            }
            if *non_first_fragments {
                s.push_str(" fragments");
            }
            match (check, rate_limit_pps) {
                (Some(SignatureCheck::SynAuthentication), _) => s.push_str(" authenticate SYNs"),
                (Some(SignatureCheck::ConnectionState), _) => s.push_str(" drop out-of-state"),
                (None, Some(pps)) => s.push_str(&format!(" limit {pps}/s")),
                (None, None) => s.push_str(" drop"),
            }
            s
        }
        RuleMatch::SourceLimit { class, pps } => format!("{class} per source {pps}/s"),
    }
}

pub fn row(r: &RuleView) -> Vec<String> {
    let reason = match &r.rule.note {
        Some(note) => format!("{} [{note}]", r.rule.reason),
        None => r.rule.reason.clone(),
    };
    vec![
        r.rule.id.to_string(),
        r.rule.state.name().into(),
        r.rule.incident_id.clone(),
        describe(&r.rule.matches),
        r.expires_at.clone(),
        reason,
    ]
}

fn ttl_seconds(ttl: &Option<String>) -> Result<Option<i64>, Failure> {
    ttl.as_deref()
        .map(|t| {
            t.parse::<u64>()
                .ok()
                .or_else(|| humantime::parse_duration(t).ok().map(|d| d.as_secs()))
                .map(|s| s.min(i64::MAX as u64) as i64)
                .ok_or_else(|| {
                    Failure::Usage(anyhow::anyhow!(
                        "--ttl: {t:?} is not a duration (seconds, or 30m, 1h, 7d)"
                    ))
                })
        })
        .transpose()
}

fn one_rule(r: RuleView) -> String {
    table(HEADER, &[row(&r)])
}

pub fn run(client: &Client, action: Action) -> Result<(), Failure> {
    match action {
        Action::List { state } => {
            let q: Vec<(&str, String)> = state.map(|s| ("state", s)).into_iter().collect();
            let v = client.get("/api/v1/rules", &q)?;
            client.print_as(&v, |list: RuleList| {
                let rows: Vec<Vec<String>> = list.rules.iter().map(row).collect();
                table(HEADER, &rows)
            })?;
        }
        Action::Add(new) => {
            let body = match new {
                NewRule::Block { source, common } => resources::NewRule {
                    kind: "block".into(),
                    source: Some(source),
                    ttl_seconds: ttl_seconds(&common.ttl)?,
                    reason: common.reason,
                    ..resources::NewRule::default()
                },
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
                } => resources::NewRule {
                    kind: "signature".into(),
                    destination: Some(destination),
                    protocol: Some(match protocol.parse::<i64>() {
                        Ok(n) => Protocol::Number(n),
                        Err(_) => Protocol::Name(protocol),
                    }),
                    src_port: src_port.map(i64::from),
                    dst_port: dst_port.map(i64::from),
                    tcp_flags,
                    non_first_fragments: fragments,
                    rate_limit_pps: rate_limit.map(i64::from),
                    check,
                    ttl_seconds: ttl_seconds(&common.ttl)?,
                    reason: common.reason,
                    ..resources::NewRule::default()
                },
            };
            let v = client.post("/api/v1/rules", &body)?;
            client.print_as(&v, one_rule)?;
        }
        Action::Approve { id } => {
            let v = client.post_empty(&format!("/api/v1/rules/{id}/approve"))?;
            client.print_as(&v, one_rule)?;
        }
        Action::Delete { id } => {
            let v = client.delete(&format!("/api/v1/rules/{id}"))?;
            client.print_as(&v, one_rule)?;
        }
        Action::Export { format } => {
            let text = client.get_text("/api/v1/rules/export", &[("format", format)])?;
            print!("{text}");
        }
    }
    Ok(())
}
