//! Packet-buffer pools (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{last_error, DpdkError, Eal};

static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

/// A pool of packet mbufs. Shared by ports (their RX queues allocate from it).
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    _eal: Eal,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the pointer is only
// handed to DPDK functions that may be called from any thread.
unsafe impl Send for Mempool {}
// SAFETY: as above; Mempool exposes no interior state except through DPDK calls.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Create a pool of `size` mbufs with the default data room (2048 + headroom),
    /// a per-lcore cache of `cache` and memory on `socket` (-1: any).
    pub fn new(eal: &Eal, size: u32, cache: u32, socket: i32) -> Result<Mempool, DpdkError> {
        let name = format!("levee_mp{}", NEXT_POOL.fetch_add(1, Ordering::Relaxed));
        let c_name =
            CString::new(name.clone()).map_err(|_| DpdkError::NulInArgument(name.clone()))?;
        let data_room = u16::try_from(dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE).unwrap_or(u16::MAX);
        // SAFETY: the EAL is initialised (we hold an `Eal`), the name is a valid
        // C string copied by DPDK, and the numeric arguments are plain values.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c_name.as_ptr(), size, cache, 0, data_room, socket)
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::Mempool {
            name: name.clone(),
            size,
            reason: last_error(),
        })?;
        Ok(Mempool {
            raw,
            name,
            _eal: eal.clone(),
        })
    }

    /// The pool's DPDK name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Mbufs currently free in the pool (caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid for as long as `self` lives.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently taken from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool pointer is valid for as long as `self` lives.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: ports keep the pool alive (Arc) until they are closed, so no queue
        // refers to it any more; mbufs still owned elsewhere would be a bug upstream.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
