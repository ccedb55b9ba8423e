//! `GET /api/v1/baselines`: what the detector has learnt per target and the
//! limits in force.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::live::Live;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    target: Option<String>,
}

pub async fn list(live: web::Data<Live>, q: web::Query<Query>) -> Result<HttpResponse, ApiError> {
    let mut baselines = live.control.view().baselines.clone();
    if let Some(t) = &q.target {
        baselines.retain(|b| &b.target == t);
    }
    Ok(HttpResponse::Ok().json(json!({"baselines": baselines})))
}
