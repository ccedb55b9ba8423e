//! Two CPU hints the hot path uses without DPDK: a cache prefetch and the cycle
//! counter. Besides `dpdk`, the only module with `unsafe`; each block says why
//! it is sound.
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
