//! Writes seed inputs for the fuzz targets: every frame of the generated traffic
//! (one file per frame) and small pcap/pcapng captures.
//!
//!   cargo run -p levee-dataplane --example write_fuzz_seeds -- fuzz/corpus

use std::path::PathBuf;

use levee_dataplane::{pcap, synth};

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let frames_dir = root.join("parse_frame");
    let captures_dir = root.join("read_capture");
    std::fs::create_dir_all(&frames_dir)?;
    std::fs::create_dir_all(&captures_dir)?;
    let mut frames: Vec<Vec<u8>> = synth::labelled_mix(1).into_iter().map(|(f, _)| f).collect();
    frames.extend(
        synth::mixed_small_traffic(64, 2, 0)
            .into_iter()
            .map(|(_, _, f)| f),
    );
    for (i, f) in frames.iter().enumerate() {
        std::fs::write(frames_dir.join(format!("frame-{i:03}")), f)?;
    }
    let mut p = pcap::PcapWriter::new(Vec::new(), pcap::LINKTYPE_ETHERNET)?;
    let mut n = pcap::PcapngWriter::new(Vec::new())?;
    for (i, f) in frames.iter().take(8).enumerate() {
        p.write(i as u64 * 1000, f)?;
        n.write(i as u64 * 1000, f)?;
    }
    std::fs::write(captures_dir.join("seed.pcap"), p.finish()?)?;
    std::fs::write(captures_dir.join("seed.pcapng"), n.finish()?)?;
    println!(
        "wrote {} frame seeds and 2 capture seeds under {}",
        frames.len(),
        root.display()
    );
    Ok(())
}
