//! Incidents: list with filters, one with its events and rules, resolve by hand,
//! the forensic capture.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::ApiError;
use crate::live::Live;
use crate::resources::incidents::{IncidentDetail, IncidentList, IncidentView};
use crate::resources::rules::RuleView;
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

fn incident_view(live: &Live, r: IncidentRecord) -> Option<IncidentView> {
    let id = r.last_event["incident_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let has_pcap = live
        .forensics_dir
        .as_ref()
        .is_some_and(|d| d.join(format!("{id}.pcapng")).is_file());
    let pcap = has_pcap.then(|| format!("/api/v1/incidents/{id}/pcap"));
    IncidentView::of(r.last_event, &r.status, pcap)
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
            crate::clock::parse_rfc3339(s).ok_or_else(|| {
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
    let incidents = records
        .into_iter()
        .filter_map(|r| incident_view(&live, r))
        .collect();
    Ok(HttpResponse::Ok().json(IncidentList { incidents, total }))
}

pub async fn get(live: web::Data<Live>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&id)?;
    let wanted = id.to_owned();
    let found = live.with_store(move |store| match store {
        Some(store) => store.incident(&wanted),
        None => Ok(None),
    })??;
    let rules = live
        .control
        .view()
        .rules
        .iter()
        .filter(|r| r.incident_id == id)
        .map(RuleView::of)
        .collect();
    let not_found = || ApiError::NotFound(format!("no incident {id}"));
    let (record, events) = found.ok_or_else(not_found)?;
    let incident = incident_view(&live, record).ok_or_else(not_found)?;
    let events = events
        .into_iter()
        .filter_map(|e| serde_json::from_value(e).ok())
        .collect();
    Ok(HttpResponse::Ok().json(IncidentDetail {
        incident,
        events,
        rules,
    }))
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
