//! `GET /api/v1/health`: the one route without a token, for load balancers and
//! service managers. `ok`, or `degraded` with the reasons: forwarding goes on
//! either way (the rules in force stay), but what is listed needs the operator.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::live::Live;

/// The control loop turns at least every quarter second; this long without a
/// turn, it is stuck or has died (and the service manager's watchdog goes unfed).
pub const CONTROL_STALLED: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn get(live: web::Data<Live>) -> HttpResponse {
    let reasons = reasons(&live);
    HttpResponse::Ok().json(json!({
        "status": if reasons.is_empty() { "ok" } else { "degraded" },
        "reasons": reasons,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Why levee is degraded, if it is (also for `/metrics`).
pub fn reasons(live: &Live) -> Vec<String> {
    let mut reasons: Vec<String> = live.alarms.lock().map(|a| a.clone()).unwrap_or_default();
    reasons.extend(live.control.faults());
    let view = live.control.view();
    if view.unsaved_rules > 0 {
        reasons.push(format!(
            "{} rule(s) in force are not recorded yet: the store cannot be written ({}); mitigation goes on from memory and they are written when it can",
            view.unsaved_rules,
            view.store_error.as_deref().unwrap_or("unknown error")
        ));
    }
    let idle = live.control.idle_for();
    if idle >= CONTROL_STALLED {
        let idle = idle.as_secs();
        reasons.push(format!(
            "the control thread has not turned for {idle} s: detection, new rules and the API's changes wait; forwarding goes on with the rules in force"
        ));
    }
    reasons
}
