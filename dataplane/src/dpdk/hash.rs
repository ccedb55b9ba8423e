//! DPDK's `rte_hash` with 4-byte keys: the reference levee's blocklist is
//! benchmarked against (same keys, same batch size, one run).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{strerror, DpdkError, Eal};

static NEXT_HASH: AtomicU32 = AtomicU32::new(0);

/// Keys per `rte_hash_lookup_bulk` call (RTE_HASH_LOOKUP_BULK_MAX).
pub const RTE_HASH_BULK_MAX: usize = 64;

/// An `rte_hash` of u32 keys (stored in network byte order, as addresses are).
#[derive(Debug)]
pub struct RteHashU32 {
    raw: NonNull<dpdk_sys::rte_hash>,
    _eal: Eal,
}

impl RteHashU32 {
    /// A table for `entries` keys with DPDK's default hash function.
    pub fn new(eal: &Eal, entries: u32) -> Result<RteHashU32, DpdkError> {
        let name = format!("levee_h{}", NEXT_HASH.fetch_add(1, Ordering::Relaxed));
        let c_name =
            CString::new(name.clone()).map_err(|_| DpdkError::NulInArgument(name.clone()))?;
        let params = dpdk_sys::rte_hash_parameters {
            name: c_name.as_ptr(),
            entries,
            key_len: 4,
            socket_id: -1,
            ..Default::default()
        };
        // SAFETY: params and the name it points to are valid for the call; the EAL
        // is initialised (we hold an `Eal`). DPDK copies the name.
        let raw = unsafe { dpdk_sys::rte_hash_create(&params) };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::Hash {
            operation: "rte_hash_create",
            reason: super::last_error(),
        })?;
        Ok(RteHashU32 {
            raw,
            _eal: eal.clone(),
        })
    }

    /// Add a key; returns its position.
    pub fn add(&mut self, key: u32) -> Result<i32, DpdkError> {
        let k = key.to_be_bytes();
        // SAFETY: the table is valid; the key points to key_len (4) readable bytes.
        let ret = unsafe { dpdk_sys::rte_hash_add_key(self.raw.as_ptr(), k.as_ptr().cast()) };
        if ret < 0 {
            return Err(DpdkError::Hash {
                operation: "rte_hash_add_key",
                reason: strerror(ret),
            });
        }
        Ok(ret)
    }

    /// Look up to 64 keys; `positions[i]` is the key's position or negative.
    #[inline]
    pub fn lookup_bulk(&self, keys: &[[u8; 4]], positions: &mut [i32]) {
        let n = keys.len().min(positions.len()).min(RTE_HASH_BULK_MAX);
        let mut ptrs = [std::ptr::null::<std::ffi::c_void>(); RTE_HASH_BULK_MAX];
        for i in 0..n {
            ptrs[i] = keys[i].as_ptr().cast();
        }
        // SAFETY: the table is valid; ptrs[..n] point to 4-byte keys borrowed for
        // the call; positions has room for n results.
        unsafe {
            dpdk_sys::rte_hash_lookup_bulk(
                self.raw.as_ptr(),
                ptrs.as_mut_ptr(),
                n as u32,
                positions.as_mut_ptr(),
            );
        }
    }
}

impl Drop for RteHashU32 {
    fn drop(&mut self) {
        // SAFETY: the table was created by us and is no longer used.
        unsafe { dpdk_sys::rte_hash_free(self.raw.as_ptr()) }
    }
}
