//! Safe wrappers over DPDK, the one module of levee (with the `dpdk-sys` crate and
//! two CPU hints in `crate::cpu`) that contains `unsafe`. Every unsafe block says why it is sound.
//!
//! Start-up is staged the way DPDK wants it: [`Eal::init`] once per process, then
//! [`Mempool::new`], then [`Port::open`] for each port (queues, start), then
//! [`launch_on_lcore`] for each worker. Teardown runs in reverse through `Drop`:
//! ports hold their mempool, and everything holds the EAL, so `rte_eal_cleanup`
//! runs only after the last port and pool are gone.
#![allow(unsafe_code)]

mod eal;
mod hash;
mod lcore;
mod mbuf;
mod mempool;
mod path;
mod port;

pub use eal::{tsc, tsc_hz, Eal};
pub use hash::{RteHashU32, RTE_HASH_BULK_MAX};
pub use lcore::{current_lcore, launch_on_lcore, lcore_socket, worker_lcores, LcoreJoin};
pub use mbuf::MbufBurst;
pub use mempool::Mempool;
pub use path::{DpdkPath, TscClock};
pub use port::{LinkState, Port, PortConfig, PortStats, RxQueue, TxQueue};

use std::ffi::CStr;

/// Errors from DPDK calls. The text is the message shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("the DPDK EAL is already initialised in this process (it can be initialised once)")]
    EalAlreadyInitialised,
    #[error("DPDK EAL initialisation failed with arguments {args:?}: {reason}")]
    EalInit { args: Vec<String>, reason: String },
    #[error("an EAL argument contains a NUL byte: {0:?}")]
    NulInArgument(String),
    #[error("cannot create mempool {name} of {size} mbufs: {reason}")]
    Mempool {
        name: String,
        size: u32,
        reason: String,
    },
    #[error("DPDK has no port {0:?}: its device failed to probe (see DPDK's message above) or is not bound to a DPDK driver")]
    PortNotFound(String),
    #[error("port {port}: {operation} failed: {reason}")]
    Port {
        port: String,
        operation: &'static str,
        reason: String,
    },
    #[error("rte_hash: {operation} failed: {reason}")]
    Hash {
        operation: &'static str,
        reason: String,
    },
    #[error("lcore {lcore} is not an enabled worker lcore, or it is busy")]
    LcoreUnavailable { lcore: u32 },
}

/// The message for a negative errno-style return code, from `rte_strerror`.
pub(crate) fn strerror(code: i32) -> String {
    let code = code.abs();
    // SAFETY: rte_strerror returns a pointer to a static or per-lcore buffer holding a
    // NUL-terminated string for any errno value; it is copied out immediately.
    let message = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(code)) };
    format!("{} (errno {code})", message.to_string_lossy())
}

/// The message for the current `rte_errno`.
pub(crate) fn last_error() -> String {
    // SAFETY: reads the calling thread's rte_errno through the shim; no preconditions.
    strerror(unsafe { dpdk_sys::levee_errno() })
}
