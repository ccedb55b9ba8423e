//! Launching workers on the lcores the EAL pinned.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{DpdkError, Eal};

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// The enabled lcores other than the main one, in order.
pub fn worker_lcores(_eal: &Eal) -> Vec<u32> {
    let mut lcores = Vec::new();
    let mut i = u32::MAX; // "before the first", as DPDK's RTE_LCORE_FOREACH_WORKER does
    loop {
        // SAFETY: valid once the EAL is initialised (the `Eal` argument proves it).
        i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
        if i >= dpdk_sys::RTE_MAX_LCORE {
            return lcores;
        }
        lcores.push(i);
    }
}

/// The lcore id of the calling thread (u32::MAX on a thread DPDK did not start).
/// The NUMA socket of an lcore's CPU.
pub fn lcore_socket(_eal: &Eal, lcore: u32) -> u32 {
    // SAFETY: valid once the EAL is initialised; an lcore beyond RTE_MAX_LCORE
    // gives DPDK's "any socket" answer, not an access out of bounds.
    unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
}

pub fn current_lcore() -> u32 {
    // SAFETY: reads the calling thread's per-lcore id; no preconditions.
    unsafe { dpdk_sys::levee_lcore_id() }
}

/// A job running on a worker lcore; [`LcoreJoin::join`] waits for its result.
/// Dropping the handle also waits, so a job never outlives what it borrowed.
#[derive(Debug)]
pub struct LcoreJoin {
    lcore: u32,
    joined: bool,
}

impl LcoreJoin {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Wait for the job to finish; returns its result (-1 if it panicked).
    pub fn join(mut self) -> i32 {
        self.joined = true;
        // SAFETY: the lcore was launched by us and is waited for once.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) }
    }
}

impl Drop for LcoreJoin {
    fn drop(&mut self) {
        if !self.joined {
            // SAFETY: as in join; the lcore was launched by us and not waited for yet.
            unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        }
    }
}

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by launch_on_lcore, handed to exactly
    // one lcore, so it is reclaimed exactly once here.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C.
    catch_unwind(AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Run `job` on worker lcore `lcore` (pinned there by the EAL).
pub fn launch_on_lcore<F>(_eal: &Eal, lcore: u32, job: F) -> Result<LcoreJoin, DpdkError>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let job: Box<Job> = Box::new(Box::new(job));
    let arg = Box::into_raw(job);
    // SAFETY: the trampoline reclaims `arg` exactly once if the launch succeeds; the
    // EAL is initialised (the `Eal` argument proves it).
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg.cast(), lcore) };
    if ret != 0 {
        // SAFETY: the launch failed, so the trampoline will never run: reclaim here.
        drop(unsafe { Box::from_raw(arg) });
        return Err(DpdkError::LcoreUnavailable { lcore });
    }
    Ok(LcoreJoin {
        lcore,
        joined: false,
    })
}
