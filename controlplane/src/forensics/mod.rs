//! Forensic captures: the sampled packet heads of an incident's target, from a
//! few seconds before it started to its end, as a pcapng that Wireshark and
//! tshark read.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use levee_dataplane::pcap::PcapngWriter;
use levee_dataplane::stats::Sample;
use levee_dataplane::wire::head_destination;

use crate::detect::{mapped_to_ip, Incident, Target};

/// Where and how much to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct ForensicsConfig {
    /// None: no forensic captures.
    pub dir: Option<PathBuf>,
    /// Seconds of samples kept before an incident starts.
    pub lookback_s: u64,
    /// Most packets in one incident's capture.
    pub max_packets: usize,
    /// The captures together stay under this: the oldest are removed.
    pub max_total_bytes: u64,
}

impl Default for ForensicsConfig {
    fn default() -> Self {
        ForensicsConfig {
            dir: None,
            lookback_s: 5,
            max_packets: 100_000,
            max_total_bytes: 1 << 30,
        }
    }
}

/// Recent samples, and the captures of open incidents.
#[derive(Debug)]
pub struct Forensics {
    config: ForensicsConfig,
    recent: VecDeque<Sample>,
    open: BTreeMap<String, (Target, Vec<Sample>)>,
    /// Problems writing captures, for the log.
    pub errors: Vec<String>,
    /// Captures removed to stay under the total size.
    pub removed: u64,
}

fn targeted(target: &Target, s: &Sample) -> bool {
    match (
        target,
        head_destination(&s.data[..usize::from(s.captured_len)]),
    ) {
        (Target::Host(k), Some(ip)) => mapped_to_ip(*k) == ip,
        (Target::Prefix(p), Some(ip)) => p.contains(ip),
        _ => false,
    }
}

impl Forensics {
    pub fn new(config: ForensicsConfig) -> Self {
        Forensics {
            config,
            recent: VecDeque::new(),
            open: BTreeMap::new(),
            errors: Vec::new(),
            removed: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.dir.is_some()
    }

    /// Take a window's samples.
    pub fn samples(&mut self, samples: &[Sample], now_ns: u64) {
        if !self.enabled() {
            return;
        }
        for s in samples {
            for (target, kept) in self.open.values_mut() {
                if kept.len() < self.config.max_packets && targeted(target, s) {
                    kept.push(*s);
                }
            }
            self.recent.push_back(*s);
        }
        let horizon = now_ns.saturating_sub(self.config.lookback_s * 1_000_000_000);
        while self
            .recent
            .front()
            .is_some_and(|s| s.timestamp_ns < horizon)
        {
            self.recent.pop_front();
        }
        // Bounded whatever the rate: samples are already 1 in N packets.
        while self.recent.len() > self.config.max_packets {
            self.recent.pop_front();
        }
    }

    /// An incident started: its capture begins with the seconds before.
    pub fn started(&mut self, incident: &Incident) {
        if !self.enabled() || self.open.contains_key(&incident.id) {
            return;
        }
        let from = incident
            .started_at_ns
            .saturating_sub(self.config.lookback_s * 1_000_000_000);
        let kept: Vec<Sample> = self
            .recent
            .iter()
            .filter(|s| s.timestamp_ns >= from && targeted(&incident.target, s))
            .copied()
            .collect();
        self.open
            .insert(incident.id.clone(), (incident.target, kept));
        self.write(&incident.id);
    }

    /// Rewrite an incident's capture (after an update, and when it resolves).
    pub fn write(&mut self, incident_id: &str) -> Option<PathBuf> {
        let dir = self.config.dir.clone()?;
        let (_, samples) = self.open.get(incident_id)?;
        let path = dir.join(format!("{incident_id}.pcapng"));
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = path.with_extension("pcapng.tmp");
            let mut w = PcapngWriter::new(std::io::BufWriter::new(std::fs::File::create(&tmp)?))?;
            for s in samples {
                w.write_head(
                    s.timestamp_ns,
                    &s.data[..usize::from(s.captured_len)],
                    usize::from(s.original_len),
                )?;
            }
            w.finish()?;
            // Readers never see a half-written capture.
            std::fs::rename(&tmp, &path)
        })();
        match result {
            Ok(()) => {
                self.trim(&dir, &path);
                Some(path)
            }
            Err(e) => {
                self.errors.push(format!("{}: {e}", path.display()));
                None
            }
        }
    }

    /// Remove the oldest captures (`inc_*.pcapng`) until the directory's total
    /// is under the cap; the one just written stays.
    fn trim(&mut self, dir: &std::path::Path, keep: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("inc_") && name.ends_with(".pcapng")
            })
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.config.max_total_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    self.removed += 1;
                }
                Err(e) => self.errors.push(format!("{}: {e}", path.display())),
            }
        }
    }

    /// An incident ended: write its capture a last time and forget it.
    pub fn resolved(&mut self, incident_id: &str) -> Option<PathBuf> {
        let path = self.write(incident_id);
        self.open.remove(incident_id);
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_captures_go_to_stay_under_the_total() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = Forensics::new(ForensicsConfig {
            dir: Some(dir.path().to_owned()),
            max_total_bytes: 2500,
            ..ForensicsConfig::default()
        });
        for i in 0..5 {
            let path = dir.path().join(format!("inc_n_000{i}.pcapng"));
            std::fs::write(&path, vec![0u8; 1000]).expect("write");
            // Distinct modification times, oldest first.
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_modified(t))
                .expect("mtime");
        }
        std::fs::write(dir.path().join("notes.txt"), vec![0u8; 5000]).expect("other file");
        let newest = dir.path().join("inc_n_0004.pcapng");
        f.trim(dir.path(), &newest);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["inc_n_0003.pcapng", "inc_n_0004.pcapng", "notes.txt"]
        );
        assert_eq!(f.removed, 3);
    }
}
