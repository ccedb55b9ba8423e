//! `levee run`: staged start-up (EAL, mempool, ports, workers), the main lcore's
//! supervision loop, and an orderly stop on SIGINT/SIGTERM, a time limit or idleness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use levee_dataplane::dpdk::{self, DpdkPath, Eal, Mempool, Port, PortConfig, TscClock};
use levee_dataplane::packet_io::{Clock, Direction};
use levee_dataplane::worker::{
    DirectionCounters, SharedWorkerStats, WorkerContext, WorkerCounters, WorkerSettings,
};
use serde::Serialize;

use std::sync::Mutex;

use crate::commands::ControlPlane;
use crate::config::{Config, Mode};
use crate::live::{Live, PortStatus, RatePoint, WorkerStatus};
use crate::Failure;

thread_local! {
    /// Hands the dataplane built with restored rules out of the restore branch.
    static DATAPLANE: std::cell::RefCell<Option<crate::setup::Dataplane>> = const { std::cell::RefCell::new(None) };
}

/// When `levee run` should stop besides a signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct StopWhen {
    /// After this long.
    pub duration: Option<Duration>,
    /// After no packet has been received for this long (e.g. a finite capture ended).
    pub idle: Option<Duration>,
}

#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub mode: Mode,
    pub dpdk_version: String,
    pub seconds: f64,
    /// The TSC's rate (cycles per second), to turn times into cycles.
    pub tsc_hz: u64,
    pub workers: Vec<WorkerSummary>,
    pub ports: Vec<PortSummary>,
    pub totals: Totals,
    /// The window reports of every worker, summed.
    pub pipeline: serde_json::Value,
    /// Incident events, in order.
    pub events: Vec<serde_json::Value>,
    pub rules: Vec<serde_json::Value>,
    pub open_incidents: usize,
}

#[derive(Debug, Serialize)]
pub struct WorkerSummary {
    pub lcore: u32,
    pub inbound: Counters,
    pub outbound: Counters,
    pub bursts: u64,
    pub busy_seconds: f64,
    /// The NUMA node of the worker's CPU, and of its tables once it moved them
    /// there (null: the kernel does not say, or they are split).
    pub cpu_node: Option<u32>,
    pub memory_node: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub dropped_packets: u64,
    pub tx_failed_packets: u64,
}

impl From<&DirectionCounters> for Counters {
    fn from(c: &DirectionCounters) -> Self {
        Counters {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            dropped_packets: c.dropped_packets,
            tx_failed_packets: c.tx_failed_packets,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PortSummary {
    pub name: String,
    pub role: &'static str,
    pub driver: String,
    pub link_up: bool,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Serialize)]
pub struct Totals {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub dropped_packets: u64,
    pub tx_failed_packets: u64,
    /// Packets received per second of worker loop time (the slowest worker's).
    pub rx_pps: f64,
    /// Packets forwarded per second of worker loop time.
    pub tx_pps: f64,
}

/// Run the appliance until a stop condition; returns what was counted.
pub fn run(config: &Config, stop_when: StopWhen) -> Result<RunSummary, Failure> {
    for warning in crate::config::host::warnings(config, &crate::config::host::sysfs_root()) {
        tracing::warn!("{warning}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| {
            Failure::Runtime(anyhow::anyhow!(
                "cannot install a handler for signal {signal}: {e}"
            ))
        })?;
    }

    // Stage 1: EAL. Its arguments come from the configuration, so a refusal is a
    // configuration problem (exit 2), with DPDK's reason.
    let eal = Eal::init(config.eal_args()).map_err(|e| Failure::Usage(e.into()))?;
    let version = Eal::version();
    tracing::info!(version, args = ?eal.args(), "EAL initialised");
    let worker_lcores = dpdk::worker_lcores(&eal);
    if worker_lcores != config.dpdk.worker_lcores {
        return Err(Failure::Usage(anyhow::anyhow!(
            "dpdk.worker_lcores: the EAL enabled worker lcores {worker_lcores:?}, the configuration asks for {:?}",
            config.dpdk.worker_lcores
        )));
    }
    let workers = u16::try_from(worker_lcores.len())
        .map_err(|_| Failure::Usage(anyhow::anyhow!("too many workers")))?;

    // Stage 2: packet buffers, one pool per NUMA socket the ports sit on, each
    // port's on its own socket (a device that does not say takes the first
    // worker's), so a NIC never DMAs into another socket's memory.
    let device_names: Vec<String> = config
        .pairs
        .iter()
        .flat_map(|p| std::iter::once(&p.outside).chain(p.inside.as_ref()))
        .map(|spec| {
            crate::config::Device::parse(spec)
                .map(|d| d.port_name().to_owned())
                .map_err(|m| Failure::Usage(anyhow::anyhow!(m)))
        })
        .collect::<Result<_, _>>()?;
    let default_socket = dpdk::lcore_socket(&eal, worker_lcores.first().copied().unwrap_or(0));
    let mut pools: std::collections::BTreeMap<u32, Arc<Mempool>> = Default::default();
    let mut socket_of_port = std::collections::BTreeMap::new();
    for name in &device_names {
        let socket = Port::socket_of(&eal, name)
            .map_err(|e| Failure::Usage(e.into()))?
            .unwrap_or(default_socket);
        socket_of_port.insert(name.clone(), socket);
        if let std::collections::btree_map::Entry::Vacant(slot) = pools.entry(socket) {
            let pool = Mempool::new(
                &eal,
                config.dpdk.mempool_size,
                config.dpdk.mempool_cache,
                i32::try_from(socket).unwrap_or(-1),
            )
            .map_err(|e| Failure::Runtime(e.into()))?;
            tracing::info!(
                socket,
                mbufs = config.dpdk.mempool_size,
                packed = pool.packed(),
                "mempool created"
            );
            slot.insert(Arc::new(pool));
        }
        for lcore in &worker_lcores {
            let worker_socket = dpdk::lcore_socket(&eal, *lcore);
            if worker_socket != socket {
                tracing::warn!(port = %name, port_socket = socket, lcore, worker_socket, "a worker polls a port on another NUMA socket: every packet crosses between sockets");
            }
        }
    }

    // Stage 3: ports, one RX and one TX queue per worker on each.
    let port_config = PortConfig {
        rx_queues: workers,
        tx_queues: workers,
        rx_descriptors: config.dpdk.rx_descriptors,
        tx_descriptors: config.dpdk.tx_descriptors,
        promiscuous: true,
    };
    let open = |spec: &str| -> Result<Port, Failure> {
        let device =
            crate::config::Device::parse(spec).map_err(|m| Failure::Usage(anyhow::anyhow!(m)))?;
        let name = device.port_name();
        let pool = socket_of_port
            .get(name)
            .and_then(|s| pools.get(s))
            .ok_or_else(|| Failure::Runtime(anyhow::anyhow!("no mempool for port {name}")))?;
        Port::open(&eal, name, &port_config, Arc::clone(pool)).map_err(|e| Failure::Usage(e.into()))
    };
    let mut pairs = Vec::new();
    for pair in &config.pairs {
        let outside = open(&pair.outside)?;
        let inside = pair.inside.as_deref().map(open).transpose()?;
        pairs.push((outside, inside));
    }

    // Stage 4: rule tables restored from the configuration, pipelines, and the
    // control plane's consumer of window reports.
    let now_ns = TscClock::new(&eal).now_ns();
    let mut control = crate::engine::ControlLoop::new(config, worker_lcores.len());
    // What the operator must be told (health, log): a store that had to be
    // moved aside, records that could not be read.
    let mut alarms = Vec::new();
    let store = if config.store.enabled {
        let (store, alarm) = crate::store::Store::open_checked(&config.store.path)
            .map_err(|e| Failure::Runtime(e.into()))?;
        alarms.extend(alarm);
        Some(store)
    } else {
        None
    };
    let mut restore_rules = Vec::new();
    let mut next_rule_id = 0;
    let runtime = |e: crate::store::StoreError| Failure::Runtime(e.into());
    // Without a configured store, one in memory: the API reads the same way,
    // nothing survives a restart.
    let store = match &store {
        Some(_) => store,
        None => Some(crate::store::Store::in_memory().map_err(runtime)?),
    };
    let mut node_id = config.node_id();
    if let Some(store) = &store {
        if config.store.enabled && config.node.id.is_none() {
            node_id = store.node_id().map_err(runtime)?;
        }
        let (engine, restored) = crate::engine::ControlLoop::from_store(
            config,
            worker_lcores.len(),
            &node_id,
            store,
            now_ns,
        )
        .map_err(runtime)?;
        control = engine;
        restore_rules = restored.rules;
        next_rule_id = restored.next_rule_id;
        alarms.extend(restored.alarms);
    }
    // Integrations deliver through an outbox on a connection of its own (the
    // same file, or memory when the store is off).
    let outbox_store = if config.store.enabled {
        crate::store::Store::open(&config.store.path).map_err(runtime)?
    } else {
        crate::store::Store::in_memory().map_err(runtime)?
    };
    let specs = config.integration_specs().map_err(|p| {
        Failure::Usage(anyhow::anyhow!(
            "{}",
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let outbox = crate::integrations::Outbox::open(outbox_store, node_id.clone(), specs)
        .map_err(|e| Failure::Runtime(e.into()))?;
    control.outbox = Some(Arc::clone(&outbox));
    control.mitigator.store = store;
    // Recorded rules go back into the tables inside `build`, before any worker starts.
    let mitigator = &mut control.mitigator;
    let mut pending = Some(restore_rules);
    let dataplane = crate::setup::build(config, worker_lcores.len(), now_ns, &mut |publisher| {
        if let Some(rules) = pending.take() {
            mitigator.restore(rules, next_rule_id, now_ns, publisher);
        }
    })?;
    let crate::setup::Dataplane {
        mut publisher,
        pipelines,
        sink,
    } = dataplane;
    // Workers on several NUMA nodes get the shared sets (signatures, watched
    // targets) as a copy in their own node's memory.
    publisher.place_on_nodes(
        worker_lcores
            .iter()
            // DPDK says "any socket" (-1) where it does not know.
            .map(|lcore| Some(dpdk::lcore_socket(&eal, *lcore)).filter(|s| *s != u32::MAX))
            .collect(),
    );
    let reader = if config.store.enabled {
        Some(Mutex::new(
            crate::store::Store::open_read_only(&config.store.path).map_err(runtime)?,
        ))
    } else {
        None
    };
    // After a fault the engine is rebuilt from the store onto the workers'
    // tables, which the publisher keeps; the workers never stop.
    let restart: crate::commands::RestartFn = {
        let config = config.clone();
        let workers = worker_lcores.len();
        let node_id = node_id.clone();
        let outbox = Arc::clone(&outbox);
        let clock = TscClock::new(&eal);
        Box::new(move |publisher| {
            let now = clock.now_ns();
            let store = if config.store.enabled {
                crate::store::Store::open(&config.store.path)
            } else {
                crate::store::Store::in_memory()
            }
            .map_err(|e| e.to_string())?;
            let (mut control, restored) =
                crate::engine::ControlLoop::from_store(&config, workers, &node_id, &store, now)
                    .map_err(|e| e.to_string())?;
            control.outbox = Some(Arc::clone(&outbox));
            control.mitigator.store = Some(store);
            control
                .mitigator
                .restore(restored.rules, restored.next_rule_id, now, publisher);
            Ok(control)
        })
    };
    let (control_thread, control_handle) =
        crate::commands::control_thread(ControlPlane { control, publisher });
    let control_thread = control_thread.with_restart(restart);
    let live = Arc::new(Live {
        node_id,
        mode: config.mode,
        dpdk_version: version.clone(),
        started_at_ms: crate::clock::wall_ms(),
        forensics_dir: config.forensics.dir.clone(),
        control: control_handle,
        snapshot: Default::default(),
        clock: Box::new(TscClock::new(&eal)),
        outbox: Arc::clone(&outbox),
        malformed_decisions: Mutex::default(),
        alarms: Mutex::new(alarms),
        reader,
    });
    let enforcer: std::sync::Weak<dyn crate::integrations::Enforcer> = {
        let weak: std::sync::Weak<Live> = Arc::downgrade(&live);
        weak
    };
    outbox.set_enforcer(enforcer);
    let outbox_runtime =
        crate::integrations::OutboxRuntime::start(Arc::clone(&outbox)).map_err(|e| {
            Failure::Runtime(anyhow::anyhow!(
                "cannot start the integrations' thread: {e}"
            ))
        })?;
    // The control plane: merges window reports, detects, mitigates through the
    // publisher, runs the API's and the integrations' commands. Never on a
    // worker lcore; it ends when every worker has dropped its end of the channel.
    let consumer = std::thread::Builder::new()
        .name("levee-control".into())
        .spawn(move || control_thread.run(&sink))
        .map_err(|e| {
            Failure::Runtime(anyhow::anyhow!(
                "cannot start the control plane thread: {e}"
            ))
        })?;
    // The admin API, on threads of its own, before forwarding starts.
    let api = match &config.api {
        Some(section) => Some(
            crate::api::ApiServer::start(section, Arc::clone(&live))
                .map_err(|e| Failure::Runtime(e.into()))?,
        ),
        None => None,
    };
    let mut pipelines = pipelines.into_iter();

    // Stage 5: workers, each owning queue `w` of every port.
    let settings = WorkerSettings {
        stats_interval_ms: config.dpdk.stats_interval_ms,
    };
    let clock = TscClock::new(&eal);
    let mut shared: Vec<(u32, Arc<SharedWorkerStats>)> = Vec::new();
    let mut contexts = Vec::new();
    for (w, lcore) in worker_lcores.iter().enumerate() {
        let queue = w as u16;
        let mut paths = Vec::new();
        for (outside, inside) in &pairs {
            let inline = config.mode == Mode::Inline;
            let take_err = |e: dpdk::DpdkError| Failure::Runtime(e.into());
            match inside {
                Some(inside) => {
                    // Each path answers through the other: the outbound path
                    // transmits out of the port the inbound one receives on.
                    let inbound = paths.len();
                    paths.push(DpdkPath {
                        rx: outside.rx_queue(queue).map_err(take_err)?,
                        tx: if inline {
                            Some(inside.tx_queue(queue).map_err(take_err)?)
                        } else {
                            None
                        },
                        direction: Direction::Inbound,
                        answered_through: inline.then_some(inbound + 1),
                    });
                    paths.push(DpdkPath {
                        rx: inside.rx_queue(queue).map_err(take_err)?,
                        tx: if inline {
                            Some(outside.tx_queue(queue).map_err(take_err)?)
                        } else {
                            None
                        },
                        direction: Direction::Outbound,
                        answered_through: inline.then_some(inbound),
                    });
                }
                None => paths.push(DpdkPath {
                    rx: outside.rx_queue(queue).map_err(take_err)?,
                    tx: None,
                    direction: Direction::Inbound,
                    answered_through: None,
                }),
            }
        }
        let pipeline = pipelines
            .next()
            .ok_or_else(|| Failure::Runtime(anyhow::anyhow!("one pipeline per worker")))?;
        let context = Box::new(WorkerContext::new(
            paths,
            clock,
            settings,
            Arc::clone(&stop),
            pipeline,
        ));
        shared.push((*lcore, context.shared_stats()));
        contexts.push((*lcore, context));
    }
    let started = Instant::now();
    let mut joins = Vec::new();
    for (lcore, mut context) in contexts {
        let join = dpdk::launch_on_lcore(&eal, lcore, move || {
            context.run();
            0
        })
        .map_err(|e| {
            stop.store(true, Ordering::Relaxed);
            Failure::Runtime(e.into())
        })?;
        joins.push(join);
    }
    // Each worker first moves its tables onto its own NUMA node: forwarding
    // has started once every one of them polls (a copy takes milliseconds; a
    // worker that never gets there has failed).
    let placing_since = Instant::now();
    while !shared.iter().all(|(_, s)| s.polling()) {
        if placing_since.elapsed() > Duration::from_secs(60) {
            tracing::error!("a worker did not start polling within 60 s");
            stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    tracing::info!(workers = joins.len(), mode = ?config.mode, "forwarding started");

    supervise(
        &stop,
        &shared,
        started,
        stop_when,
        &live,
        &pairs,
        hz_of(&eal),
    );
    drop(api);

    stop.store(true, Ordering::Relaxed);
    for join in joins {
        let lcore = join.lcore();
        if join.join() != 0 {
            tracing::error!(lcore, "worker ended abnormally");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let hz = dpdk::tsc_hz(&eal).max(1) as f64;
    let (events, plane) = consumer
        .join()
        .map_err(|_| Failure::Runtime(anyhow::anyhow!("the control plane thread failed")))?;
    // Deliveries due now get a moment to go out; the rest wait in the store
    // for the next start.
    outbox_runtime.stop(std::time::Duration::from_secs(3));
    let (window_totals, rules, open_incidents) = {
        let rules: Vec<serde_json::Value> = plane
            .control
            .mitigator
            .rules()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        (
            plane.control.totals.clone(),
            rules,
            plane.control.detector.active().count(),
        )
    };

    let mut ports = Vec::new();
    for (outside, inside) in &pairs {
        ports.push(port_summary(outside, "outside"));
        if let Some(inside) = inside {
            ports.push(port_summary(inside, "inside"));
        }
    }
    // Closing the ports flushes devices such as net_pcap's output file.
    drop(pairs);

    let mut workers_out = Vec::new();
    let mut totals = Totals {
        rx_packets: 0,
        tx_packets: 0,
        dropped_packets: 0,
        tx_failed_packets: 0,
        rx_pps: 0.0,
        tx_pps: 0.0,
    };
    let mut slowest = 0f64;
    for (lcore, stats) in &shared {
        let c: WorkerCounters = stats.snapshot();
        let t = c.total();
        totals.rx_packets += t.rx_packets;
        totals.tx_packets += t.tx_packets;
        totals.dropped_packets += t.dropped_packets;
        totals.tx_failed_packets += t.tx_failed_packets;
        let busy = c.busy_ticks as f64 / hz;
        slowest = slowest.max(busy);
        let placement = stats.placement();
        workers_out.push(WorkerSummary {
            lcore: *lcore,
            inbound: c.direction(Direction::Inbound).into(),
            outbound: c.direction(Direction::Outbound).into(),
            bursts: c.bursts,
            busy_seconds: busy,
            cpu_node: placement.cpu_node,
            memory_node: placement.memory_node,
        });
    }
    if slowest > 0.0 {
        totals.rx_pps = totals.rx_packets as f64 / slowest;
        totals.tx_pps = totals.tx_packets as f64 / slowest;
    }
    Ok(RunSummary {
        mode: config.mode,
        dpdk_version: version,
        seconds,
        tsc_hz: hz as u64,
        workers: workers_out,
        ports,
        totals,
        pipeline: window_totals.to_json(),
        events,
        rules,
        open_incidents,
    })
}

/// The main lcore's loop while workers poll: watch for stop conditions, log
/// rates, and refresh the API's snapshot of ports, workers and rates every second.
fn supervise(
    stop: &AtomicBool,
    shared: &[(u32, Arc<SharedWorkerStats>)],
    started: Instant,
    stop_when: StopWhen,
    live: &Live,
    pairs: &[(Port, Option<Port>)],
    hz: f64,
) {
    // The service manager hears that levee forwards, and is fed its watchdog.
    let notifier = crate::service_notify::Notifier::from_env();
    if let Some(n) = &notifier {
        n.send("READY=1\nSTATUS=forwarding");
    }
    let mut fed_at = Instant::now();
    let total_rx = || {
        shared
            .iter()
            .map(|(_, s)| s.snapshot().total().rx_packets)
            .sum::<u64>()
    };
    let mut last_rx = total_rx();
    let mut last_change = Instant::now();
    let mut last_log = Instant::now();
    let mut rx_at_last_log = last_rx;
    let mut sampler = Sampler::default();
    sampler.sample(live, shared, pairs, hz);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let rx = total_rx();
        if rx != last_rx {
            last_rx = rx;
            last_change = now;
        }
        if stop_when
            .duration
            .is_some_and(|d| now.duration_since(started) >= d)
        {
            tracing::info!("time limit reached");
            break;
        }
        if stop_when
            .idle
            .is_some_and(|d| now.duration_since(last_change) >= d)
        {
            tracing::info!(
                "no packet received for {:?}; stopping",
                stop_when.idle.unwrap_or_default()
            );
            break;
        }
        if sampler
            .at
            .is_some_and(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            sampler.sample(live, shared, pairs, hz);
        }
        // The watchdog is fed only while the control loop turns.
        if now.duration_since(fed_at) >= Duration::from_secs(1) {
            fed_at = now;
            if let Some(n) = &notifier {
                if live.control.idle_for() < crate::api::CONTROL_STALLED {
                    n.send("WATCHDOG=1");
                }
            }
        }
        if now.duration_since(last_log) >= Duration::from_secs(5) {
            let pps = (rx - rx_at_last_log) as f64 / now.duration_since(last_log).as_secs_f64();
            tracing::info!(rx_packets = rx, rx_pps = pps as u64, "forwarding");
            last_log = now;
            rx_at_last_log = rx;
        }
    }
    if stop.load(Ordering::Relaxed) {
        tracing::info!("stop signal received");
    }
    if let Some(n) = &notifier {
        n.send("STOPPING=1");
    }
}

fn hz_of(eal: &Eal) -> f64 {
    dpdk::tsc_hz(eal).max(1) as f64
}

/// The previous look, for rates.
#[derive(Default)]
struct Sampler {
    at: Option<Instant>,
    ports: Vec<PortStatus>,
    busy_ticks: Vec<u64>,
    directions: Option<[levee_dataplane::stats::DirectionWindow; 2]>,
}

impl Sampler {
    fn sample(
        &mut self,
        live: &Live,
        shared: &[(u32, Arc<SharedWorkerStats>)],
        pairs: &[(Port, Option<Port>)],
        hz: f64,
    ) {
        let now = Instant::now();
        let seconds = self
            .at
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64());
        let rate = |old: u64, new: u64| {
            if seconds > 0.0 {
                new.saturating_sub(old) as f64 / seconds
            } else {
                0.0
            }
        };
        let mut ports = Vec::new();
        for (outside, inside) in pairs {
            for (port, role) in [(Some(outside), "outside"), (inside.as_ref(), "inside")] {
                let Some(port) = port else { continue };
                let stats = port.stats().unwrap_or_default();
                let link = port.link();
                let old = self.ports.iter().find(|p| p.name == port.name());
                let prev = |f: fn(&PortStatus) -> u64| old.map_or(0, f);
                ports.push(PortStatus {
                    name: port.name().to_owned(),
                    role: role.into(),
                    driver: port.driver().to_owned(),
                    link_up: link.up,
                    speed_mbps: link.speed_mbps,
                    rx_packets: stats.rx_packets,
                    tx_packets: stats.tx_packets,
                    rx_bytes: stats.rx_bytes,
                    tx_bytes: stats.tx_bytes,
                    rx_missed: stats.rx_missed,
                    rx_errors: stats.rx_errors,
                    tx_errors: stats.tx_errors,
                    rx_pps: rate(prev(|p| p.rx_packets), stats.rx_packets),
                    tx_pps: rate(prev(|p| p.tx_packets), stats.tx_packets),
                    rx_bps: rate(prev(|p| p.rx_bytes), stats.rx_bytes) * 8.0,
                    tx_bps: rate(prev(|p| p.tx_bytes), stats.tx_bytes) * 8.0,
                });
            }
        }
        let view = live.control.view();
        let directions = crate::live::direction_totals(&view.totals);
        let cycles = &view.totals.worker_cycles;
        let reports_dropped = &view.totals.reports_dropped;
        let mut workers = Vec::new();
        let mut busy_ticks = Vec::new();
        for (i, (lcore, stats)) in shared.iter().enumerate() {
            let c = stats.snapshot();
            let t = c.total();
            let busy = self.busy_ticks.get(i).copied().unwrap_or(c.busy_ticks);
            busy_ticks.push(c.busy_ticks);
            let w = i as u16;
            workers.push(WorkerStatus {
                lcore: *lcore,
                rx_packets: t.rx_packets,
                tx_packets: t.tx_packets,
                dropped_packets: t.dropped_packets,
                tx_failed_packets: t.tx_failed_packets,
                bursts: c.bursts,
                busy_ratio: if seconds > 0.0 {
                    (c.busy_ticks.saturating_sub(busy) as f64 / hz / seconds).min(1.0)
                } else {
                    0.0
                },
                cycles_per_burst: cycles.get(&w).copied().unwrap_or_default(),
                reports_dropped: reports_dropped.get(&w).copied().unwrap_or(0),
            });
        }
        let point = self
            .directions
            .as_ref()
            .filter(|_| seconds > 0.0)
            .map(|old| RatePoint {
                at_ms: crate::clock::wall_ms(),
                inbound: crate::live::DirectionRates::between(&old[0], &directions[0], seconds),
                outbound: crate::live::DirectionRates::between(&old[1], &directions[1], seconds),
            });
        live.update_snapshot(|s| {
            s.at_ms = crate::clock::wall_ms();
            s.ports = ports.clone();
            s.workers = workers;
            if let Some(p) = point {
                if s.history.len() >= crate::live::HISTORY_SECONDS {
                    s.history.pop_front();
                }
                s.history.push_back(p);
            }
        });
        self.at = Some(now);
        self.ports = ports;
        self.busy_ticks = busy_ticks;
        self.directions = Some(directions);
    }
}

fn port_summary(port: &Port, role: &'static str) -> PortSummary {
    let stats = port.stats().unwrap_or_default();
    PortSummary {
        name: port.name().to_owned(),
        role,
        driver: port.driver().to_owned(),
        link_up: port.link().up,
        rx_packets: stats.rx_packets,
        tx_packets: stats.tx_packets,
        rx_bytes: stats.rx_bytes,
        tx_bytes: stats.tx_bytes,
        rx_missed: stats.rx_missed,
        rx_errors: stats.rx_errors,
        tx_errors: stats.tx_errors,
    }
}

/// The human-readable summary printed at the end of `levee run`.
pub fn render(summary: &RunSummary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "levee run ({:?} mode, {}) stopped after {:.2} s",
        summary.mode, summary.dpdk_version, summary.seconds
    );
    let _ = writeln!(
        out,
        "{:<10} {:<14} {:<16} {:>12} {:>12} {:>10} {:>10}",
        "role", "port", "driver", "rx pkts", "tx pkts", "missed", "errors"
    );
    for p in &summary.ports {
        let _ = writeln!(
            out,
            "{:<10} {:<14} {:<16} {:>12} {:>12} {:>10} {:>10}",
            p.role,
            p.name,
            p.driver,
            p.rx_packets,
            p.tx_packets,
            p.rx_missed,
            p.rx_errors + p.tx_errors
        );
    }
    for w in &summary.workers {
        let _ = writeln!(
            out,
            "worker lcore {}: inbound {} in / {} out / {} dropped, outbound {} in / {} out / {} dropped, {} tx-failed",
            w.lcore,
            w.inbound.rx_packets,
            w.inbound.tx_packets,
            w.inbound.dropped_packets,
            w.outbound.rx_packets,
            w.outbound.tx_packets,
            w.outbound.dropped_packets,
            w.inbound.tx_failed_packets + w.outbound.tx_failed_packets
        );
    }
    if let Some(dirs) = summary.pipeline.get("directions") {
        for (name, d) in dirs.as_object().into_iter().flatten() {
            if d["packets"].as_u64().unwrap_or(0) > 0 {
                let _ = writeln!(out, "{name}: {}", compact_direction(d));
            }
        }
    }
    let t = &summary.totals;
    let _ = writeln!(
        out,
        "total: {} received, {} forwarded, {} dropped, {} tx-failed ({:.0} pps received)",
        t.rx_packets, t.tx_packets, t.dropped_packets, t.tx_failed_packets, t.rx_pps
    );
    out
}

/// "N pkts, classes..., dropped by reason..." from a direction's JSON.
fn compact_direction(d: &serde_json::Value) -> String {
    let mut parts = vec![format!("{} pkts", d["packets"])];
    if let Some(classes) = d["classes"].as_object() {
        let mut v: Vec<(u64, &String)> = classes
            .iter()
            .map(|(k, c)| (c["packets"].as_u64().unwrap_or(0), k))
            .collect();
        v.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        parts.push(
            v.iter()
                .take(5)
                .map(|(n, k)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if let Some(dropped) = d["dropped"].as_object() {
        if !dropped.is_empty() {
            let v: Vec<String> = dropped
                .iter()
                .map(|(k, x)| format!("{k} {}", x["packets"]))
                .collect();
            parts.push(format!("dropped: {}", v.join(", ")));
        }
    }
    parts.join("; ")
}
