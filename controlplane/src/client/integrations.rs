//! `levee integrations list|show|add|test|deliveries|approve|delete`.

use serde_json::{Map, Value};

use super::{cell, rows, table, Client};
use crate::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Integrations, with their kind and delivery counts.
    List,
    /// One integration's settings (secrets only as `*_set`).
    Show { id: String },
    /// Add an integration: `levee integrations add webhook --name ops --set
    /// url=https://hooks.example/levee --set 'headers={"X-Team":"noc"}'`.
    /// A webhook's signing secret is printed once.
    Add {
        /// webhook, abuseipdb, crowdsec, iptables or bgp.
        kind: String,
        #[arg(long)]
        name: String,
        /// A setting as KEY=VALUE; VALUE is read as JSON when it parses
        /// (numbers, true/false, objects), else as text. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Send a sample delivery now (see `deliveries` for how it went).
    Test { id: String },
    /// The delivery log, newest first.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Approve announcing an incident upstream (a bgp integration with
    /// `when = "approval"`).
    Approve { id: String, incident_id: String },
    /// Remove an integration added through the API.
    Delete { id: String },
}

const HEADER: &[&str] = &["ID", "NAME", "KIND", "ENABLED", "ORIGIN", "TARGET"];

fn row(i: &Value) -> Vec<String> {
    let target = ["url", "base_url", "lapi_url", "host_apply"]
        .iter()
        .map(|k| &i[*k])
        .find(|v| !v.is_null())
        .map(cell)
        .unwrap_or_default();
    vec![
        cell(&i["id"]),
        cell(&i["name"]),
        cell(&i["kind"]),
        cell(&i["enabled"]),
        cell(&i["origin"]),
        target,
    ]
}

fn settings(
    kind: String,
    name: String,
    pairs: &[String],
    disabled: bool,
) -> Result<Value, Failure> {
    let mut body = Map::new();
    body.insert("kind".into(), kind.into());
    body.insert("name".into(), name.into());
    if disabled {
        body.insert("enabled".into(), false.into());
    }
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::Usage(anyhow::anyhow!("--set {pair:?}: expected KEY=VALUE")))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        body.insert(key.trim().into(), value);
    }
    Ok(Value::Object(body))
}

pub fn run(client: &Client, action: Action) -> Result<(), Failure> {
    match action {
        Action::List => {
            let v = client.get("/api/v1/integrations", &[])?;
            client.print(&v, |v| {
                let rows: Vec<Vec<String>> = rows(&v["integrations"], row);
                table(HEADER, &rows)
            });
        }
        Action::Show { id } => {
            let v = client.get(&format!("/api/v1/integrations/{id}"), &[])?;
            client.print(&v, |v| {
                format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
            });
        }
        Action::Add {
            kind,
            name,
            settings: pairs,
            disabled,
        } => {
            let body = settings(kind, name, &pairs, disabled)?;
            let v = client.post("/api/v1/integrations", &body)?;
            client.print(&v, |v| {
                let mut out = table(HEADER, &[row(v)]);
                if let Some(secret) = v["secret"].as_str() {
                    out.push_str(&format!(
                        "signing secret (shown this once; receivers check X-Levee-Signature with it):\n{secret}\n"
                    ));
                }
                out
            });
        }
        Action::Test { id } => {
            let v = client.post_empty(&format!("/api/v1/integrations/{id}/test"))?;
            client.print(&v, |v| {
                format!(
                    "test queued as delivery {}; see `levee integrations deliveries {id}`\n",
                    cell(&v["deliveries"][0])
                )
            });
        }
        Action::Deliveries { id, limit } => {
            let v = client.get(
                &format!("/api/v1/integrations/{id}/deliveries"),
                &[("limit", limit.to_string())],
            )?;
            client.print(&v, |v| {
                let rows: Vec<Vec<String>> = rows(&v["deliveries"], |d| {
                    let last = d["log"]
                        .as_array()
                        .and_then(|l| l.last())
                        .cloned()
                        .unwrap_or_default();
                    vec![
                        cell(&d["id"]),
                        cell(&d["event"]),
                        cell(&d["incident_id"]),
                        cell(&d["subject"]),
                        cell(&d["state"]),
                        cell(&d["attempts"]),
                        cell(&d["last_status"]),
                        cell(&last["result"]),
                    ]
                });
                table(
                    &[
                        "ID", "EVENT", "INCIDENT", "SUBJECT", "STATE", "ATTEMPTS", "STATUS",
                        "RESULT",
                    ],
                    &rows,
                )
            });
        }
        Action::Approve { id, incident_id } => {
            let body = serde_json::json!({ "incident_id": incident_id });
            let v = client.post(&format!("/api/v1/integrations/{id}/approve"), &body)?;
            client.print(&v, |_| {
                format!("{incident_id}: approved; its routes are announced within a second\n")
            });
        }
        Action::Delete { id } => {
            let v = client.delete(&format!("/api/v1/integrations/{id}"))?;
            client.print(&v, |v| table(HEADER, &[row(v)]));
        }
    }
    Ok(())
}
