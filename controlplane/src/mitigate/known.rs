//! Known sources: the peers each protected host exchanged traffic with in
//! peacetime (it sent to them), learnt continuously from the workers' sampled
//! peers. During an attack on the host they pass its signatures and rate limits,
//! so a resolver's upstreams, a NAT's shared address or a game's players keep
//! working.
//!
//! A peer counts only once the host stayed calm for [`COMMIT_NS`] after it was
//! seen: what a host sends in the first moments of a flood, before the incident
//! is confirmed (echoes to spoofed sources), is never learnt. Every table is
//! bounded; the least recently seen peers go first.

use std::collections::HashMap;

/// How long a host must stay calm after a peer was seen before the peer is known.
pub const COMMIT_NS: u64 = 2_000_000_000;
/// Known peers kept per protected host.
pub const PEERS_PER_HOST: usize = 8192;
/// Protected hosts with known peers.
pub const HOSTS: usize = 4096;

#[derive(Debug, Default)]
struct Host {
    /// Peer -> last seen (ns).
    known: HashMap<u128, u64>,
    /// Peers seen, not yet committed: peer -> first seen.
    pending: HashMap<u128, u64>,
    last_seen_ns: u64,
}

/// Known peers of every protected host.
#[derive(Debug, Default)]
pub struct KnownSources {
    hosts: HashMap<u128, Host>,
}

impl KnownSources {
    /// Take in one window's sampled (host, peer) pairs. `calm(host)` says whether
    /// the host is neither attacked nor about to be (no incident, nothing over
    /// its limits): only then are its peers learnt.
    pub fn observe(&mut self, now_ns: u64, peers: &[(u128, u128)], calm: impl Fn(u128) -> bool) {
        for (host, h) in &mut self.hosts {
            if h.pending.is_empty() {
                continue;
            }
            if !calm(*host) {
                // What the host sent just before an attack is not peacetime.
                h.pending.clear();
                continue;
            }
            let due: Vec<(u128, u64)> = h
                .pending
                .iter()
                .filter(|(_, seen)| now_ns.saturating_sub(**seen) >= COMMIT_NS)
                .map(|(p, s)| (*p, *s))
                .collect();
            for (peer, seen) in due {
                h.pending.remove(&peer);
                if h.known.len() >= PEERS_PER_HOST {
                    evict_oldest(&mut h.known);
                }
                h.known.insert(peer, seen);
            }
        }
        for (host, peer) in peers {
            if !calm(*host) {
                continue;
            }
            if !self.hosts.contains_key(host) && self.hosts.len() >= HOSTS {
                self.evict_host();
            }
            let h = self.hosts.entry(*host).or_default();
            h.last_seen_ns = now_ns;
            match h.known.get_mut(peer) {
                Some(seen) => *seen = now_ns,
                None if h.pending.len() < PEERS_PER_HOST => {
                    h.pending.entry(*peer).or_insert(now_ns);
                }
                None => {}
            }
        }
    }

    /// The known peers of every host `covers` accepts (a host, or a prefix's
    /// hosts), at most `max`.
    pub fn of(&self, covers: impl Fn(u128) -> bool, max: usize) -> Vec<u128> {
        let mut out = Vec::new();
        for (host, h) in &self.hosts {
            if covers(*host) {
                out.extend(h.known.keys().take(max.saturating_sub(out.len())));
            }
        }
        out
    }

    pub fn is_known(&self, host: u128, peer: u128) -> bool {
        self.hosts
            .get(&host)
            .is_some_and(|h| h.known.contains_key(&peer))
    }

    /// Known peers in all (for the metrics).
    pub fn peers(&self) -> usize {
        self.hosts.values().map(|h| h.known.len()).sum()
    }

    fn evict_host(&mut self) {
        if let Some(oldest) = self
            .hosts
            .iter()
            .min_by_key(|(_, h)| h.last_seen_ns)
            .map(|(k, _)| *k)
        {
            self.hosts.remove(&oldest);
        }
    }
}

/// Drop the least recently seen eighth of a full table (amortises the scan).
fn evict_oldest(known: &mut HashMap<u128, u64>) {
    let mut by_age: Vec<(u64, u128)> = known.iter().map(|(k, s)| (*s, *k)).collect();
    let cut = (by_age.len() / 8).max(1).min(by_age.len());
    if cut == 0 {
        return;
    }
    by_age.select_nth_unstable(cut - 1);
    for (_, k) in &by_age[..cut] {
        known.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn peers_of_a_calm_host_are_known_after_the_commit_delay() {
        let mut k = KnownSources::default();
        k.observe(10 * S, &[(1, 100)], |_| true);
        assert!(!k.is_known(1, 100), "not before the delay");
        k.observe(11 * S, &[], |_| true);
        assert!(!k.is_known(1, 100));
        k.observe(12 * S, &[], |_| true);
        assert!(k.is_known(1, 100));
        assert_eq!(k.of(|h| h == 1, 10), vec![100]);
        assert!(k.of(|h| h == 2, 10).is_empty());
    }

    #[test]
    fn what_a_host_sent_just_before_its_attack_is_forgotten() {
        let mut k = KnownSources::default();
        k.observe(10 * S, &[(1, 100), (2, 200)], |_| true);
        // Host 1 goes over its limits a second later; host 2 stays calm.
        k.observe(11 * S, &[(1, 101)], |h| h != 1);
        k.observe(13 * S, &[], |_| true);
        assert!(!k.is_known(1, 100) && !k.is_known(1, 101));
        assert!(k.is_known(2, 200));
    }

    #[test]
    fn a_full_host_forgets_its_least_recent_peers() {
        let mut k = KnownSources::default();
        let peers: Vec<(u128, u128)> = (0..PEERS_PER_HOST as u128).map(|p| (1, p)).collect();
        k.observe(S, &peers, |_| true);
        k.observe(4 * S, &[(1, 999_999)], |_| true);
        k.observe(7 * S, &[], |_| true);
        assert!(k.is_known(1, 999_999));
        assert!(k.peers() <= PEERS_PER_HOST);
    }
}
