//! The control thread and how the rest of levee talks to it.
//!
//! One thread owns the control plane: the engine (detector, mitigator, the
//! store's writes, forensic captures) and the table publisher. Nobody else
//! holds it, so nothing the API or an integration does can stall a window,
//! and no window can stall the API behind SQLite or file I/O.
//!
//! - Changes (an operator's rule, a pulled ban, a manual resolve) are
//!   [`Command`]s sent over a bounded channel with a reply channel each; the
//!   control thread runs them between window reports, in order, through the
//!   same mitigator as automatic mitigation.
//! - Reads come from a [`ControlView`] the thread publishes after each change
//!   it made and at least every [`VIEW_EVERY`] while windows arrive, plus the
//!   store's own read-only connection. A writer that must see its change in
//!   the view waits for the view to reach its command's sequence number.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use levee_dataplane::pipeline::ReportSink;
use levee_dataplane::tables::TablePublisher;

use crate::detect::{BaselineView, IncidentEvent};
use crate::engine::ControlLoop;
use crate::mitigate::RuleError;
use crate::rule::{Rule, RuleMatch};
use crate::store::Store;
use crate::windows::WindowTotals;

/// Commands that may wait for the control thread at once; past that a caller
/// is told the control plane is busy rather than queued without bound.
pub const COMMAND_QUEUE: usize = 256;
/// How long a caller waits for its reply.
const REPLY_WITHIN: Duration = Duration::from_secs(10);
/// The view is republished at least this often while windows arrive...
pub const VIEW_EVERY: Duration = Duration::from_millis(250);
/// ...and this soon after a command changed something (one copy of the rules
/// serves a burst of commands, such as a pulled blocklist).
const VIEW_AFTER_COMMAND: Duration = Duration::from_millis(20);

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

/// Why a command got no answer; the text is the message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("the control plane is busy ({COMMAND_QUEUE} commands waiting); try again")]
    Busy,
    #[error("the control plane has stopped")]
    Stopped,
    #[error("the control plane did not answer within {} s", REPLY_WITHIN.as_secs())]
    NoReply,
}

/// A reply, with the sequence number the control thread gave the command.
type Reply<T> = Sender<(T, u64)>;

/// What the control thread can be asked to do.
pub enum Command {
    AddRule {
        origin: String,
        matches: RuleMatch,
        ttl_s: u64,
        reason: String,
        now_ns: u64,
        reply: Reply<Result<Rule, RuleError>>,
    },
    ApproveRule {
        id: u32,
        reply: Reply<Result<Rule, RuleError>>,
    },
    DeleteRule {
        id: u32,
        reply: Reply<Result<Rule, RuleError>>,
    },
    ResolveIncident {
        id: String,
        now_ns: u64,
        reply: Reply<Result<IncidentEvent, IncidentError>>,
    },
    /// The rule's current state, after the workers' acknowledgements were
    /// collected (a pending rule becomes active once every worker applied it).
    Settle { id: u32, reply: Reply<Option<Rule>> },
    /// A read that must see every change made so far (the host firewall's
    /// export, a pull's reconciliation, the store when it lives in memory).
    Read(ReadFn),
}

/// A read run on the control thread; it sends its own reply, with the sequence number.
pub type ReadFn = Box<dyn FnOnce(&ControlPlane, u64) + Send>;

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::AddRule { .. } => "AddRule",
            Command::ApproveRule { .. } => "ApproveRule",
            Command::DeleteRule { .. } => "DeleteRule",
            Command::ResolveIncident { .. } => "ResolveIncident",
            Command::Settle { .. } => "Settle",
            Command::Read(_) => "Read",
        })
    }
}

/// What the control plane looked like when it last published: everything the
/// API's reads and the supervisor need, so they never hold the control plane.
#[derive(Debug, Default)]
pub struct ControlView {
    /// Commands run when this view was taken.
    pub applied: u64,
    /// The rules of this run, by id.
    pub rules: Vec<Rule>,
    pub baselines: Vec<BaselineView>,
    pub totals: WindowTotals,
    /// (table, entries, capacity).
    pub tables: Vec<(&'static str, usize, usize)>,
    pub tables_refused_full: u64,
    pub tables_backlog: usize,
    pub watched_targets: usize,
    pub open_incidents: usize,
    pub resolved_incidents: usize,
    pub known_sources: usize,
    /// What the mitigator holds in memory, by kind.
    pub memory: Vec<(&'static str, usize)>,
    pub over_limit_lost: u64,
    pub store_pruned: BTreeMap<&'static str, u64>,
    pub forensic_captures_removed: u64,
    pub default_ttl_s: u64,
    /// Rules in force the store could not record yet, and why.
    pub unsaved_rules: usize,
    pub store_error: Option<String>,
    /// Open and recently resolved incidents, for upstream signalling.
    pub incidents: Vec<crate::integrations::bgp::IncidentState>,
    pub protected: Vec<levee_dataplane::tables::Prefix>,
}

impl ControlView {
    fn of(plane: &ControlPlane, applied: u64) -> ControlView {
        let c = &plane.control;
        ControlView {
            applied,
            rules: c.mitigator.rules().cloned().collect(),
            baselines: c.detector.baselines(),
            totals: c.totals.clone(),
            tables: plane.publisher.fill().to_vec(),
            tables_refused_full: plane.publisher.refused_full,
            tables_backlog: plane.publisher.backlog(),
            watched_targets: plane.publisher.watch().targets().len(),
            open_incidents: c.detector.active().count(),
            resolved_incidents: c.detector.resolved.len(),
            known_sources: c.mitigator.known_sources(),
            memory: c.mitigator.memory().to_vec(),
            over_limit_lost: c.mitigator.over_limit_lost,
            store_pruned: c.pruned.clone(),
            forensic_captures_removed: c.forensics.removed,
            default_ttl_s: c.mitigator.default_ttl_s(),
            unsaved_rules: c.mitigator.unsaved.len(),
            store_error: c.mitigator.store_error.clone(),
            incidents: c
                .detector
                .active()
                .chain(c.detector.resolved.iter())
                .map(crate::integrations::bgp::IncidentState::of)
                .collect(),
            protected: c.mitigator.protected().to_vec(),
        }
    }
}

/// How the control thread rebuilds the engine after a fault: from the store,
/// onto the workers' tables (the publisher keeps them).
pub type RestartFn = Box<dyn FnMut(&mut TablePublisher) -> Result<ControlLoop, String> + Send>;

/// The sending side, shared by the API and the integrations.
#[derive(Debug)]
pub struct ControlHandle {
    commands: Sender<Command>,
    view: Arc<RwLock<Arc<ControlView>>>,
    /// When the control loop last turned (ms since the epoch), for health.
    turned_at_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Faults the control thread recovered from, for health.
    faults: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ControlHandle {
    /// Send a command built around its reply channel and wait for the reply.
    /// Returns the reply and the command's sequence number.
    fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<(T, u64), CommandError> {
        let (reply, answer) = bounded(1);
        match self.commands.try_send(command(reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(CommandError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(CommandError::Stopped),
        }
        match answer.recv_timeout(REPLY_WITHIN) {
            Ok(answered) => Ok(answered),
            Err(RecvTimeoutError::Timeout) => Err(CommandError::NoReply),
            Err(RecvTimeoutError::Disconnected) => Err(CommandError::Stopped),
        }
    }

    pub fn add_rule(
        &self,
        origin: &str,
        matches: RuleMatch,
        ttl_s: u64,
        reason: String,
        now_ns: u64,
    ) -> Result<(Result<Rule, RuleError>, u64), CommandError> {
        let origin = origin.to_owned();
        self.call(|reply| Command::AddRule {
            origin,
            matches,
            ttl_s,
            reason,
            now_ns,
            reply,
        })
    }

    pub fn approve_rule(&self, id: u32) -> Result<(Result<Rule, RuleError>, u64), CommandError> {
        self.call(|reply| Command::ApproveRule { id, reply })
    }

    pub fn delete_rule(&self, id: u32) -> Result<(Result<Rule, RuleError>, u64), CommandError> {
        self.call(|reply| Command::DeleteRule { id, reply })
    }

    pub fn resolve_incident(
        &self,
        id: &str,
        now_ns: u64,
    ) -> Result<(Result<IncidentEvent, IncidentError>, u64), CommandError> {
        let id = id.to_owned();
        self.call(|reply| Command::ResolveIncident { id, now_ns, reply })
    }

    /// A rule once the workers have applied it: a pending rule is shown active
    /// only when every worker acknowledged it (they drain their mailboxes
    /// between bursts, microseconds apart). Waits at most a second; a rule
    /// still pending then is returned so.
    pub fn settled(&self, rule: Rule) -> Rule {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut current = rule;
        while current.state == crate::rule::RuleState::Pending && Instant::now() < deadline {
            match self.call(|reply| Command::Settle {
                id: current.id,
                reply,
            }) {
                Ok((Some(r), _)) => current = r,
                Ok((None, _)) | Err(_) => break,
            }
            if current.state == crate::rule::RuleState::Pending {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        current
    }

    /// Run `f` on the control thread, after every command sent before it.
    pub fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ControlPlane) -> T + Send + 'static,
    ) -> Result<T, CommandError> {
        self.call(|reply: Reply<T>| {
            Command::Read(Box::new(move |plane, seq| {
                let _ = reply.send((f(plane), seq));
            }))
        })
        .map(|(value, _)| value)
    }

    /// Faults the control thread recovered from (the engine was rebuilt).
    pub fn faults(&self) -> Vec<String> {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// How long ago the control loop last turned: it turns at least every
    /// [`VIEW_EVERY`], so a long time means it is stuck or has died.
    pub fn idle_for(&self) -> Duration {
        let at = self.turned_at_ms.load(std::sync::atomic::Ordering::Relaxed);
        Duration::from_millis(crate::clock::wall_ms().saturating_sub(at))
    }

    /// The latest view.
    pub fn view(&self) -> Arc<ControlView> {
        Arc::clone(&self.view.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The latest view once it shows command `seq` (it is published
    /// [`VIEW_AFTER_COMMAND`] after a change; after [`REPLY_WITHIN`] at most, the
    /// latest there is): what a writer returns is then what readers see.
    pub fn wait_for_view(&self, seq: u64) -> Arc<ControlView> {
        let deadline = Instant::now() + REPLY_WITHIN;
        loop {
            let view = self.view();
            if view.applied >= seq || Instant::now() >= deadline {
                return view;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The control thread's side: it owns the control plane.
pub struct ControlThread {
    pub plane: ControlPlane,
    commands: Receiver<Command>,
    view: Arc<RwLock<Arc<ControlView>>>,
    applied: u64,
    published_at: Instant,
    /// Something changed since the last view, and whether a command did.
    dirty: bool,
    commanded: bool,
    turned_at_ms: Arc<std::sync::atomic::AtomicU64>,
    faults: Arc<std::sync::Mutex<Vec<String>>>,
    restart: Option<RestartFn>,
    reports_seen: u64,
    /// The mitigator's rule changes the integrations were told of.
    rule_changes_told: u64,
}

/// A control thread for `plane` and the handle that talks to it.
pub fn control_thread(plane: ControlPlane) -> (ControlThread, ControlHandle) {
    let (tx, rx) = bounded(COMMAND_QUEUE);
    let view = Arc::new(RwLock::new(Arc::new(ControlView::of(&plane, 0))));
    let turned_at_ms = Arc::new(std::sync::atomic::AtomicU64::new(crate::clock::wall_ms()));
    let faults = Arc::<std::sync::Mutex<Vec<String>>>::default();
    (
        ControlThread {
            plane,
            commands: rx,
            view: Arc::clone(&view),
            applied: 0,
            published_at: Instant::now(),
            dirty: false,
            commanded: false,
            turned_at_ms: Arc::clone(&turned_at_ms),
            faults: Arc::clone(&faults),
            restart: None,
            reports_seen: 0,
            rule_changes_told: 0,
        },
        ControlHandle {
            commands: tx,
            view,
            turned_at_ms: Arc::clone(&turned_at_ms),
            faults: Arc::clone(&faults),
        },
    )
}

impl std::fmt::Debug for ControlThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlThread")
            .field("plane", &self.plane)
            .field("applied", &self.applied)
            .field("restart", &self.restart.is_some())
            .finish_non_exhaustive()
    }
}

impl ControlThread {
    /// Rebuild the engine with `restart` when it fails (a panic): the
    /// workers keep forwarding with their tables meanwhile.
    pub fn with_restart(mut self, restart: RestartFn) -> Self {
        self.restart = Some(restart);
        self
    }

    /// A panic in the engine is caught here: logged, told to health, and the
    /// engine rebuilt from the store onto the workers' tables.
    fn recover(&mut self, panic: Box<dyn std::any::Any + Send>) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        let rebuilt = match &mut self.restart {
            Some(restart) => restart(&mut self.plane.publisher),
            None => Err("no way to rebuild it".into()),
        };
        let fault = match rebuilt {
            Ok(control) => {
                self.plane.control = control;
                format!(
                    "the control plane failed ({what}) at {} and was rebuilt from the store; forwarding went on with the rules in force",
                    crate::clock::rfc3339_ms(crate::clock::wall_ms() * 1_000_000)
                )
            }
            Err(e) => format!(
                "the control plane failed ({what}) and could not be rebuilt ({e}); it goes on as it was"
            ),
        };
        tracing::error!("{fault}");
        // A window cut short leaves nothing held back from the workers.
        self.plane.publisher.defer(false);
        if let Ok(mut faults) = self.faults.lock() {
            if faults.len() >= 16 {
                faults.remove(0);
            }
            faults.push(fault);
        }
        self.dirty = true;
    }

    /// Take window reports until every worker has gone, running commands in
    /// between; the incident events seen, as JSON, and the control plane.
    pub fn run(mut self, sink: &ReportSink) -> (Vec<serde_json::Value>, ControlPlane) {
        let mut events = Vec::new();
        loop {
            self.turned_at_ms.store(
                crate::clock::wall_ms(),
                std::sync::atomic::Ordering::Relaxed,
            );
            // Wake for a report, a command, or a view that is due.
            let due = self.view_due_in().unwrap_or(VIEW_EVERY);
            crossbeam_channel::select! {
                recv(sink.reports) -> report => {
                    let Ok(report) = report else { break };
                    self.reports_seen += 1;
                    let seen = self.reports_seen;
                    let plane = &mut self.plane;
                    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        injected_fault(seen);
                        plane.control.report(&report, &mut plane.publisher)
                    }));
                    sink.recycle(report);
                    self.dirty = true;
                    let done = match done {
                        Ok(done) => done,
                        Err(panic) => {
                            self.recover(panic);
                            Vec::new()
                        }
                    };
                    for (_, evs) in done {
                        for e in evs {
                            tracing::warn!(
                                event = e.event,
                                incident = e.incident_id,
                                attack = e.attack_type.name(),
                                target = e.target,
                                peak_pps = e.peak_pps,
                                "incident"
                            );
                            events.push(serde_json::to_value(&e).unwrap_or_default());
                        }
                    }
                }
                recv(self.commands) -> command => {
                    if let Ok(command) = command {
                        self.run_command(command);
                    }
                }
                default(due) => {}
            }
            self.serve();
            self.follow_rule_changes();
            if self.view_due_in() == Some(Duration::ZERO) {
                self.publish();
            }
        }
        // Commands that raced the stop get their answers, and the view its last state.
        self.serve();
        self.plane.control.save_baselines();
        self.publish();
        (events, self.plane)
    }

    /// Tell the integrations that follow the rules in force (the host
    /// firewall) when they changed between incident events.
    fn follow_rule_changes(&mut self) {
        let changes = self.plane.control.mitigator.rule_changes;
        if changes == self.rule_changes_told {
            return;
        }
        self.rule_changes_told = changes;
        if let Some(outbox) = &self.plane.control.outbox {
            if let Err(e) = outbox.rules_changed() {
                tracing::error!("integrations: {e}");
            }
        }
    }

    /// Run the commands waiting now, in order.
    pub fn serve(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            self.run_command(command);
        }
    }

    fn run_command(&mut self, command: Command) {
        self.applied += 1;
        self.dirty = true;
        self.commanded = true;
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute(command)));
        if let Err(panic) = ran {
            self.recover(panic);
        }
    }

    fn execute(&mut self, command: Command) {
        let seq = self.applied;
        let plane = &mut self.plane;
        match command {
            Command::AddRule {
                origin,
                matches,
                ttl_s,
                reason,
                now_ns,
                reply,
            } => {
                let _ = reply.send((plane.add_rule(&origin, matches, ttl_s, reason, now_ns), seq));
            }
            Command::ApproveRule { id, reply } => {
                let _ = reply.send((plane.approve_rule(id), seq));
            }
            Command::DeleteRule { id, reply } => {
                let _ = reply.send((plane.delete_rule(id), seq));
            }
            Command::ResolveIncident { id, now_ns, reply } => {
                let _ = reply.send((plane.resolve_incident(&id, now_ns), seq));
            }
            Command::Settle { id, reply } => {
                plane.control.mitigator.acknowledge(&mut plane.publisher);
                let _ = reply.send((plane.control.mitigator.rule(id).cloned(), seq));
            }
            Command::Read(f) => f(plane, seq),
        }
    }

    /// How long until the view is due (zero: now), if anything changed.
    fn view_due_in(&self) -> Option<Duration> {
        let every = if self.commanded {
            VIEW_AFTER_COMMAND
        } else {
            VIEW_EVERY
        };
        self.dirty
            .then(|| every.saturating_sub(self.published_at.elapsed()))
    }

    /// Publish the view now.
    pub fn publish(&mut self) {
        let view = Arc::new(ControlView::of(&self.plane, self.applied));
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
        self.published_at = Instant::now();
        self.dirty = false;
        self.commanded = false;
    }
}

/// Faults for the tests (debug builds only): `LEVEE_TEST_PANIC_AT_REPORT=N`
/// makes the engine panic on the Nth window report, `LEVEE_TEST_STALL_AT_REPORT=N`
/// stalls it there for 8 s.
fn injected_fault(report: u64) {
    #[cfg(debug_assertions)]
    {
        let at = |var: &str| std::env::var(var).is_ok_and(|n| n.parse() == Ok(report));
        if at("LEVEE_TEST_STALL_AT_REPORT") {
            std::thread::sleep(Duration::from_secs(8));
        }
        if at("LEVEE_TEST_PANIC_AT_REPORT") {
            panic!("a fault injected by LEVEE_TEST_PANIC_AT_REPORT");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = report;
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

    /// The store the engine writes, when there is one.
    pub fn store(&self) -> Option<&Store> {
        self.control.mitigator.store.as_ref()
    }

    /// A rule unknown to this run may be one that ended in an earlier run: say so.
    fn ended_earlier(&self, id: u32, result: Result<Rule, RuleError>) -> Result<Rule, RuleError> {
        match result {
            Err(RuleError::NotFound(_)) => {
                let recorded = self
                    .store()
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
            let known = match self.store() {
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

#[cfg(test)]
mod tests {
    use levee_dataplane::pipeline::report_channels;
    use levee_dataplane::stats::ReportCapacities;
    use levee_dataplane::tables::{TableCapacities, TablePublisher};

    use super::*;
    use crate::config::Config;
    use crate::rule::RuleState;

    fn plane() -> ControlPlane {
        let config: Config = toml::from_str(
            "[[pair]]\noutside = \"net_null0\"\n[pipeline]\nprotected = [\"10.0.0.0/24\"]\n",
        )
        .expect("config");
        // A worker's mailbox nobody drains: rules stay pending, as with a stalled worker.
        let (publisher, _mailboxes) = TablePublisher::new(1, TableCapacities::default(), 1 << 10);
        ControlPlane {
            control: ControlLoop::new(&config, 1),
            publisher,
        }
    }

    fn block(source: &str) -> RuleMatch {
        RuleMatch::Block {
            source: source.into(),
        }
    }

    #[test]
    fn a_full_queue_answers_busy_at_once_and_loses_nothing_queued() {
        let (mut thread, handle) = control_thread(plane());
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for i in 0..COMMAND_QUEUE {
            let ran = Arc::clone(&ran);
            handle
                .commands
                .try_send(Command::Read(Box::new(move |_, seq| {
                    // In the order sent, numbered from 1.
                    assert_eq!(seq, i as u64 + 1);
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })))
                .expect("room");
        }
        // Nobody serves the queue yet: a caller that waited for room would hang here.
        let refused = handle.add_rule("api", block("203.0.113.9"), 60, "test".into(), 1);
        assert!(matches!(refused, Err(CommandError::Busy)), "{refused:?}");
        assert_eq!(
            CommandError::Busy.to_string(),
            "the control plane is busy (256 commands waiting); try again"
        );
        thread.serve();
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), COMMAND_QUEUE);
        // The refused rule was never made.
        assert!(thread.plane.control.mitigator.rules().next().is_none());
    }

    /// The view once it shows command `seq`, however long a loaded machine
    /// takes (the API's own wait is bounded at a second).
    fn view_showing(handle: &ControlHandle, seq: u64) -> Arc<ControlView> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view = handle.wait_for_view(seq);
            if view.applied >= seq {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "the view never showed command {seq}"
            );
        }
    }

    #[test]
    fn a_writer_sees_its_change_in_the_view_and_a_stopped_thread_says_so() {
        let (thread, handle) = control_thread(plane());
        let (links, sink) = report_channels(1, 4, 1, ReportCapacities::default());
        let running = std::thread::spawn(move || thread.run(&sink));

        let (added, seq) = handle
            .add_rule("api", block("203.0.113.9"), 60, "test".into(), 1)
            .expect("an answer");
        let rule = added.expect("a rule");
        // No worker drains its mailbox here: the rule is pending, and so shown.
        assert_eq!(rule.state, RuleState::Pending);
        let settled = handle.settled(rule.clone());
        assert_eq!(settled.state, RuleState::Pending);
        let view = view_showing(&handle, seq);
        assert!(
            view.rules.iter().any(|r| r.id == rule.id),
            "the view shows the new rule"
        );

        // A read sent later sees the change; a bad request is an error, not a rule.
        let id = rule.id;
        let seen = handle
            .read(move |plane| plane.control.mitigator.rule(id).is_some())
            .expect("an answer");
        assert!(seen);
        let (bad, _) = handle
            .add_rule("api", block("not an address"), 60, "test".into(), 1)
            .expect("an answer");
        assert!(matches!(bad, Err(RuleError::Invalid(_))), "{bad:?}");
        let (deleted, seq) = handle.delete_rule(id).expect("an answer");
        assert!(!deleted.expect("deleted").state.in_force());
        let view = view_showing(&handle, seq);
        let shown = view
            .rules
            .iter()
            .find(|r| r.id == id)
            .expect("still listed");
        assert!(!shown.state.in_force(), "the view shows it ended");
        let (missing, _) = handle.delete_rule(9999).expect("an answer");
        assert!(
            matches!(missing, Err(RuleError::NotFound(9999))),
            "{missing:?}"
        );

        // The workers' links gone, the thread ends; later commands are told so.
        drop(links);
        let (_, plane) = running.join().expect("control thread");
        assert_eq!(plane.control.mitigator.rules().count(), 1);
        let after = handle.read(|_| ());
        assert!(matches!(after, Err(CommandError::Stopped)), "{after:?}");
    }
}
