//! The detector alone, window by window: start-up, restored baselines.

use std::net::IpAddr;

use levee_dataplane::stats::DestinationStats;
use levee_dataplane::tables::mapped_key;
use levee_dataplane::wire::TrafficClass;

use super::*;

const S: u64 = 1_000_000_000;
const WINDOW: u64 = S / 10;
const T0: u64 = 1_700_000_000 * S;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Window `n` with `pps` of DNS queries toward `target`.
fn window(n: u64, target: &str, pps: u32) -> WindowView {
    let packets = pps / 10;
    let mut stats = DestinationStats::default();
    stats.packets = u64::from(packets);
    stats.bytes = u64::from(packets) * 80;
    let class = TrafficClass::Udp.index();
    stats.classes[class].packets = packets;
    stats.classes[class].bytes = packets * 80;
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
    v.inbound.class_packets[class] = u64::from(packets);
    v.destinations.insert(mapped_key(ip(target)), stats);
    v
}

fn detector(groups: Vec<HostGroup>) -> Detector {
    Detector::new(
        DetectionConfig {
            protected: vec!["10.0.0.0/24".parse().expect("prefix")],
            groups,
            ..DetectionConfig::default()
        },
        "nd_test".into(),
    )
}

/// Windows `from..to` at `pps`; the events they caused.
fn feed(d: &mut Detector, from: u64, to: u64, pps: u32) -> Vec<IncidentEvent> {
    (from..to)
        .flat_map(|n| d.observe(&window(n, "10.0.0.53", pps)))
        .collect()
}

#[test]
fn a_busy_service_does_not_alarm_at_start_and_a_flood_on_it_does() {
    let mut d = detector(Vec::new());
    // 9 kpps of queries from the first window: above the floor, below the
    // cold-start floor, and learnt as the service's normal.
    assert!(feed(&mut d, 0, 100, 9_000).is_empty());
    let learnt = &d.baselines()[0];
    assert!(learnt.learnt);
    let udp = learnt
        .classes
        .iter()
        .find(|c| c.class == "udp")
        .expect("dns");
    assert!((udp.pps - 9_000.0).abs() < 1.0, "{}", udp.pps);
    assert!((udp.limit_pps - 36_000.0).abs() < 10.0, "{}", udp.limit_pps);
    // Four times its normal is a flood, although under the cold-start floor.
    let events = feed(&mut d, 100, 103, 40_000);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, "incident.created");
    assert_eq!(events[0].target, "10.0.0.53");
}

#[test]
fn before_a_baseline_only_the_cold_start_floor_or_a_static_limit_alarms() {
    let mut d = detector(Vec::new());
    assert!(
        feed(&mut d, 0, 10, 40_000).is_empty(),
        "under the cold-start floor"
    );
    let view = &d.baselines()[0];
    assert!(!view.learnt);
    let udp = view.classes.iter().find(|c| c.class == "udp").expect("dns");
    assert_eq!(udp.limit_pps, 50_000.0);
    let events = feed(&mut d, 10, 13, 200_000);
    assert_eq!(events.len(), 1, "over it: {events:?}");

    // A group's static limit applies from the first window.
    let mut d = detector(vec![HostGroup {
        name: "dns".into(),
        prefixes: vec!["10.0.0.53/32".parse().expect("prefix")],
        pps: None,
        bps: None,
        class_pps: [(TrafficClass::Udp.index(), 5_000.0)].into(),
    }]);
    let events = feed(&mut d, 0, 3, 9_000);
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn restored_baselines_skip_the_cold_start_and_bad_ones_are_left_out() {
    let mut before = detector(Vec::new());
    assert!(feed(&mut before, 0, 100, 9_000).is_empty());
    let mut saved = before.saved_baselines();
    assert_eq!(saved.len(), 2, "the host and its /24: {saved:?}");
    // Outside the protected networks, or not numbers: never taken back.
    let mut outside = saved[0].clone();
    outside.target = "192.0.2.1".into();
    let mut broken = saved[0].clone();
    broken.target = "10.0.0.54".into();
    broken.pps = f64::NAN;
    saved.extend([outside, broken]);

    let mut after = detector(Vec::new());
    assert_eq!(after.restore_baselines(&saved), 2);
    assert!(after.baselines().iter().all(|b| b.learnt));
    // The host it knew is judged against what it learnt at once.
    assert!(feed(&mut after, 0, 5, 9_000).is_empty());
    let events = feed(&mut after, 5, 8, 40_000);
    assert_eq!(events.len(), 1, "{events:?}");

    // Without the saved baselines the same 40 kpps is only a busy start.
    let mut cold = detector(Vec::new());
    assert!(feed(&mut cold, 0, 8, 40_000).is_empty());
}

/// Window `n` of a plain-UDP flood of `pps` toward 10.0.0.53 from `sources`,
/// its sampled shapes sent from `src_port` (`None`: each source its own port).
fn udp_flood(n: u64, pps: u32, sources: u32, src_port: Option<u16>, ip_len: u16) -> WindowView {
    use levee_dataplane::stats::PacketShape;
    let mut v = window(n, "10.0.0.53", 0);
    let packets = pps / 10;
    let class = TrafficClass::Udp.index();
    let stats = v
        .destinations
        .get_mut(&mapped_key(ip("10.0.0.53")))
        .expect("target");
    stats.packets = u64::from(packets);
    stats.bytes = u64::from(packets) * u64::from(ip_len);
    stats.classes[class].packets = packets;
    stats.classes[class].bytes = packets * u32::from(ip_len);
    v.inbound.class_packets[class] = u64::from(packets);
    v.shapes = (0..64)
        .map(|i| {
            let src = mapped_key(ip(&format!(
                "198.18.{}.{}",
                i % sources / 250,
                1 + i % sources % 250
            )));
            PacketShape {
                src,
                dst: mapped_key(ip("10.0.0.53")),
                class: TrafficClass::Udp,
                protocol: 17,
                src_port: src_port.unwrap_or(20_000 + (i % sources) as u16),
                dst_port: 40_000 + i as u16,
                ip_len,
                ttl: 50 + (i % 8) as u8,
                tcp_flags: 0,
                non_first_fragment: false,
            }
        })
        .collect();
    v
}

/// The state, after `views`, of the one incident they opened (events only
/// say what changed materially).
fn judged(views: impl Iterator<Item = WindowView>) -> IncidentEvent {
    let mut d = detector(Vec::new());
    let events: Vec<IncidentEvent> = views.flat_map(|v| d.observe(&v)).collect();
    assert!(
        events.iter().any(|e| e.event == "incident.created"),
        "{events:?}"
    );
    let now = d
        .active()
        .next()
        .expect("an incident")
        .event("incident.updated", T0);
    now
}

#[test]
fn reflection_from_an_unlisted_port_is_named_by_its_shape() {
    // STUN answers: many reflectors, one source port, large packets.
    let e = judged((0..5).map(|n| udp_flood(n, 200_000, 40, Some(3478), 540)));
    assert_eq!(e.attack_type, AttackType::UdpAmplification);
    assert_eq!(e.vectors.len(), 1, "{:?}", e.vectors);
    assert_eq!(e.vectors[0].service.as_deref(), Some("udp/3478"));
    assert!(!e.spoofing_likely, "reflectors are real sources");

    // The same flood from random ports, or in small packets, or from a few
    // sources sharing a port, is a UDP flood.
    for (sources, port, len) in [(40, None, 540), (40, Some(3478), 60), (3, Some(3478), 540)] {
        let e = judged((0..5).map(|n| udp_flood(n, 200_000, sources, port, len)));
        assert_eq!(
            e.attack_type,
            AttackType::UdpFlood,
            "{sources} {port:?} {len}"
        );
        assert!(e.vectors.iter().all(|v| v.service.is_none()));
    }
}

#[test]
fn a_flood_that_starts_in_the_warm_up_is_not_learnt_and_is_found_when_it_ends() {
    let mut d = detector(Vec::new());
    // 3 s of a quiet host, then 20 kpps: under the cold-start floor, so no
    // incident yet, and not taken for the host's normal either.
    assert!(feed(&mut d, 0, 30, 200).is_empty());
    let early = feed(&mut d, 30, 50, 20_000);
    assert!(early.is_empty(), "the cold start holds: {early:?}");
    let events = feed(&mut d, 50, 53, 20_000);
    assert_eq!(events.len(), 1, "found as the warm-up ends: {events:?}");
    assert_eq!(events[0].event, "incident.created");
    let udp = d.baselines()[0]
        .classes
        .iter()
        .find(|c| c.class == "udp")
        .map(|c| c.pps)
        .expect("udp");
    assert!(udp < 1_000.0, "the flood was not learnt: {udp}");
}

/// Window `n` toward 10.0.0.53 with the given classes at their packets/s.
fn mixed(n: u64, classes: &[(TrafficClass, u32)]) -> WindowView {
    let mut v = window(n, "10.0.0.53", 0);
    let stats = v
        .destinations
        .get_mut(&mapped_key(ip("10.0.0.53")))
        .expect("target");
    for (class, pps) in classes {
        let packets = pps / 10;
        let i = class.index();
        stats.packets += u64::from(packets);
        stats.bytes += u64::from(packets) * 500;
        stats.classes[i].packets += packets;
        stats.classes[i].bytes += packets * 500;
        v.inbound.class_packets[i] += u64::from(packets);
    }
    v
}

#[test]
fn an_attack_split_over_classes_is_judged_on_the_whole_target() {
    use levee_dataplane::wire::Reflector;
    let mut d = detector(Vec::new());
    let calm = [(TrafficClass::Udp, 75)];
    for n in 0..100 {
        assert!(d.observe(&mixed(n, &calm)).is_empty());
    }
    // Three vectors, each under the 5000 pps floor, 12 kpps together.
    let split = [
        (TrafficClass::Udp, 75),
        (TrafficClass::Fragment, 4_000),
        (TrafficClass::Reflected(Reflector::Dns), 4_000),
        (TrafficClass::Icmp, 4_000),
    ];
    let events: Vec<IncidentEvent> = (100..103)
        .flat_map(|n| d.observe(&mixed(n, &split)))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].attack_type, AttackType::MultiVector);
    let mut named: Vec<AttackType> = events[0].vectors.iter().map(|v| v.attack_type).collect();
    named.sort();
    let mut expected = vec![
        AttackType::FragmentFlood,
        AttackType::DnsAmplification,
        AttackType::IcmpFlood,
    ];
    expected.sort();
    assert_eq!(named, expected, "the calm UDP is no vector");

    // Sessions opening (every SYN answered, one SYN per 10 ACKs) are no attack
    // however many classes they touch.
    let mut d = detector(Vec::new());
    for n in 0..100 {
        assert!(d.observe(&mixed(n, &calm)).is_empty());
    }
    let crowd = [
        (TrafficClass::Udp, 75),
        (TrafficClass::TcpSyn, 1_000),
        (TrafficClass::TcpAck, 10_000),
    ];
    let events: Vec<IncidentEvent> = (100..110)
        .flat_map(|n| d.observe(&mixed(n, &crowd)))
        .collect();
    assert!(events.is_empty(), "{events:?}");
}

/// `mixed` with the target answering `answered` packets/s (sampled as the
/// workers do) and traffic seen in both directions.
fn answering(n: u64, classes: &[(TrafficClass, u32)], answered: u32) -> WindowView {
    let mut v = mixed(n, classes);
    v.outbound_packets = 1 + u64::from(answered / 10);
    let samples = answered / 10 / levee_dataplane::pipeline::PEER_ONE_IN;
    v.peers = (0..samples)
        .map(|i| (mapped_key(ip("10.0.0.53")), u128::from(i)))
        .collect();
    v
}

#[test]
fn acks_are_sessions_only_when_the_target_answers_them() {
    let calm = [(TrafficClass::Udp, 75)];
    // One SYN per 9 ACKs: the old rule of thumb took that for sessions.
    let acks = [
        (TrafficClass::Udp, 75),
        (TrafficClass::TcpSyn, 2_000),
        (TrafficClass::TcpAck, 18_000),
    ];
    let judged = |answered: u32| {
        let mut d = detector(Vec::new());
        for n in 0..100 {
            assert!(d.observe(&answering(n, &calm, 200)).is_empty());
        }
        (100..104)
            .flat_map(|n| d.observe(&answering(n, &acks, answered)))
            .collect::<Vec<IncidentEvent>>()
    };
    // The host sends nothing back: an ACK flood with SYNs added.
    let events = judged(0);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]
            .vectors
            .iter()
            .any(|v| v.attack_type == AttackType::AckFlood),
        "{events:?}"
    );
    // The host answers (data, acknowledgements): sessions, however many.
    assert!(judged(12_000).is_empty());
}

#[test]
fn a_host_quiet_through_the_warm_up_is_judged_by_the_floor_not_the_cold_start() {
    let mut d = detector(Vec::new());
    // Another host is busy; 10.0.0.53 sends and receives nothing for 8 s.
    for n in 0..80 {
        assert!(d.observe(&window(n, "10.0.0.9", 1_000)).is_empty());
    }
    // Its quiet was learnt: 20 kpps is a flood (under the cold-start floor).
    let events = feed(&mut d, 80, 83, 20_000);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].target, "10.0.0.53");
}

#[test]
fn a_flood_of_large_packets_under_every_packet_limit_is_judged_by_its_bits() {
    let mut d = detector(Vec::new());
    for n in 0..100 {
        assert!(d.observe(&mixed(n, &[(TrafficClass::Udp, 75)])).is_empty());
    }
    // 4800 pps of full-size packets: under the 5000 pps floor, 58 Mbps.
    let flood = |n: u64| {
        let mut v = mixed(
            n,
            &[(TrafficClass::Udp, 4_000), (TrafficClass::Fragment, 800)],
        );
        let stats = v
            .destinations
            .get_mut(&mapped_key(ip("10.0.0.53")))
            .expect("target");
        for class in [TrafficClass::Udp, TrafficClass::Fragment] {
            let i = class.index();
            stats.classes[i].bytes = stats.classes[i].packets * 1_500;
        }
        stats.bytes = stats.classes.iter().map(|c| u64::from(c.bytes)).sum();
        v
    };
    let events: Vec<IncidentEvent> = (100..103).flat_map(|n| d.observe(&flood(n))).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].attack_type, AttackType::UdpFlood, "{events:?}");
    // Named by the class carrying the rise (the fragments are under 20% of it).
    assert!(events[0].peak_bps >= 40_000_000, "{events:?}");
}
