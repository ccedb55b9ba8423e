//! The admin API and its CLI against a running `levee run` on virtual devices:
//! auth, errors, rules enforced in the dataplane, the review flow of staged
//! rules, metrics and firewall exports checked by the real tools.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// A capture of `count` mixed frames; the sources it contains.
fn traffic(dir: &Path, count: usize) -> (std::path::PathBuf, Vec<String>) {
    let path = dir.join("traffic.pcap");
    let frames = write_capture(&path, count, 7);
    let mut sources: Vec<String> = frames
        .iter()
        .filter(|f| f.len() >= 34 && f[12..14] == [0x08, 0x00])
        .map(|f| format!("{}.{}.{}.{}", f[26], f[27], f[28], f[29]))
        .collect();
    sources.sort();
    sources.dedup();
    (path, sources)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn api_refuses_what_it_must_with_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, _) = traffic(dir.path(), 200);
    let config = pair_config(
        dir.path(),
        "inline",
        &format!("net_pcap0,rx_pcap={}", capture.display()),
        "net_null0",
        &format!(
            "[rules]\nallowlist = [\"192.0.2.0/24\"]\n[store]\npath = \"{}\"\n{}",
            dir.path().join("levee.db").display(),
            api_section()
        ),
    );
    let levee = Running::start(&config);
    let http = reqwest::blocking::Client::new();
    let url = |p: &str| format!("{}{p}", levee.url);

    // Health needs no token; everything else does.
    let r = http.get(url("/api/v1/health")).send().expect("health");
    assert_eq!(r.status().as_u16(), 200);
    let health: Value = r.json().expect("JSON");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["reasons"], json!([]), "{health}");
    for path in [
        "/api/v1/status",
        "/api/v1/rules",
        "/metrics",
        "/api/v1/openapi.json",
    ] {
        let r = http.get(url(path)).send().expect("no token");
        assert_eq!(r.status().as_u16(), 401, "{path} without a token");
        assert!(r.headers().contains_key("www-authenticate"));
        let body: Value = r.json().expect("JSON error");
        assert_eq!(code(&body), "unauthorized", "{body}");
        let r = http
            .get(url(path))
            .bearer_auth("test-admin-token-0123456788")
            .send()
            .expect("wrong token");
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong token");
        let r = http
            .get(url(path))
            .header("Authorization", format!("Basic {ADMIN_TOKEN}"))
            .send()
            .expect("wrong scheme");
        assert_eq!(r.status().as_u16(), 401, "{path} with another scheme");
    }
    // The read-only token reads but cannot write.
    let r = http
        .get(url("/api/v1/rules"))
        .bearer_auth(READER_TOKEN)
        .send()
        .expect("read");
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(url("/api/v1/rules"))
        .bearer_auth(READER_TOKEN)
        .json(&json!({"kind": "block", "source": "203.0.113.1"}))
        .send()
        .expect("write");
    assert_eq!(r.status().as_u16(), 403);

    // 400s that say what is wrong.
    let bad: &[(&str, Value, &str)] = &[
        (
            "bad IP",
            json!({"kind": "block", "source": "300.1.2.3"}),
            "source: \"300.1.2.3\" is not an IP address or prefix",
        ),
        (
            "bad prefix",
            json!({"kind": "block", "source": "10.0.0.0/33"}),
            "source: 10.0.0.0/33: length above 32",
        ),
        (
            "TTL zero",
            json!({"kind": "block", "source": "203.0.113.1", "ttl_seconds": 0}),
            "ttl_seconds: 0 is outside",
        ),
        (
            "TTL too long",
            json!({"kind": "block", "source": "203.0.113.1", "ttl_seconds": 99_999_999}),
            "ttl_seconds: 99999999 is outside",
        ),
        ("no source", json!({"kind": "block"}), "source is required"),
        (
            "unknown kind",
            json!({"kind": "nuke", "source": "203.0.113.1"}),
            "kind: \"nuke\"",
        ),
        (
            "unknown field",
            json!({"kind": "block", "source": "203.0.113.1", "color": "red"}),
            "unknown field `color`",
        ),
        (
            "bad destination",
            json!({"kind": "signature", "destination": "10.0.0", "protocol": "udp"}),
            "destination: \"10.0.0\"",
        ),
        (
            "bad protocol",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "sctpx"}),
            "protocol: \"sctpx\"",
        ),
        (
            "port out of range",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "udp", "src_port": 70000}),
            "src_port: 70000 is outside",
        ),
        (
            "flags on udp",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "udp", "tcp_flags": "S/SA"}),
            "tcp_flags needs protocol tcp",
        ),
        (
            "bad flags",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "tcp", "tcp_flags": "SYN"}),
            "tcp_flags: \"SYN\"",
        ),
        (
            "TTL range backwards",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "udp", "ip_ttl": [64, 50]}),
            "ip_ttl: [64, 50] is not [low, high]",
        ),
        (
            "TTL above 255",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "udp", "ip_ttl": [50, 300]}),
            "ip_ttl: [50, 300]",
        ),
        (
            "unknown check",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "tcp", "check": "handshake"}),
            "check: \"handshake\" is not",
        ),
        (
            "check on udp",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "udp", "check": "connection_state"}),
            "check needs protocol tcp",
        ),
        (
            "check and rate limit",
            json!({"kind": "signature", "destination": "10.0.0.1", "protocol": "tcp", "check": "syn_authentication", "rate_limit_pps": 10}),
            "either checks or rate-limits",
        ),
        (
            "check on a block",
            json!({"kind": "block", "source": "203.0.113.1", "check": "syn_authentication"}),
            "check belongs to signature rules",
        ),
        (
            "length on a block",
            json!({"kind": "block", "source": "203.0.113.1", "ip_length": [40, 60]}),
            "ip_length belongs to signature rules",
        ),
    ];
    for (what, body, expected) in bad {
        let (status, v) = levee.post("/api/v1/rules", body);
        assert_eq!(status, 400, "{what}: {v}");
        assert_eq!(code(&v), "bad_request", "{what}: {v}");
        assert!(message(&v).contains(expected), "{what}: {v}");
    }
    let r = levee
        .request(Method::POST, "/api/v1/rules")
        .header("content-type", "application/json")
        .body("{\"kind\": \"block\", \"source\": ")
        .send()
        .expect("malformed");
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().expect("JSON error");
    assert!(message(&v).contains("not valid JSON"), "{v}");
    let r = levee
        .request(Method::POST, "/api/v1/rules")
        .body("kind=block")
        .send()
        .expect("not JSON");
    assert_eq!(r.status().as_u16(), 415);
    let r = levee
        .request(Method::POST, "/api/v1/rules")
        .header("content-type", "application/json")
        .body(format!("{{\"reason\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .expect("large");
    assert_eq!(r.status().as_u16(), 413);
    for (path, expected) in [
        ("/api/v1/rules?state=dancing", "state: \"dancing\""),
        ("/api/v1/incidents?status=maybe", "status: \"maybe\""),
        ("/api/v1/incidents?since=yesterday", "since: \"yesterday\""),
        ("/api/v1/incidents?limit=0", "limit: 0"),
        ("/api/v1/rules/export?format=pf", "format: \"pf\""),
        ("/api/v1/rules?color=red", "unknown field"),
    ] {
        let (status, v) = levee.get(path);
        assert_eq!(status, 400, "{path}: {v}");
        assert!(message(&v).contains(expected), "{path}: {v}");
    }

    // 404s and 405s.
    for path in [
        "/api/v1/incidents/inc_nope_0001",
        "/api/v1/incidents/../../etc/passwd",
        "/api/v1/incidents/inc_nope_0001/pcap",
        "/api/v1/rules/999999",
        "/api/v1/rules/abc",
        "/api/v1/nothing",
    ] {
        let (status, v) = levee.get(path);
        assert_eq!(status, 404, "{path}: {v}");
        assert_eq!(code(&v), "not_found", "{path}: {v}");
    }
    for (method, path) in [
        (Method::POST, "/api/v1/rules/999999/approve"),
        (Method::DELETE, "/api/v1/rules/999999"),
        (Method::POST, "/api/v1/incidents/inc_nope_0001/resolve"),
    ] {
        let r = levee.request(method.clone(), path).send().expect("send");
        assert_eq!(r.status().as_u16(), 404, "{method} {path}");
    }
    let r = levee
        .request(Method::PUT, "/api/v1/rules")
        .send()
        .expect("PUT");
    assert_eq!(r.status().as_u16(), 405);

    // 409: the allowlist wins over an operator too; nothing is recorded.
    let (status, v) = levee.post(
        "/api/v1/rules",
        &json!({"kind": "block", "source": "192.0.2.0/28"}),
    );
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("allowlisted 192.0.2.0/24"), "{v}");
    let (_, rules) = levee.get("/api/v1/rules");
    assert_eq!(
        rules["total"], 0,
        "a refused manual rule is not kept: {rules}"
    );
    // A rule that is fine, then the same source again, then a second delete.
    let (status, rule) = levee.post("/api/v1/rules", &json!({"kind": "block", "source": "203.0.113.0/24", "ttl_seconds": 600, "reason": "scanner"}));
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["state"], "active");
    assert_eq!(rule["match"]["source"], "203.0.113.0/24");
    let (status, v) = levee.post(
        "/api/v1/rules",
        &json!({"kind": "block", "source": "203.0.113.0/24"}),
    );
    assert_eq!(status, 409, "{v}");
    let id = rule["id"].as_u64().expect("id");
    let r = levee
        .request(Method::DELETE, &format!("/api/v1/rules/{id}"))
        .send()
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let r = levee
        .request(Method::DELETE, &format!("/api/v1/rules/{id}"))
        .send()
        .expect("delete again");
    assert_eq!(r.status().as_u16(), 409);
    let r = levee
        .request(Method::POST, &format!("/api/v1/rules/{id}/approve"))
        .send()
        .expect("approve removed");
    assert_eq!(r.status().as_u16(), 409);
    let (status, v) = levee.get(&format!("/api/v1/rules/{id}"));
    assert_eq!((status, v["state"].as_str()), (200, Some("removed")), "{v}");

    // The CLI says the same, with the documented exit codes.
    let out = levee.cli(&["rules", "add", "block", "192.0.2.7"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allowlisted"),
        "{out:?}"
    );
    let out = levee.cli(&["rules", "add", "block", "not-an-ip"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = levee.cli(&["rules", "add", "block", "203.0.113.9", "--ttl", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ttl"),
        "{out:?}"
    );
    // A signature through the CLI, read back as the API's own types.
    let out = levee.cli(&[
        "rules",
        "add",
        "signature",
        "--destination",
        "10.0.0.9",
        "--protocol",
        "tcp",
        "--dst-port",
        "443",
        "--tcp-flags",
        "s/sa",
        "--rate-limit",
        "100",
        "--ttl",
        "5m",
    ]);
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains("to 10.0.0.9/32 proto tcp dport 443 flags S/SA limit 100/s"),
        "{shown}"
    );
    let id = shown
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("the rule's row")
        .to_owned();
    let listed = levee.cli(&["rules", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{id} ")) && l.contains("flags S/SA limit 100/s")),
        "{listed}"
    );
    let out = common::levee()
        .args([
            "status",
            "--api",
            &levee.url,
            "--token",
            "wrong-token-wrong-token",
        ])
        .output()
        .expect("cli");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 401"),
        "{out:?}"
    );
}

#[test]
fn a_rule_added_through_the_api_is_enforced_and_removed_on_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, sources) = traffic(dir.path(), 1000);
    let source = sources.first().expect("an IPv4 source").clone();
    let config = pair_config(
        dir.path(),
        "inline",
        &format!("net_pcap0,rx_pcap={},infinite_rx=1", capture.display()),
        "net_null0",
        &format!(
            "[detection]\nfloor_pps = 1e12\nfloor_bps = 1e15\nprefix_floor_pps = 1e12\n[store]\nenabled = false\n{}",
            api_section()
        ),
    );
    let levee = Running::start(&config);
    let out = levee.cli(&[
        "rules", "add", "block", &source, "--ttl", "10m", "--reason", "test", "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let rule: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = rule["id"].as_u64().expect("rule id");
    let sample = format!("levee_rule_dropped_packets_total{{rule_id=\"{id}\"}}");
    // Packets from the source are dropped by that rule, and keep being dropped.
    let first = levee.wait_for(15, "drops by the API's rule", || {
        levee.metric(&sample).filter(|n| *n > 0.0)
    });
    levee.wait_for(15, "more drops", || {
        levee.metric(&sample).filter(|n| *n > first)
    });
    let listed = levee.cli(&["rules", "list", "--state", "active", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert!(
        listed["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|r| r["id"] == id),
        "{listed}"
    );

    let out = levee.cli(&["rules", "delete", &id.to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed"),
        "{out:?}"
    );
    // The worker has the change once the delete returns: from then on the rule
    // drops nothing more while traffic flows.
    let after = levee
        .metric_settled(&sample)
        .expect("the rule's counter stays");
    let forwarded = levee
        .metric("levee_forwarded_packets_total{direction=\"inbound\"}")
        .expect("forwarded");
    levee.wait_for(15, "traffic to go on", || {
        levee
            .metric("levee_forwarded_packets_total{direction=\"inbound\"}")
            .filter(|n| *n > forwarded + 10_000.0)
    });
    assert_eq!(
        levee.metric_settled(&sample),
        Some(after),
        "a deleted rule still drops"
    );
}

fn promtool() -> String {
    tool("usr/bin/promtool")
}

#[test]
fn staged_rules_are_reviewed_incidents_resolved_and_metrics_and_exports_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A UDP flood from 8 real sources, with a little normal traffic; rules wait
    // for review.
    let levee = Running::with_attacks(
        dir.path(),
        &["udp:0:1:1500:10.0.0.1:8"],
        &format!(
            "[mitigation]\nauto_apply = false\n[forensics]\ndir = \"{}\"\n",
            dir.path().join("forensics").display()
        ),
    );
    let incident = levee.wait_for(30, "an incident", || {
        let (_, v) = levee.get("/api/v1/incidents?status=open");
        v["incidents"].as_array().and_then(|a| a.first().cloned())
    });
    assert_eq!(incident["attack_type"], "UDP Flood", "{incident}");
    assert_eq!(incident["target"], "10.0.0.1", "{incident}");
    let id = incident["incident_id"].as_str().expect("id").to_owned();

    // Its rules wait for review.
    let staged = levee.wait_for(15, "staged block rules", || {
        let (_, v) = levee.get("/api/v1/rules?state=staged");
        let blocks: Vec<Value> = v["rules"]
            .as_array()?
            .iter()
            .filter(|r| r["match"]["kind"] == "block" && r["incident_id"] == id.as_str())
            .cloned()
            .collect();
        (!blocks.is_empty()).then_some(blocks)
    });
    let (_, active) = levee.get("/api/v1/rules?state=active");
    assert_eq!(
        active["total"], 0,
        "nothing applies before approval: {active}"
    );
    let rule_id = staged[0]["id"].as_u64().expect("rule id");
    let out = levee.cli(&["rules", "approve", &rule_id.to_string(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    let approved: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(approved["state"], "active", "{approved}");
    let sample = format!("levee_rule_dropped_packets_total{{rule_id=\"{rule_id}\"}}");
    levee.wait_for(15, "drops by the approved rule", || {
        levee.metric(&sample).filter(|n| *n > 0.0)
    });

    // The incident as the CLI shows it.
    let out = levee.cli(&["incidents", "show", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("UDP Flood") && text.contains("incident.created"),
        "{text}"
    );
    let out = levee.cli(&["incidents", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(list["incidents"]
        .as_array()
        .expect("list")
        .iter()
        .any(|i| i["incident_id"] == id.as_str()));
    let (_, baselines) = levee.get("/api/v1/baselines");
    assert!(baselines["baselines"].as_array().is_some(), "{baselines}");

    // Metrics pass promtool, with rules and an incident in them.
    let metrics = levee
        .request(Method::GET, "/metrics")
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("levee_incidents{state=\"open\"} 1"),
        "{metrics}"
    );
    // The engine's state is visible: the incident's target is watched, and what
    // it holds in memory is counted by kind.
    for sample in [
        "levee_watched_targets 1",
        "levee_memory_entries{kind=\"open_incidents\"} 1",
        "levee_memory_entries{kind=\"rules\"}",
        "levee_known_sources",
        "levee_table_backlog",
        "levee_store_pruned_total",
        "levee_syn_challenges_total{outcome=\"written\"}",
        "levee_verified_sources_total{by=\"challenge\"}",
        "levee_challenge_failures_total",
        "levee_known_source_passes_total",
        "levee_defence_table_refusals_total{table=\"connections\"}",
        "levee_dropped_packets_total{direction=\"inbound\",reason=\"out_of_state\"}",
    ] {
        assert!(metrics.contains(sample), "{sample} missing");
    }
    // Every metric the shipped Grafana board queries is one levee serves.
    let board: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/grafana/levee.json"),
        )
        .expect("config/grafana/levee.json"),
    )
    .expect("the board is JSON");
    let mut queried = std::collections::BTreeSet::new();
    for panel in board["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("levee_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    for name in &queried {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "the Grafana board queries {name}, which /metrics does not serve"
        );
    }
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(&mut check.stdin.take().expect("stdin"), metrics.as_bytes())
        .expect("feed promtool");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Exports pass the real tools (with manual rules of every shape added).
    for body in [
        json!({"kind": "block", "source": "2001:db8:bad::/48"}),
        json!({"kind": "signature", "destination": "10.0.0.0/24", "protocol": "tcp", "dst_port": 443, "tcp_flags": "S/SA", "rate_limit_pps": 50000}),
        json!({"kind": "signature", "destination": "10.0.0.2", "protocol": "udp", "non_first_fragments": true}),
        json!({"kind": "signature", "destination": "2001:db8:1::1", "protocol": "udp", "src_port": 123}),
        json!({"kind": "signature", "destination": "10.0.0.3", "protocol": "icmp", "rate_limit_pps": 100}),
        json!({"kind": "signature", "destination": "10.0.0.4", "protocol": "udp", "dst_port": 27015, "ip_length": [88, 228], "ip_ttl": [50, 57]}),
        json!({"kind": "signature", "destination": "2001:db8:1::4", "protocol": "udp", "ip_length": [100, 200], "ip_ttl": [64, 64]}),
        json!({"kind": "signature", "destination": "10.0.0.5", "protocol": "tcp", "tcp_flags": "S/SA", "check": "syn_authentication"}),
        json!({"kind": "signature", "destination": "2001:db8:1::5", "protocol": "tcp", "tcp_flags": "/S", "check": "connection_state"}),
    ] {
        let (status, v) = levee.post("/api/v1/rules", &body);
        assert_eq!(status, 201, "{v}");
    }
    for (format, tool) in [
        ("iptables", vec!["iptables-restore", "--test", "--noflush"]),
        (
            "ip6tables",
            vec!["ip6tables-restore", "--test", "--noflush"],
        ),
        ("nftables", vec!["nft", "-c", "-f", "-"]),
    ] {
        let out = levee.cli(&["rules", "export", "--format", format]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let blocked = staged[0]["match"]["source"]
            .as_str()
            .expect("source")
            .trim_end_matches("/32");
        if format != "ip6tables" {
            assert!(
                text.contains(blocked),
                "{format} export lacks {blocked}:\n{text}"
            );
        }
        let dataplane_only = if format == "ip6tables" {
            "connection_state is enforced by levee's dataplane only"
        } else {
            "syn_authentication is enforced by levee's dataplane only"
        };
        assert!(
            text.contains(dataplane_only),
            "{format}:
{text}"
        );
        let checked = Netns::new(&format!("api{format}")).run_with_input(&tool, &text);
        assert!(
            checked.status.success(),
            "{format} rejected by {tool:?}: {}\n{text}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }

    // Resolving by hand takes the incident's rules out and keeps its capture.
    let out = levee.cli(&["incidents", "resolve", &id]);
    assert!(out.status.success(), "{out:?}");
    let (_, v) = levee.get(&format!("/api/v1/rules/{rule_id}"));
    assert_eq!(v["state"], "removed", "{v}");
    let r = levee
        .request(Method::POST, &format!("/api/v1/incidents/{id}/resolve"))
        .send()
        .expect("again");
    assert_eq!(r.status().as_u16(), 409);
    let (_, v) = levee.get(&format!("/api/v1/incidents/{id}"));
    assert_eq!(v["incident"]["status"], "resolved", "{v}");
    assert!(
        v["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["event"] == "incident.resolved"),
        "{v}"
    );
    let pcap = v["incident"]["forensic_pcap"]
        .as_str()
        .expect("a forensic capture")
        .to_owned();
    let r = levee.request(Method::GET, &pcap).send().expect("pcap");
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().expect("body");
    assert_eq!(
        &bytes[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "a pcapng section header"
    );
}
