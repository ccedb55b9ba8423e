//! The `levee` command line: its commands, their flags, and what each runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::{client, config, replay, Failure};

/// An inline DDoS scrubbing appliance on DPDK.
#[derive(Debug, Parser)]
#[command(name = "levee", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance: EAL, ports, workers.
    Run {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<f64>,
        /// Stop once no packet has been received for this many seconds.
        #[arg(long)]
        exit_when_idle: Option<f64>,
        /// Print the final summary as one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the dataplane's parse/filter/count over a pcap or pcapng capture, with
    /// the capture's timestamps as the clock; prints every window and the totals.
    Replay {
        /// The capture (pcap or pcapng, Ethernet).
        file: PathBuf,
        /// A configuration for the rules and the pipeline (ports are ignored).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also print every window's counters.
        #[arg(long)]
        windows: bool,
        /// Write every frame the pipeline forwarded to this pcap, with its
        /// original timestamp.
        #[arg(long, value_name = "OUT.pcap")]
        forwarded: Option<PathBuf>,
        /// Write every frame the pipeline dropped to this pcap (challenged
        /// SYNs included: they do not reach the server).
        #[arg(long, value_name = "OUT.pcap")]
        dropped: Option<PathBuf>,
        /// Write every SYN levee would have answered with a SYN authentication
        /// challenge to this pcap (a replay cannot send challenges).
        #[arg(long, value_name = "OUT.pcap")]
        challenged: Option<PathBuf>,
    },
    /// Validate a configuration file: exit 0 if valid, 2 naming each bad key.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Incidents of a running levee (admin API client).
    Incidents {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        action: client::incidents::Action,
    },
    /// Mitigation rules of a running levee (admin API client).
    Rules {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        action: client::rules::Action,
    },
    /// Webhooks, AbuseIPDB, CrowdSec and iptables integrations of a running
    /// levee, and their delivery logs (admin API client).
    Integrations {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        action: client::integrations::Action,
    },
    /// Ports, workers and rates of a running levee (admin API client).
    Status {
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Write a reproducible capture of small mixed UDP/TCP frames (for demos,
    /// tests and benchmarks).
    GenerateCapture {
        /// Output pcap file.
        #[arg(long, short)]
        out: PathBuf,
        /// Number of frames.
        #[arg(long, default_value_t = 1024)]
        packets: usize,
        /// Seed of the generator (same seed, same capture).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print levee's man page (roff), e.g. `levee manpage > levee.1`.
    Manpage,
}

/// Parse the command line, run the command, and turn its outcome into the
/// exit code (0 ok, 1 runtime failure, 2 bad usage or configuration).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            duration,
            exit_when_idle,
            json,
        } => cmd_run(&config, duration, exit_when_idle, json),
        Command::Replay {
            file,
            config,
            json,
            windows,
            forwarded,
            dropped,
            challenged,
        } => cmd_replay(
            &file,
            config.as_deref(),
            replay::Output { json, windows },
            &replay::Dumps {
                forwarded,
                dropped,
                challenged,
            },
        ),
        Command::CheckConfig { file } => cmd_check_config(&file),
        Command::Incidents { api, action } => {
            client::Client::new(&api).and_then(|c| client::incidents::run(&c, action))
        }
        Command::Rules { api, action } => {
            client::Client::new(&api).and_then(|c| client::rules::run(&c, action))
        }
        Command::Integrations { api, action } => {
            client::Client::new(&api).and_then(|c| client::integrations::run(&c, action))
        }
        Command::Status { api } => client::Client::new(&api).and_then(|c| client::status::run(&c)),
        Command::GenerateCapture { out, packets, seed } => {
            cmd_generate_capture(&out, packets, seed)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, "levee", &mut text);
            print_bytes(&text)
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut text)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot render the man page: {e}")))
                .and_then(|()| print_bytes(&text))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("levee: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("levee: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Write generated text to stdout; a closed pipe (`| head`) is not an error.
fn print_bytes(text: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    match std::io::stdout().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Runtime(
            anyhow::anyhow!("cannot write to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}

fn init_logging(log: &config::LogConfig) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| log.level.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    let _ = match log.format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        config::LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}

fn seconds(flag: &str, value: Option<f64>) -> Result<Option<Duration>, Failure> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                Failure::Usage(anyhow::anyhow!("--{flag}: {s} is not a number of seconds"))
            })
        })
        .transpose()
}

#[cfg(not(feature = "dpdk"))]
fn cmd_run(
    _path: &std::path::Path,
    duration: Option<f64>,
    idle: Option<f64>,
    _json: bool,
) -> Result<(), Failure> {
    seconds("duration", duration)?;
    seconds("exit-when-idle", idle)?;
    Err(Failure::Usage(anyhow::anyhow!(
        "this levee was built without DPDK (cargo feature `dpdk`): it replays captures, checks configurations and talks to a running levee, but cannot run the appliance"
    )))
}

#[cfg(feature = "dpdk")]
fn cmd_run(
    path: &std::path::Path,
    duration: Option<f64>,
    idle: Option<f64>,
    json: bool,
) -> Result<(), Failure> {
    let config = config::Config::load(path).map_err(|e| Failure::Usage(e.into()))?;
    init_logging(&config.log);
    use crate::run;
    let stop_when = run::StopWhen {
        duration: seconds("duration", duration)?,
        idle: seconds("exit-when-idle", idle)?,
    };
    let summary = run::run(&config, stop_when)?;
    if json {
        let line = serde_json::to_string(&summary).map_err(|e| Failure::Runtime(e.into()))?;
        println!("{line}");
    } else {
        print!("{}", run::render(&summary));
    }
    Ok(())
}

fn cmd_replay(
    file: &std::path::Path,
    config: Option<&std::path::Path>,
    out: replay::Output,
    dumps: &replay::Dumps,
) -> Result<(), Failure> {
    let config = match config {
        Some(path) => config::Config::load_for(path, config::Purpose::Replay)
            .map_err(|e| Failure::Usage(e.into()))?,
        None => config::Config::replay_default(),
    };
    let mut config = config;
    if config.watch_everything_if_unprotected() {
        eprintln!(
            "levee replay: no protected networks ([pipeline] protected): watching every destination"
        );
    }
    init_logging(&config.log);
    let result = replay::replay(file, &config, out, dumps)?;
    replay::print_totals(file, &result.totals, out.json);
    if !out.json {
        println!("{}", result.summary());
    }
    Ok(())
}

fn cmd_check_config(path: &std::path::Path) -> Result<(), Failure> {
    let config = config::Config::load(path).map_err(|e| Failure::Usage(e.into()))?;
    // About this machine, not the file: valid either way, slower on a bad fit.
    for warning in config::host::warnings(&config, &config::host::sysfs_root()) {
        eprintln!("levee: warning: {warning}");
    }
    println!(
        "{}: valid ({:?} mode, {} pair(s), {} worker(s))",
        path.display(),
        config.mode,
        config.pairs.len(),
        config.dpdk.worker_lcores.len()
    );
    Ok(())
}

fn cmd_generate_capture(out: &std::path::Path, packets: usize, seed: u64) -> Result<(), Failure> {
    use levee_dataplane::{pcap, synth};
    let file = std::fs::File::create(out)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("cannot create {}: {e}", out.display())))?;
    let write = || -> std::io::Result<()> {
        let mut w = pcap::PcapWriter::new(std::io::BufWriter::new(file), pcap::LINKTYPE_ETHERNET)?;
        for (ts, _, frame) in synth::mixed_small_traffic(packets, seed, 1_700_000_000_000_000_000) {
            w.write(ts, &frame)?;
        }
        w.finish()?;
        Ok(())
    };
    write()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write {}: {e}", out.display())))?;
    println!("wrote {packets} frames to {}", out.display());
    Ok(())
}
