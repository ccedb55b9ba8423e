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

/// The admin token the API tests configure.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const READER_TOKEN: &str = "test-reader-token-0123456789";

/// An `[api]` section on a free loopback port with both tokens.
pub fn api_section() -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\nread_only_token = \"{READER_TOKEN}\"\n"
    )
}

/// A `levee run` in the background with its admin API; killed when dropped.
pub struct Running {
    child: std::process::Child,
    pub url: String,
    pub config: PathBuf,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    /// Start `levee run --config` and wait until its API listens.
    pub fn start(config: &Path) -> Running {
        Running::start_command(levee(), config)
    }

    /// A levee forwarding a looping capture of normal traffic and `attacks`
    /// (attack-capture.py `--attack` specs) toward 10.0.0.0/24, with its API,
    /// its store in `dir`, and `extra` configuration.
    ///
    /// Only the attacked hosts are protected (judged by the detector). The port
    /// replays its capture in a loop as fast as it can, so the capture's normal
    /// traffic reaches levee at hundreds of times its written rate too: judged,
    /// the busiest of the other servers would cross the detection floor after a
    /// while, sooner or later depending on the machine's speed, and open
    /// incidents of their own that no test asked for.
    pub fn with_attacks(dir: &Path, attacks: &[&str], extra: &str) -> Running {
        let capture = dir.join("attack.pcap");
        let mut args = vec!["--duration", "1", "--normal-pps", "200"];
        for a in attacks {
            args.extend(["--attack", a]);
        }
        attack_capture(&capture, &args);
        let protected: std::collections::BTreeSet<String> = attacks
            .iter()
            .map(|a| {
                let target = a.split(':').nth(4).filter(|t| !t.is_empty());
                format!("\"{}/32\"", target.unwrap_or("10.0.0.1"))
            })
            .collect();
        let config = pair_config(
            dir,
            "inline",
            &format!("net_pcap0,rx_pcap={},infinite_rx=1", capture.display()),
            "net_null0",
            &format!(
                "[pipeline]\nprotected = [{}]\n[store]\npath = \"{}\"\n{}\n{extra}",
                protected.into_iter().collect::<Vec<_>>().join(", "),
                dir.join("levee.db").display(),
                api_section(),
            ),
        );
        Running::start(&config)
    }

    /// `levee run` inside the network namespace `netns` (made by the test).
    pub fn start_in_netns(netns: &str, config: &Path) -> Running {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns])
            .arg(env!("CARGO_BIN_EXE_levee"));
        Running::start_command(command, config)
    }

    pub fn start_command(mut command: Command, config: &Path) -> Running {
        use std::io::BufRead as _;
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start levee");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    let _ = tx.send(line[i + "listening on ".len()..].trim().to_owned());
                }
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let url = match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "levee's API did not come up:\n{}",
                    stderr.lock().map(|s| s.clone()).unwrap_or_default()
                );
            }
        };
        Running {
            child,
            url,
            config: config.to_owned(),
            stderr,
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// An HTTP request with the admin token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(std::time::Duration::from_secs(20))
    }

    /// GET with the admin token; the status and the body as JSON (or Null).
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// The `levee` CLI pointed at this instance through its configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        levee()
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("LEVEE_API", &self.url)
            .output()
            .expect("run the CLI")
    }

    /// Poll `f` every 100 ms until it gives a value, for at most `secs` seconds.
    pub fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; levee's log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// A metric's value once everything the (single) worker counted up to now has
    /// reached the control plane: the worker's window reports are taken in in
    /// order, so two new reports after this call (seen as the forwarded counter
    /// moving twice) mean the one covering this moment is counted.
    pub fn metric_settled(&self, sample: &str) -> Option<f64> {
        let forwarded = || {
            self.metric("levee_forwarded_packets_total{direction=\"inbound\"}")
                .unwrap_or(0.0)
        };
        let mut last = forwarded();
        for _ in 0..2 {
            last = self.wait_for(30, "a new window report", || {
                let now = forwarded();
                (now > last).then_some(now)
            });
        }
        self.metric(sample)
    }

    /// A metric's value from /metrics (the sample whose name and labels start so).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let text = self
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .ok()?
            .text()
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(sample))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper server (a Python script, by its path in the repository) on a
/// loopback port it prints first; killed when dropped.
pub struct Helper {
    child: std::process::Child,
    pub port: u16,
}

impl Helper {
    pub fn start(script: &str, args: &[&str]) -> Helper {
        use std::io::BufRead as _;
        let path = format!("{}/../{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("python3")
            .arg(&path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {path}: {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the helper's port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} printed {line:?}, not a port"));
        Helper { child, port }
    }

    /// scripts/lab/webhook-receiver.py checking signatures with `secret`,
    /// logging to `log`, with `extra` arguments.
    pub fn webhook_receiver(secret: &str, log: &Path, extra: &[&str]) -> Helper {
        let log = log.display().to_string();
        let mut args = vec!["--secret", secret, "--log", &log];
        args.extend_from_slice(extra);
        Helper::start("scripts/lab/webhook-receiver.py", &args)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON lines a helper appended to `path` so far.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Write a capture with `scripts/attack-capture.py` and these arguments.
pub fn attack_capture(path: &Path, args: &[&str]) {
    let status = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/attack-capture.py"
        ))
        .arg(path)
        .args(args)
        .status()
        .expect("attack-capture.py");
    assert!(status.success(), "attack-capture.py {args:?}");
}

/// A loopback port nothing listens on (for now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A tool scripts/install-deps.sh unpacked under $LEVEE_TOOLS.
pub fn tool(relative: &str) -> String {
    let tools = std::env::var("LEVEE_TOOLS").unwrap_or_else(|_| "/opt/levee-tools".into());
    let path = format!("{tools}/{relative}");
    assert!(
        Path::new(&path).exists(),
        "{path} missing: run scripts/install-deps.sh"
    );
    path
}

/// A network namespace made for one test, removed when dropped.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("levee-{tag}-{}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        let st = Command::new("ip")
            .args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
            .status()
            .expect("ip link set lo up");
        assert!(st.success());
        Netns(name)
    }

    /// Run `args` in the namespace with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ip netns exec");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        child.wait_with_output().expect("wait")
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // `ip netns exec` may fork: end what still runs in the namespace.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Rows of a query on a levee store, each value as its debug string; `None`
/// while the store (or the table) does not exist yet.
pub fn store_rows(db: &Path, sql: &str) -> Option<Vec<Vec<String>>> {
    let c = rusqlite::Connection::open(db).ok()?;
    let mut stmt = c.prepare(sql).ok()?;
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    Some(rows)
}
