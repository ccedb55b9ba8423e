//! More than one worker: each owns one RX queue of every port (net_pcap with
//! one capture file per queue), its sources spread the way RSS would (by
//! source address). Every packet is counted once, the window reports of all
//! workers add up to what one worker sees, rules reach every worker, and
//! detection and mitigation come out as with one worker.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use levee_dataplane::pcap::{read_capture, PcapWriter, LINKTYPE_ETHERNET};

/// Split a capture into `n` files by source address, as RSS on the source
/// would spread it over `n` queues; returns the files and the sources of each.
fn split_by_source(
    capture: &Path,
    n: usize,
    dir: &Path,
) -> Vec<(PathBuf, BTreeSet<[u8; 16]>, u64)> {
    let records = read_capture(std::fs::File::open(capture).expect("capture")).expect("read");
    let mut out: Vec<(PathBuf, BTreeSet<[u8; 16]>, u64)> = Vec::new();
    let mut writers = Vec::new();
    for q in 0..n {
        let path = dir.join(format!("queue{q}.pcap"));
        let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        writers.push(PcapWriter::new(file, LINKTYPE_ETHERNET).expect("writer"));
        out.push((path, BTreeSet::new(), 0));
    }
    for r in &records {
        let src = levee_dataplane::wire::parse(&r.data).src;
        let q = src.iter().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(*b))
        }) % n;
        writers[q].write(r.timestamp_ns, &r.data).expect("write");
        out[q].1.insert(src);
        out[q].2 += 1;
    }
    for w in writers {
        w.finish().expect("finish");
    }
    out
}

/// The `[dpdk]` lcores of `n` workers on this machine's first two CPUs.
fn workers_section(n: usize) -> String {
    let lcores: Vec<String> = (1..=n).map(|l| l.to_string()).collect();
    let cpus: Vec<String> = (1..=n).map(|l| (l % 2).to_string()).collect();
    format!(
        "worker_lcores = [{}]\nworker_cpus = [{}]\nmain_cpu = 0\n",
        lcores.join(", "),
        cpus.join(", ")
    )
}

/// A configuration with `queues` for the outside port and `n` workers.
fn config(dir: &Path, queues: &[PathBuf], n: usize, infinite: bool, extra: &str) -> PathBuf {
    let rx: Vec<String> = queues
        .iter()
        .map(|q| format!("rx_pcap={}", q.display()))
        .collect();
    // The inside port: a queue per worker too, nothing to receive (an empty
    // capture each), what is forwarded written per queue.
    let empty = dir.join("empty.pcap");
    PcapWriter::new(
        std::fs::File::create(&empty).expect("empty"),
        LINKTYPE_ETHERNET,
    )
    .and_then(PcapWriter::finish)
    .expect("an empty capture");
    let inside: Vec<String> = (0..n)
        .map(|q| {
            format!(
                "rx_pcap={},tx_pcap={}",
                empty.display(),
                dir.join(format!("forwarded{n}-{q}.pcap")).display()
            )
        })
        .collect();
    let body = format!(
        "mode = \"inline\"\n[dpdk]\neal_args = {TEST_EAL_ARGS}\nmempool_size = 8192\n{}\
         [[pair]]\noutside = \"net_pcap0,{}{}\"\ninside = \"net_pcap1,{}\"\n{extra}\n",
        workers_section(n),
        rx.join(","),
        if infinite { ",infinite_rx=1" } else { "" },
        inside.join(","),
    );
    write_config(dir, &format!("levee-{n}.toml"), &body)
}

#[test]
fn two_and_four_workers_count_every_packet_once_and_their_windows_add_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("mixed.pcap");
    let made = levee()
        .args([
            "generate-capture",
            "--packets",
            "20000",
            "--seed",
            "7",
            "--out",
        ])
        .arg(&capture)
        .output()
        .expect("generate");
    assert!(made.status.success(), "{made:?}");

    // One worker over the whole capture: the reference.
    let one = config(
        dir.path(),
        std::slice::from_ref(&capture),
        1,
        false,
        "[store]\nenabled = false",
    );
    let (out, reference) = run_json(&one, &["--exit-when-idle", "1"]);
    assert!(out.status.success(), "{out:?}");
    let classes = &reference["pipeline"]["directions"]["inbound"]["classes"];
    assert_eq!(reference["totals"]["rx_packets"], 20000);

    for n in [2, 4] {
        let sub = dir.path().join(format!("split{n}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let queues = split_by_source(&capture, n, &sub);
        assert!(
            queues.iter().all(|(_, _, count)| *count > 0),
            "every queue gets traffic"
        );
        let files: Vec<PathBuf> = queues.iter().map(|(p, _, _)| p.clone()).collect();
        let path = config(&sub, &files, n, false, "[store]\nenabled = false");
        let (out, summary) = run_json(&path, &["--exit-when-idle", "1"]);
        assert!(out.status.success(), "{n} workers: {out:?}");
        let workers = summary["workers"].as_array().expect("workers");
        assert_eq!(workers.len(), n, "{summary}");
        // Worker w owns queue w of the port: it counted exactly that queue's packets.
        for (w, (_, _, count)) in queues.iter().enumerate() {
            assert_eq!(workers[w]["lcore"], w + 1);
            assert_eq!(
                workers[w]["inbound"]["rx_packets"], *count,
                "worker {w} of {n}"
            );
            assert_eq!(
                workers[w]["inbound"]["tx_packets"], *count,
                "worker {w} of {n}"
            );
            // Each worker moved its tables onto its own CPU's NUMA node.
            assert!(workers[w]["cpu_node"].is_u64(), "{}", workers[w]);
            assert_eq!(
                workers[w]["memory_node"], workers[w]["cpu_node"],
                "worker {w} of {n}"
            );
        }
        assert_eq!(summary["totals"]["rx_packets"], 20000, "{n} workers");
        assert_eq!(summary["totals"]["tx_packets"], 20000, "{n} workers");
        // The merged window reports see what one worker saw, class by class.
        let merged = &summary["pipeline"]["directions"]["inbound"];
        assert_eq!(merged["packets"], 20000, "{n} workers");
        assert_eq!(&merged["classes"], classes, "{n} workers");
        assert_eq!(summary["pipeline"]["reports_dropped"], 0);
    }
}

/// The incident on 10.0.0.1 and its sorted attackers, once it names them all.
fn incident(levee: &Running) -> (String, Vec<String>) {
    levee.wait_for(40, "an incident naming its attackers", || {
        let (_, v) = levee.get("/api/v1/incidents");
        let i = v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["target"] == "10.0.0.1")?
            .clone();
        let mut attackers: Vec<String> = i["attacker_ips"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        attackers.sort();
        (attackers.len() >= 8).then(|| {
            (
                i["attack_type"].as_str().unwrap_or_default().to_owned(),
                attackers,
            )
        })
    })
}

#[test]
fn rules_reach_every_worker_and_detection_is_the_same_as_with_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("attack.pcap");
    attack_capture(
        &capture,
        &[
            "--duration",
            "1",
            "--normal-pps",
            "200",
            "--attack",
            "udp:0:1:3000:10.0.0.1:8",
        ],
    );
    let extra = |d: &Path| {
        format!(
            "[pipeline]\nprotected = [\"10.0.0.1/32\"]\n[store]\npath = \"{}\"\n{}",
            d.join("levee.db").display(),
            api_section()
        )
    };

    let one_dir = dir.path().join("one");
    std::fs::create_dir_all(&one_dir).expect("dir");
    let one = Running::start(&config(
        &one_dir,
        std::slice::from_ref(&capture),
        1,
        true,
        &extra(&one_dir),
    ));
    let (attack_type, attackers) = incident(&one);
    drop(one);

    let two_dir = dir.path().join("two");
    std::fs::create_dir_all(&two_dir).expect("dir");
    let queues = split_by_source(&capture, 2, &two_dir);
    let files: Vec<PathBuf> = queues.iter().map(|(p, _, _)| p.clone()).collect();
    let two = Running::start(&config(&two_dir, &files, 2, true, &extra(&two_dir)));
    let (attack_type_two, attackers_two) = incident(&two);
    assert_eq!(
        attack_type_two, attack_type,
        "the same attack, named the same"
    );
    assert_eq!(attackers_two, attackers, "the same attackers found");
    // Both queues carry attackers, so both workers must drop.
    let on_queue = |q: usize| {
        attackers.iter().any(|a| {
            let ip: std::net::IpAddr = a.parse().expect("an address");
            let mapped = match ip {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                std::net::IpAddr::V6(v6) => v6.octets(),
            };
            queues[q].1.contains(&mapped)
        })
    };
    assert!(
        on_queue(0) && on_queue(1),
        "the split gives each worker attackers"
    );
    two.wait_for(20, "every worker dropping the attackers", || {
        let (_, s) = two.get("/api/v1/status");
        let workers = s["workers"].as_array()?;
        (workers.len() == 2
            && workers
                .iter()
                .all(|w| w["dropped_packets"].as_u64().is_some_and(|d| d > 0)))
        .then_some(())
    });

    // An operator's rule is active once every worker applied it.
    let source = queues[1]
        .1
        .iter()
        .find_map(|s| {
            let ip = std::net::Ipv6Addr::from(*s);
            ip.to_ipv4_mapped()
                .map(|v4| v4.to_string())
                .filter(|a| !attackers.contains(a) && a != "10.0.0.1")
        })
        .expect("a normal client on the second queue");
    let (status, rule) = two.post(
        "/api/v1/rules",
        &serde_json::json!({"kind": "block", "source": source, "reason": "test"}),
    );
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_u64().expect("id");
    two.wait_for(10, "the rule active on both workers", || {
        let (_, r) = two.get(&format!("/api/v1/rules/{id}"));
        (r["state"] == "active").then_some(())
    });
    let sample = format!("levee_rule_dropped_packets_total{{rule_id=\"{id}\"}}");
    two.wait_for(15, "drops by the operator's rule", || {
        two.metric(&sample).filter(|n| *n > 0.0)
    });
}
