//! `dpdk-sys`: raw bindings to the system DPDK (>= 22.11, found with pkg-config).
//!
//! Two sources of symbols:
//! - bindgen output over an allowlist of DPDK's exported API (EAL, mempool, ethdev,
//!   rte_hash), so the generated surface stays small and reviewable;
//! - `levee_*` functions from `shim/levee_shim.c`, one-line C wrappers that give a
//!   symbol to DPDK's static-inline fast-path functions (rx/tx burst, mbuf
//!   alloc/free, `rte_lcore_id`, `rte_rdtsc`, `rte_errno`, prefetch).
//!
//! Everything here is `unsafe` to call; `levee-dataplane`'s `dpdk` module is the only
//! place that calls it and wraps it in safe types.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all, clippy::pedantic, clippy::undocumented_unsafe_blocks)]
#![allow(
    rustdoc::all,
    improper_ctypes,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
