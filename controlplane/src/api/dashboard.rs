//! The web dashboard: static assets compiled into levee, served without a token
//! (they hold nothing secret); every figure they show comes from the API with
//! the operator's token, kept in the browser tab's session only.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../../../dashboard/index.html");
const APP_JS: &str = include_str!("../../../dashboard/app.js");
const APP_CSS: &str = include_str!("../../../dashboard/app.css");
const UPLOT_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/uplot.js"));
const UPLOT_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/uplot.css"));

/// Only levee's own scripts and styles; no frames, no other origins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'";

/// Whether a path is one of the dashboard's (served without a token).
pub fn is_dashboard(path: &str) -> bool {
    path == "/" || path == "/dashboard" || path.starts_with("/dashboard/")
}

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(redirect))
        .route("/dashboard", web::get().to(redirect))
        .route(
            "/dashboard/",
            web::get().to(|| asset(INDEX, "text/html; charset=utf-8")),
        )
        .route(
            "/dashboard/app.js",
            web::get().to(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/dashboard/app.css",
            web::get().to(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/dashboard/uplot.js",
            web::get().to(|| asset(UPLOT_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/dashboard/uplot.css",
            web::get().to(|| asset(UPLOT_CSS, "text/css; charset=utf-8")),
        );
}

async fn redirect() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/dashboard/"))
        .finish()
}

async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
