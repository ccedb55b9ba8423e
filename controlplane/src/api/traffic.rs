//! `GET /api/v1/traffic?seconds=N`: per-second rates of the last N seconds (for
//! charts), by direction and traffic class.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::live::{Live, HISTORY_SECONDS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    seconds: Option<usize>,
}

pub async fn get(live: web::Data<Live>, q: web::Query<Query>) -> Result<HttpResponse, ApiError> {
    let seconds = q.seconds.unwrap_or(300);
    if !(1..=HISTORY_SECONDS).contains(&seconds) {
        return Err(ApiError::BadRequest(format!(
            "seconds: {seconds} is outside 1..={HISTORY_SECONDS}"
        )));
    }
    let snapshot = live.snapshot();
    let skip = snapshot.history.len().saturating_sub(seconds);
    let points: Vec<_> = snapshot.history.iter().skip(skip).collect();
    Ok(HttpResponse::Ok().json(json!({"points": points})))
}
