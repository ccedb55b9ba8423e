//! The running appliance's state that the admin API reads and changes.
//!
//! The control plane (detector, mitigator, table publisher, store writes) is
//! owned by the control thread; the API and the integrations send it commands
//! and read the view it publishes (`commands`), so an operator's rule takes the
//! same path as an automatic one and never waits on a window. Port and worker
//! figures are a snapshot the supervisor refreshes every second, so API reads
//! never touch the dataplane.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

use levee_dataplane::packet_io::Direction;
use serde::Serialize;

use crate::commands::{CommandError, ControlHandle};
use crate::config::Mode;
pub use crate::resources::status::{DirectionRates, PortStatus, RatePoint, WorkerStatus};
use crate::rule::{Rule, RuleMatch};
use crate::store::Store;

/// Seconds of rate history kept for charts.
pub const HISTORY_SECONDS: usize = 600;

/// What the supervisor saw at its last look.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub at_ms: u64,
    pub ports: Vec<PortStatus>,
    pub workers: Vec<WorkerStatus>,
    #[serde(skip)]
    pub history: VecDeque<RatePoint>,
}

/// Everything the API needs, shared by reference.
#[derive(Debug)]
pub struct Live {
    pub node_id: String,
    pub mode: Mode,
    pub dpdk_version: String,
    /// Milliseconds since the epoch when `levee run` started.
    pub started_at_ms: u64,
    pub forensics_dir: Option<PathBuf>,
    /// Commands to the control thread, and the view it publishes.
    pub control: ControlHandle,
    pub snapshot: RwLock<Snapshot>,
    /// The dataplane's clock (wall-clock nanoseconds), for rule times.
    pub clock: Box<dyn levee_dataplane::packet_io::Clock + Send + Sync>,
    /// Integrations and their deliveries.
    pub outbox: std::sync::Arc<crate::integrations::Outbox>,
    /// What went wrong that the operator must know of (health, log), such as
    /// a store moved aside at start.
    pub alarms: Mutex<Vec<String>>,
    /// Pulled decisions that could not be read, by rule origin.
    pub malformed_decisions: Mutex<std::collections::BTreeMap<String, u64>>,
    /// A read-only connection to the store for the API's reads (none when the
    /// store lives in memory: then reads run on the control thread).
    pub reader: Option<Mutex<Store>>,
}

/// Integrations that act on rules (CrowdSec's pull, the host firewall) go
/// through the same mitigator as the API and automatic mitigation.
impl crate::integrations::Enforcer for Live {
    fn block(&self, origin: &str, source: &str, ttl_s: u64, reason: String) -> Result<u32, String> {
        let now = self.now_ns();
        let (rule, _) = self
            .control
            .add_rule(
                origin,
                RuleMatch::Block {
                    source: source.into(),
                },
                ttl_s,
                reason,
                now,
            )
            .map_err(|e| e.to_string())?;
        let rule = rule.map_err(|e| e.to_string())?;
        Ok(self.control.settled(rule).id)
    }

    fn unblock(&self, rule_id: u32) -> Result<(), String> {
        let (deleted, _) = self
            .control
            .delete_rule(rule_id)
            .map_err(|e| e.to_string())?;
        deleted.map(|_| ()).map_err(|e| e.to_string())
    }

    fn rules_from(&self, origin: &str) -> Result<Vec<(u32, String)>, String> {
        let origin = origin.to_owned();
        self.control
            .read(move |plane| {
                plane
                    .control
                    .mitigator
                    .rules()
                    .filter(|r| r.incident_id == origin && r.state.in_force())
                    .filter_map(|r| match &r.matches {
                        RuleMatch::Block { source } => Some((r.id, source.clone())),
                        _ => None,
                    })
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn export(&self, format: crate::mitigate::export::ExportFormat) -> Result<String, String> {
        // Read after every change made so far: a host sync that follows an
        // incident event carries that incident's rules.
        let (rules, allowlist) = self
            .control
            .read(|plane| {
                let rules: Vec<Rule> = plane.control.mitigator.rules().cloned().collect();
                let allowlist: Vec<_> = plane.publisher.allowlist().iter().copied().collect();
                (rules, allowlist)
            })
            .map_err(|e| e.to_string())?;
        let at = crate::integrations::rfc3339_ms(wall_ms());
        Ok(crate::mitigate::export::export(
            &rules, &allowlist, format, &at,
        ))
    }

    fn inline(&self) -> bool {
        self.mode == Mode::Inline
    }

    fn malformed(&self, origin: &str, count: u64) {
        if let Ok(mut m) = self.malformed_decisions.lock() {
            *m.entry(origin.to_owned()).or_default() += count;
        }
    }

    fn upstream(&self) -> Result<crate::integrations::bgp::UpstreamState, String> {
        // The published view: never waits on the control thread (it turns at
        // least every 250 ms, and 20 ms after a command).
        let view = self.control.view();
        Ok(crate::integrations::bgp::UpstreamState {
            incidents: view.incidents.clone(),
            rules: view.rules.clone(),
            protected: view.protected.clone(),
            approved: Default::default(),
        })
    }
}

impl Live {
    /// Read the store without holding the control plane: through the API's own
    /// read-only connection, or, when the store lives in memory, on the
    /// control thread.
    pub fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(Option<&Store>) -> T + Send + 'static,
    ) -> Result<T, CommandError> {
        match &self.reader {
            Some(reader) => {
                let store = reader.lock().unwrap_or_else(|e| e.into_inner());
                Ok(f(Some(&store)))
            }
            None => self.control.read(move |plane| f(plane.store())),
        }
    }

    pub fn snapshot(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub fn update_snapshot(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut s = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }
}

/// Running totals of both directions, for rates.
pub fn direction_totals(
    totals: &crate::windows::WindowTotals,
) -> [levee_dataplane::stats::DirectionWindow; 2] {
    [
        totals.directions[Direction::Inbound as usize].clone(),
        totals.directions[Direction::Outbound as usize].clone(),
    ]
}

use crate::clock::wall_ms;
