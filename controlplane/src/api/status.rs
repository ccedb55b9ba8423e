//! `GET /api/v1/status`: the node, its ports and workers, current rates.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiError;
use crate::live::Live;
use crate::resources::status::{Rates, Status, TableFill};
use crate::rule::RuleState;

pub async fn get(live: web::Data<Live>) -> Result<HttpResponse, ApiError> {
    let view = live.control.view();
    let rules = RuleState::ALL
        .iter()
        .map(|state| {
            let n = view.rules.iter().filter(|r| r.state == *state).count();
            (state.name().to_owned(), n)
        })
        .collect();
    let tables = view
        .tables
        .iter()
        .map(|(name, entries, capacity)| TableFill {
            table: (*name).to_owned(),
            entries: *entries,
            capacity: *capacity,
        })
        .collect();
    let mut defences = crate::windows::defences_json(&view.totals.defences);
    defences["out_of_state"] = json!(
        view.totals.directions[0].dropped_packets
            [levee_dataplane::stats::DropReason::OutOfState as usize]
    );
    let snapshot = live.snapshot();
    let now_ms = crate::clock::wall_ms();
    Ok(HttpResponse::Ok().json(Status {
        node_id: live.node_id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        dpdk_version: live.dpdk_version.clone(),
        mode: serde_json::to_value(live.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        started_at: crate::clock::rfc3339_ms(live.started_at_ms * 1_000_000),
        uptime_seconds: now_ms.saturating_sub(live.started_at_ms) / 1000,
        ports: snapshot.ports.clone(),
        workers: snapshot.workers.clone(),
        window_reports_dropped: view.totals.reports_dropped(),
        rates: snapshot.history.back().map(|p| Rates {
            inbound: p.inbound.clone(),
            outbound: p.outbound.clone(),
        }),
        open_incidents: view.open_incidents,
        rules,
        tables,
        defences,
    }))
}
