//! Active rules as text for host firewalls: `iptables-restore` / `ip6tables-restore`
//! input and an `nft -f` script. Used by the API's export and by the iptables
//! integration, so the host enforces what the dataplane does.

use std::fmt::Write as _;

use levee_dataplane::tables::Prefix;

use super::{Rule, RuleMatch, SignatureCheck};
use crate::rule_fields::TcpFlags;

/// The text formats rules export to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// IPv4 rules for `iptables-restore --noflush`.
    Iptables,
    /// IPv6 rules for `ip6tables-restore --noflush`.
    Ip6tables,
    /// Both families for `nft -f`.
    Nftables,
}

impl ExportFormat {
    pub const NAMES: [&'static str; 3] = ["iptables", "ip6tables", "nftables"];

    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "iptables" => Some(ExportFormat::Iptables),
            "ip6tables" => Some(ExportFormat::Ip6tables),
            "nftables" | "nft" => Some(ExportFormat::Nftables),
            _ => None,
        }
    }
}

/// The chain (iptables) and table (nftables) levee's rules live in.
pub const CHAIN: &str = "LEVEE";
const NFT_TABLE: &str = "levee";

/// A comment safe inside double quotes for both tools.
fn comment(rule: &Rule) -> String {
    let text: String = format!("levee rule {}: {}", rule.id, rule.reason)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .:_-/()+,@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    text
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        p => p.to_string(),
    }
}

/// Flags as iptables' `--tcp-flags MASK SET` lists.
fn iptables_flags(f: TcpFlags) -> String {
    let names = |bits: u8| -> String {
        let v: Vec<&str> = TcpFlags::of(bits).map(|f| f.iptables).collect();
        if v.is_empty() {
            "NONE".into()
        } else {
            v.join(",")
        }
    };
    format!("{} {}", names(f.mask), names(f.value))
}

/// Flags as an nftables flags expression.
fn nft_flags(f: TcpFlags) -> String {
    let names = |bits: u8| -> String {
        let v: Vec<&str> = TcpFlags::of(bits).map(|f| f.nft).collect();
        if v.is_empty() {
            "0x0".into()
        } else {
            v.join(" | ")
        }
    };
    format!("tcp flags & ({}) == {}", names(f.mask), names(f.value))
}

/// What a per-source limit's traffic class matches, for both tools.
fn class_match(class: &str) -> Option<(&'static str, &'static str)> {
    match class {
        "tcp_syn" => Some((
            "-p tcp -m tcp --tcp-flags SYN,ACK SYN",
            "tcp flags & (syn | ack) == syn",
        )),
        "tcp_ack" => Some((
            "-p tcp -m tcp --tcp-flags SYN,ACK,RST ACK",
            "tcp flags & (syn | ack | rst) == ack",
        )),
        "tcp_rst" => Some((
            "-p tcp -m tcp --tcp-flags RST RST",
            "tcp flags & rst == rst",
        )),
        "icmp" => Some(("-p icmp", "meta l4proto { icmp, ipv6-icmp }")),
        "udp_other" | "udp" => Some(("-p udp", "meta l4proto udp")),
        _ => None,
    }
}

/// Export the active rules. Rules of the other family, and the few that a
/// format cannot express, are listed as comments so nothing is silently lost.
pub fn export(
    rules: &[Rule],
    allowlist: &[Prefix],
    format: ExportFormat,
    generated_at: &str,
) -> String {
    let active: Vec<&Rule> = rules.iter().filter(|r| r.state.in_force()).collect();
    match format {
        ExportFormat::Iptables => iptables(&active, allowlist, true, generated_at),
        ExportFormat::Ip6tables => iptables(&active, allowlist, false, generated_at),
        ExportFormat::Nftables => nftables(&active, allowlist, generated_at),
    }
}

fn iptables(rules: &[&Rule], allowlist: &[Prefix], v4: bool, generated_at: &str) -> String {
    let tool = if v4 { "iptables" } else { "ip6tables" };
    let mut out = String::new();
    let _ = writeln!(out, "# levee active rules, {generated_at}");
    let _ = writeln!(
        out,
        "# apply with: {tool}-restore --noflush < FILE; then send traffic through the chain once:"
    );
    let _ = writeln!(
        out,
        "#   {tool} -I FORWARD -j {CHAIN}; {tool} -I INPUT -j {CHAIN}"
    );
    let _ = writeln!(out, "*filter");
    let _ = writeln!(out, ":{CHAIN} - [0:0]");
    let _ = writeln!(out, "-F {CHAIN}");
    // The allowlist first: what levee never drops, the host does not either.
    for a in allowlist.iter().filter(|a| a.addr().is_ipv4() == v4) {
        let _ = writeln!(
            out,
            "-A {CHAIN} -s {a} -m comment --comment \"levee allowlist\" -j RETURN"
        );
    }
    for rule in rules {
        let note = comment(rule);
        let tail = format!("-m comment --comment \"{note}\"");
        match &rule.matches {
            RuleMatch::Block { source } => {
                let Ok(p) = source.parse::<Prefix>() else {
                    continue;
                };
                if p.addr().is_ipv4() == v4 {
                    let _ = writeln!(out, "-A {CHAIN} -s {p} {tail} -j DROP");
                }
            }
            RuleMatch::Signature {
                destination,
                protocol,
                src_port,
                dst_port,
                tcp_flags,
                non_first_fragments,
                ip_length,
                ip_ttl,
                rate_limit_pps,
                check,
            } => {
                let Ok(d) = destination.parse::<Prefix>() else {
                    continue;
                };
                if d.addr().is_ipv4() != v4 {
                    continue;
                }
                if let Some(c) = check {
                    let _ = writeln!(out, "{}", stateful_comment(rule.id, *c));
                    continue;
                }
                if *non_first_fragments && !v4 {
                    let _ = writeln!(
                        out,
                        "# rule {}: fragment matching needs the frag match of ip6tables; see nftables export",
                        rule.id
                    );
                    continue;
                }
                let mut m = format!("-d {d} -p {}", protocol_name(*protocol));
                let ported = matches!(protocol, 6 | 17);
                if ported && (src_port.is_some() || dst_port.is_some() || tcp_flags.is_some()) {
                    let _ = write!(m, " -m {}", protocol_name(*protocol));
                }
                if let (true, Some(p)) = (ported, src_port) {
                    let _ = write!(m, " --sport {p}");
                }
                if let (true, Some(p)) = (ported, dst_port) {
                    let _ = write!(m, " --dport {p}");
                }
                if let Some(f) = tcp_flags
                    .as_deref()
                    .filter(|_| *protocol == 6)
                    .and_then(|t| t.parse::<TcpFlags>().ok())
                {
                    let _ = write!(m, " --tcp-flags {}", iptables_flags(f));
                }
                if *non_first_fragments {
                    m.push_str(" -f");
                }
                // The length match counts the IP header, as levee does.
                if let Some((lo, hi)) = ip_length {
                    let _ = write!(m, " -m length --length {lo}:{hi}");
                }
                // TTL (ttl match) or hop limit (hl match): strict bounds.
                if let Some((lo, hi)) = ip_ttl {
                    let (module, opt) = if v4 { ("ttl", "ttl") } else { ("hl", "hl") };
                    if lo == hi {
                        let _ = write!(m, " -m {module} --{opt}-eq {lo}");
                    } else {
                        if *lo > 0 {
                            let _ = write!(m, " -m {module} --{opt}-gt {}", lo - 1);
                        }
                        if *hi < 255 {
                            let _ = write!(m, " -m {module} --{opt}-lt {}", hi + 1);
                        }
                    }
                }
                match rate_limit_pps {
                    None => {
                        let _ = writeln!(out, "-A {CHAIN} {m} {tail} -j DROP");
                    }
                    Some(pps) => {
                        let _ = writeln!(
                            out,
                            "-A {CHAIN} {m} -m hashlimit --hashlimit-above {pps}/sec --hashlimit-burst {pps} --hashlimit-mode dstip --hashlimit-name levee{} {tail} -j DROP",
                            rule.id
                        );
                    }
                }
            }
            RuleMatch::SourceLimit { class, pps } => match class_match(class) {
                Some((m, _)) => {
                    let _ = writeln!(
                        out,
                        "-A {CHAIN} {m} -m hashlimit --hashlimit-above {pps}/sec --hashlimit-burst {pps} --hashlimit-mode srcip --hashlimit-name levee{} {tail} -j DROP",
                        rule.id
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# rule {}: a per-source limit on {class} has no {tool} match",
                        rule.id
                    );
                }
            },
        }
    }
    let _ = writeln!(out, "COMMIT");
    out
}

fn nftables(rules: &[&Rule], allowlist: &[Prefix], generated_at: &str) -> String {
    let mut body = String::new();
    let mut sets = String::new();
    for a in allowlist {
        let family = if a.addr().is_ipv4() { "ip" } else { "ip6" };
        let _ = writeln!(
            body,
            "    {family} saddr {a} return comment \"levee allowlist\""
        );
    }
    for rule in rules {
        let note = comment(rule);
        let tail = format!("comment \"{note}\"");
        match &rule.matches {
            RuleMatch::Block { source } => {
                let Ok(p) = source.parse::<Prefix>() else {
                    continue;
                };
                let family = if p.addr().is_ipv4() { "ip" } else { "ip6" };
                let _ = writeln!(body, "    {family} saddr {p} drop {tail}");
            }
            RuleMatch::Signature {
                destination,
                protocol,
                src_port,
                dst_port,
                tcp_flags,
                non_first_fragments,
                ip_length,
                ip_ttl,
                rate_limit_pps,
                check,
            } => {
                let Ok(d) = destination.parse::<Prefix>() else {
                    continue;
                };
                if let Some(c) = check {
                    let _ = writeln!(body, "    {}", stateful_comment(rule.id, *c));
                    continue;
                }
                let v4 = d.addr().is_ipv4();
                let family = if v4 { "ip" } else { "ip6" };
                let mut m = format!("{family} daddr {d}");
                if *non_first_fragments {
                    if v4 {
                        m.push_str(" ip frag-off & 0x1fff != 0");
                    } else {
                        m.push_str(" exthdr frag frag-off != 0");
                    }
                }
                // nft's ip6 length is the payload's; levee's counts the header.
                match (ip_length, v4) {
                    (Some((lo, hi)), true) => {
                        let _ = write!(m, " ip length {lo}-{hi}");
                    }
                    (Some((lo, hi)), false) => {
                        let _ = write!(
                            m,
                            " ip6 length {}-{}",
                            lo.saturating_sub(40),
                            hi.saturating_sub(40)
                        );
                    }
                    (None, _) => {}
                }
                if let Some((lo, hi)) = ip_ttl {
                    let field = if v4 { "ip ttl" } else { "ip6 hoplimit" };
                    let _ = write!(m, " {field} {lo}-{hi}");
                }
                let _ = write!(m, " meta l4proto {}", protocol_name(*protocol));
                if matches!(protocol, 6 | 17) {
                    let l4 = protocol_name(*protocol);
                    if let Some(p) = src_port {
                        let _ = write!(m, " {l4} sport {p}");
                    }
                    if let Some(p) = dst_port {
                        let _ = write!(m, " {l4} dport {p}");
                    }
                }
                if let Some(f) = tcp_flags
                    .as_deref()
                    .filter(|_| *protocol == 6)
                    .and_then(|t| t.parse::<TcpFlags>().ok())
                {
                    let _ = write!(m, " {}", nft_flags(f));
                }
                if let Some(pps) = rate_limit_pps {
                    let _ = write!(m, " limit rate over {pps}/second burst {pps} packets");
                }
                let _ = writeln!(body, "    {m} drop {tail}");
            }
            RuleMatch::SourceLimit { class, pps } => match class_match(class) {
                Some((_, m)) => {
                    for (family, addr) in [("ip", "ipv4_addr"), ("ip6", "ipv6_addr")] {
                        let set = format!("limit{}_{family}", rule.id);
                        let _ = writeln!(
                            sets,
                            "  set {set} {{\n    type {addr}\n    size 65535\n    flags dynamic,timeout\n    timeout 60s\n  }}"
                        );
                        let _ = writeln!(
                            body,
                            "    meta nfproto {} {m} add @{set} {{ {family} saddr limit rate over {pps}/second burst {pps} packets }} drop {tail}",
                            if family == "ip" { "ipv4" } else { "ipv6" }
                        );
                    }
                }
                None => {
                    let _ = writeln!(
                        body,
                        "    # rule {}: a per-source limit on {class} has no nftables match",
                        rule.id
                    );
                }
            },
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# levee active rules, {generated_at}");
    let _ = writeln!(
        out,
        "# apply with: nft -f FILE (replaces the table {NFT_TABLE}; drops before connection tracking)"
    );
    let _ = writeln!(out, "table inet {NFT_TABLE}");
    let _ = writeln!(out, "delete table inet {NFT_TABLE}");
    let _ = writeln!(out, "table inet {NFT_TABLE} {{");
    out.push_str(&sets);
    let _ = writeln!(out, "  chain scrub {{");
    let _ = writeln!(
        out,
        "    type filter hook prerouting priority -300; policy accept;"
    );
    out.push_str(&body);
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}

/// A stateful check has no host firewall equivalent: the export says so
/// rather than drop the rule silently (the host's own SYN cookies and
/// connection tracking are its counterparts there).
fn stateful_comment(id: u32, check: SignatureCheck) -> String {
    format!(
        "# rule {id}: {} is enforced by levee's dataplane only",
        check.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleState;

    fn rule(id: u32, matches: RuleMatch) -> Rule {
        Rule {
            id,
            incident_id: "inc_test_0001".into(),
            state: RuleState::Active,
            matches,
            reason: "attacker of inc_test_0001 (UDP Flood) \"quoted\"".into(),
            created_at_ns: 0,
            expires_at_ns: u64::MAX,
            note: None,
            collateral: None,
        }
    }

    #[test]
    fn families_split_and_inactive_rules_left_out() {
        let mut staged = rule(
            3,
            RuleMatch::Block {
                source: "198.51.100.9".into(),
            },
        );
        staged.state = RuleState::Staged;
        let rules = vec![
            rule(
                1,
                RuleMatch::Block {
                    source: "203.0.113.7".into(),
                },
            ),
            rule(
                2,
                RuleMatch::Block {
                    source: "2001:db8::/48".into(),
                },
            ),
            staged,
        ];
        let v4 = export(&rules, &[], ExportFormat::Iptables, "now");
        assert!(v4.contains("-A LEVEE -s 203.0.113.7/32 -m comment"), "{v4}");
        assert!(!v4.contains("2001:db8"), "{v4}");
        assert!(!v4.contains("198.51.100.9"), "{v4}");
        assert!(!v4.contains("\"quoted\""), "quotes are escaped: {v4}");
        let v6 = export(&rules, &[], ExportFormat::Ip6tables, "now");
        assert!(v6.contains("-A LEVEE -s 2001:db8::/48"), "{v6}");
        assert!(!v6.contains("203.0.113.7"), "{v6}");
        let nft = export(&rules, &[], ExportFormat::Nftables, "now");
        assert!(nft.contains("ip saddr 203.0.113.7/32 drop"), "{nft}");
        assert!(nft.contains("ip6 saddr 2001:db8::/48 drop"), "{nft}");
    }

    #[test]
    fn signature_fields_become_matches() {
        let rules = vec![rule(
            7,
            RuleMatch::Signature {
                destination: "10.0.0.1/32".into(),
                protocol: 6,
                src_port: None,
                dst_port: Some(443),
                tcp_flags: Some("S/SA".into()),
                non_first_fragments: false,
                ip_length: None,
                ip_ttl: None,
                rate_limit_pps: Some(20000),
                check: None,
            },
        )];
        let v4 = export(&rules, &[], ExportFormat::Iptables, "now");
        assert!(
            v4.contains("-d 10.0.0.1/32 -p tcp -m tcp --dport 443 --tcp-flags SYN,ACK SYN -m hashlimit --hashlimit-above 20000/sec"),
            "{v4}"
        );
        let nft = export(&rules, &[], ExportFormat::Nftables, "now");
        assert!(
            nft.contains("ip daddr 10.0.0.1/32 meta l4proto tcp tcp dport 443 tcp flags & (syn | ack) == syn limit rate over 20000/second"),
            "{nft}"
        );
    }

    #[test]
    fn the_allowlist_comes_first_and_lengths_are_matched() {
        let rules = vec![
            rule(
                8,
                RuleMatch::Block {
                    source: "198.51.100.0/24".into(),
                },
            ),
            rule(
                9,
                RuleMatch::Signature {
                    destination: "10.0.0.1/32".into(),
                    protocol: 17,
                    src_port: None,
                    dst_port: Some(27015),
                    tcp_flags: None,
                    non_first_fragments: false,
                    ip_length: Some((88, 228)),
                    ip_ttl: Some((50, 57)),
                    rate_limit_pps: None,
                    check: None,
                },
            ),
        ];
        let allow: Vec<Prefix> = vec!["198.51.100.7/32".parse().expect("prefix")];
        let v4 = export(&rules, &allow, ExportFormat::Iptables, "now");
        let accept =
            v4.find("-s 198.51.100.7/32 -m comment --comment \"levee allowlist\" -j RETURN");
        let drop = v4.find("-s 198.51.100.0/24");
        assert!(accept.is_some() && accept < drop, "{v4}");
        assert!(
            v4.contains(
                "--dport 27015 -m length --length 88:228 -m ttl --ttl-gt 49 -m ttl --ttl-lt 58"
            ),
            "{v4}"
        );
        let nft = export(&rules, &allow, ExportFormat::Nftables, "now");
        let accept = nft.find("ip saddr 198.51.100.7/32 return");
        assert!(
            accept.is_some() && accept < nft.find("ip saddr 198.51.100.0/24 drop"),
            "{nft}"
        );
        assert!(
            nft.contains("ip length 88-228 ip ttl 50-57 meta l4proto udp udp dport 27015"),
            "{nft}"
        );
        // The real tools accept it, where they are installed.
        for (tool, args, text) in [
            ("iptables-restore", &["--test", "--noflush"][..], &v4),
            ("nft", &["-c", "-f", "-"][..], &nft),
        ] {
            use std::io::Write as _;
            let Ok(mut child) = std::process::Command::new(tool)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
            else {
                continue;
            };
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(text.as_bytes());
            }
            let out = child.wait_with_output().expect(tool);
            let err = String::from_utf8_lossy(&out.stderr);
            // Without the privileges to test, the tools say so; that is no verdict.
            if err.contains("Permission denied") || err.contains("Operation not permitted") {
                continue;
            }
            assert!(out.status.success(), "{tool}: {err}\n{text}");
        }
    }
}
