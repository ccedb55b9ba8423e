//! `/api/v1/integrations`: create, read, update, delete, test, delivery log.
//! Secrets are write-only: a webhook's generated secret is in the creation
//! response, once, and never again.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use super::ApiError;
use crate::integrations::{IntegrationError, IntegrationSpec};
use crate::live::Live;
use crate::resources::integrations::{
    Approval, Approved, DeliveryList, IntegrationList, TestQueued,
};

impl From<IntegrationError> for ApiError {
    fn from(e: IntegrationError) -> Self {
        match e {
            IntegrationError::NotFound(_) => ApiError::NotFound(e.to_string()),
            IntegrationError::Invalid(m) => ApiError::BadRequest(m),
            IntegrationError::Conflict(m) => ApiError::Conflict(m),
            IntegrationError::Store(s) => s.into(),
        }
    }
}

pub async fn list(live: web::Data<Live>) -> Result<HttpResponse, ApiError> {
    let integrations = live.outbox.list().iter().map(|i| i.view(None)).collect();
    Ok(HttpResponse::Ok().json(IntegrationList { integrations }))
}

fn spec(body: Value) -> Result<IntegrationSpec, ApiError> {
    IntegrationSpec::parse(body).map_err(ApiError::BadRequest)
}

pub async fn create(
    live: web::Data<Live>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (integration, secret) = live.outbox.create(spec(body.into_inner())?)?;
    tracing::warn!(
        integration = integration.name,
        kind = integration.settings.kind(),
        "integration added by the operator"
    );
    // The only time the secret leaves levee.
    let shown = integration.view(secret);
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/api/v1/integrations/{}", integration.id),
        ))
        .json(shown))
}

pub async fn get(live: web::Data<Live>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(live.outbox.get(&id)?.view(None)))
}

pub async fn update(
    live: web::Data<Live>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let integration = live.outbox.update(&id, spec(body.into_inner())?)?;
    tracing::warn!(
        integration = integration.name,
        "integration changed by the operator"
    );
    Ok(HttpResponse::Ok().json(integration.view(None)))
}

pub async fn delete(
    live: web::Data<Live>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let integration = live.outbox.delete(&id)?;
    tracing::warn!(
        integration = integration.name,
        "integration deleted by the operator"
    );
    Ok(HttpResponse::Ok().json(integration.view(None)))
}

pub async fn test(live: web::Data<Live>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let ids = live.outbox.test(&id)?;
    Ok(HttpResponse::Accepted().json(TestQueued {
        deliveries: ids,
        log: format!("/api/v1/integrations/{id}/deliveries"),
    }))
}

/// Approve announcing an incident upstream through a bgp integration whose
/// policy is `when = "approval"`.
pub async fn approve(
    live: web::Data<Live>,
    id: web::Path<String>,
    body: web::Json<Approval>,
) -> Result<HttpResponse, ApiError> {
    let incident = body.incident_id.trim();
    if incident.is_empty() || incident.len() > 128 {
        return Err(ApiError::BadRequest(
            "incident_id: an incident id is required".into(),
        ));
    }
    live.outbox.approve_announcement(&id, incident)?;
    Ok(HttpResponse::Ok().json(Approved {
        integration_id: id.into_inner(),
        incident_id: incident.to_owned(),
        approved: true,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    limit: Option<u32>,
    offset: Option<u32>,
}

pub async fn deliveries(
    live: web::Data<Live>,
    id: web::Path<String>,
    q: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is outside 1..=1000"
        )));
    }
    let (page, total) = live.outbox.deliveries(&id, limit, q.offset.unwrap_or(0))?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: page,
        total,
    }))
}
