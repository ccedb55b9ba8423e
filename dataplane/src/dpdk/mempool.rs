//! Packet-buffer pools: `rte_pktmbuf_pool_create`, or its steps by hand where
//! its layout costs the workers their L1 cache (4 KiB pages, see
//! [`Mempool::packed`]).

use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{last_error, strerror, DpdkError, Eal};

static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

/// A pool of packet mbufs. Shared by ports (their RX queues allocate from it).
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    packed: bool,
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
        // SAFETY: the EAL is initialised (we hold an `Eal`); both are plain queries.
        let packed = unsafe {
            dpdk_sys::rte_eal_has_hugepages() == 0
                && dpdk_sys::rte_eal_iova_mode() == dpdk_sys::RTE_IOVA_VA
        };
        let mempool_error = |reason| DpdkError::Mempool {
            name: name.clone(),
            size,
            reason,
        };
        let raw = if packed {
            // SAFETY: the EAL is initialised and its I/O addresses are virtual
            // (tested just above).
            unsafe { create_packed(&c_name, size, cache, data_room, socket) }
                .map_err(|code| mempool_error(strerror(code)))?
        } else {
            // SAFETY: the EAL is initialised (we hold an `Eal`), the name is a valid
            // C string copied by DPDK, and the numeric arguments are plain values.
            let raw = unsafe {
                dpdk_sys::rte_pktmbuf_pool_create(
                    c_name.as_ptr(),
                    size,
                    cache,
                    0,
                    data_room,
                    socket,
                )
            };
            NonNull::new(raw).ok_or_else(|| mempool_error(last_error()))?
        };
        Ok(Mempool {
            raw,
            name,
            packed,
            _eal: eal.clone(),
        })
    }

    /// Whether the mbufs are packed one after another rather than one per
    /// page. On 4 KiB pages (`--no-huge`) DPDK keeps every mbuf within a page
    /// of its own, in case a device needs it physically contiguous: every
    /// header then sits at the same offset in its page, hence in the same few
    /// L1 sets, and a burst's headers evict one another. Where I/O addresses
    /// are virtual (`RTE_IOVA_VA`), virtually contiguous is contiguous for a
    /// device too, so the pool is packed; with physical addresses, or in huge
    /// pages (where the pool is packed anyway), DPDK's layout is kept.
    pub fn packed(&self) -> bool {
        self.packed
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

/// `rte_pktmbuf_pool_create`'s steps, with `RTE_MEMPOOL_F_NO_IOVA_CONTIG`: the
/// mbufs may cross page boundaries. On failure, the failing step's errno.
///
/// # Safety
/// The EAL is initialised, and the I/O addresses are virtual (`RTE_IOVA_VA`).
unsafe fn create_packed(
    name: &CStr,
    size: u32,
    cache: u32,
    data_room: u16,
    socket: i32,
) -> Result<NonNull<dpdk_sys::rte_mempool>, i32> {
    let element = std::mem::size_of::<dpdk_sys::rte_mbuf>() as u32 + u32::from(data_room);
    let private_size = std::mem::size_of::<dpdk_sys::rte_pktmbuf_pool_private>() as u32;
    // SAFETY: the caller's EAL; the name is copied by DPDK.
    let pool = unsafe {
        dpdk_sys::rte_mempool_create_empty(
            name.as_ptr(),
            size,
            element,
            cache,
            private_size,
            socket,
            dpdk_sys::RTE_MEMPOOL_F_NO_IOVA_CONTIG,
        )
    };
    // SAFETY: reads the calling thread's rte_errno, which a failed create sets.
    let pool = NonNull::new(pool).ok_or_else(|| unsafe { dpdk_sys::levee_errno() })?;
    let mut private = dpdk_sys::rte_pktmbuf_pool_private {
        mbuf_data_room_size: data_room,
        ..Default::default()
    };
    // SAFETY: `pool` is the empty pool just made, not yet shared; the ops name
    // is DPDK's own static string; `private` is only read during the init call
    // (copied into the pool's private area); then the pool takes its memory.
    let result = unsafe {
        match dpdk_sys::rte_mempool_set_ops_byname(
            pool.as_ptr(),
            dpdk_sys::rte_mbuf_best_mempool_ops(),
            std::ptr::null_mut(),
        ) {
            0 => {
                dpdk_sys::rte_pktmbuf_pool_init(pool.as_ptr(), (&raw mut private).cast::<c_void>());
                dpdk_sys::rte_mempool_populate_default(pool.as_ptr()).min(0)
            }
            failed => failed,
        }
    };
    if result < 0 {
        // SAFETY: the pool is ours alone and no mbuf of it is out.
        unsafe { dpdk_sys::rte_mempool_free(pool.as_ptr()) };
        return Err(result);
    }
    // SAFETY: every object of the populated pool is initialised as an mbuf;
    // `rte_pktmbuf_init` has the callback's signature and takes no argument.
    unsafe {
        dpdk_sys::rte_mempool_obj_iter(
            pool.as_ptr(),
            Some(dpdk_sys::rte_pktmbuf_init),
            std::ptr::null_mut(),
        );
    }
    Ok(pool)
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: ports keep the pool alive (Arc) until they are closed, so no queue
        // refers to it any more; mbufs still owned elsewhere would be a bug upstream.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
