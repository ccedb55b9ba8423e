//! levee's control plane and the `levee` command.
//!
//! The core takes time and input as arguments and returns what to do
//! ([`detect`], [`mitigate`], [`engine`]); the edges do the I/O ([`run`] the
//! DPDK appliance, [`replay`] a capture, [`api`] the admin API, [`integrations`]
//! the outbox's deliveries, [`store`] SQLite, [`client`] the CLI's requests).
//! `docs/DESIGN.md` has the map of which module may use which.

pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod config;
pub mod detect;
pub mod engine;
pub mod forensics;
pub mod ids;
pub mod integrations;
pub mod live;
pub mod mitigate;
pub mod replay;
pub mod resources;
pub mod rule;
pub mod rule_fields;
#[cfg(feature = "dpdk")]
pub mod run;
pub mod service_notify;
pub mod setup;
pub mod store;
pub mod windows;

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration: exit 2.
    Usage(anyhow::Error),
    /// Something failed at run time: exit 1.
    Runtime(anyhow::Error),
}
