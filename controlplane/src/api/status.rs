//! `GET /api/v1/status`: the node, its ports and workers, current rates.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiError;
use crate::live::Live;
use crate::mitigate::RuleState;

pub async fn get(live: web::Data<Live>) -> Result<HttpResponse, ApiError> {
    let (open_incidents, rule_counts, tables, reports_dropped) = {
        let control = live.control();
        let mut counts = serde_json::Map::new();
        for state in RuleState::ALL {
            counts.insert(state.name().into(), json!(0));
        }
        for r in control.control.mitigator.rules() {
            if let Some(n) = counts.get_mut(r.state.name()) {
                *n = json!(n.as_u64().unwrap_or(0) + 1);
            }
        }
        let tables: Vec<_> = control
            .publisher
            .fill()
            .iter()
            .map(|(name, entries, capacity)| json!({"table": name, "entries": entries, "capacity": capacity}))
            .collect();
        (
            control.control.detector.active().count(),
            counts,
            tables,
            control.control.totals.reports_dropped(),
        )
    };
    let snapshot = live.snapshot();
    let now_ms = crate::clock::wall_ms();
    let rates = snapshot.history.back();
    Ok(HttpResponse::Ok().json(json!({
        "node_id": live.node_id,
        "version": env!("CARGO_PKG_VERSION"),
        "dpdk_version": live.dpdk_version,
        "mode": live.mode,
        "started_at": crate::clock::rfc3339_ms(live.started_at_ms * 1_000_000),
        "uptime_seconds": now_ms.saturating_sub(live.started_at_ms) / 1000,
        "ports": snapshot.ports,
        "workers": snapshot.workers,
        "window_reports_dropped": reports_dropped,
        "rates": rates.map(|p| json!({"inbound": p.inbound, "outbound": p.outbound})),
        "open_incidents": open_incidents,
        "rules": rule_counts,
        "tables": tables,
    })))
}
