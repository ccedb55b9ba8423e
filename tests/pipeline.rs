//! The scrubbing pipeline through real DPDK ports (net_pcap in -> levee ->
//! net_pcap out): blocked sources (exact, prefix, signature) are dropped and
//! counted, allowlisted sources pass even when blocked, everything else arrives
//! byte-identical, window counts match the capture class by class, and
//! `levee replay` of the same capture gives the same totals.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::*;
use levee_dataplane::synth::{self, Endpoints};
use levee_dataplane::wire::parse;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Forward,
    Blocklist,
    Signature,
    Malformed,
}

fn endpoints(src: Ipv4Addr, src_port: u16, dst_port: u16) -> Endpoints {
    Endpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src,
        dst: Ipv4Addr::new(10, 0, 0, 9),
        src_port,
        dst_port,
        ttl: 55,
    }
}

/// A shuffled capture with a known fate for every frame.
fn traffic() -> Vec<(Vec<u8>, Fate)> {
    let mut v: Vec<(Vec<u8>, Fate)> = Vec::new();
    for (i, (_, _, f)) in synth::mixed_small_traffic(600, 31, 0)
        .into_iter()
        .enumerate()
    {
        let _ = i;
        v.push((f, Fate::Forward));
    }
    for (f, _) in synth::labelled_mix(32) {
        // The mix's NTP frames (padding 468 B) would match the signature below.
        let m = parse(&f);
        let fate = if m.src_ip() == Some("203.0.113.7".parse().expect("ip")) {
            Fate::Blocklist
        } else if m.src_port == 123
            && m.protocol == 17
            && m.dst_ip()
                .is_some_and(|d| d.to_string().starts_with("10.0.0."))
            && m.ip_len >= 400
        {
            Fate::Signature
        } else {
            Fate::Forward
        };
        v.push((f, fate));
    }
    for i in 0..50u16 {
        v.push((
            synth::udp_frame(
                &endpoints(Ipv4Addr::new(203, 0, 113, 7), 5000 + i, 80),
                &[1; 30],
            ),
            Fate::Blocklist,
        ));
        v.push((
            synth::tcp_frame(
                &endpoints(Ipv4Addr::new(198, 51, 100, (i % 200) as u8), 6000 + i, 443),
                0x02,
                1,
                0,
                &[],
            ),
            Fate::Blocklist,
        ));
        // NTP reflection toward the protected /24: the signature drops it.
        v.push((
            synth::udp_frame(
                &endpoints(Ipv4Addr::new(100, 64, (i / 10) as u8, i as u8), 123, 40000),
                &[0x17; 440],
            ),
            Fate::Signature,
        ));
        // Allowlisted and blocked (by 192.0.0.0/16) at the same time: passes.
        v.push((
            synth::udp_frame(
                &endpoints(Ipv4Addr::new(192, 0, 2, 10), 7000 + i, 53),
                &[2; 20],
            ),
            Fate::Forward,
        ));
        // Blocked by the same prefix outside the allowlist.
        v.push((
            synth::udp_frame(
                &endpoints(Ipv4Addr::new(192, 0, 3, 10), 7000 + i, 53),
                &[2; 20],
            ),
            Fate::Blocklist,
        ));
    }
    for cut in [20usize, 30, 37] {
        let f = synth::udp_frame(&endpoints(Ipv4Addr::new(192, 0, 2, 99), 1, 2), &[3; 60]);
        v.push((f[..cut].to_vec(), Fate::Malformed));
    }
    let mut rng = synth::Rng::new(77);
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

const RULES: &str = r#"
[pipeline]
protected = ["10.0.0.0/24"]
[rules]
allowlist = ["192.0.2.0/24"]
# 192.0.0.0/16 covers the allowlisted 192.0.2.0/24: the allowlist wins there.
blocklist = ["203.0.113.7", "198.51.100.0/24", "192.0.0.0/16"]
[[rules.signature]]
id = 7
destination = "10.0.0.0/24"
protocol = "udp"
src_ports = 123
ip_length = "400-1500"
"#;

#[test]
fn rules_drop_what_they_match_and_everything_else_arrives_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    let frames = traffic();
    {
        let file = std::fs::File::create(&input).expect("create");
        let mut w = levee_dataplane::pcap::PcapWriter::new(std::io::BufWriter::new(file), 1)
            .expect("header");
        for (i, (f, _)) in frames.iter().enumerate() {
            w.write(1_700_000_000_000_000_000 + i as u64 * 100_000, f)
                .expect("write");
        }
        w.finish().expect("flush");
    }
    let config = pair_config(
        dir.path(),
        "inline",
        &format!("net_pcap0,rx_pcap={}", input.display()),
        &format!("net_pcap1,tx_pcap={}", output.display()),
        RULES,
    );
    let (_, summary) = run_json(&config, &["--exit-when-idle", "0.5"]);

    let expected_out: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|(_, fate)| *fate == Fate::Forward)
        .map(|(f, _)| f)
        .collect();
    let got = read_frames(&output);
    assert_eq!(got.len(), expected_out.len(), "forwarded count");
    for (i, (a, b)) in expected_out.iter().zip(&got).enumerate() {
        assert_eq!(a.as_slice(), b.as_slice(), "forwarded frame {i} differs");
    }

    let inbound = &summary["pipeline"]["directions"]["inbound"];
    let count = |fate: Fate| frames.iter().filter(|(_, f)| *f == fate).count() as u64;
    assert_eq!(u(inbound, "/packets"), frames.len() as u64, "{inbound}");
    assert_eq!(u(inbound, "/forwarded_packets"), count(Fate::Forward));
    assert_eq!(
        u(inbound, "/dropped/blocklist/packets"),
        count(Fate::Blocklist)
    );
    assert_eq!(
        u(inbound, "/dropped/signature/packets"),
        count(Fate::Signature)
    );
    assert_eq!(
        u(inbound, "/dropped/malformed/packets"),
        count(Fate::Malformed)
    );
    assert_eq!(
        u(inbound, "/allowlisted"),
        50,
        "allowlisted sources counted as such"
    );
    // Class by class, the windows add up to what the capture holds.
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    for (f, _) in &frames {
        *classes.entry(parse(f).class.name()).or_default() += 1;
    }
    for (class, n) in &classes {
        assert_eq!(
            u(inbound, &format!("/classes/{class}/packets")),
            *n,
            "class {class}"
        );
    }
    let rule_drops = summary["pipeline"]["rule_drops"]
        .as_array()
        .expect("rule drops");
    let by_rule = |id: u64| {
        rule_drops
            .iter()
            .find(|r| r["rule_id"] == id)
            .map(|r| u(r, "/packets"))
    };
    assert_eq!(
        by_rule(0),
        Some(count(Fate::Blocklist)),
        "static blocklist drops under rule 0"
    );
    assert_eq!(by_rule(7), Some(count(Fate::Signature)));

    // The same capture through `levee replay` gives the same totals.
    let out = levee()
        .args(["replay", "--json", "--config"])
        .arg(&config)
        .arg(&input)
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let totals: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "totals")
        .expect("a totals line");
    let replayed = &totals["directions"]["inbound"];
    for key in [
        "packets",
        "bytes",
        "forwarded_packets",
        "classes",
        "dropped",
        "not_parsed",
        "allowlisted",
    ] {
        assert_eq!(
            replayed[key], inbound[key],
            "replay and DPDK differ on {key}"
        );
    }
    assert_eq!(totals["rule_drops"], summary["pipeline"]["rule_drops"]);
}

#[test]
fn replay_rejects_missing_and_corrupt_captures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = levee()
        .args(["replay", "/nonexistent/capture.pcap"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, b"this is not a capture file at all").expect("write");
    let out = levee().arg("replay").arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a pcap"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cut = dir.path().join("cut.pcap");
    write_capture(&cut, 10, 1);
    let bytes = std::fs::read(&cut).expect("read");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).expect("write");
    let out = levee().arg("replay").arg(&cut).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut short"));
}

#[test]
fn replay_reads_pcapng_with_several_interfaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.pcap");
    write_capture(&a, 300, 5);
    let ng = dir.path().join("a.pcapng");
    let merged = dir.path().join("merged.pcapng");
    assert!(std::process::Command::new("editcap")
        .args(["-F", "pcapng"])
        .arg(&a)
        .arg(&ng)
        .status()
        .expect("editcap")
        .success());
    assert!(std::process::Command::new("mergecap")
        .args(["-F", "pcapng", "-w"])
        .arg(&merged)
        .arg(&a)
        .arg(&ng)
        .status()
        .expect("mergecap")
        .success());
    let out = levee()
        .args(["replay", "--json"])
        .arg(&merged)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let totals: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "totals")
        .expect("totals");
    assert_eq!(u(&totals, "/directions/inbound/packets"), 600);
}

#[test]
fn replay_shows_its_progress_on_a_terminal_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("big.pcap");
    let made = levee()
        .args(["generate-capture", "--packets", "200000", "--out"])
        .arg(&capture)
        .output()
        .expect("generate");
    assert!(made.status.success(), "{made:?}");

    // Not a terminal: stderr carries no bar, stdout the usual totals.
    let plain = levee()
        .arg("replay")
        .arg(&capture)
        .output()
        .expect("replay");
    assert!(plain.status.success(), "{plain:?}");
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(
        !stderr.contains("levee replay: re"),
        "a bar without a terminal: {stderr}"
    );
    assert!(String::from_utf8_lossy(&plain.stdout).contains("200000"));

    // On a terminal (a pseudo-terminal from script(1)), the bar shows, and is
    // cleared: the totals follow as usual.
    let command = format!(
        "{} replay {}",
        env!("CARGO_BIN_EXE_levee"),
        capture.display()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script(1)");
    assert!(tty.status.success(), "{tty:?}");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("levee replay: replaying") || screen.contains("levee replay: reading"),
        "no progress on a terminal: {screen}"
    );
    assert!(screen.contains("200000"), "{screen}");
}
