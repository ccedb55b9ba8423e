//! `[rules]`: the allowlist, blocklist, signatures and source limit that
//! hold from start-up.

use std::path::{Path, PathBuf};

use levee_dataplane::tables::{
    FragmentMatch, Prefix, SignatureAction, SignatureRule, SignatureSet,
};
use serde::Deserialize;

use crate::rule_fields::{IpProtocol, TcpFlags};
use levee_dataplane::wire::TrafficClass;

/// `[rules]`: rules that hold from start-up (the API adds and removes others).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    /// Prefixes never dropped by any rule.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// Sources always dropped (addresses or prefixes), counted under rule 0.
    #[serde(default)]
    pub blocklist: Vec<String>,
    /// A file with one blocked address or prefix per line ('#' comments).
    pub blocklist_file: Option<PathBuf>,
    #[serde(default, rename = "signature")]
    pub signatures: Vec<SignatureSection>,
    pub source_limit: Option<SourceLimitSection>,
}

/// `[[rules.signature]]`: a FlowSpec-like match; unset fields match everything.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSection {
    pub id: u32,
    pub destination: Option<String>,
    /// "tcp", "udp", "icmp", "gre" or a number.
    pub protocol: Option<toml::Value>,
    /// "53" or "1000-2000".
    pub src_ports: Option<toml::Value>,
    pub dst_ports: Option<toml::Value>,
    /// value/mask in tcpdump letters, e.g. "S/SA" (SYN without ACK).
    pub tcp_flags: Option<String>,
    /// IP length range, e.g. "1000-1500".
    pub ip_length: Option<toml::Value>,
    /// TTL (IPv6: hop limit) range, e.g. "50-64" (0-255).
    pub ttl: Option<toml::Value>,
    /// "any", "none", "first", "non-first", "any-fragment".
    pub fragment: Option<String>,
    /// "drop", "rate-limit", or for TCP "syn-authentication" (challenge
    /// unverified SYNs) or "connection-state" (drop segments of no known connection).
    #[serde(default = "drop_action")]
    pub action: String,
    /// For rate-limit: packets per second.
    pub pps: Option<u32>,
}

fn drop_action() -> String {
    "drop".into()
}

/// `[rules.source_limit]`: packets per second per source for one traffic class.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceLimitSection {
    /// A traffic class name, e.g. "tcp_syn".
    pub class: String,
    pub pps: u32,
    pub burst: Option<u32>,
}

/// Read a file of addresses/prefixes, one per line, '#' starting a comment.
pub fn read_prefix_file(path: &Path) -> Result<Vec<Prefix>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        out.push(
            line.parse::<Prefix>()
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

fn range(
    field: &'static str,
    v: &Option<toml::Value>,
) -> Result<Option<(u16, u16)>, (&'static str, String)> {
    let Some(v) = v else { return Ok(None) };
    let bad = || {
        (
            field,
            format!("{v} is not a number or a range like \"1000-2000\" (0-65535)"),
        )
    };
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.clone(),
        _ => return Err(bad()),
    };
    let (lo, hi) = text.split_once('-').unwrap_or((&text, &text));
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err((field, format!("{lo} is above {hi}")));
    }
    Ok(Some((lo, hi)))
}

/// A `[[rules.signature]]` as a table rule; the error names the bad field.
pub fn signature_rule(s: &SignatureSection) -> Result<SignatureRule, (&'static str, String)> {
    let destination = s
        .destination
        .as_deref()
        .map(|d| {
            d.parse::<Prefix>()
                .map_err(|e| ("destination", e.to_string()))
        })
        .transpose()?;
    let protocol = match &s.protocol {
        None => None,
        Some(toml::Value::Integer(n)) => Some(IpProtocol::number(*n)),
        Some(toml::Value::String(name)) => Some(name.parse::<IpProtocol>()),
        Some(v) => return Err(("protocol", format!("{v} is not a protocol"))),
    }
    .transpose()
    .map_err(|e| ("protocol", e.to_string()))?
    .map(|p| p.0);
    let tcp_flags = s
        .tcp_flags
        .as_deref()
        .map(str::parse::<TcpFlags>)
        .transpose()
        .map_err(|e| ("tcp_flags", e.to_string()))?
        .map(|f| (f.mask, f.value));
    let fragment = match s.fragment.as_deref() {
        None | Some("any") => FragmentMatch::Any,
        Some("none") => FragmentMatch::NotFragmented,
        Some("first") => FragmentMatch::First,
        Some("non-first") => FragmentMatch::NonFirst,
        Some("any-fragment") => FragmentMatch::AnyFragment,
        Some(other) => {
            return Err((
                "fragment",
                format!("{other:?} is not any, none, first, non-first or any-fragment"),
            ))
        }
    };
    let action = match (s.action.as_str(), s.pps) {
        ("drop", None) => SignatureAction::Drop,
        ("drop", Some(_)) => return Err(("pps", "only a rate-limit action takes pps".into())),
        ("rate-limit", Some(pps)) if pps > 0 => SignatureAction::RateLimit { pps },
        ("rate-limit", _) => return Err(("pps", "a rate-limit action needs pps >= 1".into())),
        ("syn-authentication", None) => SignatureAction::Authenticate,
        ("connection-state", None) => SignatureAction::RequireState,
        ("syn-authentication" | "connection-state", Some(_)) => {
            return Err(("pps", "only a rate-limit action takes pps".into()))
        }
        (other, _) => {
            return Err((
                "action",
                format!(
                    "{other:?} is not drop, rate-limit, syn-authentication or connection-state"
                ),
            ))
        }
    };
    let rule = SignatureRule {
        id: s.id,
        destination,
        protocol,
        src_ports: range("src_ports", &s.src_ports)?,
        dst_ports: range("dst_ports", &s.dst_ports)?,
        tcp_flags,
        ip_length: range("ip_length", &s.ip_length)?,
        ttl: match range("ttl", &s.ttl)? {
            None => None,
            Some((lo, hi)) => match (u8::try_from(lo), u8::try_from(hi)) {
                (Ok(lo), Ok(hi)) => Some((lo, hi)),
                _ => return Err(("ttl", format!("{lo}-{hi} is outside 0-255"))),
            },
        },
        fragment,
        action,
    };
    rule.validate().map_err(|e| ("id", e.to_string()))?;
    Ok(rule)
}

impl RulesSection {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        let r = self;
        for (i, s) in r.allowlist.iter().enumerate() {
            if let Err(e) = s.parse::<Prefix>() {
                bad(&format!("rules.allowlist[{i}]"), e.to_string());
            }
        }
        for (i, s) in r.blocklist.iter().enumerate() {
            if let Err(e) = s.parse::<Prefix>() {
                bad(&format!("rules.blocklist[{i}]"), e.to_string());
            }
        }
        if let Some(path) = &r.blocklist_file {
            if let Err(e) = read_prefix_file(path) {
                bad("rules.blocklist_file", e);
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, sig) in r.signatures.iter().enumerate() {
            let key = format!("rules.signature[{i}]");
            if !ids.insert(sig.id) {
                bad(&format!("{key}.id"), format!("id {} is used twice", sig.id));
            }
            if let Err((field, e)) = signature_rule(sig) {
                bad(&format!("{key}.{field}"), e);
            }
        }
        if let Err(e) = SignatureSet::new(
            r.signatures
                .iter()
                .filter_map(|s| signature_rule(s).ok())
                .collect(),
        ) {
            bad("rules.signature", e.to_string());
        }
        if let Some(limit) = &r.source_limit {
            if TrafficClass::from_name(&limit.class).is_none() {
                bad(
                    "rules.source_limit.class",
                    format!(
                        "{:?} is not a traffic class (e.g. tcp_syn, udp, icmp)",
                        limit.class
                    ),
                );
            }
            if limit.pps == 0 {
                bad("rules.source_limit.pps", "must be at least 1".into());
            }
        }
    }
}
