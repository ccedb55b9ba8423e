//! `GET /api/v1/health`: the one route without a token, for load balancers and
//! service managers.

use actix_web::HttpResponse;
use serde_json::json;

pub async fn get() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}
