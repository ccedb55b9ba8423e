//! `/api/v1/integrations`: an integration as shown (secrets as `<name>_set`),
//! a new one, its delivery log, a test and an approval.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::store::DeliveryRecord;

/// An integration: these fields, and its kind's settings next to them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationView {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    /// `config` or `api`.
    pub origin: String,
    pub created_at: String,
    /// A webhook's signing secret, only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The kind's settings (write-only secrets as `<name>_set` booleans).
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

/// `GET /api/v1/integrations`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationView>,
}

/// The body of `POST /api/v1/integrations` (and `PUT .../{id}`): a name, a
/// kind and the kind's settings; the server checks them and names the field
/// it refuses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewIntegration {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

/// `GET /api/v1/integrations/{id}/deliveries`: newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryRecord>,
    pub total: u64,
}

/// `POST /api/v1/integrations/{id}/test`: the deliveries queued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestQueued {
    pub deliveries: Vec<i64>,
    /// Where their log is.
    pub log: String,
}

/// The body of `POST /api/v1/integrations/{id}/approve`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub incident_id: String,
}

/// Its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approved {
    pub integration_id: String,
    pub incident_id: String,
    pub approved: bool,
}
