//! Two CPU hints the hot path uses without DPDK, a cache prefetch and the cycle
//! counter, and where memory and the running CPU sit (NUMA nodes). With
//! `dpdk` and `memory`, the only modules with `unsafe`; each block says why it
//! is sound.
#![allow(unsafe_code)]

/// Ask the CPU to bring the cache line holding `value` closer (what
/// `rte_prefetch0` does, inlined: a call would cost more than it saves). Safe for
/// any reference; the rule tables use it to overlap the misses of a burst.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    prefetch_ptr((value as *const T).cast());
}

/// As [`prefetch`], for a raw address (which need not be valid: a prefetch never
/// faults).
#[inline(always)]
pub fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint, not an access: it cannot fault whatever the
    // address, and SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The CPU's cycle counter (the TSC on x86_64, what DPDK's `rte_rdtsc` reads);
/// elsewhere nanoseconds of a monotonic clock. Only differences mean anything.
#[inline(always)]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU and has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// The NUMA node of the memory page holding `value`, as the kernel placed it
/// (`None` where the kernel cannot say: no NUMA support, or not Linux).
pub fn memory_node<T>(value: &T) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        const MPOL_F_NODE: libc::c_ulong = 1;
        const MPOL_F_ADDR: libc::c_ulong = 2;
        let addr = (value as *const T).cast::<u8>();
        let mut node: libc::c_int = -1;
        // SAFETY: get_mempolicy with MPOL_F_NODE | MPOL_F_ADDR writes one int to
        // `node` and reads nothing from `addr` (it names a page of ours, which
        // `value` keeps mapped for the call); no node mask is passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_get_mempolicy,
                &mut node as *mut libc::c_int,
                std::ptr::null_mut::<libc::c_ulong>(),
                0 as libc::c_ulong,
                addr,
                MPOL_F_NODE | MPOL_F_ADDR,
            )
        };
        (rc == 0 && node >= 0).then_some(node as u32)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = value;
        None
    }
}

/// The NUMA node of the CPU this thread runs on (`None` where unknown).
pub fn current_node() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        let (mut cpu, mut node): (libc::c_uint, libc::c_uint) = (0, 0);
        // SAFETY: getcpu writes one unsigned int to each of its first two
        // arguments; the third (a cache, unused since Linux 2.6.24) may be null.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_getcpu,
                &mut cpu as *mut libc::c_uint,
                &mut node as *mut libc::c_uint,
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        (rc == 0).then_some(node)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Run `f` with the memory this thread touches first preferred on NUMA node
/// `node` (Linux's MPOL_PREFERRED), then go back to the default policy. Where the
/// kernel refuses (no such node, no NUMA), `f` runs with the default policy:
/// placement is a matter of speed, never of correctness.
pub fn with_memory_on<R>(node: u32, f: impl FnOnce() -> R) -> R {
    #[cfg(target_os = "linux")]
    {
        const MPOL_DEFAULT: libc::c_int = 0;
        const MPOL_PREFERRED: libc::c_int = 1;
        const WORD_BITS: usize = libc::c_ulong::BITS as usize;
        /// Back to the default policy, also if `f` unwinds.
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: MPOL_DEFAULT takes no node mask (null, 0).
                unsafe {
                    libc::syscall(
                        libc::SYS_set_mempolicy,
                        MPOL_DEFAULT,
                        std::ptr::null::<libc::c_ulong>(),
                        0 as libc::c_ulong,
                    );
                }
            }
        }
        let mut mask = [0 as libc::c_ulong; 16];
        let node = node as usize;
        if node >= mask.len() * WORD_BITS {
            return f();
        }
        mask[node / WORD_BITS] |= 1 << (node % WORD_BITS);
        // SAFETY: the kernel reads `maxnode` bits from `mask`, which holds that
        // many; it changes only this thread's policy for future allocations.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_set_mempolicy,
                MPOL_PREFERRED,
                mask.as_ptr(),
                (mask.len() * WORD_BITS) as libc::c_ulong,
            )
        };
        let _restore = (rc == 0).then_some(Restore);
        f()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = node;
        f()
    }
}
