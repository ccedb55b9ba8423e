//! `GET /api/v1/status`: the node, its ports and workers, current rates.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiError;
use crate::live::Live;
use crate::rule::RuleState;

pub async fn get(live: web::Data<Live>) -> Result<HttpResponse, ApiError> {
    let view = live.control.view();
    let mut rule_counts = serde_json::Map::new();
    for state in RuleState::ALL {
        let n = view.rules.iter().filter(|r| r.state == state).count();
        rule_counts.insert(state.name().into(), json!(n));
    }
    let tables: Vec<_> = view
        .tables
        .iter()
        .map(|(name, entries, capacity)| json!({"table": name, "entries": entries, "capacity": capacity}))
        .collect();
    let open_incidents = view.open_incidents;
    let reports_dropped = view.totals.reports_dropped();
    let mut defences = crate::windows::defences_json(&view.totals.defences);
    defences["out_of_state"] = json!(
        view.totals.directions[0].dropped_packets
            [levee_dataplane::stats::DropReason::OutOfState as usize]
    );
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
        "defences": defences,
    })))
}
