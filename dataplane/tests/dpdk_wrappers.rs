//! The safe DPDK wrappers against the real EAL, with virtual devices only.
//! One EAL per process, so this binary holds a single test that walks the stages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use levee_dataplane::dpdk::{self, DpdkError, Eal, MbufBurst, Mempool, Port, PortConfig};
use levee_dataplane::packet_io::BURST_SIZE;
use levee_dataplane::synth;

fn frame(i: usize) -> Vec<u8> {
    let e = synth::Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src: std::net::Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1),
        dst: std::net::Ipv4Addr::new(10, 0, 0, 1),
        src_port: 1000 + i as u16,
        dst_port: 53,
        ttl: 64,
    };
    synth::udp_frame(&e, &vec![i as u8; i % 40])
}

#[test]
fn eal_mempool_ports_bursts_and_lcores() {
    // net_ring0 loops TX back to RX (one ring per queue), so what we send we receive.
    let eal = Eal::init([
        "-l",
        "0,1",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--log-level=*:warning",
        "--vdev=net_ring0",
        "--vdev=net_null0",
    ])
    .expect("EAL starts with virtual devices");
    assert!(
        matches!(
            Eal::init(["--no-huge"]),
            Err(DpdkError::EalAlreadyInitialised)
        ),
        "second init refused"
    );
    assert!(Eal::version().starts_with("DPDK 2"), "{}", Eal::version());
    assert_eq!(dpdk::worker_lcores(&eal), vec![1]);
    assert!(dpdk::tsc_hz(&eal) > 1_000_000);

    // More mbufs than the EAL's 256 MiB hold: refused, saying why.
    match Mempool::new(&eal, 200_000, 0, -1) {
        Err(e @ DpdkError::Mempool { .. }) => {
            let message = e.to_string();
            assert!(message.contains("200000 mbufs"), "{message}");
            assert!(
                message.contains("(errno ") && !message.contains("(errno 0)"),
                "a reason is given: {message}"
            );
        }
        other => panic!("an oversized pool is refused, got {other:?}"),
    }

    let pool = Arc::new(Mempool::new(&eal, 2047, 0, -1).expect("mempool"));
    assert_eq!(pool.in_use(), 0);

    // On 4 KiB pages DPDK's own layout puts every mbuf at one offset in a page
    // of its own; a packed pool (virtual I/O addresses) spreads them.
    let mut spread = MbufBurst::new();
    for i in 0..BURST_SIZE {
        assert!(spread.push_copy(&pool, &frame(i)), "mbuf {i}");
        assert_eq!(
            spread.frame(i),
            frame(i).as_slice(),
            "mbuf {i} holds its frame"
        );
    }
    let offsets: std::collections::HashSet<usize> = (0..spread.len())
        .map(|i| spread.frame(i).as_ptr() as usize % 4096)
        .collect();
    if pool.packed() {
        assert!(
            offsets.len() > BURST_SIZE / 2,
            "packed pool, page offsets {offsets:?}"
        );
    } else {
        assert_eq!(offsets.len(), 1, "DPDK's layout, page offsets {offsets:?}");
    }
    eprintln!(
        "mempool packed: {}, {} page offsets in a burst",
        pool.packed(),
        offsets.len()
    );
    spread.free_all();
    assert_eq!(pool.in_use(), 0);

    assert!(matches!(
        Port::open(&eal, "net_pcap7", &PortConfig::default(), Arc::clone(&pool)),
        Err(DpdkError::PortNotFound(_))
    ));
    let too_many = PortConfig {
        rx_queues: 5000,
        tx_queues: 5000,
        ..PortConfig::default()
    };
    assert!(
        Port::open(&eal, "net_null0", &too_many, Arc::clone(&pool)).is_err(),
        "queue count beyond the device"
    );

    let ring = Port::open(&eal, "net_ring0", &PortConfig::default(), Arc::clone(&pool))
        .expect("ring port");
    assert_eq!(ring.driver(), "net_ring");
    assert!(ring.link().up);
    let mut tx = ring.tx_queue(0).expect("tx queue");
    let mut rx = ring.rx_queue(0).expect("rx queue");
    assert!(ring.rx_queue(0).is_err(), "a queue can be owned once");
    assert!(ring.tx_queue(1).is_err(), "no such queue");

    // Fill a burst, send it, receive the same frames back.
    let frames: Vec<Vec<u8>> = (0..BURST_SIZE).map(frame).collect();
    let mut out = MbufBurst::new();
    for f in &frames {
        assert!(out.push_copy(&pool, f));
    }
    assert!(
        !out.push_copy(&pool, &frames[0]),
        "a burst holds at most BURST_SIZE"
    );
    assert_eq!(pool.in_use(), BURST_SIZE as u32);
    let outcome = out.transmit(&mut tx);
    assert_eq!(outcome.sent, BURST_SIZE as u32);
    assert!(out.is_empty());

    let mut inb = MbufBurst::new();
    assert_eq!(inb.receive(&mut rx), BURST_SIZE);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(inb.frame(i), &f[..], "frame {i} came back unchanged");
    }
    assert!(
        inb.frame(BURST_SIZE).is_empty(),
        "out of range is empty, not a panic"
    );

    // retain keeps the marked packets in order and frees the others.
    let keep = 0b1010_1010u32;
    assert_eq!(inb.retain(keep), BURST_SIZE as u32 - 4);
    assert_eq!(inb.len(), 4);
    for (slot, i) in [1usize, 3, 5, 7].iter().enumerate() {
        assert_eq!(inb.frame(slot), &frames[*i][..]);
    }
    assert_eq!(pool.in_use(), 4);
    // Keeping none frees the whole burst.
    assert_eq!(inb.retain(0), 4);
    assert!(inb.is_empty());
    assert_eq!(pool.in_use(), 0, "a burst dropped whole returns its mbufs");
    assert_eq!(inb.receive(&mut rx), 0, "the ring is empty");
    drop(inb);
    assert_eq!(pool.in_use(), 0, "dropping a burst returns its mbufs");

    let stats = ring.stats().expect("stats");
    assert_eq!(
        (stats.tx_packets, stats.rx_packets),
        (BURST_SIZE as u64, BURST_SIZE as u64)
    );
    let xstats = ring.xstats().expect("xstats");
    assert!(
        xstats.iter().any(|(name, _)| name == "rx_good_packets"),
        "{xstats:?}"
    );

    // A job on the worker lcore runs there and its result comes back.
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let job = dpdk::launch_on_lcore(&eal, 1, move || {
        flag.store(dpdk::current_lcore() == 1, Ordering::SeqCst);
        7
    })
    .expect("launch");
    assert_eq!(job.join(), 7);
    assert!(ran.load(Ordering::SeqCst), "the job ran on lcore 1");
    assert!(matches!(
        dpdk::launch_on_lcore(&eal, 0, || 0),
        Err(DpdkError::LcoreUnavailable { lcore: 0 })
    ));
    let panicking = dpdk::launch_on_lcore(&eal, 1, || panic!("worker bug")).expect("launch");
    assert_eq!(
        panicking.join(),
        -1,
        "a panicking job reports failure instead of unwinding into C"
    );

    drop((tx, rx, ring));
    assert_eq!(pool.in_use(), 0);
}
