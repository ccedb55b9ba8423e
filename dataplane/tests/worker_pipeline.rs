//! The worker loop with its pipeline, driven by a capture (no DPDK): window
//! reports add up to the traffic, and a consumer that stops reading costs
//! reports, never forwarding.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use levee_dataplane::packet_io::Direction;
use levee_dataplane::pcap::{Record, LINKTYPE_ETHERNET};
use levee_dataplane::pipeline::{report_channels, Pipeline, PipelineConfig};
use levee_dataplane::replay::{CaptureClock, CaptureSource};
use levee_dataplane::stats::{ReportCapacities, BURST_CYCLES_ONE_IN};
use levee_dataplane::synth;
use levee_dataplane::tables::{PrefixTable, RuleTables, TableCapacities};
use levee_dataplane::wire::parse;
use levee_dataplane::worker::{WorkerContext, WorkerSettings};

/// `count` frames spread evenly over `seconds` of capture time.
fn capture(count: usize, seconds: u64) -> Arc<Vec<Record>> {
    let step = seconds * 1_000_000_000 / count as u64;
    Arc::new(
        synth::mixed_small_traffic(count, 3, 0)
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, data))| Record {
                linktype: LINKTYPE_ETHERNET,
                timestamp_ns: 1_700_000_000_000_000_000 + i as u64 * step,
                original_len: data.len() as u32,
                data,
            })
            .collect(),
    )
}

/// A worker forwarding `records` (inbound) through `pipeline`, on capture time.
fn worker_over(
    records: Arc<Vec<Record>>,
    pipeline: Pipeline,
) -> WorkerContext<CaptureSource, CaptureClock> {
    let (source, clock) = CaptureSource::new(records, Direction::Inbound, true);
    WorkerContext::new(
        vec![source],
        clock,
        WorkerSettings::default(),
        Arc::new(AtomicBool::new(false)),
        pipeline,
    )
}

fn protected() -> Arc<PrefixTable<()>> {
    let mut t = PrefixTable::with_capacity(4);
    t.insert("10.0.0.0/24".parse().expect("prefix"), ())
        .expect("room");
    Arc::new(t)
}

#[test]
fn windows_add_up_to_the_traffic() {
    let records = capture(20_000, 2);
    let caps = ReportCapacities::default();
    let (mut links, sink) = report_channels(1, 64, 4, caps);
    let mut pipeline = Pipeline::new(
        0,
        RuleTables::new(TableCapacities::default(), 1),
        None,
        protected(),
        PipelineConfig::default(),
        links.pop(),
    );
    // As a worker starts: its tables and reports moved into its node's
    // memory, with all their room (samples, peers... are still kept).
    pipeline.move_to_local_memory();
    let mut worker = worker_over(Arc::clone(&records), pipeline);
    let mut windows = Vec::new();
    let bursts = std::cell::Cell::new(0u64);
    let take = |windows: &mut Vec<(u64, u64, u64, usize)>| {
        while let Ok(r) = sink.reports.try_recv() {
            let d = r.direction(Direction::Inbound);
            let dest: u64 = r.destinations.iter().map(|(_, s)| s.packets).sum();
            windows.push((d.packets(), d.forwarded_packets, dest, r.samples.len()));
            // Every burst counted, one in BURST_CYCLES_ONE_IN measured (the
            // window's first among them).
            assert_eq!(
                r.burst_cycles.len(),
                r.bursts.div_ceil(BURST_CYCLES_ONE_IN),
                "{} bursts",
                r.bursts
            );
            bursts.set(bursts.get() + r.bursts);
            assert!(
                r.end_ns - r.start_ns <= 102_000_000,
                "a window lasts about 100 ms of capture time"
            );
            sink.recycle(r);
        }
    };
    while worker.poll_once() > 0 {
        take(&mut windows);
    }
    worker.finish();
    take(&mut windows);
    assert!(
        (19..=22).contains(&windows.len()),
        "{} windows over 2 s",
        windows.len()
    );
    let total: u64 = windows.iter().map(|w| w.0).sum();
    assert_eq!(
        total, 20_000,
        "every packet is counted in exactly one window"
    );
    assert_eq!(
        windows.iter().map(|w| w.1).sum::<u64>(),
        20_000,
        "all forwarded"
    );
    assert_eq!(
        windows.iter().map(|w| w.2).sum::<u64>(),
        20_000,
        "every packet went to a protected host"
    );
    let samples: usize = windows.iter().map(|w| w.3).sum();
    assert_eq!(samples, 20_000 / 64, "1 in 64 sampled");
    assert_eq!(
        bursts.get(),
        worker.counters().bursts,
        "every burst in a window"
    );
    assert_eq!(worker.pipeline().reports_dropped(), 0);
}

#[test]
fn a_stalled_consumer_loses_reports_not_packets() {
    let records = capture(50_000, 5);
    let (mut links, sink) = report_channels(1, 2, 4, ReportCapacities::default());
    let pipeline = Pipeline::new(
        0,
        RuleTables::new(TableCapacities::default(), 1),
        None,
        protected(),
        PipelineConfig::default(),
        links.pop(),
    );
    let mut worker = worker_over(Arc::clone(&records), pipeline);
    // Nobody reads `sink.reports`.
    while worker.poll_once() > 0 {}
    worker.finish();
    let c = worker.counters().direction(Direction::Inbound);
    assert_eq!(c.rx_packets, 50_000);
    assert_eq!(c.tx_packets, 50_000, "forwarding went on at full rate");
    let dropped = worker.pipeline().reports_dropped();
    assert!(
        dropped >= 40,
        "about 50 windows, at most 3 delivered: {dropped} dropped"
    );
    assert_eq!(sink.reports.len(), 2, "the channel is full, nothing more");
    let first = sink.reports.try_recv().expect("a report");
    assert_eq!(first.sequence, 0);
}

/// A burst of frames held in memory (tests only).
#[derive(Default)]
struct Frames(Vec<Vec<u8>>);

impl levee_dataplane::packet_io::PacketBurst for Frames {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn frame(&self, i: usize) -> &[u8] {
        self.0.get(i).map_or(&[], |f| &f[..])
    }
    fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.0.get_mut(i).map(|f| &mut f[..])
    }
    fn truncate(&mut self, i: usize, len: usize) {
        if let Some(f) = self.0.get_mut(i) {
            f.truncate(len);
        }
    }
    fn retain(&mut self, keep: u32) -> u32 {
        let before = self.0.len();
        let mut i = 0;
        self.0.retain(|_| {
            i += 1;
            keep & (1 << (i - 1)) != 0
        });
        (before - self.0.len()) as u32
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

#[test]
fn a_syn_rate_limit_lets_clients_that_completed_a_handshake_through() {
    use levee_dataplane::tables::{SignatureAction, SignatureRule, TablePublisher};
    use levee_dataplane::wire::tcp::flags::{ACK, SYN};
    let caps = TableCapacities::default();
    let (mut publisher, mut mailboxes) = TablePublisher::new(1, caps, 64);
    let mut pipeline = Pipeline::new(
        0,
        RuleTables::new(caps, 1),
        mailboxes.pop(),
        protected(),
        PipelineConfig::default(),
        None,
    );
    let t0 = 1_700_000_000_000_000_000u64;
    let ends = tcp_ends;
    let client = ends("198.51.100.20", 41000, "10.0.0.1", 443);
    let server = ends("10.0.0.1", 443, "198.51.100.20", 41000);
    // A UDP rate limit alone: handshakes are not followed (no cost for TCP).
    publisher
        .set_signatures(vec![SignatureRule {
            protocol: Some(17),
            action: SignatureAction::RateLimit { pps: 1 },
            ..SignatureRule::drop_all(6)
        }])
        .expect("valid");
    publisher.flush();
    pipeline.after_poll(t0);
    pipeline.process_burst(
        &mut Frames(vec![synth::tcp_frame(&server, SYN | ACK, 70, 2, b"")]),
        Direction::Outbound,
        t0,
    );
    pipeline.process_burst(
        &mut Frames(vec![synth::tcp_frame(&client, ACK, 2, 71, b"")]),
        Direction::Inbound,
        t0,
    );
    assert_eq!(pipeline.handshakes.completed, 0);
    // A spoofed SYN flood's answer: SYNs toward the server limited to 1/s.
    publisher
        .set_signatures(vec![SignatureRule {
            destination: Some("10.0.0.1/32".parse().expect("prefix")),
            protocol: Some(6),
            tcp_flags: Some((SYN | ACK, SYN)),
            action: SignatureAction::RateLimit { pps: 1 },
            ..SignatureRule::drop_all(7)
        }])
        .expect("valid");
    publisher.flush();
    pipeline.after_poll(t0);
    let syn = |e: &synth::Endpoints| synth::tcp_frame(e, SYN, 1, 0, b"");
    let mut passed = |frames: Vec<Vec<u8>>, d: Direction, t: u64| {
        let n = frames.len() as u32;
        let keep = pipeline.process_burst(&mut Frames(frames), d, t);
        (keep.keep.count_ones(), n)
    };
    // The limit is used up: the client's SYN is dropped like the flood's.
    let flood: Vec<Vec<u8>> = (1..=8)
        .map(|i| syn(&ends(&format!("203.0.113.{i}"), 1000 + i, "10.0.0.1", 443)))
        .collect();
    let (kept, _) = passed(flood.clone(), Direction::Inbound, t0 + 1);
    assert!(kept <= 1, "the limit holds: {kept}");
    assert_eq!(passed(vec![syn(&client)], Direction::Inbound, t0 + 2).0, 0);
    // A spoofed ACK that acknowledges nothing verifies nobody.
    let forged = synth::tcp_frame(
        &ends("203.0.113.1", 1001, "10.0.0.1", 443),
        ACK,
        2,
        999,
        b"",
    );
    passed(vec![forged], Direction::Inbound, t0 + 3);
    assert_eq!(
        passed(
            vec![syn(&ends("203.0.113.1", 1001, "10.0.0.1", 443))],
            Direction::Inbound,
            t0 + 4
        )
        .0,
        0
    );
    // The client completes a handshake that got through: server SYN-ACK out,
    // client ACK (acknowledging the server's sequence number + 1) in.
    passed(
        vec![synth::tcp_frame(&server, SYN | ACK, 5000, 2, b"")],
        Direction::Outbound,
        t0 + 5,
    );
    passed(
        vec![synth::tcp_frame(&client, ACK, 2, 5001, b"")],
        Direction::Inbound,
        t0 + 6,
    );
    assert_eq!(pipeline.handshakes.completed, 1);
    // From now on its SYNs pass the limit; the flood's still do not.
    let mut burst = flood;
    burst.push(syn(&ends("198.51.100.20", 41001, "10.0.0.1", 443)));
    let keep = pipeline
        .process_burst(&mut Frames(burst), Direction::Inbound, t0 + 7)
        .keep;
    assert_eq!(keep, 1 << 8, "only the verified client's SYN: {keep:b}");
}

fn tcp_ends(src: &str, sport: u16, dst: &str, dport: u16) -> synth::Endpoints {
    synth::Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src: src.parse().expect("ip"),
        dst: dst.parse().expect("ip"),
        src_port: sport,
        dst_port: dport,
        ttl: 60,
    }
}

/// A pipeline with one signature toward 10.0.0.1 (TCP, `flags`, `action`).
fn defended(
    flags: (u8, u8),
    action: levee_dataplane::tables::SignatureAction,
    grace_ms: u64,
    t0: u64,
) -> Pipeline {
    use levee_dataplane::tables::{SignatureRule, TablePublisher};
    let caps = TableCapacities::default();
    let (mut publisher, mut mailboxes) = TablePublisher::new(1, caps, 64);
    let mut pipeline = Pipeline::new(
        0,
        RuleTables::new(caps, 1),
        mailboxes.pop(),
        protected(),
        PipelineConfig {
            connection_grace_ms: grace_ms,
            ..PipelineConfig::default()
        },
        None,
    );
    publisher
        .set_signatures(vec![SignatureRule {
            destination: Some("10.0.0.1/32".parse().expect("prefix")),
            protocol: Some(6),
            tcp_flags: Some(flags),
            action,
            ..SignatureRule::drop_all(77)
        }])
        .expect("valid");
    publisher.flush();
    pipeline.after_poll(t0);
    pipeline
}

#[test]
fn syn_authentication_challenges_verifies_by_the_cookie_and_then_lets_the_client_through() {
    use levee_dataplane::stats::DropReason;
    use levee_dataplane::tables::SignatureAction;
    use levee_dataplane::wire::tcp::flags::{ACK, RST, SYN};
    let t0 = 1_700_000_000_000_000_000u64;
    let mut pipeline = defended((SYN | ACK, SYN), SignatureAction::Authenticate, 0, t0);
    let client = tcp_ends("198.51.100.20", 41000, "10.0.0.1", 443);
    let syn = synth::tcp_frame(&client, SYN, 5000, 0, b"");

    // The first SYN is not forwarded: it comes back as a SYN-ACK challenge.
    let mut burst = Frames(vec![syn.clone()]);
    let v = pipeline.process_burst(&mut burst, Direction::Inbound, t0 + 1);
    assert_eq!((v.keep, v.reply), (0, 1));
    let answer = parse(&burst.0[0]);
    assert_eq!(answer.tcp_flags, SYN | ACK);
    assert_eq!(answer.dst_ip(), Some("198.51.100.20".parse().expect("ip")));
    let l4 = usize::from(answer.l4_offset);
    let cookie = u32::from_be_bytes(burst.0[0][l4 + 8..l4 + 12].try_into().expect("4"));

    // An RST with a wrong cookie verifies nothing (and is not consumed).
    let forged = synth::tcp_frame(&client, RST, cookie.wrapping_add(1), 0, b"");
    let v = pipeline.process_burst(&mut Frames(vec![forged]), Direction::Inbound, t0 + 2);
    assert_eq!(v.keep, 1, "an RST that answers nothing goes on");
    let v = pipeline.process_burst(&mut Frames(vec![syn.clone()]), Direction::Inbound, t0 + 3);
    assert_eq!(v.reply, 1, "still unverified: challenged again");
    // Another source cannot use this client's cookie.
    let other = tcp_ends("198.51.100.21", 41000, "10.0.0.1", 443);
    let stolen = synth::tcp_frame(&other, RST, cookie, 0, b"");
    assert_eq!(
        pipeline
            .process_burst(&mut Frames(vec![stolen]), Direction::Inbound, t0 + 4)
            .keep,
        1
    );

    // The client's stack answers the bad SYN-ACK with an RST carrying the cookie.
    let rst = synth::tcp_frame(&client, RST, cookie, 0, b"");
    let v = pipeline.process_burst(&mut Frames(vec![rst]), Direction::Inbound, t0 + 5);
    assert_eq!((v.keep, v.reply), (0, 0), "the answer is consumed");
    // Its retransmitted SYN, and its next connections, reach the server.
    let v = pipeline.process_burst(&mut Frames(vec![syn.clone()]), Direction::Inbound, t0 + 6);
    assert_eq!((v.keep, v.reply), (1, 0));
    let next = synth::tcp_frame(
        &tcp_ends("198.51.100.20", 41001, "10.0.0.1", 443),
        SYN,
        9,
        0,
        b"",
    );
    assert_eq!(
        pipeline
            .process_burst(&mut Frames(vec![next.clone()]), Direction::Inbound, t0 + 7)
            .keep,
        1
    );
    // The key rotates (every 8.6 s): verified sources stay verified.
    let rotations = pipeline.cookies.rotations;
    let later = t0 + 60 * 1_000_000_000;
    let fresh = synth::tcp_frame(
        &tcp_ends("198.51.100.99", 1, "10.0.0.1", 443),
        SYN,
        9,
        0,
        b"",
    );
    let v = pipeline.process_burst(&mut Frames(vec![next, fresh]), Direction::Inbound, later);
    assert_eq!((v.keep, v.reply), (0b01, 0b10));
    assert!(pipeline.cookies.rotations > rotations);

    let r = pipeline.current_report();
    let d = &r.defences;
    assert_eq!((d.challenges, d.verified, d.failed), (3, 1, 2));
    let inbound = r.direction(Direction::Inbound);
    assert_eq!(
        inbound.dropped_packets[DropReason::SynChallenge as usize],
        3
    );
    assert_eq!(
        inbound.dropped_packets[DropReason::ChallengeAnswer as usize],
        1
    );
}

#[test]
fn out_of_state_segments_are_dropped_and_known_connections_pass() {
    use levee_dataplane::stats::DropReason;
    use levee_dataplane::tables::SignatureAction;
    use levee_dataplane::wire::tcp::flags::{ACK, PSH, RST, SYN};
    let t0 = 1_700_000_000_000_000_000u64;
    let mut pipeline = defended((SYN, 0), SignatureAction::RequireState, 0, t0);
    let client = tcp_ends("198.51.100.20", 41000, "10.0.0.1", 443);
    let server = tcp_ends("10.0.0.1", 443, "198.51.100.20", 41000);
    // The server speaks on the connection: it is known.
    pipeline.process_burst(
        &mut Frames(vec![synth::tcp_frame(&server, PSH | ACK, 1, 1, b"hello")]),
        Direction::Outbound,
        t0 + 1,
    );
    let flood = |i: u32| {
        let e = tcp_ends(
            &format!("203.0.{}.{}", i / 250, i % 250 + 1),
            5555,
            "10.0.0.1",
            443,
        );
        synth::tcp_frame(&e, if i.is_multiple_of(2) { ACK } else { RST }, i, i, b"")
    };
    let mut frames: Vec<Vec<u8>> = (0..20).map(flood).collect();
    frames.push(synth::tcp_frame(&client, ACK, 2, 6, b""));
    frames.push(synth::tcp_frame(
        &tcp_ends("198.51.100.30", 1, "10.0.0.1", 443),
        SYN,
        1,
        0,
        b"",
    ));
    let v = pipeline.process_burst(&mut Frames(frames), Direction::Inbound, t0 + 2);
    assert_eq!(
        v.keep,
        0b11 << 20,
        "the client's ACK and a SYN pass: {:b}",
        v.keep
    );
    let inbound = pipeline
        .current_report()
        .direction(Direction::Inbound)
        .clone();
    assert_eq!(inbound.dropped_packets[DropReason::OutOfState as usize], 20);

    // Within the grace after start, unknown connections still pass (counted).
    let mut young = defended((SYN, 0), SignatureAction::RequireState, 10_000, t0);
    young.process_burst(
        &mut Frames(vec![synth::tcp_frame(&server, ACK, 1, 1, b"")]),
        Direction::Outbound,
        t0 + 1,
    );
    let v = young.process_burst(&mut Frames(vec![flood(1)]), Direction::Inbound, t0 + 2);
    assert_eq!(v.keep, 1);
    assert_eq!(young.current_report().defences.grace_passes, 1);
    let v = young.process_burst(
        &mut Frames(vec![flood(1)]),
        Direction::Inbound,
        t0 + 11_000_000_000,
    );
    assert_eq!(v.keep, 0, "after the grace");
}

#[test]
fn tables_moved_into_local_memory_keep_their_rules_and_reports() {
    use levee_dataplane::tables::{Decision, TableCommand};
    let frame = synth::udp_frame(
        &synth::Endpoints {
            src_mac: [2; 6],
            dst_mac: [4; 6],
            src: std::net::Ipv4Addr::new(203, 0, 113, 7),
            dst: std::net::Ipv4Addr::new(10, 0, 0, 1),
            src_port: 1234,
            dst_port: 53,
            ttl: 64,
        },
        &[0; 32],
    );
    let mut tables = RuleTables::new(TableCapacities::default(), 1);
    tables
        .apply(
            TableCommand::Block {
                prefix: "203.0.113.7/32".parse().expect("prefix"),
                rule_id: 42,
                expires_at_ns: u64::MAX,
            },
            0,
        )
        .expect("room");
    let (mut links, sink) = report_channels(1, 64, 4, ReportCapacities::default());
    let mut pipeline = Pipeline::new(
        0,
        tables,
        None,
        protected(),
        PipelineConfig::default(),
        links.pop(),
    );
    let node = pipeline.move_to_local_memory();
    assert_eq!(
        node,
        levee_dataplane::cpu::current_node(),
        "every table on the node of the CPU that moved them"
    );
    assert_eq!(
        pipeline.tables.decide(&parse(&frame), 1),
        Decision::Blocked { rule_id: 42 },
        "the blocklist came along"
    );
    // The report pool came back whole: the worker still has a report to swap
    // in at every window's end, and none is lost.
    let records = capture(5_000, 1);
    let mut worker = worker_over(records, pipeline);
    let mut counted = 0;
    while worker.poll_once() > 0 {
        while let Ok(r) = sink.reports.try_recv() {
            counted += r.direction(Direction::Inbound).packets();
            sink.recycle(r);
        }
    }
    worker.finish();
    while let Ok(r) = sink.reports.try_recv() {
        counted += r.direction(Direction::Inbound).packets();
    }
    assert_eq!(counted, 5_000);
    assert_eq!(worker.pipeline().reports_dropped(), 0);
}

/// A flood of one class is fed to its sketch sparsely enough to stay within
/// the sketch's budget of updates per window, each update weighing what it
/// stands for: the flood's heaviest source is still found, about as heavy as
/// it is, and the other classes keep the configured sampling.
#[test]
fn a_flooded_class_is_sampled_within_its_sketch_budget() {
    use levee_dataplane::pipeline::TOP_SOURCE_SAMPLES_PER_KEY;
    use levee_dataplane::wire::TrafficClass;
    const PER_WINDOW: u64 = 20_000;
    const WINDOWS: u64 = 4;
    let caps = ReportCapacities {
        top_sources: 16,
        ..ReportCapacities::default()
    };
    let budget = TOP_SOURCE_SAMPLES_PER_KEY * caps.top_sources as u64;
    let heavy = std::net::Ipv4Addr::new(198, 51, 100, 7);
    let mut rng = synth::Rng::new(11);
    let step = 100_000_000 / PER_WINDOW;
    let start = 1_700_000_000_000_000_000u64;
    let records: Vec<Record> = (0..PER_WINDOW * WINDOWS)
        .map(|i| {
            // A quarter of the flood from one source, every fourth packet
            // (a period dividing the sampling's: fixed gaps would never or
            // always land on it), the rest spoofed.
            let src = if i % 4 == 0 {
                heavy
            } else {
                std::net::Ipv4Addr::from(rng.next_u64() as u32 | 0x0100_0000)
            };
            let data = synth::udp_frame(
                &synth::Endpoints {
                    src_mac: [2; 6],
                    dst_mac: [4; 6],
                    src,
                    dst: std::net::Ipv4Addr::new(10, 0, 0, 1),
                    src_port: 40_000,
                    dst_port: 9_999,
                    ttl: 60,
                },
                &[0; 18],
            );
            Record {
                linktype: LINKTYPE_ETHERNET,
                timestamp_ns: start + i * step,
                original_len: data.len() as u32,
                data,
            }
        })
        .collect();
    let (mut links, sink) = report_channels(1, 64, 4, caps);
    let config = PipelineConfig {
        capacities: caps,
        ..PipelineConfig::default()
    };
    let floor = u64::from(config.top_sources_one_in);
    let pipeline = Pipeline::new(
        0,
        RuleTables::new(TableCapacities::default(), 1),
        None,
        protected(),
        config,
        links.pop(),
    );
    let mut worker = worker_over(Arc::new(records), pipeline);
    let mut reports = Vec::new();
    while worker.poll_once() > 0 {
        reports.extend(sink.reports.try_iter());
    }
    worker.finish();
    reports.extend(sink.reports.try_iter());
    assert!(
        reports.len() >= WINDOWS as usize,
        "{} windows",
        reports.len()
    );
    let udp = TrafficClass::Udp.index();
    assert_eq!(
        reports[0].top_sources_weight[udp], floor,
        "the first window samples as configured"
    );
    for pair in reports[..WINDOWS as usize].windows(2) {
        let (last, r) = (&pair[0], &pair[1]);
        let packets = last.direction(Direction::Inbound).class_packets[udp];
        // A window ends after the burst that crosses its end.
        assert!(
            packets.abs_diff(PER_WINDOW) <= 64,
            "{packets} packets in a window"
        );
        let weight = r.top_sources_weight[udp];
        assert_eq!(
            weight,
            packets.div_ceil(budget),
            "sampled as sparsely as the last window's flood needs, no sparser"
        );
        assert!(weight > floor);
        let updates: u64 = r.top_sources[udp]
            .top()
            .iter()
            .map(|h| (h.count - h.error) / weight)
            .sum();
        assert!(
            updates <= budget + 1,
            "{updates} sketch updates in a window"
        );
        let top = r.top_sources[udp].top();
        let first = top.first().expect("the flood's sources are tracked");
        assert_eq!(
            first.key,
            u128::from(heavy.to_ipv6_mapped()),
            "the heaviest source is found"
        );
        let truth = PER_WINDOW / 4;
        assert!(
            first.count.abs_diff(truth) <= truth / 4,
            "counted {} for {truth} packets",
            first.count
        );
        for (class, w) in r.top_sources_weight.iter().enumerate() {
            if class != udp {
                assert_eq!(
                    *w, floor,
                    "a class without traffic keeps the configured sampling"
                );
            }
        }
    }
}

#[test]
fn one_packet_in_n_is_sampled_whatever_the_bursts_sizes() {
    // Every frame told apart by its source port (its packet number); bursts
    // of uneven sizes, some shorter than N, so that the next packet due falls
    // in a later burst, some holding several.
    let one_in = 7u32;
    let frame = |number: u16| {
        let e = synth::Endpoints {
            src_port: number,
            ..tcp_ends("198.18.0.1", 0, "10.0.0.1", 53)
        };
        synth::udp_frame(&e, b"sample me")
    };
    let config = PipelineConfig {
        sample_one_in: one_in,
        window_ms: 60_000,
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(
        0,
        RuleTables::new(TableCapacities::default(), 1),
        None,
        protected(),
        config,
        None,
    );
    let mut number = 0u16;
    for size in [
        1usize, 5, 32, 3, 7, 6, 8, 32, 32, 2, 13, 1, 1, 1, 1, 1, 1, 1, 20,
    ] {
        let mut burst = Frames((0..size).map(|i| frame(number + i as u16)).collect());
        number += size as u16;
        pipeline.process_burst(&mut burst, Direction::Inbound, 1_000_000_000);
    }
    let sampled: Vec<u16> = pipeline
        .current_report()
        .samples
        .iter()
        .map(|s| parse(&s.data[..usize::from(s.captured_len)]).src_port)
        .collect();
    let due: Vec<u16> = (1..=number / one_in as u16)
        .map(|k| k * one_in as u16 - 1)
        .collect();
    assert!(due.len() >= 20, "the bursts span {} samples", due.len());
    assert_eq!(
        sampled, due,
        "packets sampled (by number) over {number} packets"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// A burst is counted as its packets are one by one, wherever its drops,
    /// failed parses, allowlisted sources and frames that are not IP fall in
    /// it (a burst's leading run of packets judged alike is counted a shorter
    /// way than the rest): the same window counters, the same drops per rule,
    /// the same packets kept.
    #[test]
    fn a_burst_is_counted_as_its_packets_one_by_one(
        kinds in proptest::collection::vec((0u8..8, 0u16..4), 1..=32),
    ) {
        use levee_dataplane::tables::{Prefix, SignatureRule, TablePublisher};
        let caps = TableCapacities::default();
        let (mut publisher, mut mailboxes) = TablePublisher::new(2, caps, 64);
        let (mut links, sink) = report_channels(2, 8, 2, ReportCapacities::default());
        let mut pipelines: Vec<Pipeline> = (0..2)
            .map(|w| {
                Pipeline::new(
                    1 - w,
                    RuleTables::new(caps, 2),
                    mailboxes.pop(),
                    protected(),
                    PipelineConfig::default(),
                    links.pop(),
                )
            })
            .collect();
        let blocked: [std::net::Ipv4Addr; 2] = [[203, 0, 113, 7].into(), [203, 0, 113, 8].into()];
        for (rule, addr) in [40, 42].into_iter().zip(blocked) {
            publisher
                .block(Prefix::host(addr.into()), rule, u64::MAX)
                .expect("room");
        }
        let allowed = std::net::Ipv4Addr::new(198, 51, 100, 9);
        publisher.allow(Prefix::host(allowed.into())).expect("room");
        publisher
            .set_signatures(vec![SignatureRule {
                protocol: Some(17),
                dst_ports: Some((9, 9)),
                ..SignatureRule::drop_all(41)
            }])
            .expect("valid");
        publisher.flush();
        let t0 = 1_700_000_000_000_000_000u64;
        for p in &mut pipelines {
            p.after_poll(t0);
        }
        let ends = |src: std::net::Ipv4Addr, dst_port: u16| synth::Endpoints {
            src_mac: [2; 6],
            dst_mac: [4; 6],
            src,
            dst: std::net::Ipv4Addr::new(10, 0, 0, 1),
            src_port: 40_000,
            dst_port,
            ttl: 60,
        };
        let client = std::net::Ipv4Addr::new(198, 51, 100, 1);
        let frames: Vec<Vec<u8>> = kinds
            .iter()
            .map(|&(kind, size)| {
                let payload = vec![0u8; 18 + 100 * usize::from(size)];
                match kind {
                    0 => synth::udp_frame(&ends(client, 53), &payload),
                    1 => synth::tcp_frame(&ends(client, 443), 0x10, 1, 1, &payload),
                    2 => synth::udp_frame(&ends(blocked[0], 53), &payload),
                    3 => synth::udp_frame(&ends(client, 9), &payload),
                    // An IPv4 header cut short: malformed, dropped.
                    4 => synth::udp_frame(&ends(client, 53), &payload)[..30].to_vec(),
                    5 => synth::udp_frame(&ends(blocked[1], 53), &payload),
                    6 => synth::udp_frame(&ends(allowed, 9), &payload),
                    // ARP: not IP, forwarded.
                    _ => {
                        let mut f = synth::udp_frame(&ends(client, 53), &payload);
                        f[12..14].copy_from_slice(&[0x08, 0x06]);
                        f
                    }
                }
            })
            .collect();
        let whole = pipelines[0].process_burst(&mut Frames(frames.clone()), Direction::Inbound, t0);
        let mut keep = 0u32;
        for (i, frame) in frames.iter().enumerate() {
            let one = pipelines[1].process_burst(&mut Frames(vec![frame.clone()]), Direction::Inbound, t0);
            keep |= (one.keep & 1) << i;
        }
        proptest::prop_assert_eq!(whole.keep, keep);
        for p in &mut pipelines {
            p.finish(t0 + 1);
        }
        let mut reports: Vec<_> = sink.reports.try_iter().collect();
        reports.sort_by_key(|r| r.worker);
        proptest::prop_assert_eq!(reports.len(), 2);
        let [a, b] = [&reports[0], &reports[1]].map(|r| {
            let mut rules: Vec<_> = r.rule_drops.iter().map(|(id, d)| (*id, *d)).collect();
            rules.sort_by_key(|(id, _)| *id);
            (r.direction(Direction::Inbound).clone(), rules)
        });
        proptest::prop_assert_eq!(a.0.packets(), frames.len() as u64);
        proptest::prop_assert_eq!(a, b);
    }
}
