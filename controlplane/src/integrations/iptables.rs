//! The iptables integration: DROP rules for attacker IPs, generated with the
//! incident. Whether they apply at once or wait staged for review, and whether
//! they end when the incident resolves, is the mitigator's `[mitigation]`
//! `auto_apply` and `keep_after_resolve`: the rules themselves are levee's own.
//!
//! In inline mode they live in levee's dataplane blocklist and this
//! integration only records them. With `host_apply` (opt-in, for monitor mode
//! where levee forwards nothing) every incident event also writes the active
//! rules to the host's firewall: `iptables-restore`/`ip6tables-restore` into
//! the LEVEE chain (jumped to from INPUT and FORWARD), or `nft -f` into the
//! `inet levee` table. Each sync replaces the previous one, so rules that
//! ended leave the host too.

use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use super::{BoxFuture, DeliveryContext, Job, Outcome, Plan, Sink};
use crate::detect::IncidentEvent;
use crate::mitigate::export::{ExportFormat, CHAIN};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HostApply {
    /// Rules stay in levee's dataplane (and its export).
    #[default]
    None,
    Iptables,
    Nftables,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IptablesSettings {
    #[serde(default)]
    pub host_apply: HostApply,
}

impl IptablesSettings {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug)]
pub struct Iptables {
    settings: IptablesSettings,
    /// One host sync at a time: each reads levee's rules and then writes them,
    /// so a sync that read earlier can never finish after, and undo, a later one.
    syncing: tokio::sync::Mutex<()>,
}

impl Iptables {
    pub fn new(settings: IptablesSettings) -> Iptables {
        Iptables {
            settings,
            syncing: tokio::sync::Mutex::new(()),
        }
    }
}

/// Run `program args` with `input` on stdin; its stderr on failure.
async fn run(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| format!("{program} took over 30 s"))?
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Make sure traffic passes through the LEVEE chain, then load its rules.
/// The jumps come first: a rule that is in the chain is in force at once, on
/// both hooks, never on INPUT alone while FORWARD waits for its jump.
async fn sync_iptables(tool: &str, text: &str) -> Result<(), String> {
    if run(tool, &["-n", "-L", CHAIN], "").await.is_err() {
        run(tool, &["-N", CHAIN], "").await?;
    }
    for hook in ["INPUT", "FORWARD"] {
        if run(tool, &["-C", hook, "-j", CHAIN], "").await.is_err() {
            run(tool, &["-I", hook, "-j", CHAIN], "").await?;
        }
    }
    run(&format!("{tool}-restore"), &["--noflush"], text).await
}

impl Sink for Iptables {
    fn plan(&self, e: &IncidentEvent) -> Vec<Plan> {
        if self.settings.host_apply == HostApply::None {
            return Vec::new();
        }
        vec![Plan::send(
            "sync",
            Some(&e.incident_id),
            serde_json::json!({"after": e.event}),
        )]
    }

    fn plan_rules_changed(&self) -> Vec<Plan> {
        if self.settings.host_apply == HostApply::None {
            return Vec::new();
        }
        vec![Plan::send(
            "sync",
            None,
            serde_json::json!({"after": "rules.changed"}),
        )]
    }

    fn sample(&self, _node_id: &str) -> Vec<Plan> {
        vec![Plan::send("test", None, serde_json::Value::Null)]
    }

    fn deliver<'a>(&'a self, job: &'a Job, cx: &'a DeliveryContext<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(enforcer) = cx.outbox.enforcer() else {
                return Outcome::Retry {
                    status: None,
                    error: "levee is not running rules yet".into(),
                    after: None,
                };
            };
            let check = job.event == "test";
            let _one_at_a_time = self.syncing.lock().await;
            let result = match self.settings.host_apply {
                HostApply::None => {
                    return Outcome::Delivered {
                        status: None,
                        note: format!(
                        "rules live in levee's dataplane ({} mode); nothing applied to the host",
                        if enforcer.inline() {
                            "inline"
                        } else {
                            "monitor"
                        }
                    ),
                    }
                }
                HostApply::Iptables => {
                    let texts = enforcer
                        .export(ExportFormat::Iptables)
                        .and_then(|v4| Ok((v4, enforcer.export(ExportFormat::Ip6tables)?)));
                    let (v4, v6) = match texts {
                        Ok(texts) => texts,
                        Err(error) => {
                            return Outcome::Retry {
                                status: None,
                                error,
                                after: None,
                            }
                        }
                    };
                    if check {
                        match run("iptables-restore", &["--test", "--noflush"], &v4).await {
                            Ok(()) => run("ip6tables-restore", &["--test", "--noflush"], &v6).await,
                            Err(e) => Err(e),
                        }
                    } else {
                        match sync_iptables("iptables", &v4).await {
                            Ok(()) => sync_iptables("ip6tables", &v6).await,
                            Err(e) => Err(e),
                        }
                    }
                }
                HostApply::Nftables => {
                    let text = match enforcer.export(ExportFormat::Nftables) {
                        Ok(text) => text,
                        Err(error) => {
                            return Outcome::Retry {
                                status: None,
                                error,
                                after: None,
                            }
                        }
                    };
                    let args: &[&str] = if check {
                        &["-c", "-f", "-"]
                    } else {
                        &["-f", "-"]
                    };
                    run("nft", args, &text).await
                }
            };
            match result {
                Ok(()) => Outcome::Delivered {
                    status: None,
                    note: if check {
                        "the host firewall accepts levee's rules".into()
                    } else {
                        "host firewall synced with levee's active rules".into()
                    },
                },
                Err(error) => Outcome::Retry {
                    status: None,
                    error,
                    after: None,
                },
            }
        })
    }
}
