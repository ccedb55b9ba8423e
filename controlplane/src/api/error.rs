//! The API's errors: `{"error":{"code","message"}}` with a fitting status, also
//! for what actix itself rejects (bad JSON, bad query or path, unknown routes).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::commands::{CommandError, IncidentError};
use crate::mitigate::RuleError;
use crate::store::StoreError;

/// What went wrong with a request; the text is the message shown.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token (send Authorization: Bearer <token>)")]
    Unauthorized,
    #[error("this token may only read")]
    ReadOnly,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::ReadOnly => "forbidden",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Internal(_) => "internal",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::ReadOnly => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"levee\""));
        }
        response.json(json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::NotFound(_) => ApiError::NotFound(e.to_string()),
            RuleError::Invalid(m) => ApiError::BadRequest(m),
            RuleError::Refused(m) | RuleError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl From<IncidentError> for ApiError {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::NotFound(_) => ApiError::NotFound(e.to_string()),
            IncidentError::AlreadyResolved(_) => ApiError::Conflict(e.to_string()),
            IncidentError::Store(s) => s.into(),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        tracing::warn!("admin API: {e}");
        ApiError::Unavailable(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("admin API: {e}");
        ApiError::Internal(e.to_string())
    }
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.path()
    )))
}

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |e, _| {
            use actix_web::error::JsonPayloadError as E;
            match &e {
                E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::TooLarge(format!(
                    "the request body is larger than the {limit} bytes allowed"
                )),
                E::ContentType => ApiError::UnsupportedMediaType(
                    "send the request body as Content-Type: application/json".into(),
                ),
                E::Deserialize(d) if d.is_data() => {
                    ApiError::BadRequest(format!("invalid request body: {d}"))
                }
                E::Deserialize(d) => {
                    ApiError::BadRequest(format!("the request body is not valid JSON: {d}"))
                }
                other => ApiError::BadRequest(format!("cannot read the request body: {other}")),
            }
            .into()
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::BadRequest(format!("bad query string: {e}")).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e, req| {
        ApiError::BadRequest(format!("bad path {}: {e}", req.path())).into()
    })
}
