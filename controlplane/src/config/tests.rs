//! The configuration's parsing, defaults and checks.

use super::*;
use levee_dataplane::tables::{SignatureAction, SignatureRule};

fn parse(text: &str) -> Result<Config, String> {
    let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
    let p = c.problems();
    if p.is_empty() {
        Ok(c)
    } else {
        Err(p
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

const MINIMAL: &str = r#"
    [[pair]]
    outside = "net_pcap0,rx_pcap=a.pcap"
    inside = "net_null0"
"#;

#[test]
fn minimal_config_gets_defaults_and_eal_args() {
    let c = parse(MINIMAL).expect("valid");
    assert_eq!(c.mode, Mode::Inline);
    assert_eq!(c.dpdk.worker_lcores, vec![1]);
    assert_eq!(
        c.eal_args(),
        [
            "-l",
            "0,1",
            "--main-lcore",
            "0",
            "--vdev=net_pcap0,rx_pcap=a.pcap",
            "--vdev=net_null0"
        ]
    );
}

#[test]
fn unknown_keys_are_named() {
    let e = parse("[dpdk]\nmempool_sise = 4096\n").expect_err("typo");
    assert!(e.contains("mempool_sise"), "{e}");
    let e = parse("colour = 1\n").expect_err("unknown top-level key");
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn bad_values_name_each_key() {
    let e = parse(
        r#"
        mode = "inline"
        [dpdk]
        main_lcore = 1
        worker_lcores = [1, 2, 2]
        mempool_size = 10
        eal_args = ["-l", "0-3"]
        [[pair]]
        outside = "eth0"
        [[pair]]
        outside = "net_null0"
        inside = "net_null0"
        "#,
    )
    .expect_err("many problems");
    for key in [
        "dpdk.worker_lcores[0]",
        "dpdk.worker_lcores[2]",
        "dpdk.mempool_size",
        "dpdk.eal_args[0]",
        "pair[0].outside",
        "pair[0].inside",
        "pair[1].inside",
    ] {
        assert!(e.contains(key), "{key} missing from:\n{e}");
    }
}

#[test]
fn bad_types_and_modes_are_parse_errors() {
    let e = parse("mode = \"sideways\"\n").expect_err("bad mode");
    assert!(e.contains("sideways") || e.contains("mode"), "{e}");
    let e = parse("[dpdk]\nmempool_size = \"lots\"\n").expect_err("bad type");
    assert!(e.contains("mempool_size"), "{e}");
}

#[test]
fn monitor_mode_needs_no_inside_port() {
    let c = parse("mode = \"monitor\"\n[[pair]]\noutside = \"0000:03:00.0\"\n").expect("valid");
    assert_eq!(c.devices(), vec![Device::Pci("0000:03:00.0".into())]);
    assert!(c
        .eal_args()
        .ends_with(&["-a".to_owned(), "0000:03:00.0".to_owned()]));
}

#[test]
fn rules_and_pipeline_sections() {
    let c = parse(
        r#"
        [pipeline]
        protected = ["10.0.0.0/24", "2001:db8::/48"]
        malformed = "forward"
        [rules]
        allowlist = ["192.0.2.0/24"]
        blocklist = ["203.0.113.7", "198.51.100.0/24"]
        [[rules.signature]]
        id = 5
        destination = "10.0.0.0/24"
        protocol = "udp"
        src_ports = 53
        ip_length = "512-1500"
        ttl = "50-64"
        [[rules.signature]]
        id = 6
        protocol = "tcp"
        tcp_flags = "S/SA"
        action = "rate-limit"
        pps = 1000
        [[rules.signature]]
        id = 7
        destination = "10.0.0.1"
        protocol = "tcp"
        tcp_flags = "S/SA"
        action = "syn-authentication"
        [[rules.signature]]
        id = 8
        destination = "10.0.0.1"
        protocol = "tcp"
        tcp_flags = "/S"
        action = "connection-state"
        [rules.source_limit]
        class = "tcp_syn"
        pps = 50
        [[pair]]
        outside = "net_null0"
        inside = "net_null1"
        "#,
    )
    .expect("valid");
    let rules: Vec<SignatureRule> = c
        .rules
        .signatures
        .iter()
        .map(|s| signature_rule(s).expect("valid"))
        .collect();
    assert_eq!(rules[0].src_ports, Some((53, 53)));
    assert_eq!(rules[0].ip_length, Some((512, 1500)));
    assert_eq!(rules[0].ttl, Some((50, 64)));
    assert_eq!(rules[1].tcp_flags, Some((0x12, 0x02)));
    assert_eq!(rules[1].action, SignatureAction::RateLimit { pps: 1000 });
    assert_eq!(rules[2].action, SignatureAction::Authenticate);
    assert_eq!(rules[3].action, SignatureAction::RequireState);
    assert_eq!(rules[3].tcp_flags, Some((0x02, 0)), "/S: SYN clear");
    assert_eq!(c.pipeline_config().malformed, FramePolicy::Forward);
    assert!(c
        .protected_networks()
        .contains(levee_dataplane::tables::Addr::V4(0x0a00_0005)));
}

#[test]
fn bad_rules_name_their_field() {
    let e = parse(
        r#"
        [pipeline]
        protected = ["10.0.0.0/33"]
        non_ip = "maybe"
        [rules]
        blocklist = ["not-an-ip"]
        [[rules.signature]]
        id = 1
        protocol = "carrier-pigeon"
        [[rules.signature]]
        id = 1
        dst_ports = "80"
        [[rules.signature]]
        id = 2
        protocol = "tcp"
        tcp_flags = "XYZ"
        [[rules.signature]]
        id = 3
        ttl = "50-300"
        [[rules.signature]]
        id = 4
        protocol = "udp"
        action = "syn-authentication"
        [[rules.signature]]
        id = 5
        protocol = "tcp"
        action = "connection-state"
        pps = 10
        [rules.source_limit]
        class = "tcp_sin"
        pps = 0
        [[pair]]
        outside = "net_null0"
        inside = "net_null1"
        "#,
    )
    .expect_err("bad");
    for key in [
        "pipeline.protected[0]",
        "pipeline.non_ip",
        "rules.blocklist[0]",
        "rules.signature[0].protocol",
        "rules.signature[1].id",
        "rules.signature[2].tcp_flags",
        "rules.signature[3].ttl",
        "rules.signature[4].id",
        "rules.signature[5].pps",
        "rules.source_limit.class",
        "rules.source_limit.pps",
    ] {
        assert!(e.contains(key), "{key} missing from:\n{e}");
    }
}

#[test]
fn device_strings() {
    assert_eq!(Device::parse("03:00.1"), Ok(Device::Pci("03:00.1".into())));
    assert!(Device::parse("0000:03:00.8").is_err());
    assert_eq!(
        Device::parse("net_af_packet0,iface=veth0").map(|d| d.port_name().to_owned()),
        Ok("net_af_packet0".into())
    );
    assert!(Device::parse("").is_err());
    assert!(Device::parse("net_pcap 0").is_err());
}

#[test]
fn an_empty_file_means_the_cores_own_defaults() {
    let c = Config::replay_default();
    assert_eq!(
        c.detection_config(),
        crate::detect::DetectionConfig::default()
    );
    assert_eq!(
        c.mitigation_config(),
        crate::mitigate::MitigationConfig::default()
    );
    // Each section's defaults are its `impl Default`, whole or field by field.
    assert_eq!(
        format!("{:?}", c.pipeline),
        format!("{:?}", PipelineSection::default())
    );
    let partial: Config = toml::from_str("[dpdk]\nmain_lcore = 3\n").expect("parse");
    assert_eq!(
        partial.dpdk.worker_lcores,
        DpdkConfig::default().worker_lcores
    );
    assert_eq!(partial.dpdk.main_lcore, 3);
}
