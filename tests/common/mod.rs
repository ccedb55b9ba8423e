//! Helpers shared by the end-to-end tests: write configurations and captures into
//! a temporary directory and run the real `levee` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use levee_dataplane::{pcap, synth};

/// EAL arguments every test uses: no hugepages, no PCI scan, no shared runtime
/// files, so test processes never collide or leave anything behind.
pub const TEST_EAL_ARGS: &str =
    r#"["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--log-level=*:warning"]"#;

pub fn levee() -> Command {
    Command::new(env!("CARGO_BIN_EXE_levee"))
}

/// Write `count` generated frames to `path`; returns them.
pub fn write_capture(path: &Path, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let frames: Vec<(u64, Vec<u8>)> =
        synth::mixed_small_traffic(count, seed, 1_700_000_000_000_000_000)
            .into_iter()
            .map(|(t, _, f)| (t, f))
            .collect();
    let file = std::fs::File::create(path).expect("create capture");
    let mut w = pcap::PcapWriter::new(std::io::BufWriter::new(file), pcap::LINKTYPE_ETHERNET)
        .expect("pcap header");
    for (t, f) in &frames {
        w.write(*t, f).expect("pcap record");
    }
    w.finish().expect("flush capture");
    frames.into_iter().map(|(_, f)| f).collect()
}

/// Every frame of a pcap file.
pub fn read_frames(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let (_, records) = pcap::read_pcap(std::io::BufReader::new(file)).expect("valid capture");
    records.into_iter().map(|r| r.data).collect()
}

pub fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write config");
    path
}

/// Run `levee run --json` to completion; returns the output and the parsed summary.
pub fn run_json(config: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let output = levee()
        .args(["run", "--json", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .expect("start levee");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "levee run failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary in:\n{stdout}"));
    let summary = serde_json::from_str(line).expect("summary is JSON");
    (output, summary)
}

pub fn u(v: &serde_json::Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

/// A configuration for one pair of virtual ports with the test EAL arguments,
/// written as `levee.toml` in `dir`; `extra` is appended (rules, pipeline...).
pub fn pair_config(dir: &Path, mode: &str, outside: &str, inside: &str, extra: &str) -> PathBuf {
    write_config(
        dir,
        "levee.toml",
        &format!(
            "mode = \"{mode}\"\n[dpdk]\neal_args = {TEST_EAL_ARGS}\nmempool_size = 4096\n\
             [[pair]]\noutside = \"{outside}\"\ninside = \"{inside}\"\n{extra}\n"
        ),
    )
}
