//! The local admin HTTP API: actix-web on threads of its own (never a worker
//! lcore), bearer-token auth on every route but `/api/v1/health`, JSON errors
//! `{"error":{"code","message"}}`, one module per resource.

mod baselines;
mod dashboard;
mod error;
mod health;
mod incidents;
mod integrations;
mod metrics;
pub mod openapi;
mod rules;
mod status;
mod traffic;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{http::Method, web, App, HttpServer};
use subtle::ConstantTimeEq;

pub use error::ApiError;
pub use health::CONTROL_STALLED;

use crate::config::{ApiSection, ApiTokens};
use crate::live::Live;

/// The routes: one table registers them and lists them (for the OpenAPI check).
macro_rules! routes {
    ($($path:literal => { $($method:ident : $handler:path),+ $(,)? })*) => {
        /// (method, path) of every route, as the OpenAPI document names them.
        #[cfg(test)]
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        fn register(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                web::resource($path)
                    $(.route(web::$method().to($handler)))+
                    .default_service(web::to(error::method_not_allowed)),
            );)*
        }
    };
}

routes! {
    "/api/v1/health" => { get: health::get }
    "/api/v1/status" => { get: status::get }
    "/api/v1/traffic" => { get: traffic::get }
    "/api/v1/incidents" => { get: incidents::list }
    "/api/v1/incidents/{id}" => { get: incidents::get }
    "/api/v1/incidents/{id}/resolve" => { post: incidents::resolve }
    "/api/v1/incidents/{id}/pcap" => { get: incidents::pcap }
    "/api/v1/rules" => { get: rules::list, post: rules::add }
    "/api/v1/rules/export" => { get: rules::export }
    "/api/v1/rules/{id}" => { get: rules::get, delete: rules::delete }
    "/api/v1/rules/{id}/approve" => { post: rules::approve }
    "/api/v1/integrations" => { get: integrations::list, post: integrations::create }
    "/api/v1/integrations/{id}" => { get: integrations::get, put: integrations::update, delete: integrations::delete }
    "/api/v1/integrations/{id}/test" => { post: integrations::test }
    "/api/v1/integrations/{id}/deliveries" => { get: integrations::deliveries }
    "/api/v1/integrations/{id}/approve" => { post: integrations::approve }
    "/api/v1/baselines" => { get: baselines::list }
    "/api/v1/openapi.json" => { get: openapi::get }
    "/metrics" => { get: metrics::get }
}

/// Paths served without a token.
const PUBLIC: &[&str] = &["/api/v1/health"];

/// Who a request's token says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Admin,
    ReadOnly,
}

fn token_matches(given: &str, expected: &str) -> bool {
    // Constant time for equal lengths; a length mismatch says nothing of the content.
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

fn access(req: &ServiceRequest, tokens: &ApiTokens) -> Option<Access> {
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION)?;
    let value = header.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    // Check both tokens either way, so timing does not tell which one was close.
    let admin = token_matches(token, &tokens.admin);
    let read_only = tokens
        .read_only
        .as_deref()
        .is_some_and(|t| token_matches(token, t));
    if admin {
        Some(Access::Admin)
    } else if read_only {
        Some(Access::ReadOnly)
    } else {
        None
    }
}

async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !PUBLIC.contains(&req.path()) && !dashboard::is_dashboard(req.path()) {
        let tokens = req
            .app_data::<web::Data<ApiTokens>>()
            .ok_or_else(|| ApiError::Internal("no tokens configured".into()))?;
        match access(&req, tokens) {
            None => return Err(ApiError::Unauthorized.into()),
            Some(Access::ReadOnly) if !matches!(*req.method(), Method::GET | Method::HEAD) => {
                return Err(ApiError::ReadOnly.into())
            }
            Some(_) => {}
        }
    }
    next.call(req).await
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct ApiServer {
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why the API could not start; the text is the message.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("api.listen: cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("api.tls_cert/api.tls_key: {0}")]
    Tls(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot start the admin API: {0}")]
    Start(String),
}

fn tls_config(section: &ApiSection) -> Result<Option<rustls::ServerConfig>, ApiStartError> {
    let (Some(cert), Some(key)) = (&section.tls_cert, &section.tls_key) else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| ApiStartError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ApiStartError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ApiStartError::Tls(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| ApiStartError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ApiStartError::Tls(format!("{} holds no PEM private key", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiStartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map(Some)
        .map_err(|e| ApiStartError::Tls(e.to_string()))
}

impl ApiServer {
    /// Bind (so a taken port fails start-up at once) and serve on two threads.
    pub fn start(section: &ApiSection, live: Arc<Live>) -> Result<ApiServer, ApiStartError> {
        let tokens = section.tokens().map_err(|p| {
            ApiStartError::Config(
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let listener =
            TcpListener::bind(&section.listen).map_err(|source| ApiStartError::Listen {
                addr: section.listen.clone(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| ApiStartError::Start(e.to_string()))?;
        let tls = tls_config(section)?;
        let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        let body_limit = section.max_body_bytes;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("levee-api".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let result = system.block_on(async move {
                    let live = web::Data::from(live);
                    let tokens = web::Data::new(tokens);
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(live.clone())
                            .app_data(tokens.clone())
                            .app_data(error::json_config(body_limit))
                            .app_data(error::query_config())
                            .app_data(error::path_config())
                            .app_data(web::PayloadConfig::new(body_limit))
                            .wrap(from_fn(authenticate))
                            .configure(register)
                            .configure(dashboard::register)
                            .default_service(web::to(error::not_found))
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(2);
                    let server = match tls {
                        Some(tls) => server.listen_rustls_0_23(listener, tls),
                        None => server.listen(listener),
                    };
                    match server {
                        Ok(s) => {
                            let s = s.run();
                            let _ = tx.send(Ok(s.handle()));
                            s.await.map_err(|e| e.to_string())
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            Ok(())
                        }
                    }
                });
                if let Err(e) = result {
                    tracing::error!("admin API: {e}");
                }
            })
            .map_err(|e| ApiStartError::Start(e.to_string()))?;
        let handle = rx
            .recv()
            .map_err(|_| ApiStartError::Start("the server thread ended".into()))?
            .map_err(ApiStartError::Start)?;
        tracing::info!("admin API listening on {url}");
        Ok(ApiServer {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let stop = self.handle.stop(true);
        actix_web::rt::System::new().block_on(stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
