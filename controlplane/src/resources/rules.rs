//! `/api/v1/rules`: a rule as shown, a page of them, and a new manual rule.

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339_ms;
use crate::mitigate::Rule;

/// A rule as the API shows it: the record plus readable times.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleView {
    #[serde(flatten)]
    pub rule: Rule,
    pub created_at: String,
    pub expires_at: String,
}

impl RuleView {
    pub fn of(rule: &Rule) -> RuleView {
        RuleView {
            rule: rule.clone(),
            created_at: rfc3339_ms(rule.created_at_ns),
            expires_at: rfc3339_ms(rule.expires_at_ns),
        }
    }
}

/// `GET /api/v1/rules`: one page, and how many there are in all.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleList {
    pub rules: Vec<RuleView>,
    pub total: usize,
}

/// A protocol by number or name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Protocol {
    Number(i64),
    Name(String),
}

/// The body of `POST /api/v1/rules`. Fields left out take the API's
/// defaults; the server checks every field (`crate::api::rules`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// `block` or `signature`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_first_fragments: bool,
    /// Inclusive [low, high] of the IP length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_length: Option<[i64; 2]>,
    /// Inclusive [low, high] of the TTL (IPv6: hop limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_ttl: Option<[i64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_pps: Option<i64>,
    /// `syn_authentication` or `connection_state` (TCP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mitigate::{RuleMatch, RuleState};
    use std::collections::BTreeSet;

    fn schema_properties(name: &str) -> BTreeSet<String> {
        let doc: serde_json::Value =
            serde_json::from_str(crate::api::openapi::DOCUMENT).expect("document");
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: &impl Serialize) -> BTreeSet<String> {
        serde_json::to_value(v)
            .expect("serialise")
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect()
    }

    /// Every field set, so every key is serialised.
    fn full_new_rule() -> NewRule {
        NewRule {
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
        }
    }

    #[test]
    fn the_documented_new_rule_is_the_one_the_api_takes() {
        assert_eq!(keys(&full_new_rule()), schema_properties("NewRule"));
    }

    #[test]
    fn the_documented_rule_is_the_one_the_api_shows() {
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
        // What the API writes, the CLI reads back the same.
        let text = serde_json::to_string(&RuleList {
            rules: vec![view],
            total: 1,
        })
        .expect("serialise");
        let back: RuleList = serde_json::from_str(&text).expect("read back");
        assert_eq!(back.rules[0].rule, rule);
        assert_eq!(back.rules[0].created_at, rfc3339_ms(1));
    }

    #[test]
    fn a_new_rule_leaves_out_what_was_not_given() {
        let block = NewRule {
            kind: "block".into(),
            source: Some("192.0.2.1".into()),
            ..NewRule::default()
        };
        assert_eq!(
            serde_json::to_value(&block).expect("json"),
            serde_json::json!({"kind": "block", "source": "192.0.2.1"})
        );
        let err = serde_json::from_str::<NewRule>(r#"{"kind":"block","sauce":"x"}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("sauce"), "{err}");
    }
}
