//! Rule tables read by the workers on every packet: allowlist, source blocklist
//! (exact IPv4/IPv6 addresses and prefixes), signature rules and rate limits.
//!
//! # Design: per-worker copies fed through a command mailbox
//!
//! Each worker owns a complete copy of the tables ([`RuleTables`]) and is the
//! only thread that ever touches it. The control plane never writes into a
//! worker's memory: it sends [`TableCommand`]s through each worker's bounded
//! mailbox ([`TablePublisher`]), and the worker applies them between bursts, the
//! way Gatekeeper's GK blocks own their flow tables and take updates through a
//! mailbox. Why this rather than shared atomic tables or epoch-reclaimed
//! snapshots:
//!
//! - Readers are plain loads from memory only their core writes: no atomic
//!   instructions, no cache-line ping-pong with a writer, no torn entries by
//!   construction, and counters are ordinary increments.
//! - Deletion can shift entries back (no tombstones), so lookups do not slow
//!   down under churn and no reclamation scheme (RCU/QSBR) is needed.
//! - Visibility is bounded by one loop iteration: a worker drains its mailbox
//!   after every pass over its queues (microseconds), far inside 1 ms. The
//!   publisher knows when a change is live everywhere through each worker's
//!   acknowledged sequence number ([`TablePublisher::visible_everywhere`]).
//! - Cost: memory is one copy per worker (a 1M-entry IPv4 blocklist is 64 MiB
//!   per worker), and the writer must never drop a command: when a mailbox
//!   is full the publisher keeps the command in its own backlog and retries, so
//!   a slow worker delays the writer, never the other way round.
//!
//! Capacities are fixed at start-up ([`TableCapacities`]); every table is
//! preallocated and a full table refuses new entries with [`TableError::Full`]
//! (checked by the publisher before anything is sent, and counted).
//! Time is passed in as nanoseconds (`now_ns`) so expiry is testable with a
//! fake clock.

mod blocked_hosts;
mod connections;
mod exact;
mod fingerprints;
mod handshake;
mod prefix;
mod prefix_set;
mod publish;
mod ratelimit;
mod signature;
mod syn_cookie;
mod watch;

pub use blocked_hosts::{BlockedHosts, BULK_MAX};
pub use connections::{ConnectionTable, IDLE_FOR_NS};
pub use exact::{fold_hash, ExactTable, TableKey};
pub(crate) use exact::{random_u64, with_room};
pub use fingerprints::{FingerprintTable, Insertion};
pub use handshake::{HandshakeTracker, VERIFIED_FOR_NS};
pub use prefix::{Addr, Prefix, PrefixTable};
pub use prefix_set::PrefixSet;
pub use publish::{TableMailbox, TablePublisher};
pub use ratelimit::{SourceLimit, SourceRateLimiter, TokenBucket};
pub use signature::{FragmentMatch, SignatureAction, SignatureRule, SignatureSet, MAX_SIGNATURES};
pub use syn_cookie::{Challenge, SynCookies};
pub use watch::{mapped_key, WatchSet, WatchedTarget, MAX_WATCHED};

use std::sync::Arc;

use crate::wire::PacketMeta;

/// Why a table refused a change. The text is the message shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("the table is full ({capacity} entries); raise its capacity in the configuration")]
    Full { capacity: usize },
    #[error("{0}")]
    BadPrefix(String),
    #[error("signature rule {id}: {reason}")]
    BadSignature { id: u32, reason: String },
    #[error(
        "{prefix} is inside the allowlisted {allowlisted}: allowlisted addresses are never blocked"
    )]
    Allowlisted { prefix: Prefix, allowlisted: Prefix },
    #[error("no such entry: {0}")]
    NotFound(String),
}

/// How many entries each table holds; memory is reserved for all of it up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableCapacities {
    /// Exact blocked addresses, per family.
    pub blocked_hosts: usize,
    /// Blocked prefixes, per family.
    pub blocked_prefixes: usize,
    /// Allowlisted prefixes, per family.
    pub allowlist: usize,
    /// Slots of the per-source rate limiter.
    pub source_limiter_slots: usize,
}

impl Default for TableCapacities {
    fn default() -> Self {
        TableCapacities {
            blocked_hosts: 65_536,
            blocked_prefixes: 4096,
            allowlist: 1024,
            source_limiter_slots: 65_536,
        }
    }
}

/// A blocklist entry: the rule that put it there and when it expires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockEntry {
    pub rule_id: u32,
    /// Clock time in ns after which the entry no longer applies (u64::MAX: never).
    pub expires_at_ns: u64,
}

impl BlockEntry {
    #[inline(always)]
    pub(crate) fn live(&self, now_ns: u64) -> bool {
        now_ns < self.expires_at_ns
    }
}

/// A change to the tables.
#[derive(Clone, Debug)]
pub enum TableCommand {
    Block {
        prefix: Prefix,
        rule_id: u32,
        expires_at_ns: u64,
    },
    Unblock {
        prefix: Prefix,
    },
    Allow {
        prefix: Prefix,
    },
    Disallow {
        prefix: Prefix,
    },
    /// Replace the whole signature set (compiled by the control plane).
    Signatures(Arc<SignatureSet>),
    SourceLimit(Option<SourceLimit>),
    /// Replace the targets under attack (per-source accounting, known sources).
    Watch(Arc<WatchSet>),
}

/// What the tables say about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Pass,
    /// The source is allowlisted: passes whatever else says.
    Allowlisted,
    Blocked {
        rule_id: u32,
    },
    Signature {
        rule_id: u32,
    },
    SignatureRateLimited {
        rule_id: u32,
    },
    SourceRateLimited {
        rule_id: u32,
    },
    /// A SYN toward a target under SYN authentication: the pipeline passes it
    /// if its source is verified and answers it with a challenge otherwise.
    Authenticate {
        rule_id: u32,
    },
    /// A TCP segment toward a target whose connection state is checked: the
    /// pipeline passes it if it belongs to a known connection.
    RequireState {
        rule_id: u32,
    },
    /// Answered with a challenge (not forwarded).
    Challenged {
        rule_id: u32,
    },
    /// An unverified SYN that could not be challenged (a tunnelled or unusual
    /// frame, or the challenge rate is spent).
    Unverified {
        rule_id: u32,
    },
    /// A segment of no known connection.
    OutOfState {
        rule_id: u32,
    },
    /// A client's RST answering a challenge: it verified its source and is
    /// consumed (the server never saw the connection).
    ChallengeAnswer,
}

impl Decision {
    /// How many kinds of decision there are (see [`Decision::kind`]).
    pub const KINDS: usize = 12;

    /// The kind of decision, `0..KINDS` in the order of declaration: an index
    /// for tables of what each kind means, which a per-packet match compiles
    /// into an indirect jump.
    #[inline(always)]
    pub const fn kind(self) -> usize {
        match self {
            Decision::Pass => 0,
            Decision::Allowlisted => 1,
            Decision::Blocked { .. } => 2,
            Decision::Signature { .. } => 3,
            Decision::SignatureRateLimited { .. } => 4,
            Decision::SourceRateLimited { .. } => 5,
            Decision::Authenticate { .. } => 6,
            Decision::RequireState { .. } => 7,
            Decision::Challenged { .. } => 8,
            Decision::Unverified { .. } => 9,
            Decision::OutOfState { .. } => 10,
            Decision::ChallengeAnswer => 11,
        }
    }

    /// A decision of kind `kind` (rule 0), for building tables by kind.
    pub const fn of_kind(kind: usize) -> Decision {
        let rule_id = 0;
        match kind {
            0 => Decision::Pass,
            1 => Decision::Allowlisted,
            2 => Decision::Blocked { rule_id },
            3 => Decision::Signature { rule_id },
            4 => Decision::SignatureRateLimited { rule_id },
            5 => Decision::SourceRateLimited { rule_id },
            6 => Decision::Authenticate { rule_id },
            7 => Decision::RequireState { rule_id },
            8 => Decision::Challenged { rule_id },
            9 => Decision::Unverified { rule_id },
            10 => Decision::OutOfState { rule_id },
            _ => Decision::ChallengeAnswer,
        }
    }

    #[inline(always)]
    pub fn drops(self) -> bool {
        !matches!(
            self,
            Decision::Pass
                | Decision::Allowlisted
                | Decision::Authenticate { .. }
                | Decision::RequireState { .. }
        )
    }

    /// The rule responsible for a drop.
    pub fn rule_id(self) -> Option<u32> {
        match self {
            Decision::Pass
            | Decision::Allowlisted
            | Decision::Authenticate { .. }
            | Decision::RequireState { .. }
            | Decision::ChallengeAnswer => None,
            Decision::Blocked { rule_id }
            | Decision::Signature { rule_id }
            | Decision::SignatureRateLimited { rule_id }
            | Decision::SourceRateLimited { rule_id }
            | Decision::Challenged { rule_id }
            | Decision::Unverified { rule_id }
            | Decision::OutOfState { rule_id } => Some(rule_id),
        }
    }
}

/// One worker's copy of every table.
#[derive(Debug)]
pub struct RuleTables {
    allow: PrefixTable<()>,
    blocked_v4: BlockedHosts,
    blocked_v6: ExactTable<u128, BlockEntry>,
    blocked_prefixes: PrefixTable<BlockEntry>,
    signatures: Arc<SignatureSet>,
    signature_buckets: Vec<TokenBucket>,
    /// Rate-limit shares: a rule's pps is divided among this many workers.
    workers: u32,
    source_limiter: SourceRateLimiter,
    /// Whether a signature rate-limits TCP SYNs (a spoofed SYN flood's answer):
    /// the pipeline then follows handshakes to let verified clients through.
    syn_rate_limited: bool,
    /// Whether a signature authenticates SYNs: the pipeline then checks
    /// inbound RSTs for answers to its challenges.
    syn_authenticating: bool,
    /// Whether a signature authenticates SYNs or checks connection state: the
    /// pipeline then resolves those decisions (other traffic pays nothing).
    tcp_defended: bool,
    /// Targets under attack: their traffic is accounted per source, and their
    /// known sources pass signatures and rate limits.
    watch: Arc<WatchSet>,
    /// Each watched target's per-source limits (unknown, known source) as
    /// this worker's share, worked out when the set arrives: divided per
    /// packet, they were a tenth of the accounting's time.
    watch_shares: [[u32; 2]; MAX_WATCHED],
    /// Commands refused because a table was full (the publisher checks first, so
    /// this stays 0 unless capacities disagree).
    pub refused: u64,
}

/// One worker's share of a rate, rounded up: the workers together let
/// through at least all of it.
fn worker_share(pps: u32, workers: u32) -> u32 {
    pps.div_ceil(workers.max(1))
}

/// A copy with the same room (see [`ExactTable`]'s): the signature buckets
/// keep room for every signature, so a new set never allocates in a worker.
impl Clone for RuleTables {
    fn clone(&self) -> Self {
        RuleTables {
            allow: self.allow.clone(),
            blocked_v4: self.blocked_v4.clone(),
            blocked_v6: self.blocked_v6.clone(),
            blocked_prefixes: self.blocked_prefixes.clone(),
            signatures: Arc::clone(&self.signatures),
            signature_buckets: with_room(&self.signature_buckets),
            workers: self.workers,
            source_limiter: self.source_limiter.clone(),
            syn_rate_limited: self.syn_rate_limited,
            syn_authenticating: self.syn_authenticating,
            tcp_defended: self.tcp_defended,
            watch: Arc::clone(&self.watch),
            watch_shares: self.watch_shares,
            refused: self.refused,
        }
    }
}

impl RuleTables {
    pub fn new(capacities: TableCapacities, workers: u32) -> Self {
        RuleTables {
            allow: PrefixTable::with_capacity(capacities.allowlist),
            blocked_v4: BlockedHosts::with_capacity(capacities.blocked_hosts),
            blocked_v6: ExactTable::with_capacity(capacities.blocked_hosts),
            blocked_prefixes: PrefixTable::with_capacity(capacities.blocked_prefixes),
            signatures: Arc::new(SignatureSet::default()),
            signature_buckets: Vec::with_capacity(MAX_SIGNATURES),
            workers: workers.max(1),
            source_limiter: SourceRateLimiter::new(capacities.source_limiter_slots),
            syn_rate_limited: false,
            syn_authenticating: false,
            tcp_defended: false,
            watch: Arc::new(WatchSet::default()),
            watch_shares: [[0; 2]; MAX_WATCHED],
            refused: 0,
        }
    }

    /// Apply one change (on the worker, between bursts).
    pub fn apply(&mut self, command: TableCommand, now_ns: u64) -> Result<(), TableError> {
        let result = match command {
            TableCommand::Block {
                prefix,
                rule_id,
                expires_at_ns,
            } => {
                let entry = BlockEntry {
                    rule_id,
                    expires_at_ns,
                };
                match (prefix.is_host(), Addr::from(prefix.addr())) {
                    (true, Addr::V4(a)) => self.blocked_v4.insert(a, entry).map(drop),
                    (true, Addr::V6(a)) => self.blocked_v6.insert(a, entry).map(drop),
                    (false, _) => self.blocked_prefixes.insert(prefix, entry).map(drop),
                }
            }
            TableCommand::Unblock { prefix } => {
                let removed = match (prefix.is_host(), Addr::from(prefix.addr())) {
                    (true, Addr::V4(a)) => self.blocked_v4.remove(a),
                    (true, Addr::V6(a)) => self.blocked_v6.remove(&a),
                    (false, _) => self.blocked_prefixes.remove(&prefix),
                };
                removed
                    .map(drop)
                    .ok_or_else(|| TableError::NotFound(prefix.to_string()))
            }
            TableCommand::Allow { prefix } => self.allow.insert(prefix, ()).map(drop),
            TableCommand::Disallow { prefix } => self
                .allow
                .remove(&prefix)
                .ok_or_else(|| TableError::NotFound(prefix.to_string())),
            TableCommand::Signatures(set) => {
                // Reusing the preallocated Vec: clear + push within capacity never
                // allocates (MAX_SIGNATURES reserved at creation).
                self.signature_buckets.clear();
                for rule in set.rules() {
                    let pps = match rule.action {
                        SignatureAction::RateLimit { pps } => {
                            u64::from(worker_share(pps, self.workers))
                        }
                        SignatureAction::Drop
                        | SignatureAction::Authenticate
                        | SignatureAction::RequireState => 0,
                    };
                    self.signature_buckets
                        .push(TokenBucket::new(pps, pps.max(1), now_ns));
                }
                // The publisher keeps its own reference, so dropping ours only
                // decrements a count: no deallocation on the worker.
                self.syn_rate_limited = set.rules().iter().any(|r| {
                    matches!(r.action, SignatureAction::RateLimit { .. })
                        && matches!(r.protocol, None | Some(6))
                        && r.tcp_flags.is_none_or(|(mask, value)| {
                            value & crate::wire::tcp::flags::SYN != 0
                                || mask & crate::wire::tcp::flags::SYN == 0
                        })
                });
                self.syn_authenticating = set
                    .rules()
                    .iter()
                    .any(|r| r.action == SignatureAction::Authenticate);
                self.tcp_defended = set.rules().iter().any(|r| {
                    matches!(
                        r.action,
                        SignatureAction::Authenticate | SignatureAction::RequireState
                    )
                });
                self.signatures = set;
                Ok(())
            }
            TableCommand::SourceLimit(limit) => {
                let share = limit.map(|l| SourceLimit {
                    pps: worker_share(l.pps, self.workers),
                    ..l
                });
                self.source_limiter.set_limit(share);
                Ok(())
            }
            // As with signatures, the publisher holds the set: no freeing here.
            TableCommand::Watch(set) => {
                let workers = self.workers;
                for (share, t) in self.watch_shares.iter_mut().zip(set.targets()) {
                    *share = [t.limit_pps, t.known_limit_pps].map(|l| worker_share(l, workers));
                }
                self.watch = set;
                Ok(())
            }
        };
        if matches!(result, Err(TableError::Full { .. })) {
            self.refused += 1;
        }
        result
    }

    /// Decide for one packet by its source, destination and class.
    #[inline]
    pub fn decide(&mut self, m: &PacketMeta, now_ns: u64) -> Decision {
        let Some(src) = Addr::from_meta(&m.src, m.family) else {
            return Decision::Pass;
        };
        self.decide_rest(m, src, true, now_ns)
    }

    /// Whether no table holds anything: every packet passes.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
            && self.blocked_v4.is_empty()
            && self.blocked_v6.is_empty()
            && self.blocked_prefixes.is_empty()
            && self.signatures.is_empty()
            && self.source_limiter.limit().is_none()
    }

    /// Decide for a burst, overlapping the IPv4 blocklist's cache misses.
    #[inline]
    pub fn decide_burst(&mut self, metas: &[PacketMeta], now_ns: u64, out: &mut [Decision]) {
        let n = metas.len().min(out.len()).min(BULK_MAX);
        if self.is_empty() {
            out[..n].fill(Decision::Pass);
            return;
        }
        let mut found = [None; BULK_MAX];
        if !self.blocked_v4.is_empty() {
            let mut keys = [0u32; BULK_MAX];
            for i in 0..n {
                if let Some(Addr::V4(a)) = Addr::from_meta(&metas[i].src, metas[i].family) {
                    keys[i] = a;
                }
            }
            self.blocked_v4
                .find_bulk(&keys[..n], now_ns, &mut found[..n]);
        }
        for i in 0..n {
            let m = &metas[i];
            out[i] = match Addr::from_meta(&m.src, m.family) {
                None => Decision::Pass,
                Some(src @ Addr::V4(_)) => {
                    // A zero key may have matched a blocked 0.0.0.0 for a slot we
                    // did not fill; from_meta above returned V4, so keys[i] is real.
                    match found[i] {
                        Some(_) if self.allowlisted(src) => Decision::Allowlisted,
                        Some(rule_id) => Decision::Blocked { rule_id },
                        None => self.decide_rest(m, src, false, now_ns),
                    }
                }
                Some(src @ Addr::V6(_)) => self.decide_rest(m, src, true, now_ns),
            };
        }
    }

    #[inline(always)]
    fn allowlisted(&self, src: Addr) -> bool {
        !self.allow.is_empty() && self.allow.contains(src)
    }

    /// Inlined into the burst's loop: as a call per packet, its prologue and
    /// spills were a tenth of the classifier's time.
    #[inline(always)]
    fn decide_rest(
        &mut self,
        m: &PacketMeta,
        src: Addr,
        check_exact: bool,
        now_ns: u64,
    ) -> Decision {
        if self.allowlisted(src) {
            return Decision::Allowlisted;
        }
        if check_exact {
            let e = match src {
                Addr::V4(a) => self.blocked_v4.get(a),
                Addr::V6(a) => self.blocked_v6.get(&a).copied(),
            };
            if let Some(e) = e.filter(|e| e.live(now_ns)) {
                return Decision::Blocked { rule_id: e.rule_id };
            }
        }
        if !self.blocked_prefixes.is_empty() {
            if let Some(e) = self
                .blocked_prefixes
                .longest_match(src)
                .map(|(_, e)| e)
                .filter(|e| e.live(now_ns))
            {
                return Decision::Blocked { rule_id: e.rule_id };
            }
        }
        if let Some(index) = self.signatures.first_match(m) {
            if let Some(rule) = self.signatures.rule(index) {
                let rule_id = rule.id;
                return match rule.action {
                    SignatureAction::Drop => Decision::Signature { rule_id },
                    SignatureAction::Authenticate => Decision::Authenticate { rule_id },
                    SignatureAction::RequireState => Decision::RequireState { rule_id },
                    SignatureAction::RateLimit { .. } => {
                        if self
                            .signature_buckets
                            .get_mut(index)
                            .is_some_and(|b| b.allow(now_ns))
                        {
                            Decision::Pass
                        } else {
                            Decision::SignatureRateLimited { rule_id }
                        }
                    }
                };
            }
        }
        if let Some(rule_id) = self.source_limiter.check(m.class, src, now_ns) {
            return Decision::SourceRateLimited { rule_id };
        }
        Decision::Pass
    }

    /// The blocklist's entry for `prefix` (exact or prefix), if it holds one.
    /// (What each entry dropped is counted per rule in the window reports.)
    pub fn block_entry(&self, prefix: &Prefix) -> Option<BlockEntry> {
        match (prefix.is_host(), Addr::from(prefix.addr())) {
            (true, Addr::V4(a)) => self.blocked_v4.get(a),
            (true, Addr::V6(a)) => self.blocked_v6.get(&a).copied(),
            (false, _) => self.blocked_prefixes.get(prefix).copied(),
        }
    }

    /// Entries in the blocklist (exact and prefixes).
    pub fn blocked_len(&self) -> usize {
        self.blocked_v4.len() + self.blocked_v6.len() + self.blocked_prefixes.len()
    }

    pub fn allowlist_len(&self) -> usize {
        self.allow.len()
    }

    pub fn signatures(&self) -> &SignatureSet {
        &self.signatures
    }

    /// The NUMA node of the blocklists' slots, if the kernel says and both
    /// families agree.
    pub fn memory_node(&self) -> Option<u32> {
        let v4 = self.blocked_v4.memory_node();
        (v4 == self.blocked_v6.memory_node())
            .then_some(v4)
            .flatten()
    }

    /// The targets under attack.
    #[inline(always)]
    pub fn watch(&self) -> &WatchSet {
        &self.watch
    }

    /// This worker's share of the per-source limit of watched target `index`
    /// (for a source the target knows, or not).
    #[inline(always)]
    pub fn watch_share(&self, index: usize, known: bool) -> u32 {
        self.watch_shares
            .get(index)
            .map_or(0, |s| s[usize::from(known)])
    }

    /// Whether a signature rule rate-limits TCP SYNs.
    #[inline(always)]
    pub fn syn_rate_limited(&self) -> bool {
        self.syn_rate_limited
    }

    /// Whether a signature rule authenticates SYNs.
    #[inline(always)]
    pub fn syn_authenticating(&self) -> bool {
        self.syn_authenticating
    }

    /// Whether a signature rule authenticates SYNs or checks connection state.
    #[inline(always)]
    pub fn tcp_defended(&self) -> bool {
        self.tcp_defended
    }
}

#[cfg(test)]
mod tests;
