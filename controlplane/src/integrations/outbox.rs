//! The outbox: integrations, their deliveries as rows in the store, and the
//! threads that deliver them.
//!
//! The control thread only writes rows ([`Outbox::enqueue`]); a tokio runtime on
//! its own thread (`levee-outbox`) claims due rows, delivers them concurrently
//! with timeouts, and records each attempt on its row. A delivery cut short by a
//! stop is due again at the next start: at least once, never lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::Duration;

use super::{
    DeliveryContext, Enforcer, Integration, IntegrationSpec, Job, Origin, Outcome, Settings, Sink,
};
use crate::clock::wall_ms;
use crate::detect::IncidentEvent;
use crate::store::{DeliveryRecord, NewDelivery, Store, StoreError};

/// Deliveries attempted at once...
const CONCURRENCY: usize = 16;
/// ...and at most this many of them to one integration.
const PER_INTEGRATION: usize = 4;

/// Why an integration change was refused; the text is the message.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("no integration {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
struct Registered {
    integration: Integration,
    sink: Arc<dyn Sink>,
}

pub struct Outbox {
    store: Mutex<Store>,
    registry: RwLock<Vec<Registered>>,
    wake: tokio::sync::Notify,
    stop: AtomicBool,
    /// Bumped at every change of the integrations (pull tasks follow it).
    generation: AtomicU64,
    node_id: String,
    enforcer: OnceLock<Weak<dyn Enforcer>>,
    /// The running BGP speakers' state, by integration name (for /metrics).
    speakers: Mutex<HashMap<String, Arc<super::bgp::Bgp>>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Open the outbox on its own connection to the store; the configuration
    /// file's integrations replace those it defined before.
    pub fn open(
        store: Store,
        node_id: String,
        configured: Vec<IntegrationSpec>,
    ) -> Result<Arc<Outbox>, IntegrationError> {
        let requeued = store.requeue_in_flight()?;
        if requeued > 0 {
            tracing::info!(
                deliveries = requeued,
                "deliveries cut short by the last stop are due again"
            );
        }
        let mut all: Vec<Integration> = Vec::new();
        for record in store.integration_records()? {
            match serde_json::from_str::<Integration>(&record) {
                Ok(i) => all.push(i),
                Err(e) => tracing::error!("an integration in the store cannot be read: {e}"),
            }
        }
        // The file is the truth for the integrations it defines.
        for old in all.iter().filter(|i| i.origin == Origin::Config) {
            if !configured.iter().any(|c| c.name == old.name) {
                store.delete_integration(&old.id)?;
            }
        }
        all.retain(|i| i.origin == Origin::Api || configured.iter().any(|c| c.name == i.name));
        for spec in configured {
            let existing = all.iter_mut().find(|i| i.name == spec.name);
            let mut settings = spec.settings;
            let integration = match existing {
                Some(i) => {
                    settings.keep_secrets_from(i.settings.clone());
                    i.settings = settings;
                    i.enabled = spec.enabled;
                    i.origin = Origin::Config;
                    i.clone()
                }
                None => {
                    let i = Integration::new(spec.name, spec.enabled, Origin::Config, settings);
                    all.push(i.clone());
                    i
                }
            };
            let mut integration = integration;
            if let Settings::Webhook(w) = &mut integration.settings {
                if w.secret.is_none() {
                    let secret = super::generate_secret();
                    tracing::warn!(
                        integration = integration.name,
                        secret,
                        "generated a signing secret for a webhook of the configuration file; set `secret` there to choose one"
                    );
                    w.secret = Some(secret);
                }
            }
            store.put_integration(
                &integration.id,
                &integration.name,
                &serde_json::to_string(&integration).map_err(StoreError::from)?,
            )?;
            if let Some(slot) = all.iter_mut().find(|i| i.id == integration.id) {
                *slot = integration;
            }
        }
        let registry = all
            .into_iter()
            .map(|integration| Registered {
                sink: integration.settings.sink(),
                integration,
            })
            .collect();
        Ok(Arc::new(Outbox {
            store: Mutex::new(store),
            registry: RwLock::new(registry),
            wake: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            node_id,
            enforcer: OnceLock::new(),
            speakers: Mutex::new(HashMap::new()),
        }))
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Vec<Registered>> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Registered>> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_enforcer(&self, enforcer: Weak<dyn Enforcer>) {
        let _ = self.enforcer.set(enforcer);
    }

    pub fn enforcer(&self) -> Option<Arc<dyn Enforcer>> {
        self.enforcer.get().and_then(Weak::upgrade)
    }

    pub fn list(&self) -> Vec<Integration> {
        self.registry()
            .iter()
            .map(|r| r.integration.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<Integration, IntegrationError> {
        self.registry()
            .iter()
            .find(|r| r.integration.id == id)
            .map(|r| r.integration.clone())
            .ok_or_else(|| IntegrationError::NotFound(id.into()))
    }

    /// Add an integration; a webhook without a secret gets one, returned here
    /// only.
    pub fn create(
        &self,
        spec: IntegrationSpec,
    ) -> Result<(Integration, Option<String>), IntegrationError> {
        let mut registry = self.registry_mut();
        if registry.iter().any(|r| r.integration.name == spec.name) {
            return Err(IntegrationError::Conflict(format!(
                "an integration named {:?} exists",
                spec.name
            )));
        }
        let mut settings = spec.settings;
        settings
            .require_secrets()
            .map_err(IntegrationError::Invalid)?;
        let mut shown = None;
        if let Settings::Webhook(w) = &mut settings {
            let secret = w.secret.get_or_insert_with(super::generate_secret);
            shown = Some(secret.clone());
        }
        let integration = Integration::new(spec.name, spec.enabled, Origin::Api, settings);
        self.persist(&integration)?;
        registry.push(Registered {
            sink: integration.settings.sink(),
            integration: integration.clone(),
        });
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok((integration, shown))
    }

    /// Replace an integration's settings; secrets left out keep their values.
    pub fn update(&self, id: &str, spec: IntegrationSpec) -> Result<Integration, IntegrationError> {
        let mut registry = self.registry_mut();
        if registry
            .iter()
            .any(|r| r.integration.name == spec.name && r.integration.id != id)
        {
            return Err(IntegrationError::Conflict(format!(
                "an integration named {:?} exists",
                spec.name
            )));
        }
        let slot = registry
            .iter_mut()
            .find(|r| r.integration.id == id)
            .ok_or_else(|| IntegrationError::NotFound(id.into()))?;
        refuse_config(&slot.integration)?;
        let mut settings = spec.settings;
        settings.keep_secrets_from(slot.integration.settings.clone());
        settings
            .require_secrets()
            .map_err(IntegrationError::Invalid)?;
        if let Settings::Webhook(w) = &mut settings {
            if w.secret.is_none() {
                return Err(IntegrationError::Invalid(
                    "secret: a webhook changed to from another kind needs one".into(),
                ));
            }
        }
        let mut integration = slot.integration.clone();
        integration.name = spec.name;
        integration.enabled = spec.enabled;
        integration.settings = settings;
        self.persist(&integration)?;
        *slot = Registered {
            sink: integration.settings.sink(),
            integration: integration.clone(),
        };
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(integration)
    }

    pub fn delete(&self, id: &str) -> Result<Integration, IntegrationError> {
        let mut registry = self.registry_mut();
        let index = registry
            .iter()
            .position(|r| r.integration.id == id)
            .ok_or_else(|| IntegrationError::NotFound(id.into()))?;
        refuse_config(&registry[index].integration)?;
        self.store().delete_integration(id)?;
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(registry.remove(index).integration)
    }

    fn persist(&self, integration: &Integration) -> Result<(), IntegrationError> {
        let record = serde_json::to_string(integration).map_err(StoreError::from)?;
        self.store()
            .put_integration(&integration.id, &integration.name, &record)?;
        Ok(())
    }

    /// Write the deliveries incident events call for. Runs on the control
    /// thread: rows only, no I/O beyond the store.
    pub fn enqueue(&self, events: &[IncidentEvent]) -> Result<usize, StoreError> {
        let now_ms = wall_ms();
        let mut rows = Vec::new();
        for r in self.registry().iter().filter(|r| r.integration.enabled) {
            for e in events {
                for plan in r.sink.plan(e) {
                    rows.push(new_delivery(&r.integration.id, plan, now_ms));
                }
            }
        }
        Ok(self.queue(&rows)?.len())
    }

    /// Write delivery rows (none: nothing to do) and wake the deliverers; their ids.
    fn queue(&self, rows: &[NewDelivery]) -> Result<Vec<i64>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.store().insert_deliveries(rows)?;
        self.wake.notify_one();
        Ok(ids)
    }

    /// The rules in force changed: queue what integrations that follow them
    /// (the host firewall) ask for, unless such a delivery already waits.
    pub fn rules_changed(&self) -> Result<usize, StoreError> {
        let now_ms = wall_ms();
        let mut rows = Vec::new();
        for r in self.registry().iter().filter(|r| r.integration.enabled) {
            for plan in r.sink.plan_rules_changed() {
                if !self.store().waiting(&r.integration.id, &plan.event)? {
                    rows.push(new_delivery(&r.integration.id, plan, now_ms));
                }
            }
        }
        Ok(self.queue(&rows)?.len())
    }

    /// Queue the test action's sample deliveries; their ids.
    pub fn test(&self, id: &str) -> Result<Vec<i64>, IntegrationError> {
        let plans = {
            let registry = self.registry();
            let r = registry
                .iter()
                .find(|r| r.integration.id == id)
                .ok_or_else(|| IntegrationError::NotFound(id.into()))?;
            r.sink.sample(&self.node_id)
        };
        let now_ms = wall_ms();
        let rows: Vec<NewDelivery> = plans
            .into_iter()
            .map(|p| new_delivery(id, p, now_ms))
            .collect();
        Ok(self.queue(&rows)?)
    }

    pub fn deliveries(
        &self,
        id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<DeliveryRecord>, u64), IntegrationError> {
        self.get(id)?;
        Ok(self.store().deliveries(id, limit, offset)?)
    }

    /// Deliveries by integration (id, kind, name) and state, for metrics.
    pub fn delivery_counts(&self) -> Vec<(Integration, String, u64)> {
        let counts = match self.store().delivery_counts() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{e}");
                return Vec::new();
            }
        };
        let registry = self.registry();
        counts
            .into_iter()
            .filter_map(|(id, state, n)| {
                registry
                    .iter()
                    .find(|r| r.integration.id == id)
                    .map(|r| (r.integration.clone(), state, n))
            })
            .collect()
    }

    fn registered(&self, id: &str) -> Option<Registered> {
        self.registry()
            .iter()
            .find(|r| r.integration.id == id)
            .cloned()
    }

    /// Enabled BGP integrations.
    fn speakers(&self) -> Vec<(Integration, super::bgp::BgpSettings)> {
        self.registry()
            .iter()
            .filter(|r| r.integration.enabled)
            .filter_map(|r| match &r.integration.settings {
                Settings::Bgp(s) => Some((r.integration.clone(), s.clone())),
                _ => None,
            })
            .collect()
    }

    /// Write a finished delivery row: what an integration that follows
    /// levee's state did by itself (a BGP announcement or withdrawal).
    pub fn log(
        &self,
        integration_id: &str,
        event: &str,
        incident_id: Option<&str>,
        subject: Option<&str>,
        state: &'static str,
        note: &str,
    ) {
        let row = NewDelivery {
            integration_id: integration_id.into(),
            event: event.into(),
            incident_id: incident_id.map(Into::into),
            subject: subject.map(Into::into),
            payload: "null".into(),
            state,
            note: Some(note.into()),
            now_ms: wall_ms(),
        };
        if let Err(e) = self.store().insert_deliveries(&[row]) {
            tracing::error!("outbox: {e}");
        }
    }

    /// Approve announcing `incident_id` through the bgp integration `id`
    /// (one whose policy is `when = "approval"`).
    pub fn approve_announcement(
        &self,
        id: &str,
        incident_id: &str,
    ) -> Result<(), IntegrationError> {
        let integration = self.get(id)?;
        match &integration.settings {
            Settings::Bgp(s) if s.when == super::bgp::When::Approval => {}
            _ => {
                return Err(IntegrationError::Conflict(format!(
                    "{} announces without approval: only a bgp integration with when = \"approval\" takes one",
                    integration.name
                )))
            }
        }
        self.store()
            .approve_announcement(id, incident_id, wall_ms())
            .map_err(IntegrationError::Store)?;
        self.log(
            id,
            "bgp.approved",
            Some(incident_id),
            None,
            "delivered",
            "an operator approved announcing this incident upstream",
        );
        Ok(())
    }

    /// The incidents approved for a bgp integration.
    pub fn approved_announcements(&self, id: &str) -> std::collections::HashSet<String> {
        self.store().approved_announcements(id).unwrap_or_default()
    }

    /// Routes each BGP integration's speaker holds for levee (for /metrics).
    pub fn bgp_routes(&self) -> Vec<(String, u64)> {
        self.speakers
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(name, b)| (name.clone(), b.routes.load(Ordering::Relaxed)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Enabled CrowdSec integrations that pull decisions, with the generation.
    fn pulls(&self) -> Vec<(Integration, super::crowdsec::CrowdsecSettings)> {
        self.registry()
            .iter()
            .filter(|r| r.integration.enabled)
            .filter_map(|r| match &r.integration.settings {
                Settings::Crowdsec(s) if s.pull => Some((r.integration.clone(), s.clone())),
                _ => None,
            })
            .collect()
    }
}

fn refuse_config(i: &Integration) -> Result<(), IntegrationError> {
    if i.origin == Origin::Config {
        return Err(IntegrationError::Conflict(format!(
            "integration {} is defined in the configuration file; change it there",
            i.name
        )));
    }
    Ok(())
}

fn new_delivery(integration_id: &str, plan: super::Plan, now_ms: u64) -> NewDelivery {
    NewDelivery {
        integration_id: integration_id.into(),
        event: plan.event,
        incident_id: plan.incident_id,
        subject: plan.subject,
        payload: plan.payload.to_string(),
        state: if plan.skip.is_some() {
            "skipped"
        } else {
            "pending"
        },
        note: plan.skip,
        now_ms,
    }
}

/// The outbox's thread; delivers until stopped.
#[derive(Debug)]
pub struct OutboxRuntime {
    outbox: Arc<Outbox>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OutboxRuntime {
    pub fn start(outbox: Arc<Outbox>) -> std::io::Result<OutboxRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let run = Arc::clone(&outbox);
        let thread = std::thread::Builder::new()
            .name("levee-outbox".into())
            .spawn(move || runtime.block_on(dispatch(run)))?;
        Ok(OutboxRuntime {
            outbox,
            thread: Some(thread),
        })
    }

    /// Stop delivering, after up to `drain` for deliveries due now; attempts
    /// still in flight are dropped and due again at the next start.
    pub fn stop(mut self, drain: Duration) {
        let deadline = std::time::Instant::now() + drain;
        while std::time::Instant::now() < deadline {
            let busy = self.outbox.store().busy_now(wall_ms()).unwrap_or(false);
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.outbox.stop.store(true, Ordering::Relaxed);
        self.outbox.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn dispatch(outbox: Arc<Outbox>) {
    let http = match reqwest::Client::builder()
        .user_agent(concat!("levee/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        // Keys and signatures go to the configured URL only.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("integrations are off: cannot build an HTTP client: {e}");
            return;
        }
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut pulls: HashMap<String, (u64, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut speakers: Speakers = HashMap::new();
    let mut seen_generation = u64::MAX;
    loop {
        if outbox.stop.load(Ordering::Relaxed) {
            break;
        }
        let generation = outbox.generation.load(Ordering::Relaxed);
        if generation != seen_generation {
            seen_generation = generation;
            follow_pulls(&outbox, &http, &mut pulls, generation);
            follow_speakers(&outbox, &mut speakers);
        }
        let now = wall_ms();
        let free = permits.available_permits();
        let due = if free > 0 {
            let busy = in_flight.lock().map(|m| m.clone()).unwrap_or_default();
            outbox.store().claim_due(now, free, &busy, PER_INTEGRATION)
        } else {
            Ok(Vec::new())
        };
        let claimed = due.as_ref().map_or(0, Vec::len);
        match due {
            Ok(due) => {
                for record in due {
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                        break;
                    };
                    let (outbox, http) = (Arc::clone(&outbox), http.clone());
                    let integration = record.integration_id.clone();
                    if let Ok(mut m) = in_flight.lock() {
                        *m.entry(integration.clone()).or_default() += 1;
                    }
                    let in_flight = Arc::clone(&in_flight);
                    tokio::spawn(async move {
                        attempt(&outbox, &http, record).await;
                        if let Ok(mut m) = in_flight.lock() {
                            if let Some(n) = m.get_mut(&integration) {
                                *n = n.saturating_sub(1);
                                if *n == 0 {
                                    m.remove(&integration);
                                }
                            }
                        }
                        drop(permit);
                        outbox.wake.notify_one();
                    });
                }
            }
            Err(e) => tracing::error!("outbox: {e}"),
        }
        let next = outbox.store().next_due_ms().ok().flatten();
        let now = wall_ms();
        let wait = match next {
            // Due but held back (its integration's slots are taken): a
            // delivery that ends wakes the loop.
            Some(t) if t <= now && claimed == 0 => 1000,
            Some(t) => t.saturating_sub(now).clamp(5, 1000),
            None => 1000,
        };
        tokio::select! {
            () = outbox.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
    for (_, (_, task)) in pulls {
        task.abort();
    }
    // Announcements stay with the speaker when levee stops: an attack may go
    // on, and the next start reconciles them.
    for (_, (_, _, task)) in speakers {
        task.abort();
    }
}

/// Each BGP integration's reconciling task, its settings and its speaker.
type Speakers = HashMap<
    String,
    (
        super::bgp::BgpSettings,
        Arc<super::bgp::Bgp>,
        tokio::task::JoinHandle<()>,
    ),
>;

/// One reconciling task per enabled BGP integration, restarted when its
/// settings change; an integration deleted or disabled withdraws what it
/// announced.
fn follow_speakers(outbox: &Arc<Outbox>, speakers: &mut Speakers) {
    let wanted = outbox.speakers();
    let gone: Vec<String> = speakers
        .iter()
        .filter(|(id, (settings, _, _))| !wanted.iter().any(|(i, s)| &i.id == *id && s == settings))
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        if let Some((_, speaker, task)) = speakers.remove(&id) {
            task.abort();
            let still = wanted.iter().any(|(i, _)| i.id == id);
            if !still {
                let outbox = Arc::clone(outbox);
                tokio::spawn(async move {
                    let (changes, result) = speaker.reconcile(&super::bgp::Wanted::default()).await;
                    super::bgp::log_changes(&outbox, &id, changes);
                    if let Err(e) = result {
                        tracing::warn!("bgp: withdrawing on removal: {e}");
                    }
                });
            }
        }
    }
    let mut names = HashMap::new();
    for (integration, settings) in wanted {
        let id = integration.id.clone();
        if let Some((_, speaker, _)) = speakers.get(&id) {
            names.insert(integration.name.clone(), Arc::clone(speaker));
            continue;
        }
        let speaker = Arc::new(super::bgp::Bgp::new(settings.clone()));
        let task = tokio::spawn(super::bgp::follow(
            Arc::clone(outbox),
            id.clone(),
            Arc::clone(&speaker),
        ));
        names.insert(integration.name.clone(), Arc::clone(&speaker));
        speakers.insert(id, (settings, speaker, task));
    }
    if let Ok(mut m) = outbox.speakers.lock() {
        *m = names;
    }
}

/// One pull task per enabled CrowdSec integration with `pull`, restarted when
/// its settings change.
fn follow_pulls(
    outbox: &Arc<Outbox>,
    http: &reqwest::Client,
    pulls: &mut HashMap<String, (u64, tokio::task::JoinHandle<()>)>,
    generation: u64,
) {
    let wanted = outbox.pulls();
    pulls.retain(|id, (_, task)| {
        let keep = wanted.iter().any(|(i, _)| &i.id == id);
        if !keep {
            task.abort();
        }
        keep
    });
    for (integration, settings) in wanted {
        if let Some((_, task)) = pulls.remove(&integration.id) {
            task.abort();
        }
        let task = tokio::spawn(super::crowdsec::pull(
            Arc::clone(outbox),
            http.clone(),
            integration.id.clone(),
            settings,
        ));
        pulls.insert(integration.id, (generation, task));
    }
}

async fn attempt(outbox: &Outbox, http: &reqwest::Client, record: DeliveryRecord) {
    let id = record.id;
    let finish = |state: &str, attempts: u32, next: u64, status: Option<u16>, result: &str| {
        if let Err(e) =
            outbox
                .store()
                .finish_attempt(id, state, attempts, next, status, result, wall_ms())
        {
            tracing::error!("outbox: {e}");
        }
    };
    let Some(registered) = outbox.registered(&record.integration_id) else {
        finish(
            "failed",
            record.attempts,
            0,
            None,
            "the integration was deleted",
        );
        return;
    };
    if !registered.integration.enabled && record.event != "test" {
        finish(
            "skipped",
            record.attempts,
            0,
            None,
            "the integration is disabled",
        );
        return;
    }
    let job = Job {
        id,
        event: record.event.clone(),
        subject: record.subject.clone(),
        payload: record.payload.clone(),
        attempts: record.attempts,
    };
    let cx = DeliveryContext {
        http,
        outbox,
        integration_id: &record.integration_id,
        now_ms: wall_ms(),
    };
    let sink = &registered.sink;
    let outcome = sink.deliver(&job, &cx).await;
    let now = wall_ms();
    let name = &registered.integration.name;
    match outcome {
        Outcome::Delivered { status, note } => {
            finish("delivered", job.attempts + 1, now, status, &note);
        }
        Outcome::Retry {
            status,
            error,
            after,
        } => {
            let attempts = job.attempts + 1;
            if attempts >= sink.max_attempts() {
                tracing::warn!(
                    integration = name,
                    delivery = id,
                    "gave up after {attempts} attempts: {error}"
                );
                finish(
                    "failed",
                    attempts,
                    now,
                    status,
                    &format!("gave up after {attempts} attempts: {error}"),
                );
            } else {
                let wait = after.unwrap_or_else(|| sink.backoff(attempts));
                let next = now + wait.as_millis() as u64;
                finish(
                    "pending",
                    attempts,
                    next,
                    status,
                    &format!("{error}; retry in {} ms", wait.as_millis()),
                );
            }
        }
        Outcome::Failed { status, error } => {
            tracing::warn!(
                integration = name,
                delivery = id,
                "delivery failed: {error}"
            );
            finish("failed", job.attempts + 1, now, status, &error);
        }
        Outcome::Skipped { reason } => finish("skipped", job.attempts, now, None, &reason),
        Outcome::Defer { until_ms, reason } => {
            finish("pending", job.attempts, until_ms, None, &reason);
        }
    }
}
