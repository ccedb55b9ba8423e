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
}
