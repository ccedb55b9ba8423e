//! CrowdSec, both ways.
//!
//! **Push** (a machine, `POST /v1/watchers/login` then `POST /v1/alerts`): when
//! an incident resolves, one alert per attacker IP, each carrying a ban
//! decision of the configured duration, scenario `levee/<attack type>`.
//!
//! **Pull** (a bouncer, `X-Api-Key`, `GET /v1/decisions/stream`): the LAPI's IP
//! and range bans become block rules in levee's dataplane, through the same
//! mitigator as every rule (the allowlist always wins), and end when CrowdSec
//! deletes or expires them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{BoxFuture, DeliveryContext, Job, Outbox, Outcome, Plan, Sink};
use crate::detect::IncidentEvent;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrowdsecSettings {
    /// The LAPI's base URL, e.g. http://127.0.0.1:8080.
    pub lapi_url: String,
    /// Push bans when incidents resolve (needs machine_id and password).
    #[serde(default = "yes")]
    pub push: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// 1h, 4h, 12h, 24h, 3d or 7d.
    #[serde(default = "default_duration")]
    pub ban_duration: String,
    /// Enforce the LAPI's bans in the dataplane (needs bouncer_key).
    #[serde(default)]
    pub pull: bool,
    /// Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bouncer_key: Option<String>,
    #[serde(default = "default_pull_interval")]
    pub pull_interval_seconds: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_duration() -> String {
    "4h".into()
}
fn default_pull_interval() -> u64 {
    10
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// `3d` and `7d` in CrowdSec's hours.
fn duration_in_hours(d: &str) -> Option<&'static str> {
    match d {
        "1h" => Some("1h"),
        "4h" => Some("4h"),
        "12h" => Some("12h"),
        "24h" | "1d" => Some("24h"),
        "3d" | "72h" => Some("72h"),
        "7d" | "168h" => Some("168h"),
        _ => None,
    }
}

impl CrowdsecSettings {
    pub fn validate(&self) -> Result<(), String> {
        super::check_url("lapi_url", &self.lapi_url)?;
        if duration_in_hours(&self.ban_duration).is_none() {
            return Err(format!(
                "ban_duration: {:?} is not one of 1h, 4h, 12h, 24h, 3d, 7d",
                self.ban_duration
            ));
        }
        if !self.push && !self.pull {
            return Err("push and pull are both off: nothing to do".into());
        }
        if self.push && self.machine_id.as_deref().unwrap_or_default().is_empty() {
            return Err("machine_id: pushing bans needs the machine levee logs in as".into());
        }
        if !(1..=3600).contains(&self.pull_interval_seconds) {
            return Err(format!(
                "pull_interval_seconds: {} is outside 1..=3600",
                self.pull_interval_seconds
            ));
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(format!(
                "timeout_ms: {} is outside 100..=60000",
                self.timeout_ms
            ));
        }
        Ok(())
    }

    /// A required secret that is missing, by name.
    pub fn missing_secret(&self) -> Option<&'static str> {
        if self.push && self.password.is_none() {
            return Some("password");
        }
        if self.pull && self.bouncer_key.is_none() {
            return Some("bouncer_key");
        }
        None
    }
}

/// `levee/ntp-amplification` for "NTP Amplification".
pub fn scenario(attack_type: &str) -> String {
    let slug: String = attack_type
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("levee/{}", slug.trim_matches('-'))
}

#[derive(Debug)]
pub struct CrowdsecPush {
    settings: CrowdsecSettings,
    /// The machine's JWT and when to stop trusting it.
    token: Mutex<Option<(String, Instant)>>,
}

impl CrowdsecPush {
    pub fn new(settings: CrowdsecSettings) -> CrowdsecPush {
        CrowdsecPush {
            settings,
            token: Mutex::new(None),
        }
    }

    fn alerts(&self, e: &IncidentEvent, ips: &[String], stop_at: &str) -> serde_json::Value {
        let scenario = scenario(e.attack_type.name());
        let duration = duration_in_hours(&self.settings.ban_duration).unwrap_or("4h");
        let alerts: Vec<serde_json::Value> = ips
            .iter()
            .map(|ip| {
                serde_json::json!({
                    "scenario": scenario,
                    "scenario_hash": "",
                    "scenario_version": env!("CARGO_PKG_VERSION"),
                    "message": format!(
                        "levee: {} from {ip} (incident {}, {} s, peak {} pps)",
                        e.attack_type.name(), e.incident_id, e.duration_seconds, e.peak_pps
                    ),
                    "events_count": 1,
                    "start_at": e.started_at,
                    "stop_at": stop_at,
                    "capacity": 0,
                    "leakspeed": "0s",
                    "simulated": false,
                    "remediation": true,
                    "events": [{
                        "timestamp": e.at,
                        "meta": [
                            {"key": "incident_id", "value": e.incident_id},
                            {"key": "attack_type", "value": e.attack_type.name()},
                            {"key": "node_id", "value": e.node_id},
                        ],
                    }],
                    "source": {"scope": "Ip", "value": ip, "ip": ip},
                    "decisions": [{
                        "origin": "levee",
                        "type": "ban",
                        "scope": "Ip",
                        "value": ip,
                        "duration": duration,
                        "scenario": scenario,
                    }],
                })
            })
            .collect();
        serde_json::Value::Array(alerts)
    }

    async fn login(&self, cx: &DeliveryContext<'_>, base: &str) -> Result<String, Outcome> {
        if let Some((token, valid_until)) = self.token.lock().map(|t| t.clone()).unwrap_or_default()
        {
            if Instant::now() < valid_until {
                return Ok(token);
            }
        }
        let result = cx
            .http
            .post(format!("{base}/v1/watchers/login"))
            .timeout(Duration::from_millis(self.settings.timeout_ms))
            .json(&serde_json::json!({
                "machine_id": self.settings.machine_id,
                "password": self.settings.password.as_deref().unwrap_or_default(),
                "scenarios": ["levee/ddos"],
            }))
            .send()
            .await;
        match result {
            Ok(resp) if resp.status().is_success() => {
                let body: serde_json::Value = super::body_json(resp, super::BODY_CAP)
                    .await
                    .unwrap_or_default();
                let Some(token) = body.get("token").and_then(|t| t.as_str()) else {
                    return Err(Outcome::Retry {
                        status: None,
                        error: "login answered without a token".into(),
                        after: None,
                    });
                };
                // The LAPI's tokens last an hour; renew well before.
                let valid_until = Instant::now() + Duration::from_secs(45 * 60);
                if let Ok(mut slot) = self.token.lock() {
                    *slot = Some((token.to_owned(), valid_until));
                }
                Ok(token.to_owned())
            }
            Ok(resp) => {
                let status = resp.status();
                let body = super::snippet(&super::body_text(resp).await);
                let error = format!(
                    "login as {:?}: HTTP {status}: {body}",
                    self.settings.machine_id.as_deref().unwrap_or_default()
                );
                Err(if status.is_server_error() {
                    Outcome::Retry {
                        status: Some(status.as_u16()),
                        error,
                        after: None,
                    }
                } else {
                    Outcome::Failed {
                        status: Some(status.as_u16()),
                        error,
                    }
                })
            }
            Err(e) => Err(Outcome::Retry {
                status: None,
                error: format!("login: {}", super::describe(&e)),
                after: None,
            }),
        }
    }
}

impl Sink for CrowdsecPush {
    fn plan(&self, e: &IncidentEvent) -> Vec<Plan> {
        if !self.settings.push || e.event != "incident.resolved" {
            return Vec::new();
        }
        let skip = |reason: String| Plan::skip("alerts", &e.incident_id, reason);
        if e.spoofing_likely {
            return vec![skip(format!(
                "no bans: the sources of this {} are likely spoofed; banning them would ban bystanders",
                e.attack_type.name()
            ))];
        }
        if e.attacker_ips.is_empty() {
            return vec![skip("no attacker IPs to ban".into())];
        }
        let stop_at = e.resolved_at.clone().unwrap_or_else(|| e.at.clone());
        vec![Plan::send(
            "alerts",
            Some(&e.incident_id),
            self.alerts(e, &e.attacker_ips, &stop_at),
        )]
    }

    fn sample(&self, _node_id: &str) -> Vec<Plan> {
        // Logging in proves the address and the credentials without banning anyone.
        vec![Plan::send("test", None, serde_json::Value::Null)]
    }

    fn deliver<'a>(&'a self, job: &'a Job, cx: &'a DeliveryContext<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let base = self.settings.lapi_url.trim_end_matches('/');
            if job.event == "test" {
                if let Ok(mut t) = self.token.lock() {
                    *t = None;
                }
                if self.settings.push {
                    if let Err(outcome) = self.login(cx, base).await {
                        return outcome;
                    }
                }
                if self.settings.pull {
                    let result = cx
                        .http
                        .get(format!("{base}/v1/decisions"))
                        .header(
                            "X-Api-Key",
                            self.settings.bouncer_key.as_deref().unwrap_or_default(),
                        )
                        .timeout(Duration::from_millis(self.settings.timeout_ms))
                        .send()
                        .await;
                    let outcome = super::http_outcome(result).await;
                    if !matches!(outcome, Outcome::Delivered { .. }) {
                        return outcome;
                    }
                }
                return Outcome::Delivered {
                    status: Some(200),
                    note: "the LAPI accepted levee's credentials".into(),
                };
            }
            for renewed in [false, true] {
                let token = match self.login(cx, base).await {
                    Ok(t) => t,
                    Err(outcome) => return outcome,
                };
                let result = cx
                    .http
                    .post(format!("{base}/v1/alerts"))
                    .bearer_auth(token)
                    .timeout(Duration::from_millis(self.settings.timeout_ms))
                    .header("content-type", "application/json")
                    .body(job.payload.clone())
                    .send()
                    .await;
                if let Ok(resp) = &result {
                    // An expired or revoked token: log in again, once.
                    if matches!(resp.status().as_u16(), 401 | 403) && !renewed {
                        if let Ok(mut t) = self.token.lock() {
                            *t = None;
                        }
                        continue;
                    }
                }
                return match super::http_outcome(result).await {
                    Outcome::Delivered { status, .. } => Outcome::Delivered {
                        status,
                        note: format!(
                            "{} ban decision(s) pushed",
                            serde_json::from_str::<serde_json::Value>(&job.payload)
                                .ok()
                                .and_then(|v| v.as_array().map(Vec::len))
                                .unwrap_or(0)
                        ),
                    },
                    other => other,
                };
            }
            Outcome::Retry {
                status: None,
                error: "the LAPI refused a fresh token".into(),
                after: None,
            }
        })
    }
}

/// A Go duration (`3h59m58.9s`, `-2s`) in whole seconds; None if not positive.
pub fn go_duration_seconds(d: &str) -> Option<u64> {
    let d = d.trim();
    if d.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if (c == 'm' || c == 'u' || c == 'µ' || c == 'n') && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        total += value
            * match unit.as_str() {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                "ns" => 1e-9,
                _ => return None,
            };
    }
    if !number.is_empty() {
        return None;
    }
    let secs = total.ceil() as u64;
    (secs > 0).then_some(secs)
}

#[derive(Debug, Deserialize)]
struct Decision {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
    scope: String,
    value: String,
    duration: String,
    #[serde(default)]
    scenario: String,
}

/// The stream as sent: each decision is read on its own, so one that does not
/// parse is counted and the others are still enforced.
#[derive(Debug, Default, Deserialize)]
struct RawStream {
    #[serde(default)]
    new: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    deleted: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Default)]
struct Stream {
    new: Option<Vec<Decision>>,
    deleted: Option<Vec<Decision>>,
    /// Decisions that could not be read (shape, address or duration).
    malformed: u64,
}

impl Stream {
    fn parse(raw: RawStream) -> Stream {
        let mut malformed = 0;
        let mut read = |list: Option<Vec<serde_json::Value>>, need_duration: bool| {
            list.map(|l| {
                l.into_iter()
                    .filter_map(|v| match serde_json::from_value::<Decision>(v) {
                        Ok(d)
                            if normalise(&d.value).is_some()
                                && (!need_duration
                                    || go_duration_seconds(&d.duration).is_some()) =>
                        {
                            Some(d)
                        }
                        // Other kinds and scopes are not ours to judge.
                        Ok(d) if !wanted(&d) => Some(d),
                        _ => {
                            malformed += 1;
                            None
                        }
                    })
                    .collect()
            })
        };
        let new = read(raw.new, true);
        let deleted = read(raw.deleted, false);
        Stream {
            new,
            deleted,
            malformed,
        }
    }
}

/// Bans of an address or a range: what levee enforces.
fn wanted(d: &Decision) -> bool {
    d.kind.eq_ignore_ascii_case("ban")
        && (d.scope.eq_ignore_ascii_case("ip") || d.scope.eq_ignore_ascii_case("range"))
}

/// The rule origin of a pull integration's rules.
pub fn origin(integration_id: &str) -> String {
    format!("crowdsec:{integration_id}")
}

fn normalise(value: &str) -> Option<String> {
    value
        .trim()
        .parse::<levee_dataplane::tables::Prefix>()
        .ok()
        .map(|p| p.to_string())
}

/// Follow the LAPI's decision stream as a bouncer until aborted.
pub async fn pull(
    outbox: Arc<Outbox>,
    http: reqwest::Client,
    integration_id: String,
    s: CrowdsecSettings,
) {
    let origin = origin(&integration_id);
    let base = s.lapi_url.trim_end_matches('/').to_owned();
    let key = s.bouncer_key.clone().unwrap_or_default();
    // Which decisions ban each prefix: a rule ends when the last one goes.
    let mut bans: HashMap<String, HashSet<i64>> = HashMap::new();
    let mut startup = true;
    let mut failing = false;
    loop {
        let result = http
            .get(format!("{base}/v1/decisions/stream"))
            .query(&[("startup", if startup { "true" } else { "false" })])
            .header("X-Api-Key", &key)
            .timeout(Duration::from_millis(s.timeout_ms))
            .send()
            .await;
        let stream = match result {
            Ok(resp) if resp.status().is_success() => {
                super::body_json::<RawStream>(resp, super::STREAM_BODY_CAP)
                    .await
                    .map(Stream::parse)
            }
            Ok(resp) => Err(format!(
                "HTTP {}: {}",
                resp.status(),
                super::snippet(&super::body_text(resp).await)
            )),
            Err(e) => Err(super::describe(&e)),
        };
        match (stream, outbox.enforcer()) {
            (Ok(stream), Some(enforcer)) => {
                if failing {
                    tracing::info!(
                        integration = integration_id,
                        "CrowdSec decision stream reachable again"
                    );
                    failing = false;
                }
                apply(&*enforcer, &origin, &mut bans, stream, startup);
                startup = false;
            }
            (Ok(_), None) => {}
            (Err(e), _) => {
                if !failing {
                    tracing::warn!(
                        integration = integration_id,
                        "CrowdSec decision stream: {e}; retrying every {} s",
                        s.pull_interval_seconds
                    );
                    failing = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(s.pull_interval_seconds)).await;
    }
}

fn apply(
    enforcer: &dyn super::Enforcer,
    origin: &str,
    bans: &mut HashMap<String, HashSet<i64>>,
    stream: Stream,
    startup: bool,
) {
    if stream.malformed > 0 {
        tracing::warn!(
            origin,
            count = stream.malformed,
            "CrowdSec decisions that could not be read were left out"
        );
        enforcer.malformed(origin, stream.malformed);
    }
    if startup {
        bans.clear();
    }
    for d in stream
        .deleted
        .unwrap_or_default()
        .iter()
        .filter(|d| wanted(d))
    {
        if let Some(prefix) = normalise(&d.value) {
            if let Some(ids) = bans.get_mut(&prefix) {
                ids.remove(&d.id);
            }
        }
    }
    let mut ttl: HashMap<String, (u64, String)> = HashMap::new();
    for d in stream.new.unwrap_or_default().iter().filter(|d| wanted(d)) {
        let (Some(prefix), Some(secs)) = (normalise(&d.value), go_duration_seconds(&d.duration))
        else {
            continue;
        };
        bans.entry(prefix.clone()).or_default().insert(d.id);
        let entry = ttl.entry(prefix).or_insert((0, d.scenario.clone()));
        entry.0 = entry.0.max(secs);
    }
    bans.retain(|_, ids| !ids.is_empty());
    let active = match enforcer.rules_from(origin) {
        Ok(active) => active,
        Err(e) => {
            tracing::warn!("CrowdSec: decisions not applied: {e}");
            return;
        }
    };
    let active: HashMap<String, u32> = active
        .into_iter()
        .filter_map(|(id, source)| normalise(&source).map(|p| (p, id)))
        .collect();
    for (prefix, rule) in &active {
        if !bans.contains_key(prefix) {
            if let Err(e) = enforcer.unblock(*rule) {
                tracing::warn!("CrowdSec: ending rule {rule} for {prefix}: {e}");
            } else {
                tracing::info!(prefix, rule, "CrowdSec decision gone: unblocked");
            }
        }
    }
    for (prefix, (secs, scenario)) in ttl {
        if active.contains_key(&prefix) || !bans.contains_key(&prefix) {
            continue;
        }
        let reason = format!(
            "CrowdSec decision ({})",
            if scenario.is_empty() {
                "manual"
            } else {
                &scenario
            }
        );
        match enforcer.block(origin, &prefix, secs, reason) {
            Ok(rule) => tracing::info!(prefix, rule, ttl_s = secs, "CrowdSec ban enforced"),
            Err(e) => tracing::warn!(prefix, "CrowdSec ban not enforced: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_in_seconds() {
        assert_eq!(go_duration_seconds("4h"), Some(14_400));
        assert_eq!(go_duration_seconds("3h59m58.2s"), Some(14_399));
        assert_eq!(go_duration_seconds("1m500ms"), Some(61));
        assert_eq!(go_duration_seconds("-3s"), None);
        assert_eq!(go_duration_seconds("0s"), None);
        assert_eq!(go_duration_seconds("4 hours"), None);
        assert_eq!(go_duration_seconds("12"), None);
    }

    #[test]
    fn scenarios_are_named_after_the_attack() {
        assert_eq!(scenario("NTP Amplification"), "levee/ntp-amplification");
        assert_eq!(scenario("Multi-vector"), "levee/multi-vector");
        assert_eq!(scenario("SYN Flood"), "levee/syn-flood");
    }

    /// Records what the pull asks of the mitigator.
    #[derive(Default)]
    struct Recorder {
        blocked: std::sync::Mutex<Vec<String>>,
        malformed: std::sync::Mutex<u64>,
    }

    impl crate::integrations::Enforcer for Recorder {
        fn block(&self, _: &str, source: &str, _: u64, _: String) -> Result<u32, String> {
            let mut b = self.blocked.lock().map_err(|e| e.to_string())?;
            b.push(source.into());
            Ok(b.len() as u32)
        }
        fn unblock(&self, _: u32) -> Result<(), String> {
            Ok(())
        }
        fn rules_from(&self, _: &str) -> Result<Vec<(u32, String)>, String> {
            Ok(Vec::new())
        }
        fn export(&self, _: crate::mitigate::export::ExportFormat) -> Result<String, String> {
            Ok(String::new())
        }
        fn inline(&self) -> bool {
            true
        }
        fn malformed(&self, _: &str, count: u64) {
            if let Ok(mut m) = self.malformed.lock() {
                *m += count;
            }
        }
        fn upstream(&self) -> Result<crate::integrations::bgp::UpstreamState, String> {
            Ok(Default::default())
        }
    }

    #[test]
    fn a_malformed_decision_is_counted_and_the_others_enforced() {
        let body = r#"{"new": [
            {"id": 1, "type": "ban", "scope": "Ip", "value": "203.0.113.7", "duration": "3h59m"},
            {"id": 2, "type": "ban", "scope": "Ip", "value": "not an address", "duration": "4h"},
            {"id": 3, "type": "ban", "scope": "Range", "value": "198.51.100.0/24"},
            {"id": "four", "type": "ban"},
            {"id": 5, "type": "captcha", "scope": "Ip", "value": "192.0.2.1", "duration": "4h"},
            {"id": 6, "type": "ban", "scope": "Range", "value": "203.0.114.0/24", "duration": "1h"}
        ], "deleted": null}"#;
        let raw: RawStream = serde_json::from_str(body).expect("the stream's shape");
        let stream = Stream::parse(raw);
        assert_eq!(stream.malformed, 3);
        let recorder = Recorder::default();
        let mut bans = HashMap::new();
        apply(&recorder, "crowdsec:int_x", &mut bans, stream, true);
        let mut blocked = recorder.blocked.lock().expect("lock").clone();
        blocked.sort();
        assert_eq!(blocked, ["203.0.113.7/32", "203.0.114.0/24"]);
        assert_eq!(*recorder.malformed.lock().expect("lock"), 3);
    }
}
