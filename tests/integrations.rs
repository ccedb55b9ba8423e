//! Integrations against real receivers on loopback: a webhook receiver that
//! checks signatures with Python's hmac, a server that follows AbuseIPDB's
//! documented API, and (in crowdsec.rs) a real CrowdSec LAPI.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";

fn open_incident(levee: &Running, target: &str) -> Value {
    levee.wait_for(30, &format!("an incident against {target}"), || {
        let (_, v) = levee.get("/api/v1/incidents?status=open");
        v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["target"] == target)
            .cloned()
    })
}

fn integration_id(levee: &Running, name: &str) -> String {
    let (status, v) = levee.get("/api/v1/integrations");
    assert_eq!(status, 200, "{v}");
    v["integrations"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .and_then(|i| i["id"].as_str())
        .unwrap_or_else(|| panic!("no integration {name} in {v}"))
        .to_owned()
}

fn deliveries(levee: &Running, id: &str) -> Vec<Value> {
    let (status, v) = levee.get(&format!("/api/v1/integrations/{id}/deliveries?limit=1000"));
    assert_eq!(status, 200, "{v}");
    v["deliveries"].as_array().cloned().unwrap_or_default()
}

fn webhook_section(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[integration]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}/hook\"\nsecret = \"{WEBHOOK_SECRET}\"\n\
         headers = {{ X-Team = \"noc\" }}\n{extra}\n"
    )
}

#[test]
fn webhooks_are_signed_retried_with_backoff_and_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("received.jsonl");
    let receiver = Helper::webhook_receiver(WEBHOOK_SECRET, &log, &["--fail-first", "2"]);
    let levee = Running::with_attacks(
        dir.path(),
        &["udp:0:1:1500:10.0.0.1:8"],
        &webhook_section("ops", &receiver.url(), "retry_base_ms = 200"),
    );
    let incident = open_incident(&levee, "10.0.0.1");
    let incident_id = incident["incident_id"].as_str().expect("id").to_owned();
    let id = integration_id(&levee, "ops");

    // This incident's incident.created fails twice (HTTP 500), then gets through.
    let created = levee.wait_for(20, "incident.created delivered", || {
        deliveries(&levee, &id).into_iter().find(|d| {
            d["event"] == "incident.created"
                && d["incident_id"] == incident_id.as_str()
                && d["state"] == "delivered"
        })
    });
    assert_eq!(created["attempts"], 3, "{created}");
    let statuses: Vec<&Value> = created["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|e| &e["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(500), &json!(500), &json!(200)],
        "{created}"
    );
    let received = json_lines(&log);
    let first: Vec<&Value> = received
        .iter()
        .filter(|r| r["delivery"] == created["id"].to_string().as_str())
        .collect();
    assert_eq!(first.len(), 3, "{received:?}");
    let gap =
        |a: &Value, b: &Value| b["at"].as_f64().unwrap_or(0.0) - a["at"].as_f64().unwrap_or(0.0);
    let (gap1, gap2) = (gap(first[0], first[1]), gap(first[1], first[2]));
    // Each retry waits at least its backoff (200 ms, then 400, less the
    // jitter), which doubles. Only lower bounds: a loaded host can delay a
    // retry past its time (a first retry has come 2.2 s late), never bring
    // it forward.
    assert!(
        gap1 >= 0.14 && gap2 >= 0.29,
        "backoff of at least 0.14 s then 0.29 s: {gap1} then {gap2}"
    );
    for r in &received {
        assert_eq!(r["valid"], true, "HMAC-SHA256 of the body checks out: {r}");
        assert_eq!(r["valid_timestamped"], true, "{r}");
        assert_eq!(r["custom"], "noc", "custom headers are sent: {r}");
    }
    assert_eq!(first[2]["body"]["incident_id"], incident_id.as_str());
    assert_eq!(first[2]["body"]["attack_type"], "UDP Flood");

    // Resolving by hand sends incident.resolved.
    let (status, _) = levee.post(
        &format!("/api/v1/incidents/{incident_id}/resolve"),
        &json!({}),
    );
    assert_eq!(status, 200);
    let resolved = levee.wait_for(20, "incident.resolved delivered", || {
        deliveries(&levee, &id).into_iter().find(|d| {
            d["event"] == "incident.resolved"
                && d["incident_id"] == incident_id.as_str()
                && d["state"] == "delivered"
        })
    });
    assert_eq!(resolved["attempts"], 3, "{resolved}");

    // The test action sends a sample payload, logged like any delivery.
    let (status, v) = levee.post(&format!("/api/v1/integrations/{id}/test"), &json!({}));
    assert_eq!(status, 202, "{v}");
    let delivered = levee.wait_for(20, "the test delivery", || {
        deliveries(&levee, &id)
            .into_iter()
            .find(|d| d["event"] == "test" && d["state"] == "delivered")
    });
    let test = json_lines(&log)
        .into_iter()
        .find(|r| r["delivery"] == delivered["id"].to_string().as_str() && r["status"] == 200)
        .expect("the test delivery at the receiver");
    assert_eq!(test["body"]["test"], true);
    assert_eq!(test["valid"], true);
    // The secret never comes back.
    let (_, shown) = levee.get(&format!("/api/v1/integrations/{id}"));
    assert_eq!(shown["secret_set"], true, "{shown}");
    assert!(!shown.to_string().contains(WEBHOOK_SECRET), "{shown}");
    let metric = levee.metric(
        "levee_integration_deliveries{integration=\"ops\",kind=\"webhook\",state=\"delivered\"}",
    );
    let all = deliveries(&levee, &id);
    let delivered = all.iter().filter(|d| d["state"] == "delivered").count();
    assert!(delivered >= 3, "{all:?}");
    assert_eq!(metric, Some(delivered as f64), "{all:?}");
}

#[test]
fn webhook_deliveries_survive_a_receiver_outage_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("received.jsonl");
    // The receiver holds its port from the start but refuses connections until
    // `open` exists: down while the first levee runs, up after its restart.
    let open = dir.path().join("open");
    let open_arg = open.display().to_string();
    let receiver = Helper::webhook_receiver(WEBHOOK_SECRET, &log, &["--closed-until", &open_arg]);
    let section = webhook_section(
        "ops",
        &receiver.url(),
        "max_retries = 10\nretry_base_ms = 500",
    );
    let incident_id = {
        let levee = Running::with_attacks(dir.path(), &["udp:0:1:1500:10.0.0.1:8"], &section);
        let incident = open_incident(&levee, "10.0.0.1");
        let id = integration_id(&levee, "ops");
        let incident_id = incident["incident_id"].as_str().expect("id").to_owned();
        let failed = levee.wait_for(20, "a failed attempt", || {
            deliveries(&levee, &id).into_iter().find(|d| {
                d["event"] == "incident.created"
                    && d["incident_id"] == incident_id.as_str()
                    && d["attempts"].as_u64() >= Some(1)
            })
        });
        assert_eq!(failed["state"], "pending", "{failed}");
        incident_id
        // levee is killed here, the delivery still pending.
    };
    std::fs::write(&open, b"").expect("open the receiver");
    let config = dir.path().join("levee.toml");
    let levee = Running::start(&config);
    let got = levee.wait_for(30, "the created event after the restart", || {
        json_lines(&log).into_iter().find(|r| {
            r["body"]["event"] == "incident.created"
                && r["body"]["incident_id"] == incident_id.as_str()
        })
    });
    assert_eq!(got["valid"], true);
}

/// tests/support/abuseipdb_server.py accepting the key "test-key".
fn abuseipdb_server(log: &Path, extra: &[&str]) -> Helper {
    let log = log.display().to_string();
    let mut args = vec!["--key", "test-key", "--log", &log];
    args.extend_from_slice(extra);
    Helper::start("tests/support/abuseipdb_server.py", &args)
}

fn abuseipdb_section(url: &str, extra: &str) -> String {
    format!(
        "[[integration]]\nname = \"abuse\"\nkind = \"abuseipdb\"\napi_key = \"test-key\"\nbase_url = \"{url}\"\n{extra}\n"
    )
}

fn reports(log: &Path) -> Vec<Value> {
    json_lines(log)
        .into_iter()
        .filter(|r| r["path"] == "/api/v2/report" && r["status"] == 200)
        .collect()
}

#[test]
fn abuseipdb_reports_at_most_20_ips_honours_retry_after_and_dedupes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("abuseipdb.jsonl");
    let server = abuseipdb_server(&log, &["--throttle-first", "1", "--retry-after", "2"]);
    let levee = Running::with_attacks(
        dir.path(),
        &["udp:0:1:3000:10.0.0.1:25"],
        &format!(
            "[detection]\nmax_attackers = 30\n{}",
            abuseipdb_section(&server.url(), "")
        ),
    );
    let incident = open_incident(&levee, "10.0.0.1");
    let incident_id = incident["incident_id"].as_str().expect("id").to_owned();
    let id = integration_id(&levee, "abuse");
    levee.wait_for(20, "more than 20 attackers", || {
        let (_, v) = levee.get(&format!("/api/v1/incidents/{incident_id}"));
        (v["incident"]["attacker_ips"].as_array()?.len() > 20).then_some(())
    });
    let (status, _) = levee.post(
        &format!("/api/v1/incidents/{incident_id}/resolve"),
        &json!({}),
    );
    assert_eq!(status, 200);

    let done = levee.wait_for(30, "20 reports", || {
        let all = deliveries(&levee, &id);
        let delivered = all.iter().filter(|d| d["state"] == "delivered").count();
        (delivered == 20).then_some(all)
    });
    let capped: Vec<&Value> = done.iter().filter(|d| d["state"] == "skipped").collect();
    assert_eq!(capped.len(), 1, "{done:?}");
    assert!(
        capped[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("at most 20 per incident"),
        "{:?}",
        capped[0]
    );
    let sent = reports(&log);
    let ips: std::collections::BTreeSet<&str> = sent
        .iter()
        .filter_map(|r| r["form"]["ip"].as_str())
        .collect();
    assert_eq!((sent.len(), ips.len()), (20, 20), "{sent:?}");
    for r in &sent {
        assert_eq!(r["form"]["categories"], "4");
        assert_eq!(r["accept"], "application/json");
        let comment = r["form"]["comment"].as_str().unwrap_or("");
        assert!(
            comment.contains("UDP Flood") && comment.contains("pps"),
            "{comment}"
        );
    }
    // The throttled report waited for its Retry-After before going again.
    let throttled = done
        .iter()
        .find(|d| {
            d["log"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|e| e["result"].as_str().unwrap_or("").contains("HTTP 429"))
            })
        })
        .unwrap_or_else(|| panic!("no delivery shows the 429: {done:?}"));
    let at: Vec<u64> = throttled["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|e| e["at_ms"].as_u64())
        .collect();
    assert!(at.len() == 2 && at[1] - at[0] >= 1900, "{throttled}");

    // The same attackers again within 15 minutes: nothing reported twice.
    let again = levee.wait_for(30, "a second incident", || {
        let (_, v) = levee.get("/api/v1/incidents?status=open");
        v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["incident_id"] != incident_id.as_str())
            .cloned()
    });
    let again_id = again["incident_id"].as_str().expect("id");
    let (status, _) = levee.post(&format!("/api/v1/incidents/{again_id}/resolve"), &json!({}));
    assert_eq!(status, 200);
    // Its deliveries settle: each IP the first incident reported is skipped
    // as reported; an attacker the first one's 20 left out (25 send alike, so
    // which 20 lead is chance) may get its first report now.
    let first_reported: std::collections::BTreeSet<String> =
        ips.iter().map(|ip| (*ip).to_owned()).collect();
    let of_second = levee.wait_for(30, "the second incident's reports settled", || {
        let of_second: Vec<Value> = deliveries(&levee, &id)
            .into_iter()
            .filter(|d| d["incident_id"] == again_id && d["subject"].is_string())
            .collect();
        (!of_second.is_empty()
            && of_second
                .iter()
                .all(|d| d["state"] == "skipped" || d["state"] == "delivered"))
        .then_some(of_second)
    });
    let mut deduped = 0;
    for d in &of_second {
        if first_reported.contains(d["subject"].as_str().unwrap_or("")) {
            assert_eq!(d["state"], "skipped", "reported twice: {d:?}");
            assert!(
                d["last_error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("was reported by this node"),
                "{d:?}"
            );
            deduped += 1;
        }
    }
    assert!(
        deduped > 0,
        "the second incident names the first one's attackers: {of_second:?}"
    );
    let sent = reports(&log);
    let unique: std::collections::BTreeSet<&str> = sent
        .iter()
        .filter_map(|r| r["form"]["ip"].as_str())
        .collect();
    assert_eq!(unique.len(), sent.len(), "no IP reported twice: {sent:?}");
}

#[test]
fn abuseipdb_keeps_the_daily_quota_and_reports_only_real_attackers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("abuseipdb.jsonl");
    let server = abuseipdb_server(&log, &[]);
    // A live spoofed flood cannot stay spoofed here: the looping capture sends
    // the same forged sources again and again, and levee rightly sees them come
    // back. The spoofed case is the plan's unit test
    // (`spoofed_incidents_are_never_reported`); this one is the quota and what
    // goes out.
    let levee = Running::with_attacks(
        dir.path(),
        &["udp:0:1:1500:10.0.0.1:8"],
        &abuseipdb_section(&server.url(), "daily_quota = 3"),
    );
    let id = integration_id(&levee, "abuse");
    let incident = open_incident(&levee, "10.0.0.1");
    let incident_id = incident["incident_id"].as_str().expect("id");
    let (status, _) = levee.post(
        &format!("/api/v1/incidents/{incident_id}/resolve"),
        &json!({}),
    );
    assert_eq!(status, 200);
    let all = levee.wait_for(30, "the quota reached", || {
        let all = deliveries(&levee, &id);
        let waiting = all
            .iter()
            .filter(|d| {
                d["state"] == "pending"
                    && d["last_error"]
                        .as_str()
                        .unwrap_or("")
                        .contains("daily quota of 3")
            })
            .count();
        (waiting == 5).then_some(all)
    });
    assert_eq!(
        all.iter().filter(|d| d["state"] == "delivered").count(),
        3,
        "{all:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let sent = reports(&log);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent.iter().all(|r| r["form"]["ip"]
            .as_str()
            .unwrap_or("")
            .starts_with("198.51.")),
        "{sent:?}"
    );
}

#[test]
fn integrations_api_validates_hides_secrets_and_protects_configured_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let levee = Running::with_attacks(
        dir.path(),
        &[],
        &webhook_section("from-file", "http://127.0.0.1:9", ""),
    );
    // Bad input: 400 naming the field.
    for (body, expected) in [
        (
            json!({"kind": "webhook", "url": "http://127.0.0.1:9/"}),
            "name is required",
        ),
        (json!({"name": "x", "kind": "fax"}), "unknown variant `fax`"),
        (
            json!({"name": "x", "kind": "webhook", "url": "gopher://h/"}),
            "url:",
        ),
        (
            json!({"name": "x", "kind": "abuseipdb"}),
            "api_key is required",
        ),
        (
            json!({"name": "x", "kind": "crowdsec", "lapi_url": "http://127.0.0.1:8080", "machine_id": "m", "password": "p", "ban_duration": "2h"}),
            "ban_duration",
        ),
        (
            json!({"name": "x", "kind": "bgp", "api": "gobgpd"}),
            "api: \"gobgpd\" is not host:port",
        ),
        (
            json!({"name": "x", "kind": "bgp", "when": "uplink_share"}),
            "uplink_bps: required",
        ),
    ] {
        let (status, v) = levee.post("/api/v1/integrations", &body);
        assert_eq!(status, 400, "{body} -> {v}");
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    // A bgp integration that announces by approval takes approvals; others refuse.
    let (status, bgp) = levee.post(
        "/api/v1/integrations",
        &json!({"name": "upstream", "kind": "bgp", "api": "127.0.0.1:9", "when": "approval"}),
    );
    assert_eq!(status, 201, "{bgp}");
    let bgp_id = bgp["id"].as_str().expect("id").to_owned();
    let (status, v) = levee.post(
        &format!("/api/v1/integrations/{bgp_id}/approve"),
        &json!({"incident_id": "inc_x_0001"}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = levee.post(
        &format!("/api/v1/integrations/{bgp_id}/approve"),
        &json!({}),
    );
    assert_eq!(status, 400, "{v}");
    let (_, log) = levee.get(&format!("/api/v1/integrations/{bgp_id}/deliveries"));
    assert!(
        log["deliveries"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|d| d["event"] == "bgp.approved" && d["incident_id"] == "inc_x_0001"),
        "{log}"
    );
    let (status, v) = levee.post(
        "/api/v1/integrations/int_nope/approve",
        &json!({"incident_id": "inc_x"}),
    );
    assert_eq!(status, 404, "{v}");
    let hook = integration_id(&levee, "from-file");
    let (status, v) = levee.post(
        &format!("/api/v1/integrations/{hook}/approve"),
        &json!({"incident_id": "inc_x"}),
    );
    assert_eq!(status, 409, "{v}");
    assert!(v.to_string().contains("announces without approval"), "{v}");
    // A webhook's generated secret is shown once.
    let (status, created) = levee.post(
        "/api/v1/integrations",
        &json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
    );
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, listed) = levee.get("/api/v1/integrations");
    assert!(!listed.to_string().contains(&secret), "{listed}");
    let out = levee.cli(&["integrations", "list"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("ops") && table.contains("from-file") && !table.contains(&secret),
        "{table}"
    );
    // The CLI adds one the same way and shows its secret once.
    let out = levee.cli(&[
        "integrations",
        "add",
        "webhook",
        "--name",
        "cli-hook",
        "--set",
        "url=http://127.0.0.1:9/x",
        "--set",
        "max_retries=1",
        "--set",
        r#"headers={"X-Team":"noc"}"#,
    ]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("cli-hook") && printed.contains("whsec_"),
        "{printed}"
    );
    let out = levee.cli(&[
        "integrations",
        "add",
        "webhook",
        "--name",
        "bad",
        "--set",
        "max_retries=99",
        "--set",
        "url=http://127.0.0.1:9/",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_retries: 99 is above 10"),
        "{out:?}"
    );
    // Duplicate names conflict; updates keep the secret unless given.
    let (status, _) = levee.post(
        "/api/v1/integrations",
        &json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/other"}),
    );
    assert_eq!(status, 409);
    let r = levee
        .request(reqwest::Method::PUT, &format!("/api/v1/integrations/{id}"))
        .json(&json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/moved", "enabled": false}))
        .send()
        .expect("PUT");
    assert_eq!(r.status().as_u16(), 200);
    let (_, shown) = levee.get(&format!("/api/v1/integrations/{id}"));
    assert_eq!(
        (
            shown["url"].as_str(),
            shown["enabled"].as_bool(),
            shown["secret_set"].as_bool()
        ),
        (Some("http://127.0.0.1:9/moved"), Some(false), Some(true)),
        "{shown}"
    );
    // The configuration file's integrations are read-only here.
    let file_id = integration_id(&levee, "from-file");
    let r = levee
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/integrations/{file_id}"),
        )
        .send()
        .expect("DELETE");
    assert_eq!(r.status().as_u16(), 409);
    let r = levee
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/integrations/{id}"),
        )
        .send()
        .expect("DELETE");
    assert_eq!(r.status().as_u16(), 200);
    let (status, _) = levee.get(&format!("/api/v1/integrations/{id}"));
    assert_eq!(status, 404);
    let (status, _) = levee.post(&format!("/api/v1/integrations/{id}/test"), &json!({}));
    assert_eq!(status, 404);
}

const MACHINE_PASSWORD: &str = "levee-machine-password-0123456789";
const BOUNCER_KEY: &str = "levee-bouncer-key-0123456789abcdef";

/// A real CrowdSec LAPI (Debian's binaries, no agent, no central API) on a
/// free loopback port with a temporary SQLite database; machine `levee` and
/// bouncer `levee-pull` registered. Killed when dropped.
struct Lapi {
    child: std::process::Child,
    dir: tempfile::TempDir,
    url: String,
    port: u16,
}

impl Lapi {
    fn start() -> Lapi {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("hub")).expect("hub");
        std::fs::create_dir_all(d.join("data")).expect("data");
        std::fs::write(d.join("hub/.index.json"), "{}").expect("index");
        std::fs::write(
            d.join("simulation.yaml"),
            "simulation: false\nexclusions: []\n",
        )
        .expect("simulation");
        std::fs::write(
            d.join("profiles.yaml"),
            "name: default_ip_remediation\nfilters:\n - Alert.Remediation == true && Alert.GetScope() == \"Ip\"\n\
             decisions:\n - type: ban\n   duration: 4h\non_success: break\n",
        )
        .expect("profiles");
        Lapi::write_config(d, free_port());
        // Registrations first: cscli writes the database the LAPI then opens.
        let cscli = |args: &[&str]| cscli_in(d, args);
        cscli(&[
            "machines",
            "add",
            "cscli-local",
            "--auto",
            "-f",
            &d.join("local_api_credentials.yaml").display().to_string(),
        ]);
        cscli(&[
            "machines",
            "add",
            "levee",
            "--password",
            MACHINE_PASSWORD,
            "-f",
            "/dev/null",
        ]);
        cscli(&["bouncers", "add", "levee-pull", "-k", BOUNCER_KEY]);
        // The LAPI cannot be given port 0, and the free port found may be taken
        // by another test before the LAPI binds it: then it exits saying so and
        // starts again on another port.
        for attempt in 0.. {
            if attempt > 0 {
                Lapi::write_config(d, free_port());
            }
            let port = Lapi::configured_port(d);
            let earlier = Lapi::starts_logged(d);
            let mut child = Lapi::spawn(d);
            match Lapi::wait_up(&mut child, d, port, earlier) {
                Ok(()) => {
                    return Lapi {
                        child,
                        dir,
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                    }
                }
                Err(log) if attempt < 5 && log.contains("address already in use") => {}
                Err(log) => panic!("the LAPI did not come up on port {port}:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// config.yaml for the LAPI on `port` (and the port, for reading back).
    fn write_config(d: &Path, port: u16) {
        let tools = tool("usr/bin/crowdsec");
        let root = Path::new(&tools)
            .ancestors()
            .nth(3)
            .expect("tools root")
            .to_owned();
        std::fs::write(
            d.join("config.yaml"),
            format!(
                "common:\n  daemonize: false\n  log_media: stdout\n  log_level: info\n  working_dir: .\n\
                 config_paths:\n  config_dir: {d}/\n  data_dir: {d}/data/\n  simulation_path: {d}/simulation.yaml\n  \
                 hub_dir: {d}/hub/\n  index_path: {d}/hub/.index.json\n  notification_dir: {d}/notifications/\n  \
                 plugin_dir: {root}/usr/lib/crowdsec/plugins/\n\
                 db_config:\n  type: sqlite\n  db_path: {d}/data/crowdsec.db\n  use_wal: true\n\
                 api:\n  client:\n    credentials_path: {d}/local_api_credentials.yaml\n  \
                 server:\n    listen_uri: 127.0.0.1:{port}\n    profiles_path: {d}/profiles.yaml\n    trusted_ips:\n      - 127.0.0.1\n\
                 prometheus:\n  enabled: false\n",
                d = d.display(),
                root = root.display(),
            ),
        )
        .expect("config");
        std::fs::write(d.join("port"), port.to_string()).expect("port");
    }

    fn configured_port(d: &Path) -> u16 {
        let text = std::fs::read_to_string(d.join("port")).expect("port");
        text.parse().expect("a port")
    }

    fn spawn(dir: &Path) -> std::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("lapi.log"))
            .expect("lapi.log");
        Command::new(tool("usr/bin/crowdsec"))
            .args([
                "-c",
                &dir.join("config.yaml").display().to_string(),
                "-no-cs",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start crowdsec")
    }

    /// How many times the LAPI has said it listens, in its log (appended to
    /// across restarts).
    fn starts_logged(d: &Path) -> usize {
        std::fs::read_to_string(d.join("lapi.log"))
            .map(|l| l.matches("CrowdSec Local API listening on").count())
            .unwrap_or(0)
    }

    /// Wait until the LAPI started after `earlier` logged starts says it listens
    /// on `port` (and does); its log if it exits or takes too long.
    fn wait_up(
        child: &mut std::process::Child,
        d: &Path,
        port: u16,
        earlier: usize,
    ) -> Result<(), String> {
        let log = || std::fs::read_to_string(d.join("lapi.log")).unwrap_or_default();
        let listening = format!("CrowdSec Local API listening on 127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("crowdsec exited: {status}\n{}", log()));
            }
            if log().matches(&listening).count() > earlier
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out\n{}", log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop and start the LAPI: it signs tokens with a new random key, so the
    /// ones it gave out before are refused.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let d = self.dir.path();
        let earlier = Lapi::starts_logged(d);
        self.child = Lapi::spawn(d);
        if let Err(log) = Lapi::wait_up(&mut self.child, d, self.port, earlier) {
            panic!("the LAPI did not come back:\n{log}");
        }
    }

    /// Successful machine logins the LAPI has logged.
    fn logins(&self) -> usize {
        std::fs::read_to_string(self.path("lapi.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("POST /v1/watchers/login HTTP/1.1 200"))
            .count()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Run cscli against this LAPI; its stdout.
    fn cscli(&self, args: &[&str]) -> String {
        cscli_in(self.dir.path(), args)
    }

    /// `cscli decisions list --origin levee -o json` (CrowdSec 1.4 lists only
    /// its own origins without --origin), as (scenario, value, duration, origin).
    fn decisions(&self) -> Vec<(String, String, String, String)> {
        let out = self.cscli(&["decisions", "list", "--origin", "levee", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|alert| alert["decisions"].as_array().cloned().unwrap_or_default())
            .map(|d| {
                let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                (s("scenario"), s("value"), s("duration"), s("origin"))
            })
            .collect()
    }
}

/// Run cscli with the configuration in `dir`; its stdout.
fn cscli_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(tool("usr/bin/cscli"))
        .args(["-c", &dir.join("config.yaml").display().to_string()])
        .args(args)
        .output()
        .expect("run cscli");
    assert!(
        out.status.success(),
        "cscli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Lapi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use std::process::Command;

#[test]
fn crowdsec_gets_a_ban_per_attacker_when_an_incident_resolves() {
    let mut lapi = Lapi::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let levee = Running::with_attacks(
        dir.path(),
        &["udp:0:1:1500:10.0.0.1:8"],
        &format!(
            "[[integration]]\nname = \"crowdsec\"\nkind = \"crowdsec\"\nlapi_url = \"{}\"\nmachine_id = \"levee\"\n\
             password = \"{MACHINE_PASSWORD}\"\nban_duration = \"12h\"\n",
            lapi.url
        ),
    );
    let id = integration_id(&levee, "crowdsec");
    // The test action logs in without banning anyone.
    let (status, _) = levee.post(&format!("/api/v1/integrations/{id}/test"), &json!({}));
    assert_eq!(status, 202);
    levee.wait_for(20, "the login test delivered", || {
        deliveries(&levee, &id)
            .into_iter()
            .find(|d| d["event"] == "test" && d["state"] == "delivered")
    });
    assert!(lapi.decisions().is_empty());

    let incident = open_incident(&levee, "10.0.0.1");
    let incident_id = incident["incident_id"].as_str().expect("id").to_owned();
    let (status, resolved) = levee.post(
        &format!("/api/v1/incidents/{incident_id}/resolve"),
        &json!({}),
    );
    assert_eq!(status, 200);
    let attackers: std::collections::BTreeSet<String> = resolved["attacker_ips"]
        .as_array()
        .expect("attackers")
        .iter()
        .filter_map(|a| a.as_str().map(Into::into))
        .collect();
    assert_eq!(attackers.len(), 8, "{resolved}");
    let pushed = levee.wait_for(30, "the alerts delivered", || {
        deliveries(&levee, &id)
            .into_iter()
            .find(|d| d["event"] == "alerts" && d["state"] != "pending" && d["state"] != "sending")
    });
    assert_eq!(pushed["state"], "delivered", "{pushed}");
    let decisions = lapi.decisions();
    let banned: std::collections::BTreeSet<String> =
        decisions.iter().map(|d| d.1.clone()).collect();
    assert_eq!(banned, attackers, "{decisions:?}");
    for (scenario, _, duration, origin) in &decisions {
        assert_eq!(
            (scenario.as_str(), origin.as_str()),
            ("levee/udp-flood", "levee")
        );
        // "11h59m58.2s": twelve hours less the moments since.
        assert!(
            duration.starts_with("11h59m") || duration.starts_with("12h"),
            "{duration}"
        );
    }

    // The LAPI restarts with a new signing key: levee's token is refused, and
    // levee logs in afresh for the next incident's bans.
    let logins = lapi.logins();
    assert!(logins >= 1, "levee logged in");
    lapi.restart();
    let again = levee.wait_for(30, "a second incident", || {
        let (_, v) = levee.get("/api/v1/incidents?status=open");
        v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["incident_id"] != incident_id.as_str())
            .cloned()
    });
    let again_id = again["incident_id"].as_str().expect("id").to_owned();
    let (status, _) = levee.post(&format!("/api/v1/incidents/{again_id}/resolve"), &json!({}));
    assert_eq!(status, 200);
    let second = levee.wait_for(30, "the second alerts delivered", || {
        deliveries(&levee, &id).into_iter().find(|d| {
            d["event"] == "alerts"
                && d["incident_id"] == again_id.as_str()
                && d["state"] != "pending"
                && d["state"] != "sending"
        })
    });
    assert_eq!(second["state"], "delivered", "{second}");
    assert!(
        lapi.logins() > logins,
        "levee logged in again after its token was refused"
    );
    // The LAPI took them (HTTP 201); the bans stand for the same attackers.
    let banned_again: std::collections::BTreeSet<String> =
        lapi.decisions().iter().map(|d| d.1.clone()).collect();
    assert_eq!(banned_again, attackers);
}

#[test]
fn crowdsec_bans_are_enforced_from_the_decision_stream_and_lifted_on_delete() {
    let lapi = Lapi::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // Normal traffic only: its clients live in 100.64.0.0/16.
    let levee = Running::with_attacks(
        dir.path(),
        &[],
        &format!(
            "[rules]\nallowlist = [\"192.0.2.0/24\"]\n\
             [[integration]]\nname = \"crowdsec\"\nkind = \"crowdsec\"\nlapi_url = \"{}\"\npush = false\npull = true\n\
             bouncer_key = \"{BOUNCER_KEY}\"\npull_interval_seconds = 1\n",
            lapi.url
        ),
    );
    let id = integration_id(&levee, "crowdsec");
    lapi.cscli(&[
        "decisions",
        "add",
        "--range",
        "100.64.0.0/16",
        "--duration",
        "2h",
        "--reason",
        "test ban",
    ]);
    lapi.cscli(&[
        "decisions",
        "add",
        "--ip",
        "192.0.2.9",
        "--duration",
        "2h",
        "--reason",
        "allowlisted",
    ]);
    // A ban on a quarter of the Internet is refused, not enforced.
    lapi.cscli(&[
        "decisions",
        "add",
        "--range",
        "64.0.0.0/2",
        "--duration",
        "2h",
        "--reason",
        "too wide",
    ]);
    let origin = format!("crowdsec:{id}");
    let rule = levee.wait_for(20, "the ban as an active rule", || {
        let (_, v) = levee.get("/api/v1/rules?state=active");
        v["rules"]
            .as_array()?
            .iter()
            .find(|r| r["incident_id"] == origin.as_str())
            .cloned()
    });
    assert_eq!(rule["match"]["source"], "100.64.0.0/16", "{rule}");
    let rule_id = rule["id"].as_u64().expect("rule id");
    let sample = format!("levee_rule_dropped_packets_total{{rule_id=\"{rule_id}\"}}");
    levee.wait_for(20, "the banned range dropped", || {
        levee.metric(&sample).filter(|n| *n > 0.0)
    });
    // The allowlist wins over CrowdSec (the two decisions may come in
    // different pulls).
    levee.wait_for(10, "the allowlisted ban refused", || {
        levee
            .log()
            .contains("CrowdSec ban not enforced")
            .then_some(())
    });
    levee.wait_for(10, "the too wide ban refused", || {
        levee
            .log()
            .contains("64.0.0.0/2 is wider than /16")
            .then_some(())
    });
    let (_, all) = levee.get("/api/v1/rules");
    assert!(!all.to_string().contains("192.0.2.9"), "{all}");
    assert!(!all.to_string().contains("64.0.0.0/2"), "{all}");

    lapi.cscli(&["decisions", "delete", "--range", "100.64.0.0/16"]);
    levee.wait_for(20, "the rule removed", || {
        let (_, v) = levee.get(&format!("/api/v1/rules/{rule_id}"));
        (v["state"] == "removed").then_some(())
    });
    // Once the rule is removed the range's traffic flows again.
    let dropped = levee.metric_settled(&sample).unwrap_or(0.0);
    let forwarded = levee
        .metric("levee_forwarded_packets_total{direction=\"inbound\"}")
        .unwrap_or(0.0);
    levee.wait_for(15, "traffic to go on", || {
        levee
            .metric("levee_forwarded_packets_total{direction=\"inbound\"}")
            .filter(|n| *n > forwarded + 10_000.0)
    });
    assert_eq!(
        levee.metric_settled(&sample).unwrap_or(0.0),
        dropped,
        "nothing dropped after the unban"
    );
}

#[test]
fn iptables_integration_applies_and_removes_host_rules_in_monitor_mode() {
    let ns = Netns::new("ipt");
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
            "udp:0:1:1500:10.0.0.1:8",
        ],
    );
    let config = write_config(
        dir.path(),
        "levee.toml",
        &format!(
            "mode = \"monitor\"\n[dpdk]\neal_args = {TEST_EAL_ARGS}\nmempool_size = 4096\n\
             [[pair]]\noutside = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n\
             [pipeline]\nprotected = [\"10.0.0.1/32\"]\n[store]\npath = \"{}\"\n{}\n\
             [[integration]]\nname = \"host\"\nkind = \"iptables\"\nhost_apply = \"iptables\"\n",
            capture.display(),
            dir.path().join("levee.db").display(),
            api_section()
        ),
    );
    // Only the attacked host is protected: the looping capture's normal traffic,
    // replayed at the port's top speed, would be a flood toward the others too
    // (see `Running::with_attacks`).
    // levee and its API live in the namespace: the host firewall it changes is
    // the namespace's, and the CLI reaches the API from inside it too.
    let levee = Running::start_in_netns(&ns.0, &config);
    let bin = env!("CARGO_BIN_EXE_levee");
    let cfg = config.display().to_string();
    let cli = |args: &[&str]| -> Value {
        let mut full = vec![bin];
        full.extend_from_slice(args);
        full.extend(["--config", &cfg, "--api", &levee.url, "--json"]);
        let out = ns.run(&full);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let drops = || -> Vec<String> {
        let out = ns.run(&["iptables-save", "-t", "filter"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("-A LEVEE -s ") && l.ends_with("-j DROP"))
            .map(Into::into)
            .collect()
    };
    let applied = levee.wait_for(30, "the attackers' DROP rules in the host firewall", || {
        let d = drops();
        (d.len() == 8).then_some(d)
    });
    assert!(
        applied.iter().all(|l| l.contains("-s 198.51.0.")),
        "{applied:?}"
    );
    let saved =
        String::from_utf8_lossy(&ns.run(&["iptables-save", "-t", "filter"]).stdout).into_owned();
    assert!(
        saved.contains("-A INPUT -j LEVEE") && saved.contains("-A FORWARD -j LEVEE"),
        "{saved}"
    );

    let incidents = cli(&["incidents", "list", "--status", "open"]);
    let id = incidents["incidents"][0]["incident_id"]
        .as_str()
        .expect("an open incident")
        .to_owned();
    cli(&["incidents", "resolve", &id]);
    // The capture loops on, so the attack may open a new incident at once:
    // what must go is every rule of the one resolved.
    levee.wait_for(30, "the resolved incident's host rules removed", || {
        drops().iter().all(|l| !l.contains(&id)).then_some(())
    });
    let integrations = cli(&["integrations", "list"]);
    let integration = integrations["integrations"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let log = cli(&["integrations", "deliveries", &integration]);
    let synced = log["deliveries"].as_array().expect("deliveries");
    assert!(
        synced
            .iter()
            .any(|d| d["state"] == "delivered" && d["event"] == "sync"),
        "{log}"
    );
}

#[test]
fn misbehaving_receivers_hold_only_their_own_slots_and_end_in_clear_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = |name: &str| dir.path().join(format!("{name}.jsonl"));
    let hang = Helper::webhook_receiver(WEBHOOK_SECRET, &logs("hang"), &["--hang"]);
    let elsewhere = Helper::webhook_receiver(WEBHOOK_SECRET, &logs("elsewhere"), &[]);
    let target = format!("{}/stolen", elsewhere.url());
    let moved = Helper::webhook_receiver(WEBHOOK_SECRET, &logs("moved"), &["--redirect", &target]);
    let endless = Helper::webhook_receiver(WEBHOOK_SECRET, &logs("endless"), &["--endless-body"]);
    let good = Helper::webhook_receiver(WEBHOOK_SECRET, &logs("good"), &[]);
    let sections: String = [
        ("hang", &hang),
        ("moved", &moved),
        ("endless", &endless),
        ("good", &good),
    ]
    .iter()
    .map(|(name, r)| webhook_section(name, &r.url(), ""))
    .collect();
    let levee = Running::with_attacks(dir.path(), &[], &sections);
    let test = |name: &str| -> u64 {
        let id = integration_id(&levee, name);
        let (status, v) = levee.post(&format!("/api/v1/integrations/{id}/test"), &json!({}));
        assert_eq!(status, 202, "{v}");
        v["deliveries"][0].as_u64().expect("a delivery id")
    };
    let state_of = |name: &str, delivery: u64| -> Option<Value> {
        let id = integration_id(&levee, name);
        deliveries(&levee, &id)
            .into_iter()
            .find(|d| d["id"] == delivery && d["state"] != "pending" && d["state"] != "sending")
    };

    // A receiver that takes requests and never answers: twenty tests to it
    // wait on it (30 s each)...
    for _ in 0..20 {
        test("hang");
    }
    levee.wait_for(20, "the hanging receiver to hold requests", || {
        (json_lines(&logs("hang")).len() >= 4).then_some(())
    });
    // ...while the others are delivered meanwhile, well before those time out.
    let delivery = test("good");
    let done = levee.wait_for(20, "the good receiver's delivery", || {
        state_of("good", delivery)
    });
    assert_eq!(done["state"], "delivered", "{done}");
    let in_flight = json_lines(&logs("hang")).len();
    assert!(
        in_flight <= 4,
        "one integration holds at most 4 slots: {in_flight}"
    );

    // A redirect is not followed (the signature and keys stay with the
    // configured receiver): a clear failure, nothing reaches the other URL.
    let delivery = test("moved");
    let done = levee.wait_for(20, "the redirected delivery to end", || {
        state_of("moved", delivery)
    });
    assert_eq!(done["state"], "failed", "{done}");
    let error = done["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("redirects are not followed"), "{done}");
    assert!(error.contains("/stolen"), "the location is named: {done}");
    assert!(json_lines(&logs("elsewhere")).is_empty());

    // An endless body is read up to its cap: the 200 counts, at once.
    let delivery = test("endless");
    let done = levee.wait_for(20, "the endless body's delivery", || {
        state_of("endless", delivery)
    });
    assert_eq!(done["state"], "delivered", "{done}");
}
