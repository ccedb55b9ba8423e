//! The engine without DPDK: a detector and a mitigator driven window by window
//! with hand-made views, the tables a worker would hold checked through its
//! mailbox.

use std::collections::HashSet;
use std::net::IpAddr;

use levee_dataplane::stats::{DestinationStats, OverLimit};
use levee_dataplane::tables::{
    mapped_key, Prefix, RuleTables, TableCapacities, TableMailbox, TablePublisher, MAX_SIGNATURES,
};
use levee_dataplane::wire::TrafficClass;

use super::*;
use crate::detect::{DetectionConfig, Detector, WindowView};

const S: u64 = 1_000_000_000;
const WINDOW: u64 = S / 10;
const T0: u64 = 1_700_000_000 * S;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// One worker's tables behind a publisher.
struct Worker {
    publisher: TablePublisher,
    mailbox: TableMailbox,
    tables: RuleTables,
}

impl Worker {
    fn new() -> Worker {
        let (publisher, mut mailboxes) =
            TablePublisher::new(1, TableCapacities::default(), 1 << 16);
        Worker {
            publisher,
            mailbox: mailboxes.remove(0),
            tables: RuleTables::new(TableCapacities::default(), 1),
        }
    }

    /// What the worker holds for a source, after applying everything sent.
    fn blocked(&mut self, source: &str) -> bool {
        self.publisher.flush();
        self.mailbox.drain(&mut self.tables, T0, usize::MAX);
        self.tables.block_entry(&Prefix::host(ip(source))).is_some()
    }
}

/// A view of window `n` with `pps` of one class toward 10.0.0.1 and sources
/// reported over their limit.
fn class_view(n: u64, class: TrafficClass, pps: u32, over: &[&str]) -> WindowView {
    let target = mapped_key(ip("10.0.0.1"));
    let mut stats = DestinationStats::default();
    let packets = pps / 10;
    stats.packets = u64::from(packets);
    stats.bytes = u64::from(packets) * 100;
    stats.classes[class.index()].packets = packets;
    stats.classes[class.index()].bytes = packets * 100;
    // Real sources: a few TTLs, a handful of sources.
    stats.set_ttl_bucket(4, packets);
    let mut v = WindowView {
        slot: n,
        start_ns: T0 + n * WINDOW,
        end_ns: T0 + (n + 1) * WINDOW,
        seconds: 0.1,
        top_sources: vec![Vec::new(); TrafficClass::COUNT],
        workers: 1,
        ..WindowView::default()
    };
    v.inbound.class_packets[class.index()] = u64::from(packets);
    v.destinations.insert(target, stats);
    v.over_limit = over
        .iter()
        .map(|s| OverLimit {
            target: Prefix::host(ip("10.0.0.1")),
            src: mapped_key(ip(s)),
            packets: 100,
            known: false,
        })
        .collect();
    v
}

struct Engine {
    detector: Detector,
    mitigator: Mitigator,
    worker: Worker,
    window: u64,
}

impl Engine {
    fn new(config: MitigationConfig) -> Engine {
        // Attacks here start at the first window: judged by the floor, not
        // the cold start (which the detector's own tests cover).
        let detection = DetectionConfig {
            protected: vec!["10.0.0.1/32".parse().expect("prefix")],
            allowlist: vec!["198.51.100.0/24".parse().expect("prefix")],
            cold_start_floor_pps: 5_000.0,
            ..DetectionConfig::default()
        };
        Engine {
            detector: Detector::new(detection, "nd_test".into()),
            mitigator: Mitigator::new(MitigationConfig {
                protected: vec!["10.0.0.0/24".parse().expect("prefix")],
                ..config
            }),
            worker: Worker::new(),
            window: 0,
        }
    }

    /// One window through the engine, as the control loop runs it (the worker
    /// has applied what was sent before).
    fn step(&mut self, udp_pps: u32, over: &[&str]) -> Vec<crate::detect::IncidentEvent> {
        self.step_class(TrafficClass::Udp, udp_pps, over)
    }

    fn step_class(
        &mut self,
        class: TrafficClass,
        pps: u32,
        over: &[&str],
    ) -> Vec<crate::detect::IncidentEvent> {
        self.worker.publisher.flush();
        let now = self.now();
        self.worker
            .mailbox
            .drain(&mut self.worker.tables, now, usize::MAX);
        let v = class_view(self.window, class, pps, over);
        self.window += 1;
        let events = self.detector.observe(&v);
        self.mitigator.learn(&v, &self.detector);
        self.mitigator
            .on_window(&v, &mut self.detector, &mut self.worker.publisher);
        for e in &events {
            match e.event.as_str() {
                "incident.resolved" => {
                    self.mitigator
                        .on_resolved(&e.incident_id, &mut self.worker.publisher);
                }
                _ => {
                    if let Some(i) = self.detector.incident(&e.incident_id).cloned() {
                        self.mitigator
                            .on_incident(&i, v.end_ns, &mut self.worker.publisher);
                    }
                }
            }
        }
        let open: HashSet<String> = self.detector.active().map(|i| i.id.clone()).collect();
        self.mitigator
            .expire(v.end_ns, &open, &mut self.worker.publisher);
        events
    }

    fn now(&self) -> u64 {
        T0 + self.window * WINDOW
    }

    fn blocks_of(&self, incident: &str) -> Vec<&Rule> {
        self.mitigator
            .rules()
            .filter(|r| r.incident_id == incident && matches!(r.matches, RuleMatch::Block { .. }))
            .collect()
    }
}

fn bots(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("203.0.{}.{}", i / 250, 1 + i % 250))
        .collect()
}

#[test]
fn every_attacker_found_is_blocked_for_as_long_as_the_attack_lasts() {
    let mut e = Engine::new(MitigationConfig {
        rule_ttl_s: 10,
        ..MitigationConfig::default()
    });
    let bots = bots(3000);
    let names: Vec<&str> = bots.iter().map(String::as_str).collect();
    let mut created = None;
    for _ in 0..3 {
        for ev in e.step(50_000, &[]) {
            created.get_or_insert(ev.incident_id);
        }
    }
    let id = created.expect("an incident");
    // The workers report the sources over their limit a few windows in a row.
    e.step(50_000, &names[..1000]);
    e.step(50_000, &names[1000..]);
    assert_eq!(e.blocks_of(&id).len(), 3000);
    // Pending until the worker has them, then active.
    assert!(e
        .blocks_of(&id)
        .iter()
        .any(|r| r.state == RuleState::Pending));
    e.step(50_000, &[]);
    assert!(e
        .blocks_of(&id)
        .iter()
        .all(|r| r.state == RuleState::Active));
    assert!(e.worker.blocked(&bots[0]) && e.worker.blocked(&bots[2999]));
    // 45 s of attack with a 10 s TTL: the rules are renewed, never expired.
    for _ in 0..450 {
        e.step(50_000, &[]);
    }
    assert!(e
        .blocks_of(&id)
        .iter()
        .all(|r| r.state == RuleState::Active));
    assert!(e.blocks_of(&id).iter().all(|r| r.expires_at_ns > e.now()));
    assert!(e.worker.blocked(&bots[1234]));
    // The attack stops: after the cool-down the incident resolves and the
    // blocks come out.
    let mut resolved = false;
    for _ in 0..200 {
        resolved |= e
            .step(0, &[])
            .iter()
            .any(|ev| ev.event == "incident.resolved" && ev.incident_id == id);
    }
    assert!(resolved);
    assert!(!e.worker.blocked(&bots[1234]));
    // Events list the configured 20 and count them all.
    let event = e.detector.incident(&id).expect("kept").event("x", e.now());
    assert_eq!(
        (event.attacker_ips.len(), event.attackers_total),
        (20, 3000)
    );
}

#[test]
fn an_entry_stays_while_any_owner_holds_it() {
    let mut e = Engine::new(MitigationConfig::default());
    let now = e.now();
    // The configuration's blocklist holds 203.0.0.1 from the start.
    e.worker
        .publisher
        .block(
            Prefix::host(ip("203.0.0.1")),
            crate::mitigate::STATIC_BLOCKLIST_RULE,
            u64::MAX,
        )
        .expect("static");
    // An operator blocks 203.0.0.2 too.
    let manual = e
        .mitigator
        .add_manual(
            MANUAL,
            RuleMatch::Block {
                source: "203.0.0.2".into(),
            },
            3600,
            "by hand".into(),
            now,
            &mut e.worker.publisher,
        )
        .expect("manual block");
    let mut id = None;
    for _ in 0..3 {
        for ev in e.step(50_000, &[]) {
            id.get_or_insert(ev.incident_id);
        }
    }
    let id = id.expect("incident");
    e.step(50_000, &["203.0.0.1", "203.0.0.2", "203.0.0.3"]);
    assert_eq!(e.blocks_of(&id).len(), 3);
    // The incident's own removal leaves what the others hold.
    e.mitigator.on_resolved(&id, &mut e.worker.publisher);
    assert!(e.worker.blocked("203.0.0.1"), "the configuration's entry");
    assert!(e.worker.blocked("203.0.0.2"), "the operator's entry");
    assert!(!e.worker.blocked("203.0.0.3"), "the incident's only");
    // And the operator's delete ends it.
    e.mitigator
        .delete(manual.id, &mut e.worker.publisher)
        .expect("delete");
    assert!(!e.worker.blocked("203.0.0.2"));
    assert!(e.worker.blocked("203.0.0.1"));
}

#[test]
fn the_protected_are_protected_on_every_path() {
    let mut e = Engine::new(MitigationConfig::default());
    e.worker
        .publisher
        .allow("198.51.100.0/24".parse().expect("prefix"))
        .expect("allow");
    let now = e.now();
    let mut add = |origin: &str, source: &str| {
        e.mitigator.add_manual(
            origin,
            RuleMatch::Block {
                source: source.into(),
            },
            60,
            "test".into(),
            now,
            &mut e.worker.publisher,
        )
    };
    // Wider than the allowlist, inside it, a protected host, a pulled ban too wide.
    for (origin, source, says) in [
        (MANUAL, "198.51.0.0/16", "covers the allowlisted"),
        (MANUAL, "198.51.100.7", "allowlisted"),
        (MANUAL, "10.0.0.5", "protected network"),
        (
            "crowdsec:int_1",
            "0.0.0.0/0",
            "shortest prefix a pulled ban",
        ),
        (
            "crowdsec:int_1",
            "2001:db8::/16",
            "shortest prefix a pulled ban",
        ),
    ] {
        match add(origin, source) {
            Err(RuleError::Refused(m)) => assert!(m.contains(says), "{source}: {m}"),
            other => panic!("{source}: {other:?}"),
        }
    }
    assert!(add("crowdsec:int_1", "203.0.113.0/24").is_ok());
    // An allowlisted flooder among attackers is never one of them.
    let mut id = None;
    for _ in 0..3 {
        for ev in e.step(50_000, &[]) {
            id.get_or_insert(ev.incident_id);
        }
    }
    let id = id.expect("incident");
    e.step(50_000, &["198.51.100.9", "203.0.0.9"]);
    let event = e.detector.incident(&id).expect("open").event("x", e.now());
    assert_eq!(event.attacker_ips, vec!["203.0.0.9".to_string()]);
    assert_eq!(e.blocks_of(&id).len(), 1);
}

#[test]
fn signatures_beyond_the_classifier_are_refused_and_retried_when_room_frees() {
    let mut e = Engine::new(MitigationConfig {
        max_rules: 100_000,
        ..MitigationConfig::default()
    });
    let now = e.now();
    let mut ids = Vec::new();
    for port in 0..MAX_SIGNATURES as u16 {
        let rule = e
            .mitigator
            .add_manual(
                MANUAL,
                RuleMatch::Signature {
                    destination: "10.0.0.1/32".into(),
                    protocol: 17,
                    src_port: None,
                    dst_port: Some(1000 + port),
                    tcp_flags: None,
                    non_first_fragments: false,
                    ip_length: None,
                    ip_ttl: None,
                    rate_limit_pps: None,
                    check: None,
                },
                3600,
                "fill".into(),
                now,
                &mut e.worker.publisher,
            )
            .expect("fits");
        ids.push(rule.id);
    }
    // An amplification incident now calls for reflector-port signatures.
    let mut incident = Incident::new(
        "inc_test_0001".into(),
        "nd_test".into(),
        crate::detect::Target::Host(mapped_key(ip("10.0.0.1"))),
        now,
        now,
    );
    incident
        .vectors
        .insert(AttackType::NtpAmplification, 50_000.0);
    let rules = e
        .mitigator
        .on_incident(&incident, now, &mut e.worker.publisher);
    assert!(!rules.is_empty());
    for r in &rules {
        assert_eq!(r.state, RuleState::Refused, "{r:?}");
        assert!(
            r.note.as_deref().is_some_and(|n| n.contains("no room")),
            "{r:?}"
        );
    }
    // Room frees: the refused rule is applied on the next window of its incident.
    e.mitigator
        .delete(ids[0], &mut e.worker.publisher)
        .expect("delete");
    e.mitigator
        .renew(&[incident], now + WINDOW, &mut e.worker.publisher);
    let applied = e
        .mitigator
        .rules()
        .filter(|r| r.incident_id == "inc_test_0001" && r.state.in_force())
        .count();
    assert_eq!(applied, 1);
}

#[test]
fn resolved_incidents_and_ended_rules_are_bounded_in_memory() {
    let mut e = Engine::new(MitigationConfig::default());
    for round in 0..(crate::detect::RESOLVED_KEPT + 5) {
        let id = (0..100)
            .find_map(|_| {
                let evs = e.step(50_000, &[]);
                evs.iter()
                    .find(|ev| ev.event == "incident.created")
                    .map(|c| c.incident_id.clone())
            })
            .expect("an incident within 100 windows");
        e.step(
            50_000,
            &[&format!("203.0.{}.{}", round / 200, 1 + round % 200)],
        );
        let now = e.now();
        e.detector.resolve(&id, now);
        e.mitigator.on_resolved(&id, &mut e.worker.publisher);
    }
    assert_eq!(e.detector.resolved.len(), crate::detect::RESOLVED_KEPT);
    // Rules that ended leave memory beyond the last ENDED_KEPT (the store has them).
    let now = e.now();
    for i in 0..(ENDED_KEPT + 500) {
        let r = e
            .mitigator
            .add_manual(
                MANUAL,
                RuleMatch::Block {
                    source: format!("203.1.{}.{}", i / 250, 1 + i % 250),
                },
                60,
                "churn".into(),
                now,
                &mut e.worker.publisher,
            )
            .expect("block");
        e.mitigator
            .delete(r.id, &mut e.worker.publisher)
            .expect("delete");
    }
    assert!(
        e.mitigator.rules().count() <= ENDED_KEPT,
        "{}",
        e.mitigator.rules().count()
    );
}

#[test]
fn tcp_floods_get_the_dataplanes_stateful_checks_and_no_class_wide_limit() {
    for (class, flags, check) in [
        (
            TrafficClass::TcpSyn,
            "S/SA",
            SignatureCheck::SynAuthentication,
        ),
        (TrafficClass::TcpAck, "/S", SignatureCheck::ConnectionState),
        (TrafficClass::TcpRst, "/S", SignatureCheck::ConnectionState),
        (
            TrafficClass::TcpSynAck,
            "SA/SA",
            SignatureCheck::ConnectionState,
        ),
    ] {
        let mut e = Engine::new(MitigationConfig::default());
        for _ in 0..10 {
            e.step_class(class, 100, &[]);
        }
        for _ in 0..10 {
            e.step_class(class, 200_000, &[]);
        }
        let open: Vec<_> = e.detector.active().cloned().collect();
        assert_eq!(open.len(), 1, "{class:?}: one incident");
        let rules: Vec<&Rule> = e.mitigator.rules().collect();
        let checked: Vec<&&Rule> = rules
            .iter()
            .filter(|r| {
                matches!(&r.matches, RuleMatch::Signature { check: Some(c), tcp_flags: Some(f), destination, protocol: 6, .. }
                    if *c == check && f == flags && destination == "10.0.0.1/32")
            })
            .collect();
        assert_eq!(checked.len(), 1, "{class:?}: {rules:#?}");
        assert!(
            checked[0].state.in_force(),
            "{class:?}: {:?}",
            checked[0].state
        );
        assert!(
            rules.iter().all(|r| !matches!(
                r.matches,
                RuleMatch::Signature {
                    rate_limit_pps: Some(_),
                    ..
                } | RuleMatch::SourceLimit { .. }
            )),
            "{class:?}: no class-wide limit: {rules:#?}"
        );
        // The check reaches the worker as its action.
        e.worker.publisher.flush();
        let now = e.now();
        e.worker
            .mailbox
            .drain(&mut e.worker.tables, now, usize::MAX);
        assert!(e.worker.tables.tcp_defended(), "{class:?}");
        assert_eq!(
            e.worker.tables.syn_authenticating(),
            check == SignatureCheck::SynAuthentication
        );
    }
    // Switched off, a SYN flood gets no SYN authentication.
    let mut e = Engine::new(MitigationConfig {
        syn_authentication: false,
        ..MitigationConfig::default()
    });
    for _ in 0..10 {
        e.step_class(TrafficClass::TcpSyn, 100, &[]);
    }
    for _ in 0..10 {
        e.step_class(TrafficClass::TcpSyn, 200_000, &[]);
    }
    assert!(e
        .mitigator
        .rules()
        .all(|r| !matches!(r.matches, RuleMatch::Signature { check: Some(_), .. })));
}
