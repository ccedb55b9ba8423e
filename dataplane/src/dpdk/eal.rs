//! The Environment Abstraction Layer: initialised once per process.

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{last_error, DpdkError};

/// Set by the first `Eal::init` attempt: DPDK cannot initialise twice in a process,
/// even after `rte_eal_cleanup`.
static EAL_CLAIMED: AtomicBool = AtomicBool::new(false);

/// A handle on the initialised EAL. Clones share it; `rte_eal_cleanup` runs when the
/// last clone (including those held by ports and mempools) is dropped.
#[derive(Clone, Debug)]
pub struct Eal {
    inner: Arc<EalInner>,
}

#[derive(Debug)]
struct EalInner {
    args: Vec<String>,
}

impl Eal {
    /// Initialise the EAL from its command-line arguments (without the program
    /// name). Fails with [`DpdkError::EalAlreadyInitialised`] on a second call.
    pub fn init<I, S>(args: I) -> Result<Eal, DpdkError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut c_args = Vec::with_capacity(args.len() + 1);
        c_args.push(CString::new("levee").map_err(|_| DpdkError::NulInArgument("levee".into()))?);
        for arg in &args {
            c_args.push(
                CString::new(arg.as_str()).map_err(|_| DpdkError::NulInArgument(arg.clone()))?,
            );
        }
        if EAL_CLAIMED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        // rte_eal_init may permute argv and keep pointers into it (e.g. the program
        // name for logs), so the strings live for the rest of the process.
        let c_args: &'static mut [CString] = Vec::leak(c_args);
        let argv: &'static mut [*mut c_char] = Vec::leak(
            c_args
                .iter_mut()
                .map(|s| s.as_ptr().cast_mut())
                .collect::<Vec<_>>(),
        );
        let argc = c_int::try_from(argv.len()).map_err(|_| DpdkError::EalInit {
            args: args.clone(),
            reason: "too many arguments".into(),
        })?;
        send_logs_to_stderr();
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call
        // (leaked above); EAL_CLAIMED guarantees this is the only call in the process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::EalInit {
                args,
                reason: last_error(),
            });
        }
        Ok(Eal {
            inner: Arc::new(EalInner { args }),
        })
    }

    /// The arguments the EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.inner.args
    }

    /// The DPDK version string, e.g. "DPDK 22.11.4".
    pub fn version() -> String {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_version()) };
        v.to_string_lossy().into_owned()
    }

    /// The lcore the calling thread runs on (the main lcore for the thread that
    /// called `init`).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: valid once the EAL is initialised, which `self` proves.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: the last handle is gone, so no port, mempool or mbuf of ours is
        // alive any more; workers were joined by their owners before dropping ports.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        if ret < 0 {
            tracing::warn!("rte_eal_cleanup failed: {}", super::strerror(ret));
        }
    }
}

/// The time-stamp counter, read with `rte_rdtsc`.
/// Inlined here rather than called through the C shim: the worker reads it on every
/// loop iteration.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        crate::cpu::cycles()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc has no preconditions.
        unsafe { dpdk_sys::levee_rdtsc() }
    }
}

/// TSC ticks per second, as measured by the EAL at initialisation.
pub fn tsc_hz(_eal: &Eal) -> u64 {
    // SAFETY: valid once the EAL is initialised, which the `Eal` argument proves.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// DPDK's Linux EAL logs to stdout by default; levee keeps stdout for its own
/// output (summaries, JSON), so DPDK's log lines go to stderr like levee's.
fn send_logs_to_stderr() {
    // SAFETY: fdopen on the process's stderr descriptor with a valid mode string; the
    // FILE stays open for the life of the process, as DPDK expects of a log stream.
    unsafe {
        let stream = libc::fdopen(2, c"w".as_ptr());
        if !stream.is_null() {
            dpdk_sys::rte_openlog_stream(stream.cast());
        }
    }
}
