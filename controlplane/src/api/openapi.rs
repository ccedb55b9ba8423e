//! `GET /api/v1/openapi.json`: the OpenAPI 3.0 document of every route. A test
//! checks it against the route table both ways.

use actix_web::HttpResponse;

/// The document, kept next to the routes it describes.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::ROUTES;
    use super::DOCUMENT;
    use crate::resources::incidents::{IncidentDetail, IncidentList, IncidentView};
    use crate::resources::rules::{NewRule, Protocol, RuleList, RuleView};
    use crate::rule::{Rule, RuleMatch, RuleState};

    #[test]
    fn document_and_routes_agree() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is served but not documented"
            );
        }
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                assert!(
                    ROUTES.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} is documented but not served"
                );
            }
        }
        // Every reference resolves.
        let text = DOCUMENT;
        for part in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling reference {name}"
            );
        }
    }

    fn schema_properties(name: &str) -> BTreeSet<String> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("document");
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: &impl serde::Serialize) -> BTreeSet<String> {
        serde_json::to_value(v)
            .expect("serialise")
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn the_documented_new_rule_is_the_one_the_api_takes() {
        // Every field set, so every key is serialised.
        let full = NewRule {
            kind: "signature".into(),
            source: Some("x".into()),
            destination: Some("x".into()),
            protocol: Some(Protocol::Name("tcp".into())),
            src_port: Some(1),
            dst_port: Some(1),
            tcp_flags: Some("S/SA".into()),
            non_first_fragments: true,
            ip_length: Some([1, 2]),
            ip_ttl: Some([1, 2]),
            rate_limit_pps: Some(1),
            check: Some("syn_authentication".into()),
            ttl_seconds: Some(1),
            reason: Some("x".into()),
        };
        assert_eq!(keys(&full), schema_properties("NewRule"));
    }

    #[test]
    fn the_documented_rule_is_the_one_the_api_shows_and_the_cli_reads() {
        let rule = Rule {
            id: 7,
            incident_id: "inc_x_0001".into(),
            state: RuleState::Active,
            matches: RuleMatch::Block {
                source: "192.0.2.1/32".into(),
            },
            reason: "r".into(),
            created_at_ns: 1,
            expires_at_ns: 2,
            note: Some("n".into()),
            collateral: Some(0.5),
        };
        let view = RuleView::of(&rule);
        assert_eq!(keys(&view), schema_properties("Rule"));
        let list = RuleList {
            rules: vec![view],
            total: 1,
        };
        assert_eq!(keys(&list), schema_properties("RuleList"));
        let text = serde_json::to_string(&list).expect("serialise");
        let back: RuleList = serde_json::from_str(&text).expect("read back");
        assert_eq!(back.rules[0].rule, rule);
    }

    #[test]
    fn the_documented_incidents_are_the_ones_the_api_shows_and_the_cli_reads() {
        let incident = crate::detect::Incident::new(
            "inc_x_0001".into(),
            "nd_x".into(),
            crate::detect::Target::Host(0x0a00_0001),
            0,
            1_000_000_000,
        );
        let event = incident.event("incident.created", 1_000_000_000);
        // The payload integrations get is documented field for field.
        assert_eq!(keys(&event), schema_properties("IncidentEvent"));
        // The incident shown from it: the named fields are the documented ones
        // (the rest of the event comes along as recorded).
        let recorded = serde_json::to_value(&event).expect("payload");
        let mut view = IncidentView::of(recorded.clone(), "open", None).expect("view");
        let rest: BTreeSet<String> = view.details.keys().cloned().collect();
        view.details.clear();
        assert_eq!(keys(&view), schema_properties("Incident"));
        let event_keys = keys(&event);
        assert!(rest.iter().all(|k| event_keys.contains(k)), "{rest:?}");
        let list = IncidentList {
            incidents: vec![view.clone()],
            total: 1,
        };
        assert_eq!(keys(&list), schema_properties("IncidentList"));
        let detail = IncidentDetail {
            incident: view,
            events: vec![serde_json::from_value(recorded).expect("event view")],
            rules: Vec::new(),
        };
        assert_eq!(keys(&detail), schema_properties("IncidentDetail"));
        let text = serde_json::to_string(&detail).expect("serialise");
        let back: IncidentDetail = serde_json::from_str(&text).expect("read back");
        assert_eq!(back.events[0].event, "incident.created");
        assert_eq!(back.incident.incident_id, "inc_x_0001");
    }

    #[test]
    fn the_documented_status_is_the_one_the_api_shows_and_the_cli_reads() {
        use crate::resources::status::{
            DirectionRates, PortStatus, RatePoint, Rates, Status, TableFill, WorkerStatus,
        };
        let rates = DirectionRates::default();
        let status = Status {
            node_id: "nd_x".into(),
            version: "0".into(),
            dpdk_version: "DPDK 22.11".into(),
            mode: "inline".into(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            uptime_seconds: 1,
            ports: vec![PortStatus::default()],
            workers: vec![WorkerStatus::default()],
            window_reports_dropped: 0,
            rates: Some(Rates {
                inbound: rates.clone(),
                outbound: rates.clone(),
            }),
            open_incidents: 0,
            rules: Default::default(),
            tables: vec![TableFill {
                table: "blocklist".into(),
                entries: 0,
                capacity: 1,
            }],
            defences: serde_json::json!({}),
        };
        assert_eq!(keys(&status), schema_properties("Status"));
        assert_eq!(keys(&status.ports[0]), schema_properties("Port"));
        assert_eq!(keys(&status.workers[0]), schema_properties("Worker"));
        assert_eq!(keys(&rates), schema_properties("DirectionRates"));
        let point = RatePoint {
            at_ms: 0,
            inbound: rates.clone(),
            outbound: rates,
        };
        assert_eq!(keys(&point), schema_properties("RatePoint"));
        let text = serde_json::to_string(&status).expect("serialise");
        let back: Status = serde_json::from_str(&text).expect("read back");
        assert_eq!(back, status);
    }

    /// The properties of a route's answer schema (inline or referenced).
    fn answer_properties(path: &str, method: &str, code: &str) -> BTreeSet<String> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("document");
        let schema =
            &doc["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
            None => schema,
        };
        schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} {code} has properties"))
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn the_documented_integrations_are_the_ones_the_api_shows_and_the_cli_reads() {
        use crate::resources::integrations::*;
        let view = IntegrationView {
            id: "int_x".into(),
            name: "ops".into(),
            kind: "webhook".into(),
            enabled: true,
            origin: "api".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            secret: Some("whsec_x".into()),
            settings: Default::default(),
        };
        assert_eq!(keys(&view), schema_properties("Integration"));
        let list = IntegrationList {
            integrations: vec![view],
        };
        assert_eq!(
            keys(&list),
            answer_properties("/api/v1/integrations", "get", "200")
        );
        // The request's own fields are documented (the kinds' settings too).
        let new = NewIntegration {
            name: "ops".into(),
            kind: "webhook".into(),
            enabled: Some(false),
            settings: Default::default(),
        };
        assert!(keys(&new).is_subset(&schema_properties("NewIntegration")));
        let delivery = DeliveryRecord {
            id: 1,
            integration_id: "int_x".into(),
            event: "incident.created".into(),
            incident_id: Some("inc_x_0001".into()),
            subject: None,
            state: "pending".into(),
            attempts: 0,
            next_attempt_ms: 0,
            created_ms: 0,
            updated_ms: 0,
            last_status: None,
            last_error: None,
            log: serde_json::json!([]),
            payload: String::new(),
        };
        assert_eq!(keys(&delivery), schema_properties("Delivery"));
        let page = DeliveryList {
            deliveries: vec![delivery],
            total: 1,
        };
        assert_eq!(
            keys(&page),
            answer_properties("/api/v1/integrations/{id}/deliveries", "get", "200")
        );
        let queued = TestQueued {
            deliveries: vec![1],
            log: "/api/v1/integrations/int_x/deliveries".into(),
        };
        assert_eq!(
            keys(&queued),
            answer_properties("/api/v1/integrations/{id}/test", "post", "202")
        );
        let approved = Approved {
            integration_id: "int_x".into(),
            incident_id: "inc_x_0001".into(),
            approved: true,
        };
        assert_eq!(
            keys(&approved),
            answer_properties("/api/v1/integrations/{id}/approve", "post", "200")
        );
        let text = serde_json::to_string(&page).expect("serialise");
        let back: DeliveryList = serde_json::from_str(&text).expect("read back");
        assert_eq!(
            back.deliveries[0].incident_id.as_deref(),
            Some("inc_x_0001")
        );
    }
}
