//! Faults levee must survive without taking the link down: each is injected
//! into a real `levee run`, which must go on forwarding with the rules in
//! force, say what happened (health, metrics) and recover.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A levee configuration looping `capture` through its ports, its store at
/// `db`, with the API and `extra` sections.
fn config(dir: &Path, capture: &Path, db: &Path, extra: &str) -> PathBuf {
    write_config(
        dir,
        "levee.toml",
        &format!(
            r#"
            [dpdk]
            eal_args = ["--no-huge", "-m", "1024", "--no-pci", "--no-shconf", "--log-level=*:warning"]
            mempool_size = 131071
            [[pair]]
            outside = "net_pcap0,rx_pcap={},infinite_rx=1"
            inside = "net_null0"
            [pipeline]
            protected = ["10.0.0.0/24"]
            [store]
            path = "{}"
            {extra}
            {}
            "#,
            capture.display(),
            db.display(),
            api_section()
        ),
    )
}

fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    store_rows(db, sql).expect("the store and its tables")
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn new(dir: &Path, size: &str) -> SmallDisk {
        let at = dir.join("disk");
        std::fs::create_dir(&at).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(at)
    }

    /// Fill what is left with a file; removing it frees the room again.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_keeps_mitigating_from_memory_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("traffic.pcap");
    attack_capture(&capture, &["--duration", "2", "--normal-pps", "1000"]);
    let disk = SmallDisk::new(dir.path(), "4m");
    let db = disk.0.join("levee.db");
    // No detection here: the operator's rule is the one that meets the full disk.
    let path = config(
        dir.path(),
        &capture,
        &db,
        "[detection]\nfloor_pps = 1e12\nfloor_bps = 1e15\ncold_start_floor_pps = 1e12\nprefix_floor_pps = 1e12\n",
    );
    let levee = Running::start(&path);
    let (_, health) = levee.get("/api/v1/health");
    assert_eq!(health["status"], "ok", "{health}");

    let filler = disk.fill();
    // The clients of the capture.
    let source = "100.64.0.0/16";
    let (status, rule) = levee.post(
        "/api/v1/rules",
        &serde_json::json!({"kind": "block", "source": source, "reason": "full disk"}),
    );
    assert_eq!(status, 201, "the rule is taken, not refused: {rule}");
    assert_eq!(rule["state"], "active", "{rule}");
    let id = rule["id"].as_u64().expect("id");
    // It is in force: the source's packets are dropped.
    let dropped = levee.wait_for(30, "the block dropping", || {
        levee
            .metric("levee_dropped_packets_total{direction=\"inbound\",reason=\"blocklist\"}")
            .filter(|n| *n > 0.0)
    });
    assert!(dropped > 0.0);
    // Not silently: health and metrics say the rule is not recorded.
    let health = levee.wait_for(10, "health to say degraded", || {
        let (_, h) = levee.get("/api/v1/health");
        (h["status"] == "degraded").then_some(h)
    });
    assert!(
        health["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("not recorded yet")),
        "{health}"
    );
    assert_eq!(levee.metric("levee_rules_unsaved"), Some(1.0));
    let before: Vec<Vec<String>> = query(&db, &format!("SELECT id FROM rules WHERE id = {id}"));
    assert!(before.is_empty(), "not on the disk yet: {before:?}");

    // Room again: the rule is written, health is ok again, forwarding never stopped.
    std::fs::remove_file(&filler).expect("free the disk");
    levee.wait_for(30, "the rule written", || {
        (levee.metric("levee_rules_unsaved") == Some(0.0)).then_some(())
    });
    let rows = query(&db, &format!("SELECT state FROM rules WHERE id = {id}"));
    assert_eq!(rows, vec![vec!["Text(\"active\")".to_owned()]]);
    let (_, health) = levee.get("/api/v1/health");
    assert_eq!(health["status"], "ok", "{health}");
    let forwarded = levee.metric("levee_forwarded_packets_total{direction=\"inbound\"}");
    assert!(forwarded.is_some_and(|n| n > 1000.0), "{forwarded:?}");
}

#[test]
fn a_corrupt_store_is_moved_aside_and_levee_forwards_with_its_configured_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("traffic.pcap");
    attack_capture(
        &capture,
        &[
            "--duration",
            "2",
            "--normal-pps",
            "1000",
            "--attack",
            "udp:0.5:1:500:10.0.0.3:2",
        ],
    );
    // 64 KiB of noise where the store should be.
    let db = dir.path().join("levee.db");
    let noise: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&db, &noise).expect("noise");
    let path = config(
        dir.path(),
        &capture,
        &db,
        "[detection]\nwarmup_seconds = 0\n[rules]\nblocklist = [\"198.51.0.1\"]\n",
    );

    let levee = Running::start(&path);
    // Forwarding goes on, and the configuration's block is in force.
    levee.wait_for(
        30,
        "traffic forwarded and the configured block dropping",
        || {
            let forwarded = levee.metric("levee_forwarded_packets_total{direction=\"inbound\"}")?;
            let dropped = levee.metric(
                "levee_dropped_packets_total{direction=\"inbound\",reason=\"blocklist\"}",
            )?;
            (forwarded > 1000.0 && dropped > 0.0).then_some(())
        },
    );
    // Not silently: health says what happened and where the old file went.
    let (status, health) = levee.get("/api/v1/health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded", "{health}");
    let reason = health["reasons"][0].as_str().expect("a reason").to_owned();
    assert!(
        reason.contains("could not be read") && reason.contains(".corrupt-"),
        "{reason}"
    );
    assert_eq!(levee.metric("levee_degraded"), Some(1.0));
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("levee.db.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the old file is kept for the operator");
    assert_eq!(
        std::fs::read(aside[0].path()).expect("aside"),
        noise,
        "untouched"
    );
    // The new store works: rules can be added and are recorded.
    let (status, rule) = levee.post(
        "/api/v1/rules",
        &serde_json::json!({"kind": "block", "source": "203.0.113.9"}),
    );
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_u64().expect("id");
    let rows = query(&db, &format!("SELECT state FROM rules WHERE id = {id}"));
    assert_eq!(rows, vec![vec!["Text(\"active\")".to_owned()]], "recorded");
}

/// Block rules in force, by source.
fn blocks(levee: &Running) -> Vec<String> {
    let (status, body) = levee.get("/api/v1/rules?state=active&limit=1000");
    assert_eq!(status, 200, "{body}");
    let mut sources: Vec<String> = body["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["match"]["kind"] == "block")
        .filter_map(|r| r["match"]["source"].as_str().map(str::to_owned))
        .collect();
    sources.sort();
    sources
}

#[test]
fn a_control_plane_panic_is_survived_with_the_rules_in_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("attack.pcap");
    attack_capture(
        &capture,
        &[
            "--duration",
            "3",
            "--normal-pps",
            "1000",
            "--attack",
            "udp:0.5:2.5:20000:10.0.0.3:10",
        ],
    );
    let db = dir.path().join("levee.db");
    let path = config(
        dir.path(),
        &capture,
        &db,
        "[detection]\nwarmup_seconds = 0\n",
    );
    // Only the attacked host is judged (see `Running::with_attacks`).
    let text = std::fs::read_to_string(&path).expect("config").replace(
        "protected = [\"10.0.0.0/24\"]",
        "protected = [\"10.0.0.3/32\"]",
    );
    std::fs::write(&path, text).expect("config");
    // The engine panics on its 60th window report (about 6 s in).
    let mut command = levee();
    command.env("LEVEE_TEST_PANIC_AT_REPORT", "60");
    let levee = Running::start_command(command, &path);
    let before = levee.wait_for(30, "the attack's ten sources blocked", || {
        let b = blocks(&levee);
        (b.len() == 10).then_some(b)
    });
    let health = levee.wait_for(30, "the fault to be reported", || {
        let (_, h) = levee.get("/api/v1/health");
        (h["status"] == "degraded").then_some(h)
    });
    let reason = health["reasons"][0].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("injected") && reason.contains("rebuilt from the store"),
        "{health}"
    );
    assert!(levee
        .log()
        .contains("a fault injected by LEVEE_TEST_PANIC_AT_REPORT"));
    // Rebuilt: the same rules in force, the same incident open, and the
    // dataplane still dropping the attack and forwarding the rest.
    assert_eq!(blocks(&levee), before);
    let (_, open) = levee.get("/api/v1/incidents?status=open");
    assert_eq!(
        open["incidents"].as_array().map(Vec::len),
        Some(1),
        "{open}"
    );
    let dropped = "levee_dropped_packets_total{direction=\"inbound\",reason=\"blocklist\"}";
    let forwarded = "levee_forwarded_packets_total{direction=\"inbound\"}";
    let (d0, f0) = (levee.metric(dropped), levee.metric(forwarded));
    let d1 = levee.metric_settled(dropped);
    let f1 = levee.metric(forwarded);
    assert!(
        d1 > d0 && f1 > f0,
        "dropping {d0:?} -> {d1:?}, forwarding {f0:?} -> {f1:?}"
    );
    // The engine works on: an operator's rule goes in.
    let (status, rule) = levee.post(
        "/api/v1/rules",
        &serde_json::json!({"kind": "block", "source": "203.0.113.9"}),
    );
    assert_eq!(status, 201, "{rule}");
}

#[test]
fn a_stalled_control_plane_stops_feeding_the_watchdog_and_forwarding_goes_on() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("traffic.pcap");
    attack_capture(&capture, &["--duration", "2", "--normal-pps", "1000"]);
    let db = dir.path().join("levee.db");
    let path = config(
        dir.path(),
        &capture,
        &db,
        "[detection]\nfloor_pps = 1e12\nfloor_bps = 1e15\ncold_start_floor_pps = 1e12\nprefix_floor_pps = 1e12\n",
    );
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let mut command = levee();
    command
        .env("NOTIFY_SOCKET", &socket_path)
        // About 4 s in, the control loop stops for 8 s.
        .env("LEVEE_TEST_STALL_AT_REPORT", "40");
    let levee = Running::start_command(command, &path);
    let mut buf = [0u8; 256];
    let mut next = || -> (String, std::time::Instant) {
        let n = socket.recv(&mut buf).expect("a notification within 30 s");
        (
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            std::time::Instant::now(),
        )
    };
    let (first, _) = next();
    assert!(first.starts_with("READY=1"), "{first}");
    // What health and the ports said, four times a second, meanwhile.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = std::sync::Arc::clone(&done);
        let (url, token) = (levee.url.clone(), ADMIN_TOKEN);
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let get = |path: &str| -> serde_json::Value {
                    http.get(format!("{url}{path}"))
                        .bearer_auth(token)
                        .send()
                        .and_then(|r| r.json())
                        .unwrap_or_default()
                };
                let health = get("/api/v1/health");
                let tx = get("/api/v1/status")["workers"][0]["tx_packets"]
                    .as_u64()
                    .unwrap_or(0);
                seen.push((health, tx));
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            seen
        })
    };
    // Fed every second while the loop turns; then a gap of the stall.
    let mut last = std::time::Instant::now();
    let mut gap = std::time::Duration::ZERO;
    let mut fed = 0;
    while fed < 12 {
        let (message, at) = next();
        assert_eq!(message, "WATCHDOG=1");
        gap = gap.max(at - last);
        last = at;
        fed += 1;
        if gap >= std::time::Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        gap >= std::time::Duration::from_secs(4),
        "the watchdog went unfed while the control loop stalled (longest gap {gap:?})"
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = poller.join().expect("poller");
    // Meanwhile health said so, and the workers forwarded all along.
    let stalled: Vec<u64> = seen
        .iter()
        .filter(|(h, _)| {
            h["reasons"][0]
                .as_str()
                .is_some_and(|r| r.contains("has not turned"))
        })
        .map(|(_, tx)| *tx)
        .collect();
    assert!(
        stalled.len() >= 2,
        "health said degraded during the stall: {seen:?}"
    );
    assert!(
        stalled.last() > stalled.first(),
        "packets forwarded during the stall: {stalled:?}"
    );
    let (_, health) = levee.get("/api/v1/health");
    assert_eq!(
        health["status"], "ok",
        "recovered once the loop turns again: {health}"
    );
}
