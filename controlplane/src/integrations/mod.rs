//! Integrations: where incidents go once levee has acted on them. Each kind is a
//! [`Sink`]: it plans deliveries for an incident event (no I/O, on the control
//! thread) and later delivers one of them (HTTP, on the outbox's own threads).
//! Between the two, every delivery is a row in the store ([`outbox`]), so a slow
//! or dead receiver never slows the dataplane or the detector, and a restart
//! loses nothing.

pub mod abuseipdb;
pub mod bgp;
pub mod crowdsec;
pub mod iptables;
pub mod outbox;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::detect::IncidentEvent;
use crate::mitigate::export::ExportFormat;

pub use outbox::{IntegrationError, Outbox, OutboxRuntime};

/// The incident events an integration can subscribe to.
pub const EVENTS: [&str; 3] = ["incident.created", "incident.updated", "incident.resolved"];

/// An integration's kind and settings. The same shape is read from the
/// configuration file (`[[integration]]`) and from the API.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Settings {
    Webhook(webhook::WebhookSettings),
    Abuseipdb(abuseipdb::AbuseIpdbSettings),
    Crowdsec(crowdsec::CrowdsecSettings),
    Iptables(iptables::IptablesSettings),
    Bgp(bgp::BgpSettings),
}

impl Settings {
    pub fn kind(&self) -> &'static str {
        match self {
            Settings::Webhook(_) => "webhook",
            Settings::Abuseipdb(_) => "abuseipdb",
            Settings::Crowdsec(_) => "crowdsec",
            Settings::Iptables(_) => "iptables",
            Settings::Bgp(_) => "bgp",
        }
    }

    /// What is wrong with the settings, as one message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Settings::Webhook(s) => s.validate(),
            Settings::Abuseipdb(s) => s.validate(),
            Settings::Crowdsec(s) => s.validate(),
            Settings::Iptables(s) => s.validate(),
            Settings::Bgp(s) => s.validate(),
        }
    }

    /// Whether the secrets the settings cannot work without are there; the
    /// error names the one missing.
    pub fn require_secrets(&self) -> Result<(), String> {
        let missing = match self {
            Settings::Abuseipdb(s) if s.api_key.is_none() => Some("api_key"),
            Settings::Crowdsec(s) => s.missing_secret(),
            _ => None,
        };
        missing.map_or(Ok(()), |secret| Err(format!("{secret} is required")))
    }

    /// The write-only fields: never returned by the API.
    fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Option<String>)> {
        match self {
            Settings::Webhook(s) => vec![("secret", &mut s.secret)],
            Settings::Abuseipdb(s) => vec![("api_key", &mut s.api_key)],
            Settings::Crowdsec(s) => vec![
                ("password", &mut s.password),
                ("bouncer_key", &mut s.bouncer_key),
            ],
            Settings::Iptables(_) | Settings::Bgp(_) => vec![],
        }
    }

    /// Secrets left out of an update keep their earlier values.
    pub fn keep_secrets_from(&mut self, mut old: Settings) {
        if self.kind() != old.kind() {
            return;
        }
        let olds: Vec<Option<String>> = old
            .secrets_mut()
            .into_iter()
            .map(|(_, v)| v.take())
            .collect();
        for ((_, new), old) in self.secrets_mut().into_iter().zip(olds) {
            if new.is_none() {
                *new = old;
            }
        }
    }

    pub fn sink(&self) -> Arc<dyn Sink> {
        match self {
            Settings::Webhook(s) => Arc::new(webhook::Webhook::new(s.clone())),
            Settings::Abuseipdb(s) => Arc::new(abuseipdb::AbuseIpdb::new(s.clone())),
            Settings::Crowdsec(s) => Arc::new(crowdsec::CrowdsecPush::new(s.clone())),
            Settings::Iptables(s) => Arc::new(iptables::Iptables::new(s.clone())),
            Settings::Bgp(s) => Arc::new(bgp::Bgp::new(s.clone())),
        }
    }
}

/// Who defined an integration: the configuration file's are read-only through
/// the API (the file would bring them back at the next start).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Config,
    Api,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Integration {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub origin: Origin,
    pub created_at: String,
    #[serde(flatten)]
    pub settings: Settings,
}

impl Integration {
    /// A new integration with a fresh id, created now.
    pub fn new(name: String, enabled: bool, origin: Origin, settings: Settings) -> Integration {
        Integration {
            id: crate::ids::random_hex("int_", 6),
            name,
            enabled,
            origin,
            created_at: rfc3339_ms(crate::clock::wall_ms()),
            settings,
        }
    }

    /// The integration as the API shows it: secrets replaced by `<name>_set`.
    /// As the API shows it, with a just-made secret if there is one.
    pub fn view(&self, secret: Option<String>) -> crate::resources::integrations::IntegrationView {
        let mut settings = match self.redacted() {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let mut text = |key: &str| match settings.remove(key) {
            Some(serde_json::Value::String(s)) => s,
            _ => String::new(),
        };
        let (kind, origin) = (text("kind"), text("origin"));
        for key in ["id", "name", "enabled", "created_at"] {
            settings.remove(key);
        }
        crate::resources::integrations::IntegrationView {
            id: self.id.clone(),
            name: self.name.clone(),
            kind,
            enabled: self.enabled,
            origin,
            created_at: self.created_at.clone(),
            secret,
            settings,
        }
    }

    pub fn redacted(&self) -> serde_json::Value {
        let mut copy = self.clone();
        let set: Vec<(&'static str, bool)> = copy
            .settings
            .secrets_mut()
            .into_iter()
            .map(|(name, v)| (name, v.take().is_some()))
            .collect();
        let mut value = serde_json::to_value(&copy).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            for (name, is_set) in set {
                map.remove(name);
                map.insert(format!("{name}_set"), is_set.into());
            }
        }
        value
    }
}

/// An integration as written by an operator: `name`, optional `enabled`, `kind`
/// and the kind's fields.
#[derive(Clone, Debug)]
pub struct IntegrationSpec {
    pub name: String,
    pub enabled: bool,
    pub settings: Settings,
}

impl IntegrationSpec {
    /// Read a spec from a JSON object (the API's body, or a configuration
    /// table turned into JSON); the error names the field.
    pub fn parse(value: serde_json::Value) -> Result<IntegrationSpec, String> {
        let serde_json::Value::Object(mut map) = value else {
            return Err("an integration is an object with name, kind and its settings".into());
        };
        let name = match map.remove("name") {
            Some(serde_json::Value::String(n)) => n,
            Some(_) => return Err("name: must be a string".into()),
            None => return Err("name is required".into()),
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "name: {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        let enabled = match map.remove("enabled") {
            None => true,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err("enabled: must be true or false".into()),
        };
        if !map.contains_key("kind") {
            return Err("kind is required: webhook, abuseipdb, crowdsec, iptables or bgp".into());
        }
        let settings: Settings =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
        settings.validate()?;
        Ok(IntegrationSpec {
            name,
            enabled,
            settings,
        })
    }
}

/// A delivery an incident event calls for.
#[derive(Clone, Debug)]
pub struct Plan {
    pub event: String,
    pub incident_id: Option<String>,
    pub subject: Option<String>,
    pub payload: serde_json::Value,
    /// Set when nothing is to be sent, with the reason for the log.
    pub skip: Option<String>,
}

impl Plan {
    /// Nothing to send for this incident event, and the log says why.
    pub fn skip(event: &str, incident_id: &str, reason: String) -> Plan {
        Plan {
            event: event.into(),
            incident_id: Some(incident_id.into()),
            subject: None,
            payload: serde_json::Value::Null,
            skip: Some(reason),
        }
    }

    pub fn send(event: &str, incident_id: Option<&str>, payload: serde_json::Value) -> Plan {
        Plan {
            event: event.into(),
            incident_id: incident_id.map(Into::into),
            subject: None,
            payload,
            skip: None,
        }
    }
}

/// One delivery taken from the outbox.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: i64,
    pub event: String,
    pub subject: Option<String>,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How an attempt went.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered {
        status: Option<u16>,
        note: String,
    },
    /// Worth another attempt (timeouts, 5xx, 429), after `after` if the server said.
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// Not worth another attempt (a 4xx, a refused setting).
    Failed {
        status: Option<u16>,
        error: String,
    },
    Skipped {
        reason: String,
    },
    /// Not an attempt: wait until then (a quota), without counting.
    Defer {
        until_ms: u64,
        reason: String,
    },
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a delivery may use besides its own settings.
#[derive(Debug)]
pub struct DeliveryContext<'a> {
    pub http: &'a reqwest::Client,
    pub outbox: &'a Outbox,
    pub integration_id: &'a str,
    pub now_ms: u64,
}

/// One kind of integration.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The deliveries an incident event calls for. Runs on the control thread:
    /// no I/O.
    fn plan(&self, event: &IncidentEvent) -> Vec<Plan>;

    /// What the test action sends: a sample of what real events would.
    fn sample(&self, node_id: &str) -> Vec<Plan>;

    /// The deliveries a change of the rules in force calls for, between
    /// incident events (an attacker found later, an operator's rule). At most
    /// one of each waits at a time. Runs on the control thread: no I/O.
    fn plan_rules_changed(&self) -> Vec<Plan> {
        Vec::new()
    }

    /// Attempt one delivery.
    fn deliver<'a>(&'a self, job: &'a Job, cx: &'a DeliveryContext<'a>) -> BoxFuture<'a, Outcome>;

    /// Attempts before a delivery is given up (the first one included).
    fn max_attempts(&self) -> u32 {
        4
    }

    /// Wait before attempt `n + 1` after `n` failed ones: exponential, with
    /// jitter so many deliveries do not retry in step.
    fn backoff(&self, attempts: u32) -> Duration {
        backoff(Duration::from_secs(1), attempts)
    }
}

/// `base * 2^(attempts-1)`, between 75% and 125% of it, at most 10 minutes.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
    let exp = exp.min(Duration::from_secs(600));
    let r = crate::ids::random_bytes(2);
    let jitter = f64::from(u16::from_le_bytes([r[0], r[1]])) / f64::from(u16::MAX); // 0..=1
    exp.mul_f64(0.75 + 0.5 * jitter)
}

/// What a delivery to an HTTP endpoint came to, by the usual rules: 2xx
/// delivered; 429 and 5xx retried (after Retry-After when given); other 4xx
/// failed; no answer (timeout, refused) retried.
pub async fn http_outcome(result: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    match result {
        Ok(resp) => {
            let status = resp.status();
            let code = Some(status.as_u16());
            let after = retry_after(&resp);
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let body = snippet(&body_text(resp).await);
            if status.is_redirection() {
                // Never followed: the request carries signatures and keys
                // meant for this receiver only.
                return Outcome::Failed {
                    status: code,
                    error: format!(
                        "HTTP {status}: redirects are not followed (Location: {}); point the integration at the final URL",
                        location.as_deref().unwrap_or("none")
                    ),
                };
            }
            if status.is_success() {
                Outcome::Delivered {
                    status: code,
                    note: format!("HTTP {status}"),
                }
            } else if status.as_u16() == 429 || status.is_server_error() {
                Outcome::Retry {
                    status: code,
                    error: format!("HTTP {status}: {body}"),
                    after,
                }
            } else {
                Outcome::Failed {
                    status: code,
                    error: format!("HTTP {status}: {body}"),
                }
            }
        }
        Err(e) => Outcome::Retry {
            status: None,
            error: describe(&e),
            after: None,
        },
    }
}

/// A reqwest error with its causes (the top level alone says little).
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The first line of a response body, short enough for a log.
/// Response bodies are read this far at most: a hostile or broken receiver
/// cannot make levee buffer without bound (the rest is left unread).
pub const BODY_CAP: usize = 1 << 20;
/// A pulled decision stream may be larger (a big shared blocklist).
pub const STREAM_BODY_CAP: usize = 64 << 20;

/// A response's body, at most `cap` bytes of it, and whether it was longer.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return (body, true);
        }
        body.extend_from_slice(&chunk);
    }
    (body, false)
}

/// A response's body as text (at most [`BODY_CAP`]).
pub async fn body_text(resp: reqwest::Response) -> String {
    let (body, _) = read_capped(resp, BODY_CAP).await;
    String::from_utf8_lossy(&body).into_owned()
}

/// A response's body as JSON (at most `cap`), or why it is not.
pub async fn body_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    cap: usize,
) -> Result<T, String> {
    let (body, cut) = read_capped(resp, cap).await;
    if cut {
        return Err(format!("the response body is over {} MiB", cap >> 20));
    }
    serde_json::from_slice(&body).map_err(|e| format!("the response is not the JSON expected: {e}"))
}

pub fn snippet(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs; ignored).
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(86_400)))
}

/// What levee offers integrations that act on its own rules (CrowdSec's pull,
/// the host firewall); implemented by the running appliance.
pub trait Enforcer: Send + Sync {
    /// Block a source through the mitigator (allowlist and caps apply); the rule id.
    fn block(&self, origin: &str, source: &str, ttl_s: u64, reason: String) -> Result<u32, String>;
    /// End a rule this origin added.
    fn unblock(&self, rule_id: u32) -> Result<(), String>;
    /// Active rules an origin added: (rule id, blocked source).
    fn rules_from(&self, origin: &str) -> Result<Vec<(u32, String)>, String>;
    /// The active rules as firewall text.
    fn export(&self, format: ExportFormat) -> Result<String, String>;
    fn inline(&self) -> bool;
    /// Count decisions an origin pulled that could not be read (for /metrics).
    fn malformed(&self, origin: &str, count: u64);
    /// What upstream signalling (BGP) decides from: the open and recently
    /// resolved incidents, the rules, the protected networks.
    fn upstream(&self) -> Result<bgp::UpstreamState, String>;
}

/// A webhook signing secret: `whsec_` and 64 hex digits.
pub fn generate_secret() -> String {
    crate::ids::random_hex("whsec_", 32)
}

/// An `http(s)://` URL, or what is wrong with it.
pub fn check_url(field: &str, url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{field}: {url:?} is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{field}: {url:?} must be an http:// or https:// URL"
        ));
    }
    Ok(parsed)
}

/// Milliseconds since the Unix epoch as RFC 3339 with milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    crate::clock::rfc3339_ms(ms.saturating_mul(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_what_is_wrong() {
        let err = |v: serde_json::Value| IntegrationSpec::parse(v).err().unwrap_or_default();
        assert_eq!(
            err(serde_json::json!({"kind": "webhook"})),
            "name is required"
        );
        assert!(err(serde_json::json!({"name": "a b", "kind": "webhook"})).starts_with("name:"));
        assert!(
            err(serde_json::json!({"name": "x", "kind": "fax"})).contains("unknown variant `fax`")
        );
        assert!(err(serde_json::json!({"name": "x", "kind": "webhook", "url": "http://127.0.0.1/", "colour": 1}))
            .contains("unknown field `colour`"));
        assert!(
            err(serde_json::json!({"name": "x", "kind": "webhook", "url": "ftp://h/"}))
                .starts_with("url:")
        );
        let ok = IntegrationSpec::parse(serde_json::json!({
            "name": "ops", "kind": "webhook", "url": "https://hooks.example/levee", "enabled": false
        }))
        .expect("valid");
        assert!(!ok.enabled);
        assert_eq!(ok.settings.kind(), "webhook");
    }

    #[test]
    fn secrets_are_never_shown_and_survive_updates_that_leave_them_out() {
        let spec = IntegrationSpec::parse(serde_json::json!({
            "name": "abuse", "kind": "abuseipdb", "api_key": "k-123"
        }))
        .expect("valid");
        let integration = Integration {
            id: "int_1".into(),
            name: spec.name,
            enabled: true,
            origin: Origin::Api,
            created_at: String::new(),
            settings: spec.settings.clone(),
        };
        let shown = integration.redacted();
        assert_eq!(shown["api_key_set"], true);
        assert!(shown.get("api_key").is_none());
        assert!(!shown.to_string().contains("k-123"));

        let mut update = IntegrationSpec::parse(serde_json::json!({
            "name": "abuse", "kind": "abuseipdb", "daily_quota": 50
        }))
        .expect("valid")
        .settings;
        update.keep_secrets_from(spec.settings);
        match update {
            Settings::Abuseipdb(s) => {
                assert_eq!(s.api_key.as_deref(), Some("k-123"));
                assert_eq!(s.daily_quota, 50);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_ceiling() {
        for attempts in 1..6u32 {
            let d = backoff(Duration::from_millis(100), attempts);
            let nominal = 100.0 * f64::from(1u32 << (attempts - 1));
            let ms = d.as_secs_f64() * 1000.0;
            assert!(
                ms >= nominal * 0.74 && ms <= nominal * 1.26,
                "{attempts}: {ms}"
            );
        }
        assert!(backoff(Duration::from_secs(1), 40) <= Duration::from_secs(750));
    }
}
