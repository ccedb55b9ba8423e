//! kill -9 during an incident with auto-applied rules: on restart the rules are
//! in the tables before the first packet is forwarded, and the incident carries
//! on and resolves normally.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn config(dir: &Path, name: &str, ports: &str) -> std::path::PathBuf {
    write_config(
        dir,
        name,
        &format!(
            r#"
            [dpdk]
            eal_args = ["--no-huge", "-m", "1024", "--no-pci", "--no-shconf", "--log-level=*:warning"]
            # net_pcap's infinite_rx keeps the whole capture in mbufs.
            mempool_size = 131071
            [[pair]]
            {ports}
            [pipeline]
            protected = ["10.0.0.0/24"]
            [detection]
            warmup_seconds = 0
            cooldown_seconds = 1
            [store]
            path = "{}"
            "#,
            dir.join("levee.db").display()
        ),
    )
}

/// Kills the first levee if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Rows as debug strings; empty while the store is still being created.
fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    store_rows(db, sql).unwrap_or_default()
}

#[test]
fn rules_survive_kill_9_and_apply_before_the_first_packet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("attack.pcap");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/attack-capture.py");
    let gen = Command::new("python3")
        .arg(&script)
        .arg(&capture)
        .args([
            "--duration",
            "3",
            "--normal-pps",
            "1000",
            "--attack",
            "udp:0.5:2.5:20000:10.0.0.3:10",
        ])
        .output()
        .expect("python3");
    assert!(gen.status.success());
    let db = dir.path().join("levee.db");

    // First life: the capture on a loop until an incident has applied block rules.
    let first = config(
        dir.path(),
        "first.toml",
        &format!(
            "outside = \"net_pcap0,rx_pcap={},infinite_rx=1\"\ninside = \"net_null0\"",
            capture.display()
        ),
    );
    let mut child = KillOnDrop(
        levee()
            .args(["run", "--config"])
            .arg(&first)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("levee"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let blocked = loop {
        std::thread::sleep(Duration::from_millis(200));
        if db.exists() {
            let rows = query(
                &db,
                "SELECT record FROM rules WHERE state = 'active' AND record LIKE '%\"block\"%'",
            );
            if rows.len() >= 10 {
                break rows;
            }
        }
        assert!(Instant::now() < deadline, "no block rules within 30 s");
        assert!(
            child.0.try_wait().expect("status").is_none(),
            "levee exited early"
        );
    };
    let incident_rows = query(
        &db,
        "SELECT id, state FROM incidents WHERE target = '10.0.0.3'",
    );
    assert_eq!(incident_rows.len(), 1);
    assert!(incident_rows[0][1].contains("open"));
    // kill -9: no chance to clean up.
    assert!(Command::new("kill")
        .args(["-9", &child.0.id().to_string()])
        .status()
        .expect("kill")
        .success());
    let _ = child.0.wait();
    assert!(
        blocked.iter().all(|r| r[0].contains("198.51.")),
        "{blocked:?}"
    );

    // Second life: the same traffic once, written out; not one attacker packet may pass.
    let out = dir.path().join("out.pcap");
    let second = config(
        dir.path(),
        "second.toml",
        &format!(
            "outside = \"net_pcap0,rx_pcap={}\"\ninside = \"net_pcap1,tx_pcap={}\"",
            capture.display(),
            out.display()
        ),
    );
    let (output, summary) = run_json(&second, &["--exit-when-idle", "4"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("restored from the store"), "{stderr}");
    let forwarded = read_frames(&out);
    assert!(
        forwarded.len() > 1000,
        "normal traffic passes: {}",
        forwarded.len()
    );
    let from_attackers = forwarded
        .iter()
        .filter(|f| {
            levee_dataplane::wire::parse(f)
                .src_ip()
                .is_some_and(|ip| ip.to_string().starts_with("198.51."))
        })
        .count();
    assert_eq!(
        from_attackers, 0,
        "attacker packets forwarded after the restart"
    );
    assert!(
        u(
            &summary,
            "/pipeline/directions/inbound/dropped/blocklist/packets"
        ) > 1000
    );

    // The incident carried on under its own id and resolved after the cool-down.
    let rows = query(
        &db,
        "SELECT id, state FROM incidents WHERE target = '10.0.0.3'",
    );
    assert_eq!(rows.len(), 1, "the same incident, not a new one: {rows:?}");
    assert_eq!(rows[0][0], incident_rows[0][0]);
    assert!(rows[0][1].contains("resolved"), "{rows:?}");
    let events = query(
        &db,
        &format!(
            "SELECT event FROM incident_events WHERE incident_id = {}",
            rows[0][0]
                .replace("Text(", "")
                .replace(')', "")
                .replace('"', "'")
        ),
    );
    assert!(
        events.iter().any(|e| e[0].contains("incident.resolved")),
        "{events:?}"
    );
    let live = query(
        &db,
        "SELECT id FROM rules WHERE state = 'active' AND record LIKE '%198.51.%'",
    );
    assert!(
        live.is_empty(),
        "the incident's rules came out when it resolved: {live:?}"
    );
}

/// Block rules of `incident` (or of anyone, with `None`) in force, by source.
fn blocks(levee: &Running, origin: Option<&str>) -> Vec<(u64, String)> {
    let (status, body) = levee.get("/api/v1/rules?state=active&limit=1000");
    assert_eq!(status, 200, "{body}");
    body["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["match"]["kind"] == "block")
        .filter(|r| origin.is_none_or(|o| r["incident_id"] == o))
        .map(|r| {
            (
                r["id"].as_u64().expect("id"),
                r["match"]["source"].as_str().expect("source").to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_operators_block_outlives_the_incident_that_shared_it_across_a_kill_9() {
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
    let with_api = |name: &str, rx: &str| {
        let ports = format!("outside = \"net_pcap0,rx_pcap={rx}\"\ninside = \"net_null0\"");
        let path = config(dir.path(), name, &ports);
        let text = std::fs::read_to_string(&path).expect("config") + &api_section();
        std::fs::write(&path, text).expect("config");
        path
    };

    // First life: the incident blocks its ten sources; the operator blocks one
    // of them too, for an hour. Then kill -9.
    let first = Running::start(&with_api(
        "first.toml",
        &format!("{},infinite_rx=1", capture.display()),
    ));
    let (incident, shared) = first.wait_for(30, "the incident's ten blocks", || {
        let (_, body) = first.get("/api/v1/incidents?status=open");
        let id = body["incidents"][0]["incident_id"].as_str()?.to_owned();
        let b = blocks(&first, Some(&id));
        (b.len() == 10).then(|| (id, b[0].1.clone()))
    });
    let (status, manual) = first.post(
        "/api/v1/rules",
        &serde_json::json!({"kind": "block", "source": shared, "ttl_seconds": 3600, "reason": "operator"}),
    );
    assert_eq!(status, 201, "{manual}");
    assert_eq!(manual["state"], "active", "{manual}");
    let manual_id = manual["id"].as_u64().expect("id");
    drop(first);

    // Second life: the capture once; its end lets the incident resolve. Its
    // rules end, the entry the operator also holds stays.
    let second = Running::start(&with_api("second.toml", &capture.display().to_string()));
    second.wait_for(30, "the restored incident to resolve", || {
        let (_, body) = second.get(&format!("/api/v1/incidents/{incident}"));
        (body["incident"]["status"] == "resolved").then_some(())
    });
    let left = second.wait_for(10, "the incident's blocks to end", || {
        let b = blocks(&second, None);
        (b.len() == 1).then_some(b)
    });
    assert_eq!(
        left,
        vec![(manual_id, shared.clone())],
        "only the operator's block"
    );
    let entries = second.wait_for(10, "the blocklist to hold one entry", || {
        let n = second.metric("levee_table_entries{table=\"blocked_hosts\"}")?;
        (n <= 1.0).then_some(n)
    });
    assert_eq!(entries, 1.0, "the shared entry stayed in the dataplane");
}
