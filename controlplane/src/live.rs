//! The running appliance's state that the admin API reads and changes.
//!
//! The control plane (detector, mitigator, table publisher, store) sits behind one
//! mutex: the control thread holds it while it judges a window, the API while it
//! reads or changes rules, so an operator's rule takes the same path as an
//! automatic one. Port and worker figures are a snapshot the supervisor refreshes
//! every second, so API reads never touch the dataplane.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, RwLock};

use levee_dataplane::stats::{DirectionWindow, DropReason};
use levee_dataplane::tables::TablePublisher;
use levee_dataplane::wire::TrafficClass;
use levee_dataplane::worker::Direction;
use serde::Serialize;

use crate::config::Mode;
use crate::detect::IncidentEvent;
use crate::engine::ControlLoop;
use crate::mitigate::{Rule, RuleError, RuleMatch};

/// Seconds of rate history kept for charts.
pub const HISTORY_SECONDS: usize = 600;

/// The control plane and what it acts through.
#[derive(Debug)]
pub struct ControlPlane {
    pub control: ControlLoop,
    pub publisher: TablePublisher,
}

/// Why an operator's incident action failed; the text is the message.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no incident {0}")]
    NotFound(String),
    #[error("incident {0} is already resolved")]
    AlreadyResolved(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

impl ControlPlane {
    /// Add a manual rule (same checks and path as automatic mitigation).
    pub fn add_rule(
        &mut self,
        origin: &str,
        matches: RuleMatch,
        ttl_s: u64,
        reason: String,
        now_ns: u64,
    ) -> Result<Rule, RuleError> {
        let rule = self.control.mitigator.add_manual(
            origin,
            matches,
            ttl_s,
            reason,
            now_ns,
            &mut self.publisher,
        );
        self.publisher.flush();
        rule
    }

    pub fn approve_rule(&mut self, id: u32) -> Result<Rule, RuleError> {
        let rule = self.control.mitigator.approve(id, &mut self.publisher);
        self.publisher.flush();
        self.ended_earlier(id, rule)
    }

    pub fn delete_rule(&mut self, id: u32) -> Result<Rule, RuleError> {
        let rule = self.control.mitigator.delete(id, &mut self.publisher);
        self.publisher.flush();
        self.ended_earlier(id, rule)
    }

    /// A rule unknown to this run may be one that ended in an earlier run: say so.
    fn ended_earlier(&self, id: u32, result: Result<Rule, RuleError>) -> Result<Rule, RuleError> {
        match result {
            Err(RuleError::NotFound(_)) => {
                let recorded = self
                    .control
                    .mitigator
                    .store
                    .as_ref()
                    .and_then(|s| s.rules(None).ok())
                    .and_then(|rules| rules.into_iter().find(|r| r.id == id));
                match recorded {
                    Some(r) => Err(RuleError::Conflict(format!(
                        "rule {id} is already {}",
                        r.state.name()
                    ))),
                    None => Err(RuleError::NotFound(id)),
                }
            }
            other => other,
        }
    }

    /// Resolve an open incident by hand: its rules come out as on a normal resolve.
    pub fn resolve_incident(
        &mut self,
        id: &str,
        now_ns: u64,
    ) -> Result<IncidentEvent, IncidentError> {
        let Some(event) = self.control.detector.resolve(id, now_ns) else {
            let known = match &self.control.mitigator.store {
                Some(store) => store.incident(id)?.is_some(),
                None => self.control.detector.incident(id).is_some(),
            };
            return Err(if known {
                IncidentError::AlreadyResolved(id.into())
            } else {
                IncidentError::NotFound(id.into())
            });
        };
        self.control
            .act(std::slice::from_ref(&event), now_ns, &mut self.publisher);
        self.publisher.flush();
        tracing::warn!(incident = id, "incident resolved by the operator");
        Ok(event)
    }
}

/// Packets and bytes per second of one direction, by class and drop reason.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DirectionRates {
    pub pps: f64,
    pub bps: f64,
    pub forwarded_pps: f64,
    pub dropped_pps: f64,
    pub dropped_bps: f64,
    /// class name -> (pps, bps), classes with traffic only.
    pub classes: std::collections::BTreeMap<&'static str, (f64, f64)>,
    /// drop reason -> pps.
    pub dropped: std::collections::BTreeMap<&'static str, f64>,
}

impl DirectionRates {
    /// Rates between two running totals `seconds` apart.
    pub fn between(old: &DirectionWindow, new: &DirectionWindow, seconds: f64) -> Self {
        let s = seconds.max(1e-9);
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / s;
        let mut r = DirectionRates {
            pps: per(old.packets(), new.packets()),
            bps: per(old.bytes(), new.bytes()) * 8.0,
            forwarded_pps: per(old.forwarded_packets, new.forwarded_packets),
            dropped_pps: per(old.dropped(), new.dropped()),
            dropped_bps: 0.0,
            classes: Default::default(),
            dropped: Default::default(),
        };
        for c in TrafficClass::all() {
            let i = c.index();
            let pps = per(old.class_packets[i], new.class_packets[i]);
            if pps > 0.0 {
                r.classes.insert(
                    c.name(),
                    (pps, per(old.class_bytes[i], new.class_bytes[i]) * 8.0),
                );
            }
        }
        for reason in DropReason::ALL {
            let i = reason as usize;
            let pps = per(old.dropped_packets[i], new.dropped_packets[i]);
            r.dropped_bps += per(old.dropped_bytes[i], new.dropped_bytes[i]) * 8.0;
            if pps > 0.0 {
                r.dropped.insert(reason.name(), pps);
            }
        }
        r
    }
}

/// One second of traffic, for charts.
#[derive(Clone, Debug, Serialize)]
pub struct RatePoint {
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    pub inbound: DirectionRates,
    pub outbound: DirectionRates,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PortStatus {
    pub name: String,
    pub role: &'static str,
    pub driver: String,
    pub link_up: bool,
    pub speed_mbps: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_bps: f64,
    pub tx_bps: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStatus {
    pub lcore: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub dropped_packets: u64,
    pub tx_failed_packets: u64,
    pub bursts: u64,
    /// Share of the last second spent on bursts that carried packets.
    pub busy_ratio: f64,
    /// Cycles per burst in the worker's latest window.
    pub cycles_per_burst: crate::windows::BurstCycles,
    /// Window reports this worker could not hand over (full channel).
    pub reports_dropped: u64,
}

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
    pub control: Mutex<ControlPlane>,
    pub snapshot: RwLock<Snapshot>,
    /// The dataplane's clock (wall-clock nanoseconds), for rule times.
    pub clock: levee_dataplane::worker::TscClock,
    /// Integrations and their deliveries.
    pub outbox: std::sync::Arc<crate::integrations::Outbox>,
    /// Pulled decisions that could not be read, by rule origin.
    pub malformed_decisions: Mutex<std::collections::BTreeMap<String, u64>>,
    /// A read-only connection to the store for the API's reads (none when the
    /// store lives in memory: then reads go through the control plane's).
    pub reader: Option<Mutex<crate::store::Store>>,
}

/// Integrations that act on rules (CrowdSec's pull, the host firewall) go
/// through the same mitigator as the API and automatic mitigation.
impl crate::integrations::Enforcer for Live {
    fn block(&self, origin: &str, source: &str, ttl_s: u64, reason: String) -> Result<u32, String> {
        let now = self.now_ns();
        let rule = self
            .control()
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
        Ok(self.settled(rule).id)
    }

    fn unblock(&self, rule_id: u32) -> Result<(), String> {
        self.control()
            .delete_rule(rule_id)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn rules_from(&self, origin: &str) -> Vec<(u32, String)> {
        self.control()
            .control
            .mitigator
            .rules()
            .filter(|r| r.incident_id == origin && r.state.in_force())
            .filter_map(|r| match &r.matches {
                RuleMatch::Block { source } => Some((r.id, source.clone())),
                _ => None,
            })
            .collect()
    }

    fn export(&self, format: crate::mitigate::export::ExportFormat) -> String {
        let (rules, allowlist) = {
            let plane = self.control();
            let rules: Vec<Rule> = plane.control.mitigator.rules().cloned().collect();
            let allowlist: Vec<_> = plane.publisher.allowlist().iter().copied().collect();
            (rules, allowlist)
        };
        let at = crate::integrations::rfc3339_ms(wall_ms());
        crate::mitigate::export::export(&rules, &allowlist, format, &at)
    }

    fn inline(&self) -> bool {
        self.mode == Mode::Inline
    }

    fn malformed(&self, origin: &str, count: u64) {
        if let Ok(mut m) = self.malformed_decisions.lock() {
            *m.entry(origin.to_owned()).or_default() += count;
        }
    }
}

impl Live {
    /// A rule once the workers have applied it: a pending rule is shown active
    /// only when every worker acknowledged it (they drain their mailboxes
    /// between bursts, microseconds apart). Waits at most a second, without
    /// holding the control plane; a rule still pending then is returned so.
    pub fn settled(&self, rule: Rule) -> Rule {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut current = rule;
        while current.state == crate::mitigate::RuleState::Pending
            && std::time::Instant::now() < deadline
        {
            {
                let mut guard = self.control();
                let plane = &mut *guard;
                plane.control.mitigator.acknowledge(&mut plane.publisher);
                if let Some(r) = plane.control.mitigator.rule(current.id) {
                    current = r.clone();
                }
            }
            if current.state == crate::mitigate::RuleState::Pending {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        current
    }

    /// Read the store without holding the control plane (when it is a file).
    pub fn with_store<T>(&self, f: impl FnOnce(Option<&crate::store::Store>) -> T) -> T {
        match &self.reader {
            Some(reader) => {
                let store = reader.lock().unwrap_or_else(|e| e.into_inner());
                f(Some(&store))
            }
            None => {
                let control = self.control();
                f(control.control.mitigator.store.as_ref())
            }
        }
    }

    /// The control plane, even if a thread panicked while holding it (its state
    /// stays consistent per call: every change is one call).
    pub fn control(&self) -> MutexGuard<'_, ControlPlane> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_ns(&self) -> u64 {
        use levee_dataplane::worker::Clock as _;
        self.clock.now_ns()
    }

    pub fn update_snapshot(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut s = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }
}

/// Running totals of both directions, for rates.
pub fn direction_totals(control: &ControlPlane) -> [DirectionWindow; 2] {
    [
        control.control.totals.directions[Direction::Inbound as usize].clone(),
        control.control.totals.directions[Direction::Outbound as usize].clone(),
    ]
}

use crate::clock::wall_ms;
