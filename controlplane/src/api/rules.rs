//! Rules: list by state, one by id, add a manual block or signature, approve a
//! staged rule, delete, export as iptables-restore or nftables text. Writes take
//! the mitigator's path: the allowlist and the caps apply, a refusal is a 409.

use actix_web::{web, HttpResponse};
use levee_dataplane::tables::Prefix;
use serde::Deserialize;

use super::ApiError;
use crate::live::Live;
use crate::mitigate::export::ExportFormat;
use crate::mitigate::MANUAL;
use crate::resources::rules::{NewRule, Protocol, RuleList, RuleView};
use crate::rule::{Rule, RuleMatch, RuleState, SignatureCheck};
use crate::rule_fields::{IpProtocol, TcpFlags};

/// Longest TTL a manual rule may have: 30 days.
pub const MAX_TTL_S: u64 = 30 * 24 * 3600;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub async fn list(
    live: web::Data<Live>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let state = q
        .state
        .as_deref()
        .map(|s| {
            RuleState::from_name(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "state: {s:?} is not one of {}",
                    RuleState::ALL.map(RuleState::name).join(", ")
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is outside 1..={MAX_LIMIT}"
        )));
    }
    let rules = all_rules(&live, state)?;
    let total = rules.len();
    let page = RuleList {
        rules: rules
            .iter()
            .skip(q.offset.unwrap_or(0))
            .take(limit)
            .map(RuleView::of)
            .collect(),
        total,
    };
    Ok(HttpResponse::Ok().json(page))
}

/// Every rule in a state: recorded ones from the store (also those of earlier
/// runs), live ones from the mitigator.
fn all_rules(live: &Live, state: Option<RuleState>) -> Result<Vec<Rule>, ApiError> {
    let mut rules = live.with_store(move |store| match store {
        Some(store) => store.rules(state.map(RuleState::name)),
        None => Ok(Vec::new()),
    })??;
    let view = live.control.view();
    let mut by_id: std::collections::BTreeMap<u32, Rule> =
        rules.drain(..).map(|r| (r.id, r)).collect();
    for r in &view.rules {
        if state.is_none_or(|s| s == r.state) {
            by_id.insert(r.id, r.clone());
        } else {
            by_id.remove(&r.id);
        }
    }
    Ok(by_id.into_values().collect())
}

fn rule_id(id: &str) -> Result<u32, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no rule {id} (rule ids are numbers)")))
}

pub async fn get(live: web::Data<Live>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let n = rule_id(&id)?;
    let rule = all_rules(&live, None)?
        .into_iter()
        .find(|r| r.id == n)
        .ok_or_else(|| ApiError::NotFound(format!("no rule {n}")))?;
    Ok(HttpResponse::Ok().json(RuleView::of(&rule)))
}

/// An inclusive `[low, high]` range within `0..=max`.
fn inclusive(
    field: &str,
    range: Option<[i64; 2]>,
    max: u16,
) -> Result<Option<(u16, u16)>, ApiError> {
    let Some([lo, hi]) = range else {
        return Ok(None);
    };
    let max = i64::from(max);
    if !(0..=max).contains(&lo) || !(0..=max).contains(&hi) || lo > hi {
        return Err(ApiError::BadRequest(format!(
            "{field}: [{lo}, {hi}] is not [low, high] with 0 <= low <= high <= {max}"
        )));
    }
    Ok(Some((lo as u16, hi as u16)))
}

fn prefix(field: &str, value: Option<&str>) -> Result<Prefix, ApiError> {
    let v = value.ok_or_else(|| ApiError::BadRequest(format!("{field} is required")))?;
    // The parser's message names the value and why; the field says where.
    v.trim()
        .parse::<Prefix>()
        .map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
}

fn port(field: &str, value: Option<i64>) -> Result<Option<u16>, ApiError> {
    value
        .map(|p| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| ApiError::BadRequest(format!("{field}: {p} is outside 1..=65535")))
        })
        .transpose()
}

/// The server's checks of a new rule (the type is shared with the CLI).
impl NewRule {
    /// What the rule matches, its TTL and reason, or what is wrong with the request.
    pub fn validate(self, default_ttl_s: u64) -> Result<(RuleMatch, u64, String), ApiError> {
        let ttl = self.ttl_seconds.unwrap_or(default_ttl_s as i64);
        if !(1..=MAX_TTL_S as i64).contains(&ttl) {
            return Err(ApiError::BadRequest(format!(
                "ttl_seconds: {ttl} is outside 1..={MAX_TTL_S} (30 days)"
            )));
        }
        let reason = self.reason.unwrap_or_else(|| "added by an operator".into());
        if reason.len() > 500 {
            return Err(ApiError::BadRequest(
                "reason: longer than 500 characters".into(),
            ));
        }
        let matches = match self.kind.as_str() {
            "block" => {
                for (field, set) in [
                    ("destination", self.destination.is_some()),
                    ("protocol", self.protocol.is_some()),
                    ("src_port", self.src_port.is_some()),
                    ("dst_port", self.dst_port.is_some()),
                    ("tcp_flags", self.tcp_flags.is_some()),
                    ("rate_limit_pps", self.rate_limit_pps.is_some()),
                    ("check", self.check.is_some()),
                    ("non_first_fragments", self.non_first_fragments),
                    ("ip_length", self.ip_length.is_some()),
                    ("ip_ttl", self.ip_ttl.is_some()),
                ] {
                    if set {
                        return Err(ApiError::BadRequest(format!(
                            "{field} belongs to signature rules; a block rule takes source, ttl_seconds and reason"
                        )));
                    }
                }
                RuleMatch::Block {
                    source: prefix("source", self.source.as_deref())?.to_string(),
                }
            }
            "signature" => {
                if self.source.is_some() {
                    return Err(ApiError::BadRequest(
                        "source belongs to block rules; a signature matches a destination".into(),
                    ));
                }
                let destination = prefix("destination", self.destination.as_deref())?;
                let protocol = match &self.protocol {
                    None => return Err(ApiError::BadRequest("protocol is required".into())),
                    Some(Protocol::Number(n)) => IpProtocol::number(*n),
                    Some(Protocol::Name(name)) => name.parse::<IpProtocol>(),
                }
                .map_err(|e| ApiError::BadRequest(format!("protocol: {e}")))?
                .0;
                let src_port = port("src_port", self.src_port)?;
                let dst_port = port("dst_port", self.dst_port)?;
                if (src_port.is_some() || dst_port.is_some()) && !matches!(protocol, 6 | 17) {
                    return Err(ApiError::BadRequest(
                        "src_port and dst_port need protocol tcp or udp".into(),
                    ));
                }
                if let Some(f) = &self.tcp_flags {
                    if protocol != 6 {
                        return Err(ApiError::BadRequest("tcp_flags needs protocol tcp".into()));
                    }
                    if let Err(e) = f.parse::<TcpFlags>() {
                        return Err(ApiError::BadRequest(format!("tcp_flags: {e}")));
                    }
                }
                let rate_limit_pps = self
                    .rate_limit_pps
                    .map(|r| {
                        u32::try_from(r).ok().filter(|r| *r > 0).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "rate_limit_pps: {r} is outside 1..={}",
                                u32::MAX
                            ))
                        })
                    })
                    .transpose()?;
                let check = match self.check.as_deref() {
                    None => None,
                    Some(c) => {
                        let check = SignatureCheck::from_name(c).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "check: {c:?} is not \"syn_authentication\" or \"connection_state\""
                            ))
                        })?;
                        if protocol != 6 {
                            return Err(ApiError::BadRequest("check needs protocol tcp".into()));
                        }
                        if rate_limit_pps.is_some() {
                            return Err(ApiError::BadRequest(
                                "a rule either checks or rate-limits: give check or rate_limit_pps"
                                    .into(),
                            ));
                        }
                        Some(check)
                    }
                };
                RuleMatch::Signature {
                    destination: destination.to_string(),
                    protocol,
                    src_port,
                    dst_port,
                    tcp_flags: self.tcp_flags.map(|f| f.to_ascii_uppercase()),
                    non_first_fragments: self.non_first_fragments,
                    ip_length: inclusive("ip_length", self.ip_length, u16::MAX)?,
                    ip_ttl: inclusive("ip_ttl", self.ip_ttl, u8::MAX.into())?
                        .map(|(lo, hi)| (lo as u8, hi as u8)),
                    rate_limit_pps,
                    check,
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "kind: {other:?} is neither \"block\" nor \"signature\""
                )))
            }
        };
        Ok((matches, ttl as u64, reason))
    }
}

pub async fn add(
    live: web::Data<Live>,
    body: web::Json<NewRule>,
) -> Result<HttpResponse, ApiError> {
    let default_ttl = live.control.view().default_ttl_s;
    let (matches, ttl, reason) = body.into_inner().validate(default_ttl)?;
    let now = live.now_ns();
    let (rule, seq) = live.control.add_rule(MANUAL, matches, ttl, reason, now)?;
    let rule = live.control.settled(rule?);
    live.control.wait_for_view(seq);
    tracing::warn!(rule = rule.id, "rule added by the operator");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/rules/{}", rule.id)))
        .json(RuleView::of(&rule)))
}

pub async fn approve(
    live: web::Data<Live>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(&id)?;
    let (rule, seq) = live.control.approve_rule(id)?;
    let rule = live.control.settled(rule?);
    live.control.wait_for_view(seq);
    tracing::warn!(rule = rule.id, "staged rule approved by the operator");
    Ok(HttpResponse::Ok().json(RuleView::of(&rule)))
}

pub async fn delete(
    live: web::Data<Live>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(&id)?;
    let (rule, seq) = live.control.delete_rule(id)?;
    let rule = rule?;
    live.control.wait_for_view(seq);
    tracing::warn!(rule = rule.id, "rule deleted by the operator");
    Ok(HttpResponse::Ok().json(RuleView::of(&rule)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
}

pub async fn export(
    live: web::Data<Live>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = q.format.as_deref().unwrap_or("iptables");
    let format = ExportFormat::parse(name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "format: {name:?} is not one of {}",
            ExportFormat::NAMES.join(", ")
        ))
    })?;
    // The same text the host-firewall integration applies.
    let text =
        crate::integrations::Enforcer::export(&**live, format).map_err(ApiError::Unavailable)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}
