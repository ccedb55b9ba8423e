//! AbuseIPDB reports (API v2, `POST /api/v2/report`): when an incident
//! resolves, each attacker IP (at most 20) is one delivery, reported under
//! category 4 (DDoS Attack) with a structured comment.
//!
//! AbuseIPDB's policy forbids reporting spoofed sources: an incident levee
//! believes spoofed reports nothing, and its delivery log says so. An IP this
//! node reported in the last 15 minutes is skipped (AbuseIPDB refuses those
//! too); the daily quota is counted here and a 429 waits for its Retry-After.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BoxFuture, DeliveryContext, Job, Outcome, Plan, Sink};
use crate::detect::IncidentEvent;

const DAY_MS: u64 = 86_400_000;
/// AbuseIPDB's own limit on a report's comment.
const MAX_COMMENT: usize = 1024;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AbuseIpdbSettings {
    /// The v2 API key (the `Key` header). Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Report categories; 4 is "DDoS Attack".
    #[serde(default = "default_categories")]
    pub categories: Vec<u8>,
    /// Reports a day this node may send (the key's plan: 1000 on the free one).
    #[serde(default = "default_quota")]
    pub daily_quota: u32,
    /// Attacker IPs reported per incident (at most 20).
    #[serde(default = "default_max_ips")]
    pub max_ips: usize,
    /// An IP reported this recently is not reported again.
    #[serde(default = "default_dedupe_minutes")]
    pub dedupe_minutes: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_base_url() -> String {
    "https://api.abuseipdb.com".into()
}
fn default_categories() -> Vec<u8> {
    vec![4]
}
fn default_quota() -> u32 {
    1000
}
fn default_max_ips() -> usize {
    20
}
fn default_dedupe_minutes() -> u64 {
    15
}
fn default_timeout_ms() -> u64 {
    10_000
}

impl AbuseIpdbSettings {
    pub fn validate(&self) -> Result<(), String> {
        super::check_url("base_url", &self.base_url)?;
        if self.categories.is_empty() || self.categories.iter().any(|c| !(1..=23).contains(c)) {
            return Err("categories: one or more of AbuseIPDB's categories 1..=23".into());
        }
        if !(1..=20).contains(&self.max_ips) {
            return Err(format!("max_ips: {} is outside 1..=20", self.max_ips));
        }
        if self.daily_quota == 0 {
            return Err("daily_quota: must be at least 1".into());
        }
        if self.dedupe_minutes < 15 {
            return Err(
                "dedupe_minutes: AbuseIPDB accepts one report of an IP per 15 minutes".into(),
            );
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(format!(
                "timeout_ms: {} is outside 100..=60000",
                self.timeout_ms
            ));
        }
        Ok(())
    }
}

/// An address worth reporting: routable on the Internet.
fn reportable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.octets()[0] == 0
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[derive(Debug)]
pub struct AbuseIpdb {
    settings: AbuseIpdbSettings,
    /// Reports go one at a time through this, so the quota and the dedupe see
    /// every earlier report (the store's log is written after each attempt).
    ledger: tokio::sync::Mutex<Ledger>,
}

/// What this node has sent today and recently, seeded from the delivery log.
#[derive(Debug, Default)]
struct Ledger {
    day_start_ms: u64,
    used_today: Option<u64>,
    reported_at: std::collections::HashMap<String, u64>,
}

impl AbuseIpdb {
    pub fn new(settings: AbuseIpdbSettings) -> AbuseIpdb {
        AbuseIpdb {
            settings,
            ledger: tokio::sync::Mutex::new(Ledger::default()),
        }
    }

    fn comment(e: &IncidentEvent) -> String {
        let vectors: Vec<&str> = e.vectors.iter().map(|v| v.attack_type.name()).collect();
        let mut text = format!(
            "DDoS attack detected and mitigated by levee: {} ({}) lasting {} s, peak {} pps / {:.1} Mbps toward a protected network. Incident {}.",
            e.attack_type.name(),
            if vectors.is_empty() { e.attack_type.name().to_owned() } else { vectors.join(" + ") },
            e.duration_seconds,
            e.peak_pps,
            e.peak_bps as f64 / 1e6,
            e.incident_id,
        );
        text.truncate(MAX_COMMENT);
        text
    }

    fn report(&self, e: &IncidentEvent, ip: &str) -> serde_json::Value {
        let categories: Vec<String> = self.settings.categories.iter().map(u8::to_string).collect();
        serde_json::json!({
            "ip": ip,
            "categories": categories.join(","),
            "comment": Self::comment(e),
            "timestamp": e.started_at,
        })
    }
}

impl Sink for AbuseIpdb {
    fn plan(&self, e: &IncidentEvent) -> Vec<Plan> {
        if e.event != "incident.resolved" {
            return Vec::new();
        }
        let skip = |reason: String| Plan::skip("report", &e.incident_id, reason);
        if e.spoofing_likely {
            return vec![skip(format!(
                "not reported: the sources of this {} are likely spoofed, and AbuseIPDB's policy forbids reporting spoofed addresses",
                e.attack_type.name()
            ))];
        }
        let mut plans = Vec::new();
        let mut unreportable = 0;
        let mut over_cap = 0;
        for ip in &e.attacker_ips {
            match ip.parse::<IpAddr>() {
                Ok(addr) if reportable(addr) => {
                    if plans.len() < self.settings.max_ips {
                        plans.push(Plan {
                            event: "report".into(),
                            incident_id: Some(e.incident_id.clone()),
                            subject: Some(addr.to_string()),
                            payload: self.report(e, &addr.to_string()),
                            skip: None,
                        });
                    } else {
                        over_cap += 1;
                    }
                }
                _ => unreportable += 1,
            }
        }
        if over_cap > 0 {
            plans.push(skip(format!(
                "{over_cap} more attacker IPs not reported: at most {} per incident",
                self.settings.max_ips
            )));
        }
        if unreportable > 0 {
            plans.push(skip(format!(
                "{unreportable} attacker addresses not reported: not routable on the Internet"
            )));
        }
        if plans.is_empty() {
            plans.push(skip("no attacker IPs to report".into()));
        }
        plans
    }

    fn sample(&self, _node_id: &str) -> Vec<Plan> {
        // A real report would be a false accusation: the test checks the key
        // with AbuseIPDB's check of 127.0.0.1 instead.
        vec![Plan::send(
            "test",
            None,
            serde_json::json!({"check": "127.0.0.1"}),
        )]
    }

    fn deliver<'a>(&'a self, job: &'a Job, cx: &'a DeliveryContext<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let key = self.settings.api_key.as_deref().unwrap_or_default();
            let base = self.settings.base_url.trim_end_matches('/');
            let timeout = Duration::from_millis(self.settings.timeout_ms);
            if job.event == "test" {
                let result = cx
                    .http
                    .get(format!("{base}/api/v2/check"))
                    .query(&[("ipAddress", "127.0.0.1"), ("maxAgeInDays", "1")])
                    .header("Key", key)
                    .header("Accept", "application/json")
                    .timeout(timeout)
                    .send()
                    .await;
                return super::http_outcome(result).await;
            }
            let Some(ip) = job.subject.as_deref() else {
                return Outcome::Failed {
                    status: None,
                    error: "a report without an IP".into(),
                };
            };
            let mut ledger = self.ledger.lock().await;
            let now_ms = crate::clock::wall_ms();
            let dedupe = Duration::from_secs(self.settings.dedupe_minutes * 60).as_millis() as u64;
            let since = now_ms.saturating_sub(dedupe);
            let earlier = match ledger.reported_at.get(ip).filter(|at| **at >= since) {
                Some(at) => Some(*at),
                None => match cx
                    .outbox
                    .store()
                    .delivered_about(cx.integration_id, ip, since)
                {
                    Ok(at) => at,
                    Err(e) => {
                        return Outcome::Retry {
                            status: None,
                            error: e.to_string(),
                            after: None,
                        }
                    }
                },
            };
            if let Some(at) = earlier {
                return Outcome::Skipped {
                    reason: format!(
                        "{ip} was reported by this node {} s ago (one report per {} minutes)",
                        now_ms.saturating_sub(at) / 1000,
                        self.settings.dedupe_minutes
                    ),
                };
            }
            let day_start = now_ms - now_ms % DAY_MS;
            if ledger.day_start_ms != day_start || ledger.used_today.is_none() {
                ledger.day_start_ms = day_start;
                ledger.used_today = Some(
                    cx.outbox
                        .store()
                        .requests_since(cx.integration_id, day_start)
                        .unwrap_or(0),
                );
                ledger.reported_at.retain(|_, at| *at >= since);
            }
            let used = ledger.used_today.unwrap_or(0);
            if used >= u64::from(self.settings.daily_quota) {
                return Outcome::Defer {
                    until_ms: day_start + DAY_MS,
                    reason: format!(
                        "daily quota of {} reports used; waiting until 00:00 UTC",
                        self.settings.daily_quota
                    ),
                };
            }
            let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or_default();
            let form: Vec<(String, String)> = ["ip", "categories", "comment", "timestamp"]
                .iter()
                .filter_map(|k| {
                    payload
                        .get(*k)
                        .and_then(|v| v.as_str())
                        .map(|v| ((*k).to_owned(), v.to_owned()))
                })
                .collect();
            let result = cx
                .http
                .post(format!("{base}/api/v2/report"))
                .header("Key", key)
                .header("Accept", "application/json")
                .timeout(timeout)
                .form(&form)
                .send()
                .await;
            match result {
                Ok(resp) if resp.status().as_u16() == 429 => {
                    let wait = super::retry_after(&resp).unwrap_or(Duration::from_secs(60));
                    let body = super::snippet(&super::body_text(resp).await);
                    Outcome::Defer {
                        until_ms: now_ms + wait.as_millis() as u64,
                        reason: format!(
                            "HTTP 429 Too Many Requests: {body}; waiting {} s (Retry-After)",
                            wait.as_secs()
                        ),
                    }
                }
                Ok(resp) if resp.status().is_success() => {
                    ledger.used_today = Some(used + 1);
                    ledger.reported_at.insert(ip.to_owned(), now_ms);
                    let status = resp.status().as_u16();
                    let body: serde_json::Value = super::body_json(resp, super::BODY_CAP)
                        .await
                        .unwrap_or_default();
                    let score = body.pointer("/data/abuseConfidenceScore").cloned();
                    Outcome::Delivered {
                        status: Some(status),
                        note: match score {
                            Some(s) => format!("reported {ip}; abuse confidence score {s}"),
                            None => format!("reported {ip}"),
                        },
                    }
                }
                Ok(resp) if resp.status().is_client_error() => {
                    ledger.used_today = Some(used + 1);
                    let status = resp.status();
                    let body: serde_json::Value = super::body_json(resp, super::BODY_CAP)
                        .await
                        .unwrap_or_default();
                    let detail = body
                        .pointer("/errors/0/detail")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default()
                        .to_owned();
                    Outcome::Failed {
                        status: Some(status.as_u16()),
                        error: format!("HTTP {status}: {detail}"),
                    }
                }
                other => super::http_outcome(other).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofed_incidents_are_never_reported() {
        let sink = AbuseIpdb::new(
            serde_json::from_value(serde_json::json!({"api_key": "k"})).expect("settings"),
        );
        let event = |spoofed: bool| -> IncidentEvent {
            serde_json::from_value(serde_json::json!({
                "event": "incident.resolved", "incident_id": "inc_n_0001", "node_id": "nd_n",
                "attack_type": "SYN Flood", "severity": "high", "target": "10.0.0.2",
                "peak_pps": 100000, "peak_bps": 1000000, "duration_seconds": 30,
                "attacker_ips": ["8.8.8.8", "198.51.100.7"], "attackers_total": 2,
                "started_at": "2026-01-01T00:00:00Z", "resolved_at": "2026-01-01T00:00:30Z",
                "at": "2026-01-01T00:00:30.000Z", "confidence": 0.9, "spoofing_likely": spoofed,
                "vectors": [], "carpet_bombing": false, "hosts_hit": 1, "detection_ms": 200
            }))
            .expect("event")
        };
        let plans = sink.plan(&event(true));
        assert_eq!(plans.len(), 1, "{plans:?}");
        assert!(plans[0].subject.is_none());
        let why = plans[0].skip.as_deref().unwrap_or_default();
        assert!(
            why.contains("likely spoofed") && why.contains("SYN Flood"),
            "{why}"
        );
        // The same incident judged real: both sources are reported.
        let reported: Vec<_> = sink
            .plan(&event(false))
            .into_iter()
            .filter_map(|p| p.subject)
            .collect();
        assert_eq!(reported, ["8.8.8.8", "198.51.100.7"]);
    }

    #[test]
    fn only_internet_routable_sources_are_reportable() {
        for ip in ["198.51.100.7", "8.8.8.8", "2001:db8::1", "2a00:1450::1"] {
            assert!(reportable(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "192.168.1.1",
            "127.0.0.1",
            "100.64.0.1",
            "0.1.2.3",
            "224.0.0.1",
            "fe80::1",
            "fd00::1",
            "::1",
        ] {
            assert!(!reportable(ip.parse().expect("ip")), "{ip}");
        }
    }
}
