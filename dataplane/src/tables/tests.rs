//! The tables against a reference model, the allowlist rule, expiry with a fake
//! clock, and a writer racing several reader threads.

use super::*;
use crate::synth;
use crate::wire::{parse, PacketMeta, TrafficClass};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

fn meta_from(src: IpAddr, dst_port: u16) -> PacketMeta {
    let frame = match src {
        IpAddr::V4(s) => synth::udp_frame(
            &synth::Endpoints {
                src_mac: [2; 6],
                dst_mac: [4; 6],
                src: s,
                dst: Ipv4Addr::new(10, 0, 0, 1),
                src_port: 4444,
                dst_port,
                ttl: 64,
            },
            &[0; 8],
        ),
        IpAddr::V6(s) => synth::udp6_frame(
            s,
            "2001:db8::1".parse().expect("v6"),
            4444,
            dst_port,
            &[0; 8],
        ),
    };
    parse(&frame)
}

fn tables_with(capacities: TableCapacities) -> (TablePublisher, TableMailbox, RuleTables) {
    let (publisher, mut mailboxes) = TablePublisher::new(1, capacities, 1024);
    (
        publisher,
        mailboxes.pop().expect("one mailbox"),
        RuleTables::new(capacities, 1),
    )
}

fn sync(p: &mut TablePublisher, mb: &mut TableMailbox, t: &mut RuleTables, now: u64) {
    // Both every time: with the mailbox full, only draining lets the backlog in.
    loop {
        let waiting = p.flush();
        let applied = mb.drain(t, now, usize::MAX);
        if waiting == 0 && applied == 0 {
            break;
        }
    }
}

fn p(s: &str) -> Prefix {
    s.parse().expect("prefix")
}

#[test]
fn allowlist_always_wins() {
    let (mut pb, mut mb, mut t) = tables_with(TableCapacities::default());
    pb.block(p("198.51.100.7"), 1, u64::MAX).expect("room");
    pb.block(p("198.51.0.0/16"), 2, u64::MAX).expect("room");
    pb.set_signatures(vec![SignatureRule {
        protocol: Some(17),
        ..SignatureRule::drop_all(3)
    }])
    .expect("valid");
    sync(&mut pb, &mut mb, &mut t, 0);
    let blocked = meta_from("198.51.100.7".parse().expect("ip"), 53);
    assert_eq!(t.decide(&blocked, 0), Decision::Blocked { rule_id: 1 });
    pb.allow(p("198.51.100.0/24")).expect("room");
    sync(&mut pb, &mut mb, &mut t, 0);
    assert_eq!(
        t.decide(&blocked, 0),
        Decision::Allowlisted,
        "exact block loses to the allowlist"
    );
    let mut out = [Decision::Pass; 1];
    t.decide_burst(&[blocked], 0, &mut out);
    assert_eq!(out[0], Decision::Allowlisted, "the burst path agrees");
    let other = meta_from("198.51.7.7".parse().expect("ip"), 53);
    assert_eq!(
        t.decide(&other, 0),
        Decision::Blocked { rule_id: 2 },
        "outside the allowlist the prefix applies"
    );
    let elsewhere = meta_from("192.0.2.1".parse().expect("ip"), 53);
    assert_eq!(t.decide(&elsewhere, 0), Decision::Signature { rule_id: 3 });
    // Blocking inside an allowlisted prefix is refused outright.
    assert!(matches!(
        pb.block(p("198.51.100.9"), 4, u64::MAX),
        Err(TableError::Allowlisted { .. })
    ));
    assert!(matches!(
        pb.block(p("198.51.100.128/25"), 4, u64::MAX),
        Err(TableError::Allowlisted { .. })
    ));
}

#[test]
fn expiry_follows_the_injected_clock() {
    let (mut pb, mut mb, mut t) = tables_with(TableCapacities::default());
    pb.block(p("203.0.113.5"), 9, 1_000).expect("room");
    pb.block(p("2001:db8:bad::/48"), 10, 2_000).expect("room");
    sync(&mut pb, &mut mb, &mut t, 0);
    let v4 = meta_from("203.0.113.5".parse().expect("ip"), 80);
    let v6 = meta_from("2001:db8:bad::1".parse().expect("ip"), 80);
    assert_eq!(t.decide(&v4, 999), Decision::Blocked { rule_id: 9 });
    assert_eq!(
        t.decide(&v4, 1_000),
        Decision::Pass,
        "expired at its deadline"
    );
    assert_eq!(t.decide(&v6, 1_999), Decision::Blocked { rule_id: 10 });
    assert_eq!(t.decide(&v6, 2_000), Decision::Pass);
    assert_eq!(
        t.block_entry(&p("203.0.113.5")),
        Some(BlockEntry {
            rule_id: 9,
            expires_at_ns: 1_000
        }),
        "an expired entry is held until the control plane removes it"
    );
    let expired = pb.expire(1_500);
    assert_eq!(expired.len(), 1);
    sync(&mut pb, &mut mb, &mut t, 1_500);
    assert_eq!(
        t.blocked_len(),
        1,
        "the expired entry was removed from the worker too"
    );
}

#[test]
fn full_tables_refuse_with_an_error_and_count() {
    let caps = TableCapacities {
        blocked_hosts: 3,
        blocked_prefixes: 1,
        allowlist: 1,
        source_limiter_slots: 16,
    };
    let (mut pb, mut mb, mut t) = tables_with(caps);
    for i in 1..=3u8 {
        pb.block(
            Prefix::host(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))),
            1,
            u64::MAX,
        )
        .expect("room");
    }
    assert_eq!(
        pb.block(p("192.0.2.4"), 1, u64::MAX),
        Err(TableError::Full { capacity: 3 })
    );
    assert!(
        pb.block(p("192.0.2.3"), 5, u64::MAX).is_ok(),
        "updating an entry needs no room"
    );
    assert!(
        pb.block(p("2001:db8::1"), 1, u64::MAX).is_ok(),
        "each family has its capacity"
    );
    pb.block(p("10.0.0.0/8"), 1, u64::MAX).expect("room");
    assert_eq!(
        pb.block(p("11.0.0.0/8"), 1, u64::MAX),
        Err(TableError::Full { capacity: 1 })
    );
    pb.allow(p("172.16.0.0/12")).expect("room");
    assert_eq!(
        pb.allow(p("192.168.0.0/16")),
        Err(TableError::Full { capacity: 1 })
    );
    assert_eq!(pb.refused_full, 3);
    sync(&mut pb, &mut mb, &mut t, 0);
    assert_eq!(
        t.refused, 0,
        "the publisher refused before anything reached the worker"
    );
    assert_eq!(t.blocked_len(), 5);
}

#[test]
fn signature_rate_limit_and_source_limit() {
    let (mut pb, mut mb, mut t) = tables_with(TableCapacities::default());
    let ntp = SignatureRule {
        protocol: Some(17),
        dst_ports: Some((123, 123)),
        action: SignatureAction::RateLimit { pps: 100 },
        ..SignatureRule::drop_all(21)
    };
    pb.set_signatures(vec![ntp]).expect("valid");
    pb.set_source_limit(Some(SourceLimit {
        class: TrafficClass::Udp,
        pps: 10,
        burst: 10,
        rule_id: 22,
    }));
    sync(&mut pb, &mut mb, &mut t, 0);
    let m = meta_from("192.0.2.50".parse().expect("ip"), 123);
    let limited = (0..1000)
        .filter(|_| t.decide(&m, 0) == (Decision::SignatureRateLimited { rule_id: 21 }))
        .count();
    assert_eq!(limited, 900, "the burst of 100 passes, the rest is limited");
    let other = meta_from("192.0.2.51".parse().expect("ip"), 9999);
    let by_source = (0..100)
        .filter(|_| t.decide(&other, 0) == (Decision::SourceRateLimited { rule_id: 22 }))
        .count();
    assert_eq!(by_source, 90);
}

/// One step of a random operation sequence.
#[derive(Clone, Debug)]
enum Op {
    Block(Prefix, u32, u64),
    Unblock(Prefix),
    Allow(Prefix),
    Disallow(Prefix),
    Probe(IpAddr, u64),
}

fn arb_prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        (0u32..16).prop_map(|i| Prefix::host(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8)))),
        (0u32..4, prop_oneof![Just(24u8), Just(28), Just(30)]).prop_map(|(i, l)| Prefix::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i * 4) as u8)),
            l
        )
        .expect("v4")),
        (0u16..8).prop_map(|i| Prefix::host(IpAddr::V6(std::net::Ipv6Addr::new(
            0x2001, 0xdb8, 0, 0, 0, 0, 0, i
        )))),
        Just(p("2001:db8::/120")),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (arb_prefix(), 1u32..100, 0u64..200).prop_map(|(p, r, e)| Op::Block(p, r, e)),
        arb_prefix().prop_map(Op::Unblock),
        arb_prefix().prop_map(Op::Allow),
        arb_prefix().prop_map(Op::Disallow),
        (
            prop_oneof![
                (0u8..20).prop_map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))),
                (0u16..10).prop_map(|i| IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001, 0xdb8, 0, 0, 0, 0, 0, i
                ))),
            ],
            0u64..200
        )
            .prop_map(|(a, t)| Op::Probe(a, t)),
    ]
}

/// The reference: a plain list scan with the documented precedence.
fn model_decide(
    blocked: &[(Prefix, u32, u64)],
    allow: &[Prefix],
    src: IpAddr,
    now: u64,
) -> Decision {
    if allow.iter().any(|a| a.contains(src)) {
        return Decision::Allowlisted;
    }
    let live = |e: &&(Prefix, u32, u64)| e.0.contains(src) && now < e.2;
    if let Some(e) = blocked.iter().filter(|e| e.0.is_host()).find(live) {
        return Decision::Blocked { rule_id: e.1 };
    }
    // Longest live prefix; a longer prefix that has expired does not hide a shorter one... in
    // the tables it does (LPM picks the longest, then checks expiry), so the model
    // follows the tables' documented rule: the longest prefix decides.
    match blocked
        .iter()
        .filter(|e| !e.0.is_host() && e.0.contains(src))
        .max_by_key(|e| e.0.len())
    {
        Some(e) if now < e.2 => Decision::Blocked { rule_id: e.1 },
        _ => Decision::Pass,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn tables_agree_with_a_reference_model(ops in proptest::collection::vec(arb_op(), 1..120)) {
        let caps = TableCapacities { blocked_hosts: 64, blocked_prefixes: 64, allowlist: 64, source_limiter_slots: 16 };
        let (mut pb, mut mb, mut t) = tables_with(caps);
        let mut blocked: Vec<(Prefix, u32, u64)> = Vec::new();
        let mut allow: Vec<Prefix> = Vec::new();
        for op in ops {
            match op {
                Op::Block(pre, rule, exp) => {
                    let inside_allow = allow.iter().any(|a| a.len() <= pre.len() && a.contains(pre.addr()));
                    let r = pb.block(pre, rule, exp);
                    prop_assert_eq!(r.is_ok(), !inside_allow);
                    if !inside_allow {
                        blocked.retain(|e| e.0 != pre);
                        blocked.push((pre, rule, exp));
                    }
                }
                Op::Unblock(pre) => {
                    let had = blocked.iter().any(|e| e.0 == pre);
                    prop_assert_eq!(pb.unblock(pre).is_ok(), had);
                    blocked.retain(|e| e.0 != pre);
                }
                Op::Allow(pre) => {
                    pb.allow(pre).expect("room");
                    if !allow.contains(&pre) { allow.push(pre); }
                }
                Op::Disallow(pre) => {
                    prop_assert_eq!(pb.disallow(pre).is_ok(), allow.contains(&pre));
                    allow.retain(|a| *a != pre);
                }
                Op::Probe(src, now) => {
                    sync(&mut pb, &mut mb, &mut t, now);
                    let m = meta_from(src, 80);
                    let expected = model_decide(&blocked, &allow, src, now);
                    prop_assert_eq!(t.decide(&m, now), expected);
                    let mut out = [Decision::Pass; 1];
                    t.decide_burst(&[m], now, &mut out);
                    prop_assert_eq!(out[0], expected, "burst path");
                }
            }
        }
    }
}

#[test]
fn a_writer_racing_readers_never_shows_phantoms_and_every_commit_arrives() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const READERS: usize = 3;
    const KEYS: u32 = 4096;
    let caps = TableCapacities {
        blocked_hosts: KEYS as usize,
        blocked_prefixes: 16,
        allowlist: 16,
        source_limiter_slots: 16,
    };
    let (mut publisher, mailboxes) = TablePublisher::new(READERS, caps, 256);
    let stop = Arc::new(AtomicBool::new(false));
    // Only even addresses are ever inserted: an odd one seen blocked is a phantom.
    let addr = |k: u32| Ipv4Addr::from(0x0a00_0000 | (k * 2));
    let readers: Vec<_> = mailboxes
        .into_iter()
        .map(|mut mb| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut t = RuleTables::new(caps, READERS as u32);
                let metas: Vec<PacketMeta> = (0..KEYS * 2)
                    .map(|k| meta_from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | k)), 80))
                    .collect();
                let mut phantoms = 0u64;
                let mut lookups = 0u64;
                let mut out = [Decision::Pass; 32];
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    mb.drain(&mut t, 0, 64);
                    let burst = &metas[i % (metas.len() - 32)..][..32];
                    t.decide_burst(burst, 0, &mut out);
                    for (m, d) in burst.iter().zip(out) {
                        let a = u32::from_be_bytes([m.src[12], m.src[13], m.src[14], m.src[15]]);
                        if d.drops() && a % 2 == 1 {
                            phantoms += 1;
                        }
                        if let Decision::Blocked { rule_id } = d {
                            assert_eq!(rule_id, (a & 0xffff) / 2, "rule id belongs to the key");
                        }
                    }
                    lookups += 32;
                    i = i.wrapping_add(32 * 7);
                }
                mb.drain(&mut t, 0, usize::MAX);
                (phantoms, lookups, t)
            })
        })
        .collect();

    // Insert and delete at a high rate; every commit must become visible everywhere.
    let mut live = std::collections::BTreeSet::new();
    let mut rng = synth::Rng::new(42);
    let started = std::time::Instant::now();
    let mut worst = std::time::Duration::ZERO;
    for round in 0..20_000u32 {
        let k = rng.below(u64::from(KEYS)) as u32;
        let seq = if live.contains(&k) && round % 3 == 0 {
            live.remove(&k);
            publisher
                .unblock(Prefix::host(IpAddr::V4(addr(k))))
                .expect("present")
        } else {
            live.insert(k);
            publisher
                .block(Prefix::host(IpAddr::V4(addr(k))), k, u64::MAX)
                .expect("room")
        };
        if round % 1000 == 0 {
            let t0 = std::time::Instant::now();
            while !publisher.visible_everywhere(seq) {
                publisher.flush();
                std::thread::yield_now();
                assert!(
                    t0.elapsed() < std::time::Duration::from_secs(10),
                    "commit {seq} never became visible"
                );
            }
            worst = worst.max(t0.elapsed());
        }
    }
    while publisher.flush() > 0 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let mut total_lookups = 0;
    for r in readers {
        let (phantoms, lookups, tables) = r.join().expect("reader");
        assert_eq!(phantoms, 0, "a reader saw an entry that was never inserted");
        total_lookups += lookups;
        for k in 0..KEYS {
            let m = meta_from(IpAddr::V4(addr(k)), 80);
            assert_eq!(
                tables.clone_decide(&m),
                live.contains(&k),
                "key {k} in the final state"
            );
        }
    }
    eprintln!(
        "20000 changes in {:?}; {total_lookups} lookups by {READERS} readers; worst wait for visibility {worst:?}",
        started.elapsed()
    );
}

impl RuleTables {
    /// Test helper: whether `m` would be dropped, without counting a hit.
    fn clone_decide(&self, m: &PacketMeta) -> bool {
        match Addr::from_meta(&m.src, m.family) {
            Some(Addr::V4(a)) => self.blocked_v4.get(a).is_some(),
            Some(Addr::V6(a)) => self.blocked_v6.get(&a).is_some(),
            None => false,
        }
    }
}

#[test]
fn a_stalled_worker_keeps_one_of_each_set_and_every_entry_change() {
    // A mailbox of 4 that the worker does not drain for a while.
    let caps = TableCapacities::default();
    let (mut pb, mut mailboxes) = TablePublisher::new(1, caps, 4);
    let mut mb = mailboxes.pop().expect("one mailbox");
    let mut t = RuleTables::new(caps, 1);
    for i in 0..1000u32 {
        // Every window republishes the sets...
        pb.set_watch(WatchSet::new(vec![WatchedTarget::new(
            p("10.0.0.1/32"),
            [crate::wire::TrafficClass::Udp],
            10 + i,
            100,
            Vec::new(),
        )]));
        pb.set_signatures(vec![SignatureRule {
            protocol: Some(17),
            ..SignatureRule::drop_all(i)
        }])
        .expect("valid");
    }
    // ...and a few entries change.
    for i in 0..10u8 {
        pb.block(p(&format!("203.0.113.{i}")), 1, u64::MAX)
            .expect("room");
    }
    assert!(pb.backlog() <= 4 + 2 + 10, "backlog {}", pb.backlog());
    let last = pb.last_seq();
    sync(&mut pb, &mut mb, &mut t, 0);
    assert!(pb.visible_everywhere(last));
    // The worker ends with the last sets and every entry.
    assert_eq!(t.watch().targets()[0].limit_pps, 1009);
    assert_eq!(t.signatures().rules()[0].id, 999);
    assert_eq!(t.blocked_len(), 10);
}

#[test]
fn workers_on_different_nodes_get_their_own_copies_of_the_shared_sets() {
    let caps = TableCapacities::default();
    let (mut publisher, mut mailboxes) = TablePublisher::new(3, caps, 64);
    let mut tables: Vec<RuleTables> = (0..3).map(|_| RuleTables::new(caps, 3)).collect();
    let drain_all = |publisher: &mut TablePublisher,
                     mailboxes: &mut Vec<TableMailbox>,
                     tables: &mut Vec<RuleTables>| {
        publisher.flush();
        for (mb, t) in mailboxes.iter_mut().zip(tables.iter_mut()) {
            mb.drain(t, 0, usize::MAX);
        }
        publisher.flush();
    };
    let rule = |id| SignatureRule {
        protocol: Some(17),
        dst_ports: Some((53, 53)),
        ..SignatureRule::drop_all(id)
    };
    publisher.set_signatures(vec![rule(1)]).expect("valid");
    // Two nodes (the second may not exist on this machine: the copy is then
    // made with the default policy, still a copy of its own) and one unknown.
    publisher.place_on_nodes(vec![Some(0), Some(1), None]);
    drain_all(&mut publisher, &mut mailboxes, &mut tables);
    let set_of = |t: &RuleTables| t.signatures() as *const SignatureSet;
    assert_ne!(set_of(&tables[0]), set_of(&tables[1]), "one copy per node");
    assert_eq!(
        set_of(&tables[2]),
        publisher.signatures() as *const SignatureSet,
        "a worker of unknown node shares the publisher's set"
    );
    let dns = meta_from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 53);
    for t in &mut tables {
        assert_eq!(t.decide(&dns, 0), Decision::Signature { rule_id: 1 });
    }
    // A new set reaches every node the same way; the old copies are let go
    // once the workers hold the new ones.
    publisher.set_signatures(vec![rule(2)]).expect("valid");
    drain_all(&mut publisher, &mut mailboxes, &mut tables);
    for t in &mut tables {
        assert_eq!(t.decide(&dns, 0), Decision::Signature { rule_id: 2 });
    }
    assert_ne!(set_of(&tables[0]), set_of(&tables[1]));
    assert_eq!(publisher.retired_sets(), 0, "nothing old is still held");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The burst path looks the whole burst up in the IPv4 blocklist first;
    /// packet by packet it must decide what `decide` does, whatever the tables
    /// hold, rate limits included (each bucket sees its packets in order).
    #[test]
    fn a_burst_decides_what_its_packets_decide_one_by_one(
        sources in proptest::collection::vec((any::<bool>(), 0u8..24, any::<u16>()), 1..=BULK_MAX),
        with_allow in any::<bool>(),
        with_hosts in any::<bool>(),
        with_prefixes in any::<bool>(),
        with_signatures in any::<bool>(),
        with_limit in any::<bool>(),
        now in 0u64..3_000,
    ) {
        let (mut pb, mut mb, mut t) = tables_with(TableCapacities::default());
        // Sources 198.51.100.0-23 and 2001:db8::0-23: some blocked exactly,
        // some by prefix, some allowlisted inside a blocked prefix; entries
        // expire at 1,000 and 2,000 ns.
        let v4 = |k: u8| IpAddr::V4(Ipv4Addr::new(198, 51, 100, k));
        let v6 = |k: u8| IpAddr::V6(format!("2001:db8::{k:x}").parse().expect("v6"));
        if with_hosts {
            for k in (0..24u8).step_by(3) {
                let expires = if k % 2 == 0 { 1_000 } else { u64::MAX };
                pb.block(Prefix::host(v4(k)), 100 + u32::from(k), expires).expect("room");
                pb.block(Prefix::host(v6(k)), 200 + u32::from(k), expires).expect("room");
            }
        }
        if with_allow {
            pb.allow(p("198.51.100.16/30")).expect("room");
            pb.allow(p("2001:db8::10/126")).expect("room");
        }
        if with_prefixes {
            pb.block(p("198.51.100.8/29"), 300, 2_000).expect("room");
            pb.block(p("2001:db8::8/125"), 301, u64::MAX).expect("room");
        }
        if with_signatures {
            pb.set_signatures(vec![
                SignatureRule {
                    protocol: Some(17),
                    dst_ports: Some((0, 99)),
                    ..SignatureRule::drop_all(400)
                },
                SignatureRule {
                    protocol: Some(17),
                    dst_ports: Some((100, 30_000)),
                    action: SignatureAction::RateLimit { pps: 1 },
                    ..SignatureRule::drop_all(401)
                },
            ])
            .expect("valid");
        }
        if with_limit {
            pb.set_source_limit(Some(SourceLimit {
                class: TrafficClass::Udp,
                pps: 1,
                burst: 2,
                rule_id: 500,
            }));
        }
        sync(&mut pb, &mut mb, &mut t, 0);
        let metas: Vec<PacketMeta> = sources
            .iter()
            .map(|&(is_v6, k, port)| match (is_v6, port % 7) {
                // Now and then a frame with no IP source at all.
                (_, 0) => parse(&[0u8; 20]),
                (false, _) => meta_from(v4(k), port),
                (true, _) => meta_from(v6(k), port),
            })
            .collect();
        let mut one_by_one = t.clone();
        let expected: Vec<Decision> = metas.iter().map(|m| one_by_one.decide(m, now)).collect();
        let mut out = vec![Decision::Blocked { rule_id: 0 }; metas.len()];
        t.decide_burst(&metas, now, &mut out);
        prop_assert_eq!(out, expected);
    }
}

#[test]
fn every_decision_kind_names_itself() {
    for kind in 0..Decision::KINDS {
        assert_eq!(Decision::of_kind(kind).kind(), kind);
    }
    // Kinds past the last fold into the last, not into one of the others.
    assert_eq!(
        Decision::of_kind(Decision::KINDS).kind(),
        Decision::KINDS - 1
    );
    assert_eq!(
        Decision::Blocked { rule_id: 7 }.kind(),
        Decision::of_kind(2).kind()
    );
}

#[test]
fn each_worker_takes_its_share_of_a_watched_targets_limits() {
    let caps = TableCapacities::default();
    let (mut pb, mut mailboxes) = TablePublisher::new(3, caps, 16);
    let target = |host: &str, limit, known_limit| {
        WatchedTarget::new(
            p(host),
            [crate::wire::TrafficClass::Udp],
            limit,
            known_limit,
            Vec::new(),
        )
    };
    pb.set_watch(WatchSet::new(vec![
        target("10.0.0.1/32", 1000, 3001),
        target("10.0.0.2/32", 2, 2),
    ]));
    for mb in &mut mailboxes {
        let mut t = RuleTables::new(caps, 3);
        sync(&mut pb, mb, &mut t, 0);
        // Rounded up: three workers together let through at least the limit.
        assert_eq!(t.watch_share(0, false), 334);
        assert_eq!(t.watch_share(0, true), 1001);
        assert_eq!(t.watch_share(1, false), 1);
        assert_eq!(t.watch_share(1, true), 1);
    }
    // A new set brings its own shares.
    pb.set_watch(WatchSet::new(vec![target("10.0.0.3/32", 30, 60)]));
    let mut mb = mailboxes.pop().expect("a mailbox");
    let mut t = RuleTables::new(caps, 3);
    sync(&mut pb, &mut mb, &mut t, 0);
    assert_eq!(t.watch().targets()[0].target, p("10.0.0.3/32"));
    assert_eq!([t.watch_share(0, false), t.watch_share(0, true)], [10, 20]);
}
