//! The control engine: window reports in; detection, mitigation, forensic
//! captures, the store and the integrations' outbox acted on. Shared by
//! `levee run` (on the control thread) and `levee replay` (between polls of
//! the capture), so offline analysis runs exactly what the appliance runs.
//!
//! The detector and the mitigator are pure (time comes from the windows); the
//! engine orders them: judge, learn from what stayed calm, block the attackers
//! found and derive signatures, act on the events, renew and expire.

use levee_dataplane::stats::WindowReport;
use levee_dataplane::tables::TablePublisher;

use crate::config::Config;
use crate::detect::{Aggregator, Detector, IncidentEvent, WindowView};
use crate::forensics::Forensics;
use crate::mitigate::Mitigator;
use crate::windows::WindowTotals;

/// The control plane's side of the pipeline, shared by replay and run: windows
/// in, events and rule changes out.
#[derive(Debug)]
pub struct ControlLoop {
    pub aggregator: Aggregator,
    pub detector: Detector,
    pub mitigator: Mitigator,
    pub forensics: Forensics,
    pub totals: WindowTotals,
    /// Where incident events go to integrations (not in offline replays).
    pub outbox: Option<std::sync::Arc<crate::integrations::Outbox>>,
    /// How long the store keeps what is over (ns), and when it was last pruned.
    keep_ns: u64,
    pruned_at_ns: u64,
    /// When the baselines were last saved, and the latest window's end.
    baselines_saved_at_ns: u64,
    latest_ns: u64,
    /// Rows retention removed, by kind.
    pub pruned: std::collections::BTreeMap<&'static str, u64>,
    /// Events of the window in progress, for the outbox once the window's
    /// transaction is on the disk (the store first, then the integrations).
    held_events: Option<Vec<IncidentEvent>>,
    /// Incident numbers up to this one are reserved in the store: ids handed
    /// out below it cannot be handed out again after a restart, even when the
    /// incident's own record never reached the disk.
    incidents_reserved: u64,
}

/// What the store gave back to start the engine with.
#[derive(Debug)]
pub struct Restored {
    pub rules: Vec<crate::rule::Rule>,
    pub next_rule_id: u32,
    pub alarms: Vec<String>,
}

/// Incident numbers reserved ahead in the store; topped up once half are used,
/// so a window opening fewer incidents than half of it never outruns it.
const RESERVE_INCIDENT_NUMBERS: u64 = 64;

/// How often the store is pruned.
const PRUNE_EVERY_NS: u64 = 3600 * 1_000_000_000;
/// How often the learnt baselines are saved (and once more at a clean stop).
const SAVE_BASELINES_EVERY_NS: u64 = 60 * 1_000_000_000;

impl ControlLoop {
    pub fn new(config: &Config, workers: usize) -> Self {
        let mut mitigator = Mitigator::new(config.mitigation_config());
        mitigator.static_source_limit = config.rules.source_limit.as_ref().and_then(|l| {
            levee_dataplane::wire::TrafficClass::from_name(&l.class).map(|class| {
                levee_dataplane::tables::SourceLimit {
                    class,
                    pps: l.pps,
                    burst: l.burst.unwrap_or(l.pps),
                    rule_id: u32::MAX,
                }
            })
        });
        mitigator.static_signatures = config
            .rules
            .signatures
            .iter()
            .filter_map(|s| crate::config::signature_rule(s).ok())
            .collect();
        ControlLoop {
            aggregator: Aggregator::new(config.pipeline.window_ms, workers),
            detector: Detector::new(config.detection_config(), config.node_id()),
            mitigator,
            forensics: Forensics::new(config.forensics_config()),
            totals: WindowTotals::default(),
            outbox: None,
            keep_ns: (config.store.keep_days * 86_400e9) as u64,
            pruned_at_ns: 0,
            baselines_saved_at_ns: 0,
            latest_ns: 0,
            pruned: Default::default(),
            held_events: None,
            incidents_reserved: 0,
        }
    }

    /// The engine for `config`, carried on from what `store` recorded:
    /// incident numbering, learnt baselines, open incidents. The rules that
    /// were live come back for the tables, with the next rule id and what the
    /// operator must be told (records that could not be read).
    pub fn from_store(
        config: &Config,
        workers: usize,
        node_id: &str,
        store: &crate::store::Store,
        now_ns: u64,
    ) -> Result<(ControlLoop, Restored), crate::store::StoreError> {
        let mut control = ControlLoop::new(config, workers);
        control.detector = Detector::new(config.detection_config(), node_id.to_owned());
        control
            .detector
            .set_incident_count(store.incident_numbers_used()?);
        control.reserve_incident_numbers(store);
        let max_age_ns = (config.detection.baseline_max_age_hours * 3600e9) as u64;
        let (baselines, unreadable) = store.baselines(now_ns.saturating_sub(max_age_ns))?;
        let saved: Vec<_> = baselines.into_iter().map(|(b, _)| b).collect();
        let restored = control.detector.restore_baselines(&saved);
        if restored > 0 || unreadable > 0 {
            tracing::info!(
                restored,
                unreadable,
                "baselines restored from the store (their targets skip the cold start)"
            );
        }
        let (open, unreadable_incidents) = store.open_incidents()?;
        for (event, started) in &open {
            control.detector.restore(event, *started, now_ns);
        }
        let (rules, unreadable_rules) = store.live_rules()?;
        let mut alarms = Vec::new();
        if unreadable_incidents + unreadable_rules > 0 {
            let alarm = format!(
                "the store held {unreadable_rules} rule(s) and {unreadable_incidents} open incident(s) that could not be read; they were left out"
            );
            tracing::error!("{alarm}");
            alarms.push(alarm);
        }
        if !open.is_empty() || !rules.is_empty() {
            tracing::info!(
                open_incidents = open.len(),
                rules = rules.len(),
                "restored from the store"
            );
        }
        Ok((
            control,
            Restored {
                rules,
                next_rule_id: store.max_rule_id()? + 1,
                alarms,
            },
        ))
    }

    /// Take one report; returns the windows it completed with the events each caused.
    pub fn report(
        &mut self,
        r: &WindowReport,
        publisher: &mut TablePublisher,
    ) -> Vec<(WindowView, Vec<IncidentEvent>)> {
        self.totals.add(r);
        let views = self.aggregator.add(r);
        views
            .into_iter()
            .map(|v| {
                let events = self.window(&v, publisher);
                (v, events)
            })
            .collect()
    }

    /// Judge a window and act on the events. Its changes are recorded in one
    /// transaction, and reach the workers and the integrations after it
    /// committed; if the store cannot take it, they apply from memory and are
    /// written again later (the mitigator's unsaved rules).
    pub fn window(&mut self, v: &WindowView, publisher: &mut TablePublisher) -> Vec<IncidentEvent> {
        let recording = match &self.mitigator.store {
            Some(store) => match store.begin() {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("the store cannot begin a window's transaction: {e}");
                    false
                }
            },
            None => false,
        };
        let mut reserving = None;
        if recording {
            if let Some(store) = &self.mitigator.store {
                reserving = self.incident_numbers_to_reserve().filter(|&upto| {
                    store
                        .reserve_incident_numbers(upto)
                        .map_err(|e| tracing::error!("reserving incident numbers: {e}"))
                        .is_ok()
                });
            }
            publisher.defer(true);
            self.held_events = Some(Vec::new());
            self.mitigator.writing();
            self.mitigator.catch_up();
        }
        let events = self.judge_and_act(v, publisher);
        if recording {
            if let Some(store) = &self.mitigator.store {
                match store.commit() {
                    Ok(()) => {
                        if let Some(upto) = reserving {
                            self.incidents_reserved = upto;
                        }
                    }
                    Err(e) => self.mitigator.write_failed(e.to_string()),
                }
            }
            publisher.defer(false);
            let held = self.held_events.take().unwrap_or_default();
            self.to_outbox(&held);
        }
        events
    }

    /// Where the reservation of incident numbers should reach, if it is
    /// running low.
    fn incident_numbers_to_reserve(&self) -> Option<u64> {
        let next = self.detector.next_incident_number();
        (next + RESERVE_INCIDENT_NUMBERS / 2 > self.incidents_reserved)
            .then_some(next + RESERVE_INCIDENT_NUMBERS)
    }

    /// Reserve incident numbers ahead, on their own (at start, before any
    /// window). A store that cannot take it is logged, not fatal.
    fn reserve_incident_numbers(&mut self, store: &crate::store::Store) {
        if let Some(upto) = self.incident_numbers_to_reserve() {
            match store.reserve_incident_numbers(upto) {
                Ok(()) => self.incidents_reserved = upto,
                Err(e) => tracing::error!("reserving incident numbers: {e}"),
            }
        }
    }

    fn judge_and_act(
        &mut self,
        v: &WindowView,
        publisher: &mut TablePublisher,
    ) -> Vec<IncidentEvent> {
        self.forensics.samples(&v.samples, v.end_ns);
        let known = &self.mitigator.known;
        let events = self
            .detector
            .observe_knowing(v, &|host, src| known.is_known(host, src));
        // Learnt after the judgement: a window that starts an attack teaches nothing.
        self.mitigator.learn(v, &self.detector);
        // Attackers and narrow signatures first: a new incident's class-wide
        // fallback is then only made where no narrow signature answers it.
        self.mitigator.on_window(v, &mut self.detector, publisher);
        self.act(&events, v.end_ns, publisher);
        let open: std::collections::HashSet<String> =
            self.detector.active().map(|i| i.id.clone()).collect();
        self.mitigator.expire(v.end_ns, &open, publisher);
        for refusal in self.mitigator.refusals.drain(..) {
            tracing::warn!("mitigation: {refusal}");
        }
        if v.end_ns.saturating_sub(self.pruned_at_ns) >= PRUNE_EVERY_NS {
            self.prune(v.end_ns);
        }
        self.latest_ns = v.end_ns;
        if self.baselines_saved_at_ns == 0 {
            self.baselines_saved_at_ns = v.end_ns;
        } else if v.end_ns.saturating_sub(self.baselines_saved_at_ns) >= SAVE_BASELINES_EVERY_NS {
            self.save_baselines();
        }
        publisher.flush();
        events
    }

    /// Write what the detector has learnt to the store, so a restart starts
    /// from it instead of from the cold-start floor.
    pub fn save_baselines(&mut self) {
        self.baselines_saved_at_ns = self.latest_ns;
        let Some(store) = &self.mitigator.store else {
            return;
        };
        if self.latest_ns == 0 {
            return;
        }
        let saved = self.detector.saved_baselines();
        match store.save_baselines(&saved, self.latest_ns) {
            Ok(()) => tracing::debug!(targets = saved.len(), "baselines saved"),
            Err(e) => tracing::error!("saving the baselines: {e}"),
        }
    }

    fn to_outbox(&self, events: &[IncidentEvent]) {
        if events.is_empty() {
            return;
        }
        if let Some(outbox) = &self.outbox {
            if let Err(err) = outbox.enqueue(events) {
                tracing::error!("integrations: {err}");
            }
        }
    }

    /// Retention: what the store holds of what is over goes after `keep_days`.
    fn prune(&mut self, now_ns: u64) {
        self.pruned_at_ns = now_ns;
        let Some(store) = &self.mitigator.store else {
            return;
        };
        match store.prune(now_ns.saturating_sub(self.keep_ns)) {
            Ok(counts) => {
                for (kind, n) in counts {
                    *self.pruned.entry(kind).or_default() += n as u64;
                    if n > 0 {
                        tracing::info!(kind, rows = n, "store retention: removed");
                    }
                }
            }
            Err(e) => tracing::error!("store retention: {e}"),
        }
    }

    /// Act on incident events, the detector's or an operator's: rules, forensic
    /// captures, the store.
    pub fn act(&mut self, events: &[IncidentEvent], now_ns: u64, publisher: &mut TablePublisher) {
        for e in events {
            match e.event.as_str() {
                "incident.resolved" => {
                    self.mitigator.on_resolved(&e.incident_id, publisher);
                    self.forensics.resolved(&e.incident_id);
                }
                _ => {
                    if let Some(incident) = self.detector.incident(&e.incident_id) {
                        let incident = incident.clone();
                        self.mitigator.on_incident(&incident, now_ns, publisher);
                        if e.event == "incident.created" {
                            self.forensics.started(&incident);
                        } else {
                            self.forensics.write(&e.incident_id);
                        }
                    }
                }
            }
        }
        if let Some(store) = &self.mitigator.store {
            for e in events {
                if let Some(incident) = self.detector.incident(&e.incident_id) {
                    if let Err(err) = store.event(e, incident) {
                        tracing::error!("{err}");
                    }
                }
            }
        }
        // Refused rules (allowlist, caps) are logged here and stay visible in
        // the rule list with their note.
        match &mut self.held_events {
            Some(held) => held.extend(events.iter().cloned()),
            None => self.to_outbox(events),
        }
        for refusal in self.mitigator.refusals.drain(..) {
            tracing::warn!("mitigation: {refusal}");
        }
        for err in self.forensics.errors.drain(..) {
            tracing::warn!("forensic capture: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_numbers_are_reserved_before_use_and_never_repeat_after_a_restart() {
        let config = Config::replay_default();
        let store = crate::store::Store::in_memory().expect("store");
        let (first, _) = ControlLoop::from_store(&config, 1, "nd_x", &store, 0).expect("start");
        assert_eq!(first.detector.next_incident_number(), 1);
        // Reserved at start, before any incident: a record lost to a full
        // disk cannot free its number.
        let reserved = store.incident_numbers_used().expect("used");
        assert_eq!(reserved, 1 + RESERVE_INCIDENT_NUMBERS);
        let (second, _) = ControlLoop::from_store(&config, 1, "nd_x", &store, 0).expect("restart");
        assert_eq!(second.detector.next_incident_number(), reserved + 1);
        assert!(store.incident_numbers_used().expect("used") > reserved + 1);
    }
}
