//! `/api/v1/incidents`: an incident as shown, a page of them, one with its
//! events and rules.
//!
//! An incident is shown from its latest recorded event, which may have been
//! written by an earlier levee: every field but the id has a default, and
//! what this version does not name is carried as it was recorded.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::rules::RuleView;

/// An incident's latest state: the fields of its last event (without `event`
/// and `at`), its status, and where its forensic capture is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub incident_id: String,
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub attack_type: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub target: String,
    /// `open` or `resolved`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub peak_pps: u64,
    #[serde(default)]
    pub peak_bps: u64,
    #[serde(default)]
    pub duration_seconds: u64,
    #[serde(default)]
    pub attacker_ips: Vec<String>,
    #[serde(default)]
    pub attackers_total: u64,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub resolved_at: Option<String>,
    #[serde(default)]
    pub spoofing_likely: bool,
    #[serde(default)]
    pub carpet_bombing: bool,
    /// The download path of the capture, if one was written.
    #[serde(default)]
    pub forensic_pcap: Option<String>,
    /// The rest of the event as recorded (vectors, confidence...).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl IncidentView {
    /// The view of a recorded event payload; `None` if it is not an
    /// incident's (no id).
    pub fn of(
        mut event: Value,
        status: &str,
        forensic_pcap: Option<String>,
    ) -> Option<IncidentView> {
        let o = event.as_object_mut()?;
        o.remove("event");
        o.remove("at");
        o.insert("status".into(), Value::from(status));
        o.insert(
            "forensic_pcap".into(),
            forensic_pcap.map_or(Value::Null, Value::from),
        );
        serde_json::from_value(event).ok()
    }
}

/// `GET /api/v1/incidents`: one page, newest first, and how many match.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncidentList {
    pub incidents: Vec<IncidentView>,
    pub total: u64,
}

/// One event of an incident, as recorded (the payload integrations get).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub event: String,
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub attack_type: String,
    #[serde(default)]
    pub peak_pps: u64,
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// `GET /api/v1/incidents/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncidentDetail {
    pub incident: IncidentView,
    pub events: Vec<EventView>,
    pub rules: Vec<RuleView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_written_by_an_earlier_levee_is_still_shown() {
        let old = serde_json::json!({
            "event": "incident.created", "at": "2026-01-01T00:00:00Z",
            "incident_id": "inc_x_0001", "target": "10.0.0.1", "attack_type": "UDP Flood",
            "severity": "high", "peak_pps": 5000, "started_at": "2026-01-01T00:00:00Z",
            "confidence": 0.9
        });
        let view = IncidentView::of(old, "open", None).expect("an incident");
        assert_eq!(view.incident_id, "inc_x_0001");
        assert_eq!(view.peak_pps, 5000);
        assert_eq!(view.attackers_total, 0);
        assert_eq!(
            view.details.get("confidence"),
            Some(&serde_json::json!(0.9))
        );
        let shown = serde_json::to_value(&view).expect("json");
        assert!(
            shown.get("event").is_none() && shown.get("at").is_none(),
            "{shown}"
        );
        assert_eq!(shown["status"], "open");
        assert!(IncidentView::of(serde_json::json!({"target": "x"}), "open", None).is_none());
    }
}
