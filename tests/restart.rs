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

/// Rows as debug strings; empty while the store is still being created.
/// Kills the first levee if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let c = rusqlite::Connection::open(db).expect("open store");
    let Ok(mut stmt) = c.prepare(sql) else {
        return Vec::new();
    };
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
            })
            .collect()
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
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
