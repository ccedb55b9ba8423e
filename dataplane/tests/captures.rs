//! Parsing real capture files: generated traffic written as pcap and pcapng, and
//! the same traffic converted by Wireshark's own `editcap`; every frame parses to
//! its expected class, and agrees field by field with tshark's dissection.

use std::path::Path;
use std::process::Command;

use levee_dataplane::pcap::{self, read_capture, PcapWriter, PcapngWriter};
use levee_dataplane::synth;
use levee_dataplane::wire::{parse, ParseStatus};

fn write_both(dir: &Path, mix: &[(Vec<u8>, &str)]) -> (std::path::PathBuf, std::path::PathBuf) {
    let pcap_path = dir.join("mix.pcap");
    let pcapng_path = dir.join("mix.pcapng");
    let mut w = PcapWriter::new(
        std::fs::File::create(&pcap_path).expect("create"),
        pcap::LINKTYPE_ETHERNET,
    )
    .expect("header");
    let mut n =
        PcapngWriter::new(std::fs::File::create(&pcapng_path).expect("create")).expect("header");
    for (i, (frame, _)) in mix.iter().enumerate() {
        let ts = 1_700_000_000_000_000_000 + i as u64 * 1_000_000;
        w.write(ts, frame).expect("write");
        n.write(ts, frame).expect("write");
    }
    w.finish().expect("flush");
    n.finish().expect("flush");
    (pcap_path, pcapng_path)
}

fn classes_of(path: &Path) -> Vec<&'static str> {
    let records = read_capture(std::fs::File::open(path).expect("open")).expect("valid capture");
    records
        .iter()
        .map(|r| {
            let m = parse(&r.data);
            assert!(
                m.status.is_well_formed(),
                "{}: {:?}",
                path.display(),
                m.status
            );
            m.class.name()
        })
        .collect()
}

#[test]
fn every_frame_of_generated_pcap_and_pcapng_gets_its_class() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mix = synth::labelled_mix(3);
    let expected: Vec<&str> = mix.iter().map(|(_, c)| *c).collect();
    let (pcap_path, pcapng_path) = write_both(dir.path(), &mix);
    assert_eq!(classes_of(&pcap_path), expected);
    assert_eq!(classes_of(&pcapng_path), expected);
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn captures_written_by_wireshark_tools_parse_the_same() {
    assert!(
        have("editcap"),
        "editcap (Wireshark) is required: run scripts/install-deps.sh"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mix = synth::labelled_mix(4);
    let expected: Vec<&str> = mix.iter().map(|(_, c)| *c).collect();
    let (pcap_path, _) = write_both(dir.path(), &mix);
    // Wireshark's own pcapng (with its section and interface options), microsecond
    // and nanosecond pcap, and a two-interface pcapng from mergecap.
    let ng = dir.path().join("editcap.pcapng");
    let nsec = dir.path().join("editcap-nsec.pcap");
    for (args, out) in [(vec!["-F", "pcapng"], &ng), (vec!["-F", "nsecpcap"], &nsec)] {
        let st = Command::new("editcap")
            .args(&args)
            .arg(&pcap_path)
            .arg(out)
            .status()
            .expect("editcap");
        assert!(st.success());
        assert_eq!(classes_of(out), expected, "{}", out.display());
    }
    let merged = dir.path().join("merged.pcapng");
    let st = Command::new("mergecap")
        .args(["-a", "-F", "pcapng", "-w"])
        .arg(&merged)
        .arg(&ng)
        .arg(&nsec)
        .status()
        .expect("mergecap");
    assert!(st.success());
    let both: Vec<&str> = expected.iter().chain(&expected).copied().collect();
    assert_eq!(classes_of(&merged), both);
    let original = read_capture(std::fs::File::open(&pcap_path).expect("open")).expect("pcap");
    let converted = read_capture(std::fs::File::open(&ng).expect("open")).expect("pcapng");
    for (a, b) in original.iter().zip(&converted) {
        assert_eq!(a.data, b.data);
        assert_eq!(
            a.timestamp_ns, b.timestamp_ns,
            "timestamps survive the conversion"
        );
    }
}

#[test]
fn fields_agree_with_tshark() {
    assert!(
        have("tshark"),
        "tshark is required: run scripts/install-deps.sh"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut frames: Vec<Vec<u8>> = synth::labelled_mix(5).into_iter().map(|(f, _)| f).collect();
    frames.extend(
        synth::mixed_small_traffic(300, 9, 0)
            .into_iter()
            .map(|(_, _, f)| f),
    );
    let mix: Vec<(Vec<u8>, &str)> = frames.iter().map(|f| (f.clone(), "")).collect();
    let (pcap_path, _) = write_both(dir.path(), &mix);
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap_path)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"])
        .args([
            "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst",
        ])
        .args([
            "-e",
            "udp.srcport",
            "-e",
            "tcp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "tcp.dstport",
        ])
        .args([
            "-e",
            "tcp.flags",
            "-e",
            "ip.ttl",
            "-e",
            "ipv6.hlim",
            "-e",
            "vlan.id",
            "-e",
            "icmp.type",
            "-e",
            "icmpv6.type",
            "-e",
            "ieee8021ad.id",
        ])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), frames.len());
    for (i, (line, frame)) in lines.iter().zip(&frames).enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        let m = parse(frame);
        assert_eq!(
            m.status == ParseStatus::Ok,
            !(f[0].is_empty() && f[1].is_empty()),
            "frame {i}: IP or not"
        );
        let or = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_owned()
            } else {
                a.to_owned()
            }
        };
        let ours = |v: Option<std::net::IpAddr>| v.map(|a| a.to_string()).unwrap_or_default();
        assert_eq!(ours(m.src_ip()), or(f[0], f[1]), "frame {i} source");
        assert_eq!(ours(m.dst_ip()), or(f[2], f[3]), "frame {i} destination");
        let sport = or(f[4], f[5]);
        if !sport.is_empty() {
            assert_eq!(m.src_port.to_string(), sport, "frame {i} source port");
            assert_eq!(
                m.dst_port.to_string(),
                or(f[6], f[7]),
                "frame {i} destination port"
            );
        }
        if !f[8].is_empty() {
            let flags = u16::from_str_radix(f[8].trim_start_matches("0x"), 16).expect("hex flags");
            assert_eq!(u16::from(m.tcp_flags), flags & 0xff, "frame {i} TCP flags");
        }
        let ttl = or(f[9], f[10]);
        if !ttl.is_empty() {
            assert_eq!(m.ttl.to_string(), ttl, "frame {i} TTL");
        }
        // tshark names an 802.1ad service tag ieee8021ad.id and the customer tag vlan.id.
        match (f[14].is_empty(), f[11].is_empty()) {
            (false, _) => assert_eq!(
                (m.vlan[0].to_string(), m.vlan[1].to_string()),
                (f[14].to_owned(), f[11].to_owned()),
                "frame {i} QinQ"
            ),
            (true, false) => assert_eq!(m.vlan[0].to_string(), f[11], "frame {i} VLAN"),
            (true, true) => assert_eq!(m.vlan_count, 0, "frame {i} has no VLAN tag"),
        }
        let icmp = or(f[12], f[13]);
        if !icmp.is_empty() {
            assert_eq!(m.icmp_type.to_string(), icmp, "frame {i} ICMP type");
        }
    }
}
