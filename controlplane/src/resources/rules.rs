//! `/api/v1/rules`: a rule as shown, a page of them, and a new manual rule.

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339_ms;
use crate::rule::Rule;

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
