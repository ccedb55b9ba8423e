//! The writer's side of the tables: validates every change against a model of
//! what the workers hold (capacity, allowlist), numbers it, and delivers it to
//! every worker's mailbox without ever dropping one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::{
    Prefix, RuleTables, SignatureRule, SignatureSet, SourceLimit, TableCapacities, TableCommand,
    TableError, WatchSet,
};

/// A worker's end: applies pending commands to its tables between bursts.
#[derive(Debug)]
pub struct TableMailbox {
    rx: Receiver<(u64, TableCommand)>,
    applied: Arc<AtomicU64>,
}

impl TableMailbox {
    /// Apply up to `max` pending commands; returns how many were applied.
    /// Never blocks.
    #[inline]
    pub fn drain(&mut self, tables: &mut RuleTables, now_ns: u64, max: usize) -> usize {
        // Two plain loads: an empty channel's `try_recv` ends in a full fence,
        // which waits for every store of the burst just counted.
        if self.rx.is_empty() {
            return 0;
        }
        let mut n = 0;
        let mut last = None;
        while n < max {
            let Ok((seq, command)) = self.rx.try_recv() else {
                break;
            };
            // The publisher validated the command against the same capacities;
            // a refusal here is counted in the tables.
            let _ = tables.apply(command, now_ns);
            last = Some(seq);
            n += 1;
        }
        if let Some(seq) = last {
            self.applied.store(seq, Ordering::Release);
        }
        n
    }
}

/// What the publisher knows of a blocklist entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockState {
    pub rule_id: u32,
    pub expires_at_ns: u64,
}

/// The control plane's end.
#[derive(Debug)]
pub struct TablePublisher {
    senders: Vec<Sender<(u64, TableCommand)>>,
    acks: Vec<Arc<AtomicU64>>,
    backlog: Vec<VecDeque<(u64, TableCommand)>>,
    next_seq: u64,
    capacities: TableCapacities,
    allow: BTreeSet<Prefix>,
    blocked: BTreeMap<Prefix, BlockState>,
    signatures: Arc<SignatureSet>,
    /// Signature sets workers may still hold; freed here once they let go.
    retired: Vec<Arc<SignatureSet>>,
    watch: Arc<WatchSet>,
    retired_watch: Vec<Arc<WatchSet>>,
    /// The NUMA node of each worker (`None`: unknown). Workers on different
    /// nodes get each a copy of the shared sets made in their node's memory.
    nodes: Vec<Option<u32>>,
    /// The copies of the current sets for the nodes (empty while every worker
    /// is on one node): kept here so the last drop happens here, not in a worker.
    signature_copies: Vec<Arc<SignatureSet>>,
    watch_copies: Vec<Arc<WatchSet>>,
    /// Blocked entries by (host?, IPv4?), kept so capacity checks cost nothing.
    blocked_counts: [[usize; 2]; 2],
    /// Changes refused because a table was full.
    pub refused_full: u64,
    /// While set, changes wait here instead of going to the workers (until
    /// the control plane has recorded what they carry).
    deferred: bool,
}

impl TablePublisher {
    /// A publisher and one mailbox per worker, each holding up to `depth` commands.
    pub fn new(
        workers: usize,
        capacities: TableCapacities,
        depth: usize,
    ) -> (TablePublisher, Vec<TableMailbox>) {
        let mut senders = Vec::new();
        let mut mailboxes = Vec::new();
        let mut acks = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = bounded(depth.max(1));
            let applied = Arc::new(AtomicU64::new(0));
            senders.push(tx);
            acks.push(Arc::clone(&applied));
            mailboxes.push(TableMailbox { rx, applied });
        }
        let publisher = TablePublisher {
            backlog: vec![VecDeque::new(); workers],
            senders,
            acks,
            next_seq: 1,
            capacities,
            allow: BTreeSet::new(),
            blocked: BTreeMap::new(),
            signatures: Arc::new(SignatureSet::default()),
            retired: Vec::new(),
            watch: Arc::new(WatchSet::default()),
            retired_watch: Vec::new(),
            nodes: vec![None; workers],
            signature_copies: Vec::new(),
            watch_copies: Vec::new(),
            deferred: false,
            blocked_counts: [[0; 2]; 2],
            refused_full: 0,
        };
        (publisher, mailboxes)
    }

    fn send(&mut self, command: TableCommand) -> u64 {
        self.send_each(|_| command.clone())
    }

    /// Send each worker its own version of one change (`command_for(worker)`).
    fn send_each(&mut self, command_for: impl Fn(usize) -> TableCommand) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        // A whole-set replacement supersedes the ones of its kind still waiting
        // for a stalled worker: only the last counts, so the backlog stays
        // bounded by the entries changed, not by how often sets are published.
        let supersedes = |command: &TableCommand, waiting: &TableCommand| {
            matches!(
                (waiting, command),
                (TableCommand::Signatures(_), TableCommand::Signatures(_))
                    | (TableCommand::Watch(_), TableCommand::Watch(_))
                    | (TableCommand::SourceLimit(_), TableCommand::SourceLimit(_))
            )
        };
        for w in 0..self.senders.len() {
            let command = command_for(w);
            self.backlog[w].retain(|(_, waiting)| !supersedes(&command, waiting));
            self.backlog[w].push_back((seq, command));
        }
        self.flush();
        seq
    }

    /// Hold changes back from the workers (`true`) until they may go
    /// (`false`, which sends what waited): what the workers apply is then
    /// never ahead of what the control plane recorded.
    pub fn defer(&mut self, on: bool) {
        self.deferred = on;
        if !on {
            self.flush();
        }
    }

    /// Commands waiting for a worker whose mailbox is full, over all workers.
    pub fn backlog(&self) -> usize {
        self.backlog.iter().map(VecDeque::len).sum()
    }

    /// Push backlogged commands into mailboxes that have room; returns how many
    /// commands are still waiting (for a stalled worker).
    pub fn flush(&mut self) -> usize {
        if self.deferred {
            return self.backlog();
        }
        for (w, tx) in self.senders.iter().enumerate() {
            while let Some(item) = self.backlog[w].pop_front() {
                match tx.try_send(item) {
                    Ok(()) => {}
                    Err(TrySendError::Full(item)) => {
                        self.backlog[w].push_front(item);
                        break;
                    }
                    // A worker that is gone needs nothing more.
                    Err(TrySendError::Disconnected(_)) => self.backlog[w].clear(),
                }
            }
        }
        self.retired.retain(|s| Arc::strong_count(s) > 1);
        self.retired_watch.retain(|s| Arc::strong_count(s) > 1);
        self.backlog.iter().map(VecDeque::len).sum()
    }

    /// Whether every worker has applied the change numbered `seq`.
    pub fn visible_everywhere(&self, seq: u64) -> bool {
        self.acks.iter().all(|a| a.load(Ordering::Acquire) >= seq)
    }

    /// The allowlisted prefix that contains all of `prefix`, if any.
    fn covering_allow(&self, prefix: &Prefix) -> Option<Prefix> {
        self.allow
            .iter()
            .find(|a| a.len() <= prefix.len() && a.contains(prefix.addr()))
            .copied()
    }

    fn count_mut(&mut self, prefix: &Prefix) -> &mut usize {
        &mut self.blocked_counts[usize::from(prefix.is_host())]
            [usize::from(prefix.addr().is_ipv4())]
    }

    /// Whether `block(prefix, ..)` would be accepted: not inside an allowlisted
    /// prefix, and room in its table unless it is already there.
    pub fn check_block(&self, prefix: &Prefix) -> Result<(), TableError> {
        if let Some(allowlisted) = self.covering_allow(prefix) {
            return Err(TableError::Allowlisted {
                prefix: *prefix,
                allowlisted,
            });
        }
        if !self.blocked.contains_key(prefix) {
            let capacity = if prefix.is_host() {
                self.capacities.blocked_hosts
            } else {
                self.capacities.blocked_prefixes
            };
            if self.blocked_counts[usize::from(prefix.is_host())]
                [usize::from(prefix.addr().is_ipv4())]
                >= capacity
            {
                return Err(TableError::Full { capacity });
            }
        }
        Ok(())
    }

    /// Block a source address or prefix. Refused inside an allowlisted prefix or
    /// when the table is full; replacing an entry updates its rule and expiry.
    pub fn block(
        &mut self,
        prefix: Prefix,
        rule_id: u32,
        expires_at_ns: u64,
    ) -> Result<u64, TableError> {
        if let Err(e) = self.check_block(&prefix) {
            if matches!(e, TableError::Full { .. }) {
                self.refused_full += 1;
            }
            return Err(e);
        }
        if self
            .blocked
            .insert(
                prefix,
                BlockState {
                    rule_id,
                    expires_at_ns,
                },
            )
            .is_none()
        {
            *self.count_mut(&prefix) += 1;
        }
        Ok(self.send(TableCommand::Block {
            prefix,
            rule_id,
            expires_at_ns,
        }))
    }

    pub fn unblock(&mut self, prefix: Prefix) -> Result<u64, TableError> {
        self.blocked
            .remove(&prefix)
            .ok_or_else(|| TableError::NotFound(prefix.to_string()))?;
        *self.count_mut(&prefix) -= 1;
        Ok(self.send(TableCommand::Unblock { prefix }))
    }

    pub fn allow(&mut self, prefix: Prefix) -> Result<u64, TableError> {
        if !self.allow.contains(&prefix) {
            let v4 = prefix.addr().is_ipv4();
            if self
                .allow
                .iter()
                .filter(|p| p.addr().is_ipv4() == v4)
                .count()
                >= self.capacities.allowlist
            {
                self.refused_full += 1;
                return Err(TableError::Full {
                    capacity: self.capacities.allowlist,
                });
            }
        }
        self.allow.insert(prefix);
        Ok(self.send(TableCommand::Allow { prefix }))
    }

    pub fn disallow(&mut self, prefix: Prefix) -> Result<u64, TableError> {
        if !self.allow.remove(&prefix) {
            return Err(TableError::NotFound(prefix.to_string()));
        }
        Ok(self.send(TableCommand::Disallow { prefix }))
    }

    /// Old shared sets still held because a worker may still use them.
    pub fn retired_sets(&self) -> usize {
        self.retired.len() + self.retired_watch.len()
    }

    /// Say which NUMA node each worker runs on: from now on the shared sets
    /// (signatures, watched targets) go to the workers of each node as a copy
    /// in that node's memory, and the current ones are sent again that way.
    pub fn place_on_nodes(&mut self, mut nodes: Vec<Option<u32>>) {
        nodes.resize(self.senders.len(), None);
        self.nodes = nodes;
        if self.distinct_nodes().len() > 1 {
            let signatures = Arc::clone(&self.signatures);
            self.send_signatures(signatures);
            let watch = Arc::clone(&self.watch);
            self.send_watch(watch);
        }
    }

    /// The nodes the workers are known to be on, each once.
    fn distinct_nodes(&self) -> Vec<u32> {
        let nodes: BTreeSet<u32> = self.nodes.iter().flatten().copied().collect();
        nodes.into_iter().collect()
    }

    /// For each worker, the version of `set` in its node's memory: `set`
    /// itself while the workers share one node, else a copy per node (made
    /// with that node's memory preferred). Returns them and the copies.
    fn per_worker<T: Clone>(&self, set: &Arc<T>) -> (Vec<Arc<T>>, Vec<Arc<T>>) {
        let nodes = self.distinct_nodes();
        if nodes.len() <= 1 {
            return (vec![Arc::clone(set); self.nodes.len()], Vec::new());
        }
        let copies: Vec<(u32, Arc<T>)> = nodes
            .iter()
            .map(|n| {
                (
                    *n,
                    crate::cpu::with_memory_on(*n, || Arc::new((**set).clone())),
                )
            })
            .collect();
        let each = self
            .nodes
            .iter()
            .map(|node| {
                node.and_then(|n| copies.iter().find(|(c, _)| *c == n))
                    .map_or_else(|| Arc::clone(set), |(_, copy)| Arc::clone(copy))
            })
            .collect();
        (each, copies.into_iter().map(|(_, c)| c).collect())
    }

    fn send_signatures(&mut self, set: Arc<SignatureSet>) -> u64 {
        let (each, copies) = self.per_worker(&set);
        let old = std::mem::replace(&mut self.signature_copies, copies);
        self.retired.extend(old);
        self.send_each(|w| TableCommand::Signatures(Arc::clone(&each[w])))
    }

    fn send_watch(&mut self, set: Arc<WatchSet>) -> u64 {
        let (each, copies) = self.per_worker(&set);
        let old = std::mem::replace(&mut self.watch_copies, copies);
        self.retired_watch.extend(old);
        self.send_each(|w| TableCommand::Watch(Arc::clone(&each[w])))
    }

    /// Replace the signature rules (priority order).
    pub fn set_signatures(&mut self, rules: Vec<SignatureRule>) -> Result<u64, TableError> {
        let set = Arc::new(SignatureSet::new(rules)?);
        let old = std::mem::replace(&mut self.signatures, Arc::clone(&set));
        self.retired.push(old);
        Ok(self.send_signatures(set))
    }

    /// Replace the targets under attack (unchanged sets are not sent again).
    pub fn set_watch(&mut self, set: WatchSet) -> Option<u64> {
        if *self.watch == set {
            return None;
        }
        let set = Arc::new(set);
        let old = std::mem::replace(&mut self.watch, Arc::clone(&set));
        self.retired_watch.push(old);
        Some(self.send_watch(set))
    }

    pub fn watch(&self) -> &WatchSet {
        &self.watch
    }

    /// The number of the latest change: once every worker has applied it
    /// ([`TablePublisher::visible_everywhere`]), everything published so far is live.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn set_source_limit(&mut self, limit: Option<SourceLimit>) -> u64 {
        self.send(TableCommand::SourceLimit(limit))
    }

    /// Remove entries whose expiry has passed; returns them.
    pub fn expire(&mut self, now_ns: u64) -> Vec<(Prefix, BlockState)> {
        let expired: Vec<(Prefix, BlockState)> = self
            .blocked
            .iter()
            .filter(|(_, s)| s.expires_at_ns <= now_ns)
            .map(|(p, s)| (*p, *s))
            .collect();
        for (p, _) in &expired {
            self.blocked.remove(p);
            *self.count_mut(p) -= 1;
            self.send(TableCommand::Unblock { prefix: *p });
        }
        expired
    }

    /// Entries and capacity of each table, for metrics.
    pub fn fill(&self) -> [(&'static str, usize, usize); 4] {
        let c = &self.capacities;
        let count = |host: bool| self.blocked_counts[usize::from(host)].iter().sum::<usize>();
        [
            ("blocked_hosts", count(true), c.blocked_hosts * 2),
            ("blocked_prefixes", count(false), c.blocked_prefixes * 2),
            ("allowlist", self.allow.len(), c.allowlist * 2),
            (
                "signatures",
                self.signatures.len(),
                crate::tables::MAX_SIGNATURES,
            ),
        ]
    }

    pub fn blocked(&self) -> &BTreeMap<Prefix, BlockState> {
        &self.blocked
    }

    pub fn allowlist(&self) -> &BTreeSet<Prefix> {
        &self.allow
    }

    pub fn signatures(&self) -> &SignatureSet {
        &self.signatures
    }
}
