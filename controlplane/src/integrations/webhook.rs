//! Signed webhooks: the incident event payload POSTed as JSON.
//!
//! `X-Levee-Signature: sha256=<hex HMAC-SHA256(secret, body)>` authenticates the
//! body. Against replays, `X-Levee-Timestamp: <unix seconds>` and
//! `X-Levee-Signature-Timestamped: t=<seconds>,sha256=<hex HMAC-SHA256(secret,
//! "<seconds>.<body>")>`: a receiver refuses timestamps too old and ids
//! (`X-Levee-Delivery`) seen before.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BoxFuture, DeliveryContext, Job, Outcome, Plan, Sink, EVENTS};
use crate::detect::IncidentEvent;

/// Headers levee sets itself; custom headers may not replace them.
const OWN_HEADERS: [&str; 6] = [
    "content-type",
    "user-agent",
    "x-levee-event",
    "x-levee-delivery",
    "x-levee-signature",
    "x-levee-timestamp",
];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// HMAC key; generated at creation when not given, and shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Which incident events to send (all by default).
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries after the first attempt (0..=10).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// The first retry's wait; each next one doubles it (with jitter).
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
}

fn all_events() -> Vec<String> {
    EVENTS.iter().map(|e| (*e).to_owned()).collect()
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_retries() -> u32 {
    3
}
fn default_retry_base_ms() -> u64 {
    1000
}

impl WebhookSettings {
    pub fn validate(&self) -> Result<(), String> {
        super::check_url("url", &self.url)?;
        for e in &self.events {
            if !EVENTS.contains(&e.as_str()) {
                return Err(format!("events: {e:?} is not one of {}", EVENTS.join(", ")));
            }
        }
        for (name, value) in &self.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a header name"))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("headers: the value of {name:?} is not a header value"))?;
            if OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("headers: {name} is set by levee"));
            }
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(format!(
                "timeout_ms: {} is outside 100..=60000",
                self.timeout_ms
            ));
        }
        if self.max_retries > 10 {
            return Err(format!("max_retries: {} is above 10", self.max_retries));
        }
        if !(10..=600_000).contains(&self.retry_base_ms) {
            return Err(format!(
                "retry_base_ms: {} is outside 10..=600000",
                self.retry_base_ms
            ));
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("secret: at least 16 characters".into());
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Webhook {
    settings: WebhookSettings,
}

impl Webhook {
    pub fn new(settings: WebhookSettings) -> Webhook {
        Webhook { settings }
    }
}

/// Hex HMAC-SHA256 of `message` under `key`.
pub fn sign(key: &str, message: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(message);
    crate::ids::hex(&mac.finalize().into_bytes())
}

impl Sink for Webhook {
    fn plan(&self, event: &IncidentEvent) -> Vec<Plan> {
        if !self.settings.events.contains(&event.event) {
            return Vec::new();
        }
        vec![Plan::send(
            &event.event,
            Some(&event.incident_id),
            serde_json::to_value(event).unwrap_or_default(),
        )]
    }

    fn sample(&self, node_id: &str) -> Vec<Plan> {
        let now = super::rfc3339_ms(crate::clock::wall_ms());
        let mut payload = serde_json::json!({
            "event": "incident.created",
            "incident_id": "inc_test",
            "node_id": node_id,
            "attack_type": "UDP Flood",
            "severity": "medium",
            "target": "203.0.113.10",
            "peak_pps": 150000,
            "peak_bps": 1200000000u64,
            "duration_seconds": 0,
            "attacker_ips": ["198.51.100.23", "198.51.100.24"],
            "started_at": now,
            "resolved_at": null,
            "at": now,
            "spoofing_likely": false,
        });
        payload["test"] = true.into();
        vec![Plan::send("test", None, payload)]
    }

    fn deliver<'a>(&'a self, job: &'a Job, cx: &'a DeliveryContext<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let secret = self.settings.secret.as_deref().unwrap_or_default();
            let body = job.payload.as_bytes();
            let ts = cx.now_ms / 1000;
            let mut timestamped = ts.to_string().into_bytes();
            timestamped.push(b'.');
            timestamped.extend_from_slice(body);
            let mut request = cx
                .http
                .post(&self.settings.url)
                .timeout(Duration::from_millis(self.settings.timeout_ms))
                .header("content-type", "application/json")
                .header("x-levee-event", &job.event)
                .header("x-levee-delivery", job.id.to_string())
                .header("x-levee-timestamp", ts.to_string())
                .header(
                    "x-levee-signature",
                    format!("sha256={}", sign(secret, body)),
                )
                .header(
                    "x-levee-signature-timestamped",
                    format!("t={ts},sha256={}", sign(secret, &timestamped)),
                );
            for (name, value) in &self.settings.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            super::http_outcome(request.body(job.payload.clone()).send().await).await
        })
    }

    fn max_attempts(&self) -> u32 {
        1 + self.settings.max_retries
    }

    fn backoff(&self, attempts: u32) -> Duration {
        super::backoff(Duration::from_millis(self.settings.retry_base_ms), attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_published_hmac_sha256_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn custom_headers_cannot_replace_the_signature() {
        let mut s: WebhookSettings =
            serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:9/"}))
                .expect("defaults");
        assert!(s.validate().is_ok());
        s.headers
            .insert("X-Levee-Signature".into(), "sha256=0".into());
        assert_eq!(
            s.validate(),
            Err("headers: X-Levee-Signature is set by levee".into())
        );
        s.headers.clear();
        s.events = vec!["incident.deleted".into()];
        assert!(s.validate().is_err_and(|e| e.starts_with("events:")));
    }
}
