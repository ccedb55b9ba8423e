//! Bad configurations and bad EAL arguments give a clear message and exit 2,
//! never a panic.

mod common;

use common::*;

fn assert_usage_error(output: &std::process::Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        !stderr.contains("RUST_BACKTRACE"),
        "backtrace hint: {stderr}"
    );
    for e in expected {
        assert!(stderr.contains(e), "{e:?} missing from: {stderr}");
    }
}

#[test]
fn check_config_accepts_the_shipped_configurations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    // The files are checked, not this machine: a sysfs with the CPUs of the
    // boxes they were written for.
    let dir = tempfile::tempdir().expect("tempdir");
    let cpu = dir.path().join("devices/system/cpu");
    std::fs::create_dir_all(&cpu).expect("sysfs");
    std::fs::write(cpu.join("online"), "0-63\n").expect("online");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("config/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = levee()
                .arg("check-config")
                .arg(&path)
                .env("LEVEE_SYSFS", dir.path())
                .output()
                .expect("run levee");
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected several example configurations, found {checked}"
    );
}

#[test]
fn check_config_warns_of_cpus_the_kernel_shares_and_ports_on_another_numa_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A fake sysfs: CPUs 0-3 online, 2 isolated; CPUs 1-2 on node 0, 3 on
    // node 1; the outside port on node 1, the inside port's node unknown.
    let sys = dir.path().join("sys");
    let cpu = sys.join("devices/system/cpu");
    for (n, node) in [(1, 0), (2, 0), (3, 1)] {
        std::fs::create_dir_all(cpu.join(format!("cpu{n}/node{node}"))).expect("cpu");
    }
    std::fs::write(cpu.join("online"), "0-3\n").expect("online");
    std::fs::write(cpu.join("isolated"), "2\n").expect("isolated");
    for (address, node) in [("0000:03:00.0", "1"), ("0000:03:00.1", "-1")] {
        let dev = sys.join("bus/pci/devices").join(address);
        std::fs::create_dir_all(&dev).expect("device");
        std::fs::write(dev.join("numa_node"), format!("{node}\n")).expect("node");
    }
    let config = write_config(
        dir.path(),
        "box.toml",
        r#"
        [dpdk]
        worker_lcores = [2, 3]
        [[pair]]
        outside = "0000:03:00.0"
        inside = "0000:03:00.1"
        "#,
    );
    let out = levee()
        .arg("check-config")
        .arg(&config)
        .env("LEVEE_SYSFS", &sys)
        .output()
        .expect("run levee");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "warnings do not fail the check: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning:")).collect();
    for expected in [
        "dpdk.worker_lcores[1]: CPU 3 is not isolated",
        "pair[0].outside: port 0000:03:00.0 is on NUMA node 1 but worker CPU 2 is on node 0",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "{expected:?} missing from: {stderr}"
        );
    }
    // Nothing about what is right: CPU 2 is isolated, CPU 3 shares the
    // outside port's node, the inside port's node is unknown.
    assert_eq!(warnings.len(), 2, "{stderr}");

    // An lcore on a CPU the machine lacks is an error naming the key (not the
    // EAL's usage text); mapped onto CPUs it has, the same lcores are fine.
    let check = |body: &str| {
        let path = write_config(dir.path(), "lcores.toml", body);
        levee()
            .arg("check-config")
            .arg(&path)
            .env("LEVEE_SYSFS", &sys)
            .output()
            .expect("run levee")
    };
    let pairs = "[[pair]]\noutside = \"net_null0\"\ninside = \"net_null1\"\n";
    let out = check(&format!("[dpdk]\nworker_lcores = [1, 2, 5, 6]\n{pairs}"));
    assert_usage_error(
        &out,
        &[
            "dpdk.worker_lcores[2]: lcore 5 would run on CPU 5, which this machine does not have (online: 0,1,2,3)",
            "dpdk.worker_lcores[3]: lcore 6",
        ],
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("EAL"),
        "{out:?}"
    );
    let out = check(&format!(
        "[dpdk]\nworker_lcores = [1, 2, 5, 6]\nworker_cpus = [1, 2, 3, 9]\n{pairs}"
    ));
    assert_usage_error(&out, &["dpdk.worker_cpus[3]: lcore 6 would run on CPU 9"]);
    let out = check(&format!(
        "[dpdk]\nworker_lcores = [1, 2, 5, 6]\nworker_cpus = [1, 2, 3, 3]\n{pairs}"
    ));
    assert!(out.status.success(), "{out:?}");
    let out = check(&format!(
        "[dpdk]\nworker_lcores = [1, 2]\nworker_cpus = [1]\n{pairs}"
    ));
    assert_usage_error(&out, &["dpdk.worker_cpus: 1 CPU(s) for 2 worker lcore(s)"]);
}

#[test]
fn check_config_names_every_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "bad.toml",
        r#"
        [dpdk]
        worker_lcores = []
        mempool_size = 12
        rx_descriptors = 5
        [[pair]]
        outside = "wlan0"
        [[rules.signature]]
        id = 1
        destination = "10.0.0.1"
        protocol = "sctp"
        [[rules.signature]]
        id = 2
        destination = "10.0.0.2"
        protocol = "tcp"
        tcp_flags = "SA/S"
        "#,
    );
    let out = levee()
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("run levee");
    assert_usage_error(
        &out,
        &[
            "dpdk.worker_lcores",
            "dpdk.mempool_size",
            "dpdk.rx_descriptors",
            "pair[0].outside",
            "pair[0].inside",
            "rules.signature[0].protocol: \"sctp\" is not tcp, udp, icmp, icmpv6, gre, esp or a number",
            "rules.signature[1].tcp_flags: \"SA/S\": every flag before the / must also be in the mask",
        ],
    );
}

#[test]
fn unknown_key_and_wrong_type_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = write_config(dir.path(), "typo.toml", "[dpdk]\nworker_lcore = [1]\n");
    assert_usage_error(
        &levee()
            .arg("check-config")
            .arg(&typo)
            .output()
            .expect("run"),
        &["worker_lcore"],
    );
    let wrong = write_config(dir.path(), "wrong.toml", "mode = 3\n");
    assert_usage_error(
        &levee()
            .arg("check-config")
            .arg(&wrong)
            .output()
            .expect("run"),
        &["mode"],
    );
    let not_toml = write_config(dir.path(), "garbage.toml", "[[[ this is not toml\n");
    assert_usage_error(
        &levee()
            .arg("check-config")
            .arg(&not_toml)
            .output()
            .expect("run"),
        &["garbage.toml"],
    );
}

#[test]
fn missing_file_is_a_usage_error() {
    let out = levee()
        .args(["check-config", "/nonexistent/levee.toml"])
        .output()
        .expect("run");
    assert_usage_error(&out, &["cannot read", "/nonexistent/levee.toml"]);
    let out = levee()
        .args(["run", "--config", "/nonexistent/levee.toml"])
        .output()
        .expect("run");
    assert_usage_error(&out, &["cannot read"]);
}

#[test]
fn bad_eal_argument_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "levee.toml",
        r#"
        [dpdk]
        eal_args = ["--no-huge", "--no-pci", "--no-shconf", "--definitely-not-an-eal-option"]
        [[pair]]
        outside = "net_null0"
        inside = "net_null1"
        "#,
    );
    let out = levee()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_usage_error(
        &out,
        &[
            "EAL initialisation failed",
            "--definitely-not-an-eal-option",
        ],
    );
}

#[test]
fn a_device_that_cannot_be_probed_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "levee.toml",
        &format!(
            r#"
            [dpdk]
            eal_args = {TEST_EAL_ARGS}
            [[pair]]
            outside = "net_pcap0,rx_pcap=/nonexistent/capture.pcap"
            inside = "net_null0"
            "#
        ),
    );
    let out = levee()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_usage_error(&out, &["DPDK has no port \"net_pcap0\"", "failed to probe"]);
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = levee()
        .args(["run", "--config", "x.toml", "--duration", "soon"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = levee().args(["frobnicate"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_itself() {
    let out = levee()
        .args(["completions", "bash"])
        .output()
        .expect("levee");
    assert!(out.status.success(), "{out:?}");
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    for word in [
        "_levee",
        "check-config",
        "replay",
        "integrations",
        "--challenged",
    ] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completion"
        );
    }
    // The script is valid bash.
    let check = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .expect("bash");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = levee()
        .args(["completions", "tcsh"])
        .output()
        .expect("levee");
    assert_usage_error(&out, &["tcsh"]);
    let out = levee().arg("manpage").output().expect("levee");
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH levee 1"), "{page}");
    assert!(page.contains("inline DDoS scrubbing appliance"), "{page}");
    assert!(
        page.contains("check\\-config"),
        "subcommands listed: {page}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    write_capture(&input, 64, 3);
    let config = pair_config(
        dir.path(),
        "inline",
        &format!("net_pcap0,rx_pcap={}", input.display()),
        "net_null0",
        "[log]\nlevel = \"info\"\nformat = \"json\"\n[store]\nenabled = false\n",
    );
    let out = levee()
        .args(["run", "--duration", "1", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("levee");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let logs: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["fields"]["message"] == "forwarding started" && l["level"] == "INFO"),
        "{stderr}"
    );
    // Every line levee logs is JSON (DPDK's own EAL lines may not be).
    for l in &lines {
        if !l.starts_with("EAL:") && !l.starts_with("TELEMETRY") {
            assert!(
                serde_json::from_str::<serde_json::Value>(l).is_ok(),
                "not JSON: {l}"
            );
        }
    }
    let bad = write_config(dir.path(), "bad.toml", "[log]\nformat = \"xml\"\n");
    let out = levee()
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("levee");
    assert_usage_error(&out, &["format"]);
}

#[test]
fn the_systemd_unit_is_accepted_by_systemd_analyze() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = std::fs::read_to_string(root.join("packaging/levee.service")).expect("the unit");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "RequiresMountsFor=/dev/hugepages",
        "StateDirectory=levee",
        "ExecStartPre=/usr/bin/levee check-config /etc/levee/levee.toml",
    ] {
        assert!(unit.contains(line), "{line} missing from the unit");
    }
    // Verified where it would run: the installed paths point at this build
    // and at the shipped bare-metal configuration.
    let config = root.join("config/bare-metal.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("levee.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/levee", env!("CARGO_BIN_EXE_levee"))
            .replace("/etc/levee/levee.toml", config.to_str().expect("path")),
    )
    .expect("write");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
