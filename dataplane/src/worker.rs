//! The poll-mode worker loop.
//!
//! One worker runs per lcore and owns everything it touches: its RX/TX queues, a
//! burst buffer and its counters (a cache-aligned [`WorkerContext`]). The loop is
//! DPDK l3fwd's: rx burst -> the pipeline judges and counts every packet
//! ([`Pipeline`]) -> tx burst to the peer port -> drain the table mailbox and
//! close the window on a clock tick -> publish counters. Nothing in the loop locks, allocates or makes a
//! syscall.
//!
//! The loop is generic over its packet paths ([`PacketPath`]: the DPDK queues in
//! `levee run`, `crate::dpdk::DpdkPath`) and its [`Clock`] (the TSC), so the same
//! code can be driven from a capture file with the capture's timestamps, or from
//! tests, and builds without DPDK.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::cpu;
use crate::packet_io::{Clock, Direction, PacketBurst, PacketPath, BURST_SIZE};
use crate::pipeline::Pipeline;

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Handed to the peer port's TX queue.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Dropped by a verdict of the pipeline.
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
    /// Forwarded by the pipeline but refused by a full TX queue, then freed.
    pub tx_failed_packets: u64,
    pub tx_failed_bytes: u64,
}

/// Everything a worker counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    pub directions: [DirectionCounters; 2],
    /// Non-empty bursts processed.
    pub bursts: u64,
    /// Clock ticks from the first poll to the last flush.
    pub busy_ticks: u64,
}

impl WorkerCounters {
    pub fn direction(&self, d: Direction) -> &DirectionCounters {
        &self.directions[d as usize]
    }

    /// Sum over both directions.
    pub fn total(&self) -> DirectionCounters {
        let [a, b] = self.directions;
        DirectionCounters {
            rx_packets: a.rx_packets + b.rx_packets,
            rx_bytes: a.rx_bytes + b.rx_bytes,
            tx_packets: a.tx_packets + b.tx_packets,
            tx_bytes: a.tx_bytes + b.tx_bytes,
            dropped_packets: a.dropped_packets + b.dropped_packets,
            dropped_bytes: a.dropped_bytes + b.dropped_bytes,
            tx_failed_packets: a.tx_failed_packets + b.tx_failed_packets,
            tx_failed_bytes: a.tx_failed_bytes + b.tx_failed_bytes,
        }
    }
}

const DIRECTION_FIELDS: usize = 8;
const SHARED_FIELDS: usize = 2 * DIRECTION_FIELDS + 2;

/// A worker's counters as other threads see them: written by that worker alone
/// (plain relaxed stores of its local totals on each tick), read by anyone.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct SharedWorkerStats {
    fields: [AtomicU64; SHARED_FIELDS],
    /// NUMA nodes of the worker's CPU and of its tables, once it has started
    /// (0 = unknown, else node + 1).
    cpu_node: AtomicU32,
    memory_node: AtomicU32,
    /// Set once the worker has placed its tables and starts polling.
    polling: AtomicBool,
}

/// Where a worker runs and where its tables are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The NUMA node of the worker's CPU.
    pub cpu_node: Option<u32>,
    /// The NUMA node of its tables and reports (`None`: unknown, or split).
    pub memory_node: Option<u32>,
}

impl SharedWorkerStats {
    fn set_placement(&self, p: Placement) {
        let code = |n: Option<u32>| n.map_or(0, |n| n.saturating_add(1));
        self.cpu_node.store(code(p.cpu_node), Ordering::Relaxed);
        self.memory_node
            .store(code(p.memory_node), Ordering::Relaxed);
    }

    /// Whether the worker has placed its tables and polls.
    pub fn polling(&self) -> bool {
        self.polling.load(Ordering::Acquire)
    }

    /// Where the worker runs and its tables are (unknown before it starts).
    pub fn placement(&self) -> Placement {
        let node = |a: &AtomicU32| a.load(Ordering::Relaxed).checked_sub(1);
        Placement {
            cpu_node: node(&self.cpu_node),
            memory_node: node(&self.memory_node),
        }
    }

    fn publish(&self, c: &WorkerCounters) {
        let mut values = [0u64; SHARED_FIELDS];
        for (d, dc) in c.directions.iter().enumerate() {
            let base = d * DIRECTION_FIELDS;
            values[base..base + DIRECTION_FIELDS].copy_from_slice(&[
                dc.rx_packets,
                dc.rx_bytes,
                dc.tx_packets,
                dc.tx_bytes,
                dc.dropped_packets,
                dc.dropped_bytes,
                dc.tx_failed_packets,
                dc.tx_failed_bytes,
            ]);
        }
        values[2 * DIRECTION_FIELDS] = c.bursts;
        values[2 * DIRECTION_FIELDS + 1] = c.busy_ticks;
        for (field, value) in self.fields.iter().zip(values) {
            field.store(value, Ordering::Relaxed);
        }
    }

    /// The counters as of the worker's last tick.
    pub fn snapshot(&self) -> WorkerCounters {
        let v: Vec<u64> = self
            .fields
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .collect();
        let dir = |base: usize| DirectionCounters {
            rx_packets: v[base],
            rx_bytes: v[base + 1],
            tx_packets: v[base + 2],
            tx_bytes: v[base + 3],
            dropped_packets: v[base + 4],
            dropped_bytes: v[base + 5],
            tx_failed_packets: v[base + 6],
            tx_failed_bytes: v[base + 7],
        };
        WorkerCounters {
            directions: [dir(0), dir(DIRECTION_FIELDS)],
            bursts: v[2 * DIRECTION_FIELDS],
            busy_ticks: v[2 * DIRECTION_FIELDS + 1],
        }
    }
}

/// Settings of a worker loop.
#[derive(Clone, Copy, Debug)]
pub struct WorkerSettings {
    /// How often counters are published, in milliseconds.
    pub stats_interval_ms: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            stats_interval_ms: 100,
        }
    }
}

/// The state one worker owns, aligned so no two workers share a cache line.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct WorkerContext<P: PacketPath, C: Clock> {
    counters: WorkerCounters,
    burst: P::Burst,
    /// Answers the pipeline wrote over received packets, to send back.
    replies: P::Burst,
    paths: Vec<P>,
    clock: C,
    shared: Arc<SharedWorkerStats>,
    stop: Arc<AtomicBool>,
    settings: WorkerSettings,
    pipeline: Pipeline,
    /// The clock's ticks at the end of the last poll.
    last_ticks: u64,
}

impl<P: PacketPath, C: Clock> WorkerContext<P, C> {
    pub fn new(
        paths: Vec<P>,
        clock: C,
        settings: WorkerSettings,
        stop: Arc<AtomicBool>,
        pipeline: Pipeline,
    ) -> Self {
        WorkerContext {
            counters: WorkerCounters::default(),
            burst: P::Burst::default(),
            replies: P::Burst::default(),
            paths,
            clock,
            shared: Arc::new(SharedWorkerStats::default()),
            stop,
            settings,
            pipeline,
            last_ticks: 0,
        }
    }

    /// The packet paths (a replay's capture source, to read its verdicts).
    pub fn paths(&self) -> &[P] {
        &self.paths
    }

    /// The pipeline (tables, current window).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// Send the last window and publish the final counters.
    pub fn finish(&mut self) {
        let now_ns = self.clock.now_ns();
        self.pipeline.finish(now_ns);
        self.shared.publish(&self.counters);
    }

    /// The handle other threads read this worker's counters through.
    pub fn shared_stats(&self) -> Arc<SharedWorkerStats> {
        Arc::clone(&self.shared)
    }

    /// The counters so far (exact, for the worker's own thread).
    pub fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    /// Poll until the stop flag is raised, then publish the final counters.
    /// First the worker's tables move into memory of its own NUMA node.
    pub fn run(&mut self) {
        let placement = Placement {
            memory_node: self.pipeline.move_to_local_memory(),
            cpu_node: cpu::current_node(),
        };
        self.shared.set_placement(placement);
        self.shared.polling.store(true, Ordering::Release);
        if placement.memory_node != placement.cpu_node {
            tracing::warn!(
                cpu_node = ?placement.cpu_node,
                memory_node = ?placement.memory_node,
                "a worker's tables are not all on its CPU's NUMA node: lookups cross sockets"
            );
        }
        let hz = self.clock.hz();
        let interval = (hz / 1000).max(1) * self.settings.stats_interval_ms.max(1);
        let started = self.clock.now();
        let mut next_tick = started + interval;
        while !self.stop.load(Ordering::Relaxed) {
            self.poll_once();
            let now = self.last_ticks;
            if now >= next_tick {
                self.counters.busy_ticks = now - started;
                self.shared.publish(&self.counters);
                next_tick = now + interval;
            }
        }
        self.counters.busy_ticks = self.clock.now() - started;
        self.finish();
    }

    /// One pass over every path: receive a burst, judge and count it, forward
    /// what passes; then apply table changes and close the window if it is due.
    /// Returns the number of packets received.
    #[inline]
    pub fn poll_once(&mut self) -> usize {
        let mut received = 0;
        let mut last_cycles = None;
        for p in 0..self.paths.len() {
            let path = &mut self.paths[p];
            let n = path.receive(&mut self.burst);
            if n == 0 {
                continue;
            }
            let cycles_start = cpu::cycles();
            received += n;
            let dir = path.direction();
            let now_ns = self.clock.ns_of(self.clock.ticks_at(cycles_start));
            let counters = &mut self.counters.directions[dir as usize];
            let burst = &mut self.burst;

            let verdict = self.pipeline.process_burst(burst, dir, now_ns);
            let keep = verdict.keep;
            let rx_bytes = verdict.bytes;
            let forwarded_bytes = verdict.kept_bytes;
            counters.rx_packets += n as u64;
            counters.rx_bytes += rx_bytes;
            let answered_through = path.answered_through();
            let freed = burst.sort_out(keep, verdict.reply, &mut self.replies);
            let dropped = n as u32 - keep.count_ones();
            debug_assert!(freed <= dropped);
            counters.dropped_packets += u64::from(dropped);
            counters.dropped_bytes += rx_bytes - forwarded_bytes;
            match path.transmit(burst) {
                Some(outcome) => {
                    counters.tx_packets += u64::from(outcome.sent);
                    counters.tx_bytes += forwarded_bytes - outcome.unsent_bytes;
                    counters.tx_failed_packets += u64::from(outcome.unsent);
                    counters.tx_failed_bytes += outcome.unsent_bytes;
                    if outcome.unsent > 0 {
                        self.pipeline.count_tx_full(
                            dir,
                            u64::from(outcome.unsent),
                            outcome.unsent_bytes,
                        );
                    }
                }
                // Monitor mode: the packet was seen and counted; nothing to forward.
                None => burst.clear(),
            }
            if !self.replies.is_empty() {
                let answers = self.replies.len() as u64;
                let sent = answered_through
                    .and_then(|q| self.paths.get_mut(q))
                    .and_then(|back| back.answer(&mut self.replies))
                    .map_or(0, |o| u64::from(o.sent));
                self.replies.clear();
                self.pipeline.count_unsent_answers(answers - sent);
            }
            self.counters.bursts += 1;
            // A burst not measured leaves its start as the time now: the clock
            // is a burst behind (microseconds) until the next read.
            last_cycles = Some(cycles_start);
            if self.pipeline.count_burst() {
                let cycles_end = cpu::cycles();
                last_cycles = Some(cycles_end);
                self.pipeline
                    .record_burst_cycles(cycles_end.wrapping_sub(cycles_start));
            }
        }
        // The last clock read of a burst is the time now: one read less.
        self.last_ticks = match last_cycles {
            Some(c) => self.clock.ticks_at(c),
            None => self.clock.now(),
        };
        self.pipeline.after_poll(self.clock.ns_of(self.last_ticks));
        received
    }
}

const _: () = assert!(BURST_SIZE <= 32, "the keep mask is a u32");
