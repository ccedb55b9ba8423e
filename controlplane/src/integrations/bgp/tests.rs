//! What the bgp integration announces, decided without a speaker.

use super::*;
use crate::rule::{RuleState, SignatureCheck};

fn settings() -> BgpSettings {
    serde_json::from_value(serde_json::json!({})).expect("defaults")
}

fn incident(id: &str, target: &str, attack: AttackType) -> IncidentState {
    IncidentState {
        id: id.into(),
        target: target.parse().expect("prefix"),
        attack_type: attack,
        vectors: vec![attack],
        peak_bps: 1e9,
        started_at_ms: 1_000,
        resolved_at_ms: None,
    }
}

fn signature(id: u32, incident: &str, destination: &str, rate: Option<u32>) -> Rule {
    Rule {
        id,
        incident_id: incident.into(),
        state: RuleState::Active,
        matches: RuleMatch::Signature {
            destination: destination.into(),
            protocol: 17,
            src_port: Some(123),
            dst_port: None,
            tcp_flags: None,
            non_first_fragments: false,
            ip_length: Some((400, 1500)),
            ip_ttl: None,
            rate_limit_pps: rate,
            check: None,
        },
        reason: String::new(),
        created_at_ns: 0,
        expires_at_ns: u64::MAX,
        note: None,
        collateral: None,
    }
}

fn state(incidents: Vec<IncidentState>, rules: Vec<Rule>) -> UpstreamState {
    UpstreamState {
        incidents,
        rules,
        protected: vec![
            "10.0.0.0/24".parse().expect("prefix"),
            "2001:db8::/48".parse().expect("prefix"),
        ],
        approved: Default::default(),
    }
}

#[test]
fn bgp_an_incident_is_blackholed_with_the_rfc7999_community_and_its_extras() {
    let s = BgpSettings {
        communities: vec!["64512:100".into()],
        ..settings()
    };
    let w = wanted(
        &s,
        &state(
            vec![incident(
                "inc_1",
                "10.0.0.1/32",
                AttackType::NtpAmplification,
            )],
            vec![],
        ),
        2_000,
    );
    assert_eq!(w.routes.len(), 1, "{w:?}");
    let r = &w.routes[0];
    assert_eq!(r.family, Family::Ipv4);
    assert_eq!(r.nlri, vec!["10.0.0.1/32"]);
    assert_eq!(r.attrs, vec!["community", "65535:666,64512:100"]);
    let v6 = wanted(
        &s,
        &state(
            vec![incident("inc_2", "2001:db8::5/128", AttackType::UdpFlood)],
            vec![],
        ),
        2_000,
    );
    assert_eq!(v6.routes[0].family, Family::Ipv6);
}

#[test]
fn bgp_never_announces_outside_the_protected_networks_or_shorter_than_the_minimum() {
    let s = settings();
    let w = wanted(
        &s,
        &state(
            vec![
                incident("inc_out", "192.0.2.7/32", AttackType::UdpFlood),
                incident("inc_wide", "10.0.0.0/24", AttackType::UdpFlood),
                incident("inc_over", "10.0.0.0/23", AttackType::UdpFlood),
            ],
            vec![],
        ),
        2_000,
    );
    assert!(w.routes.is_empty(), "{w:?}");
    assert!(w
        .refused
        .iter()
        .any(|r| r.contains("inc_out") && r.contains("outside the protected")));
    assert!(w
        .refused
        .iter()
        .any(|r| r.contains("inc_wide") && r.contains("shorter than /32")));
    assert!(w
        .refused
        .iter()
        .any(|r| r.contains("inc_over") && r.contains("outside the protected")));
    // Allowed shorter, the carpet-bombed /24 is announced.
    let s = BgpSettings {
        min_prefix_v4: 24,
        ..settings()
    };
    let w = wanted(
        &s,
        &state(
            vec![incident("inc_wide", "10.0.0.0/24", AttackType::UdpFlood)],
            vec![],
        ),
        2_000,
    );
    assert_eq!(w.routes.len(), 1);
}

#[test]
fn bgp_routes_stay_through_the_hold_down_and_the_cap_holds() {
    let s = BgpSettings {
        hold_down_seconds: 60,
        max_announcements: 2,
        ..settings()
    };
    let mut resolved = incident("inc_1", "10.0.0.1/32", AttackType::UdpFlood);
    resolved.resolved_at_ms = Some(10_000);
    // Its signature ended with it, and stays upstream through the hold-down.
    let mut ended = signature(10, "inc_1", "10.0.0.1/32", None);
    ended.state = RuleState::Removed;
    let st = state(vec![resolved], vec![ended]);
    let with_flowspec = BgpSettings {
        flowspec: true,
        ..s.clone()
    };
    assert_eq!(
        wanted(&with_flowspec, &st, 69_999).routes.len(),
        2,
        "inside the hold-down"
    );
    assert!(
        wanted(&with_flowspec, &st, 70_000).routes.is_empty(),
        "after it"
    );
    // An open incident's ended rule is gone at once.
    let mut open = st.clone();
    open.incidents[0].resolved_at_ms = None;
    assert_eq!(
        wanted(&with_flowspec, &open, 20_000).routes.len(),
        1,
        "RTBH only"
    );
    let many: Vec<IncidentState> = (1..=4)
        .map(|n| {
            incident(
                &format!("inc_{n}"),
                &format!("10.0.0.{n}/32"),
                AttackType::UdpFlood,
            )
        })
        .collect();
    let w = wanted(&s, &state(many, vec![]), 2_000);
    assert_eq!(w.routes.len(), 2);
    assert_eq!(
        w.refused.iter().filter(|r| r.contains("cap of 2")).count(),
        2,
        "{w:?}"
    );
}

#[test]
fn bgp_policy_decides_which_incidents_go_upstream() {
    let by_type = BgpSettings {
        when: When::AttackTypes,
        attack_types: vec!["NTP Amplification".into()],
        ..settings()
    };
    by_type.validate().expect("valid");
    let st = state(
        vec![
            incident("inc_ntp", "10.0.0.1/32", AttackType::NtpAmplification),
            incident("inc_syn", "10.0.0.2/32", AttackType::SynFlood),
        ],
        vec![],
    );
    let w = wanted(&by_type, &st, 2_000);
    assert_eq!(
        w.routes
            .iter()
            .map(|r| r.incident_id.as_str())
            .collect::<Vec<_>>(),
        vec!["inc_ntp"]
    );
    let by_share = BgpSettings {
        when: When::UplinkShare,
        uplink_bps: Some(10e9),
        min_uplink_share: 0.5,
        ..settings()
    };
    let mut small = incident("inc_small", "10.0.0.3/32", AttackType::UdpFlood);
    small.peak_bps = 1e9;
    let mut big = incident("inc_big", "10.0.0.4/32", AttackType::UdpFlood);
    big.peak_bps = 6e9;
    let w = wanted(&by_share, &state(vec![small, big], vec![]), 2_000);
    assert_eq!(
        w.routes
            .iter()
            .map(|r| r.incident_id.as_str())
            .collect::<Vec<_>>(),
        vec!["inc_big"]
    );
}

#[test]
fn bgp_with_approval_routes_wait_staged_until_an_operator_approves() {
    let s = BgpSettings {
        when: When::Approval,
        ..settings()
    };
    let mut st = state(
        vec![
            incident("inc_1", "10.0.0.1/32", AttackType::UdpFlood),
            incident("inc_2", "10.0.0.2/32", AttackType::UdpFlood),
        ],
        vec![],
    );
    let w = wanted(&s, &st, 2_000);
    assert!(w.routes.is_empty());
    assert_eq!(w.staged.len(), 2);
    st.approved.insert("inc_2".into());
    let w = wanted(&s, &st, 2_000);
    assert_eq!(
        w.routes
            .iter()
            .map(|r| r.incident_id.as_str())
            .collect::<Vec<_>>(),
        vec!["inc_2"]
    );
    assert_eq!(
        w.staged
            .iter()
            .map(|r| r.incident_id.as_str())
            .collect::<Vec<_>>(),
        vec!["inc_1"]
    );
}

#[test]
fn bgp_flowspec_rules_come_from_the_incidents_signatures() {
    let s = BgpSettings {
        rtbh: false,
        flowspec: true,
        ..settings()
    };
    let mut syn = signature(11, "inc_1", "10.0.0.1/32", None);
    if let RuleMatch::Signature {
        protocol,
        src_port,
        tcp_flags,
        ip_length,
        check,
        ..
    } = &mut syn.matches
    {
        *protocol = 6;
        *src_port = None;
        *tcp_flags = Some("S/SA".into());
        *ip_length = None;
        *check = Some(SignatureCheck::SynAuthentication);
    }
    let rules = vec![
        signature(10, "inc_1", "10.0.0.1/32", None),
        signature(12, "inc_1", "10.0.0.1/32", Some(1000)),
        syn.clone(),
        signature(13, "inc_other", "10.0.0.9/32", None),
    ];
    let st = state(
        vec![incident(
            "inc_1",
            "10.0.0.1/32",
            AttackType::NtpAmplification,
        )],
        rules.clone(),
    );
    let w = wanted(&s, &st, 2_000);
    assert_eq!(w.routes.len(), 1, "{w:?}");
    let r = &w.routes[0];
    assert_eq!(r.family, Family::Ipv4Flowspec);
    assert_eq!(
        r.nlri.join(" "),
        "match destination 10.0.0.1/32 protocol udp source-port ==123 packet-length >=400&<=1500"
    );
    assert_eq!(r.attrs, vec!["then", "discard"]);
    // The rate limit and the SYN authentication are levee's own: a discard
    // upstream would drop their clients; sent as a rate limit when asked.
    assert_eq!(w.refused.len(), 2, "{w:?}");
    let limited = BgpSettings {
        flowspec_rate_bytes: Some(125_000),
        ..s.clone()
    };
    let w = wanted(&limited, &st, 2_000);
    // Rules 10 and 12 match the same packets: one route.
    assert_eq!(w.routes.len(), 2, "{w:?}");
    assert!(w
        .routes
        .iter()
        .all(|r| r.attrs == vec!["then", "rate-limit", "125000"]));
    let syn_route = w
        .routes
        .iter()
        .find(|r| r.nlri.contains(&"tcp".to_owned()))
        .expect("SYN rule");
    assert!(
        syn_route.nlri.join(" ").ends_with("tcp-flags =S&!A"),
        "{syn_route:?}"
    );
}

#[test]
fn bgp_settings_refuse_what_cannot_work() {
    for (json, expected) in [
        (
            serde_json::json!({"api": "nowhere"}),
            "api: \"nowhere\" is not host:port",
        ),
        (
            serde_json::json!({"rtbh": false}),
            "nothing would be announced",
        ),
        (
            serde_json::json!({"communities": ["65535:70000"]}),
            "communities: \"65535:70000\"",
        ),
        (
            serde_json::json!({"next_hop": "2001:db8::1"}),
            "next_hop: \"2001:db8::1\" is not an IPv4 address",
        ),
        (
            serde_json::json!({"when": "uplink_share"}),
            "uplink_bps: required",
        ),
        (
            serde_json::json!({"when": "attack_types", "attack_types": ["Sneeze Flood"]}),
            "\"Sneeze Flood\" is not an attack type",
        ),
        (
            serde_json::json!({"max_announcements": 0}),
            "max_announcements",
        ),
    ] {
        let s: BgpSettings = serde_json::from_value(json.clone()).expect("parses");
        let e = s.validate().expect_err("refused");
        assert!(e.contains(expected), "{json}: {e}");
    }
}
