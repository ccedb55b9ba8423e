//! `levee run` over virtual devices: every packet is received and counted, inline
//! mode forwards frames unchanged, monitor mode forwards nothing.

mod common;

use common::*;

#[test]
fn inline_forwards_every_frame_unchanged_pcap_to_pcap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    let sent = write_capture(&input, 3000, 11);
    let config = pair_config(
        dir.path(),
        "inline",
        &format!("net_pcap0,rx_pcap={}", input.display()),
        &format!("net_pcap1,tx_pcap={}", output.display()),
        "",
    );
    let (_, summary) = run_json(&config, &["--exit-when-idle", "0.5"]);

    assert_eq!(u(&summary, "/totals/rx_packets"), 3000, "{summary}");
    assert_eq!(u(&summary, "/totals/tx_packets"), 3000, "{summary}");
    assert_eq!(u(&summary, "/totals/dropped_packets"), 0);
    assert_eq!(
        u(&summary, "/workers/0/inbound/rx_bytes"),
        sent.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(
        u(&summary, "/ports/0/rx_packets"),
        3000,
        "outside port counted every frame"
    );
    assert_eq!(
        u(&summary, "/ports/1/tx_packets"),
        3000,
        "inside port sent every frame"
    );

    let received = read_frames(&output);
    assert_eq!(received.len(), sent.len());
    for (i, (a, b)) in sent.iter().zip(&received).enumerate() {
        assert_eq!(a, b, "frame {i} differs");
    }
}

#[test]
fn monitor_mode_counts_everything_and_forwards_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    write_capture(&input, 1500, 12);
    let config = pair_config(
        dir.path(),
        "monitor",
        &format!("net_pcap0,rx_pcap={}", input.display()),
        &format!("net_pcap1,tx_pcap={}", output.display()),
        "",
    );
    let (_, summary) = run_json(&config, &["--exit-when-idle", "0.5"]);
    assert_eq!(u(&summary, "/totals/rx_packets"), 1500, "{summary}");
    assert_eq!(u(&summary, "/totals/tx_packets"), 0);
    assert_eq!(u(&summary, "/ports/1/tx_packets"), 0);
    assert!(
        read_frames(&output).is_empty(),
        "monitor mode wrote frames to the peer port"
    );
}

#[test]
fn both_directions_are_forwarded_and_counted_separately() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_in, b_in) = (dir.path().join("a_in.pcap"), dir.path().join("b_in.pcap"));
    let (a_out, b_out) = (dir.path().join("a_out.pcap"), dir.path().join("b_out.pcap"));
    let from_outside = write_capture(&a_in, 700, 21);
    let from_inside = write_capture(&b_in, 300, 22);
    let config = pair_config(
        dir.path(),
        "inline",
        &format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            a_in.display(),
            a_out.display()
        ),
        &format!(
            "net_pcap1,rx_pcap={},tx_pcap={}",
            b_in.display(),
            b_out.display()
        ),
        "",
    );
    let (_, summary) = run_json(&config, &["--exit-when-idle", "0.5"]);
    assert_eq!(
        u(&summary, "/workers/0/inbound/rx_packets"),
        700,
        "{summary}"
    );
    assert_eq!(u(&summary, "/workers/0/outbound/rx_packets"), 300);
    assert_eq!(read_frames(&b_out), from_outside, "outside -> inside");
    assert_eq!(read_frames(&a_out), from_inside, "inside -> outside");
}

#[test]
fn a_time_limit_stops_an_endless_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    write_capture(&input, 512, 13);
    let config = pair_config(
        dir.path(),
        "inline",
        &format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
        "net_null0",
        "",
    );
    let started = std::time::Instant::now();
    let (_, summary) = run_json(&config, &["--duration", "1"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "stopped on time"
    );
    let rx = u(&summary, "/totals/rx_packets");
    assert!(
        rx > 512,
        "an endless source delivers more than one pass: {rx}"
    );
    // net_null's own packets (outbound) are empty frames the malformed policy drops.
    assert_eq!(
        u(&summary, "/totals/tx_packets")
            + u(&summary, "/totals/tx_failed_packets")
            + u(&summary, "/totals/dropped_packets"),
        rx
    );
    assert_eq!(
        u(&summary, "/workers/0/inbound/dropped_packets"),
        0,
        "nothing from the capture is dropped"
    );
}

#[test]
fn sigterm_stops_cleanly_with_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    write_capture(&input, 512, 14);
    let config = pair_config(
        dir.path(),
        "inline",
        &format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
        "net_null0",
        "",
    );
    let mut child = levee()
        .args(["run", "--json", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start levee");
    // SIGTERM once the workers forward (levee says so on stderr).
    let stderr = child.stderr.take().expect("stderr");
    let (started_tx, started) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if line.contains("forwarding started") {
                let _ = started_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    started
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("levee starts forwarding");
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let output = child.wait_with_output().expect("levee exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = log.join().unwrap_or_default();
    assert!(
        output.status.success(),
        "exit status {:?}; stderr: {stderr}",
        output.status,
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("JSON summary after SIGTERM");
    assert!(u(&summary, "/totals/rx_packets") > 0);
}
