//! Incidents: list with filters, one with its events and rules, resolve by hand,
//! the forensic capture.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::rules::rule_json;
use super::ApiError;
use crate::live::Live;
use crate::store::{IncidentQuery, IncidentRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    since: Option<String>,
    target: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

const MAX_LIMIT: u64 = 1000;

/// An incident id as levee makes them; anything else cannot name one (and never
/// reaches a file path).
fn checked_id(id: &str) -> Result<&str, ApiError> {
    let ok = id.starts_with("inc_")
        && id.len() <= 96
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(id)
    } else {
        Err(ApiError::NotFound(format!("no incident {id}")))
    }
}

fn incident_json(live: &Live, r: IncidentRecord) -> Value {
    let mut v = r.last_event;
    if let Some(o) = v.as_object_mut() {
        o.remove("event");
        o.remove("at");
        o.insert("status".into(), json!(r.status));
        let id = o
            .get("incident_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let has_pcap = live
            .forensics_dir
            .as_ref()
            .is_some_and(|d| d.join(format!("{id}.pcapng")).is_file());
        o.insert(
            "forensic_pcap".into(),
            if has_pcap {
                json!(format!("/api/v1/incidents/{id}/pcap"))
            } else {
                Value::Null
            },
        );
    }
    v
}

pub async fn list(
    live: web::Data<Live>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    if let Some(s) = &q.status {
        if s != "open" && s != "resolved" {
            return Err(ApiError::BadRequest(format!(
                "status: {s:?} is neither \"open\" nor \"resolved\""
            )));
        }
    }
    let since_ns = q
        .since
        .as_deref()
        .map(|s| {
            super::parse_time(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "since: {s:?} is not an RFC 3339 time (e.g. 2026-03-18T14:22:08Z)"
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is outside 1..={MAX_LIMIT}"
        )));
    }
    let query = IncidentQuery {
        status: q.status,
        since_ns,
        target: q.target,
        limit,
        offset: q.offset.unwrap_or(0).min(i64::MAX as u64),
    };
    let (records, total) = live.with_store(move |store| match store {
        Some(store) => store.incidents(&query),
        None => Ok((Vec::new(), 0)),
    })??;
    let incidents: Vec<Value> = records
        .into_iter()
        .map(|r| incident_json(&live, r))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"incidents": incidents, "total": total})))
}

pub async fn get(live: web::Data<Live>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&id)?;
    let wanted = id.to_owned();
    let found = live.with_store(move |store| match store {
        Some(store) => store.incident(&wanted),
        None => Ok(None),
    })??;
    let rules: Vec<Value> = live
        .control
        .view()
        .rules
        .iter()
        .filter(|r| r.incident_id == id)
        .map(rule_json)
        .collect();
    let (record, events) = found.ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    Ok(HttpResponse::Ok().json(json!({
        "incident": incident_json(&live, record),
        "events": events,
        "rules": rules,
    })))
}

pub async fn resolve(
    live: web::Data<Live>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&id)?;
    let now = live.now_ns();
    let (event, seq) = live.control.resolve_incident(id, now)?;
    let event = event?;
    live.control.wait_for_view(seq);
    Ok(HttpResponse::Ok().json(event))
}

pub async fn pcap(live: web::Data<Live>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&id)?;
    let dir = live.forensics_dir.as_ref().ok_or_else(|| {
        ApiError::NotFound("forensic captures are off ([forensics] dir is not set)".into())
    })?;
    let path = dir.join(format!("{id}.pcapng"));
    let data = std::fs::read(&path)
        .map_err(|_| ApiError::NotFound(format!("no forensic capture for {id}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pcapng")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{id}.pcapng\""),
        ))
        .body(data))
}
