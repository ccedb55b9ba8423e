//! `levee integrations list|show|add|test|deliveries|approve|delete`.

use serde_json::{Map, Value};

use super::{table, Client};
use crate::resources::integrations::{
    Approval, Approved, DeliveryList, IntegrationList, IntegrationView, NewIntegration, TestQueued,
};
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

fn row(i: &IntegrationView) -> Vec<String> {
    let target = ["url", "base_url", "lapi_url", "host_apply", "gobgp"]
        .iter()
        .find_map(|k| i.settings.get(*k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "-".into());
    vec![
        i.id.clone(),
        i.name.clone(),
        i.kind.clone(),
        i.enabled.to_string(),
        i.origin.clone(),
        target,
    ]
}

fn new_integration(
    kind: String,
    name: String,
    pairs: &[String],
    disabled: bool,
) -> Result<NewIntegration, Failure> {
    let mut settings = Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::Usage(anyhow::anyhow!("--set {pair:?}: expected KEY=VALUE")))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        settings.insert(key.trim().into(), value);
    }
    Ok(NewIntegration {
        name,
        kind,
        enabled: disabled.then_some(false),
        settings,
    })
}

pub fn run(client: &Client, action: Action) -> Result<(), Failure> {
    match action {
        Action::List => {
            let v = client.get("/api/v1/integrations", &[])?;
            client.print_as(&v, |list: IntegrationList| {
                let rows: Vec<Vec<String>> = list.integrations.iter().map(row).collect();
                table(HEADER, &rows)
            })?;
        }
        Action::Show { id } => {
            let v = client.get(&format!("/api/v1/integrations/{id}"), &[])?;
            client.print_as(&v, |i: IntegrationView| {
                format!("{}\n", serde_json::to_string_pretty(&i).unwrap_or_default())
            })?;
        }
        Action::Add {
            kind,
            name,
            settings: pairs,
            disabled,
        } => {
            let body = new_integration(kind, name, &pairs, disabled)?;
            let v = client.post("/api/v1/integrations", &body)?;
            client.print_as(&v, |i: IntegrationView| {
                let mut out = table(HEADER, &[row(&i)]);
                if let Some(secret) = &i.secret {
                    out.push_str(&format!(
                        "signing secret (shown this once; receivers check X-Levee-Signature with it):\n{secret}\n"
                    ));
                }
                out
            })?;
        }
        Action::Test { id } => {
            let v = client.post_empty(&format!("/api/v1/integrations/{id}/test"))?;
            client.print_as(&v, |t: TestQueued| {
                let ids: Vec<String> = t.deliveries.iter().map(i64::to_string).collect();
                format!(
                    "test queued as delivery {}; see `levee integrations deliveries {id}`\n",
                    ids.join(", ")
                )
            })?;
        }
        Action::Deliveries { id, limit } => {
            let v = client.get(
                &format!("/api/v1/integrations/{id}/deliveries"),
                &[("limit", limit.to_string())],
            )?;
            client.print_as(&v, |list: DeliveryList| {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                let rows: Vec<Vec<String>> = list
                    .deliveries
                    .iter()
                    .map(|d| {
                        let result = d
                            .log
                            .as_array()
                            .and_then(|l| l.last())
                            .and_then(|l| l["result"].as_str())
                            .map(str::to_owned);
                        vec![
                            d.id.to_string(),
                            d.event.clone(),
                            opt(d.incident_id.clone()),
                            opt(d.subject.clone()),
                            d.state.clone(),
                            d.attempts.to_string(),
                            opt(d.last_status.map(|s| s.to_string())),
                            opt(result),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID", "EVENT", "INCIDENT", "SUBJECT", "STATE", "ATTEMPTS", "STATUS",
                        "RESULT",
                    ],
                    &rows,
                )
            })?;
        }
        Action::Approve { id, incident_id } => {
            let body = Approval { incident_id };
            let v = client.post(&format!("/api/v1/integrations/{id}/approve"), &body)?;
            client.print_as(&v, |a: Approved| {
                format!(
                    "{}: approved; its routes are announced within a second\n",
                    a.incident_id
                )
            })?;
        }
        Action::Delete { id } => {
            let v = client.delete(&format!("/api/v1/integrations/{id}"))?;
            client.print_as(&v, |i: IntegrationView| table(HEADER, &[row(&i)]))?;
        }
    }
    Ok(())
}
