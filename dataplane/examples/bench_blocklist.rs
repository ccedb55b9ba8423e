//! Batched lookups of 1M random IPv4 keys in levee's blocklist table and in DPDK's
//! `rte_hash` (`rte_hash_lookup_bulk`), on the same keys and batches of 32, in one
//! run; prints both rates and their ratio for hit, mixed and miss workloads.
//!
//!   cargo run --release -p levee-dataplane --example bench_blocklist

use std::time::Instant;

use levee_dataplane::dpdk::{Eal, RteHashU32};
use levee_dataplane::synth::Rng;
use levee_dataplane::tables::{BlockEntry, BlockedHosts};

/// The tables on huge pages, as in the appliance.
#[global_allocator]
static ALLOCATOR: levee_dataplane::memory::HugePageAllocator =
    levee_dataplane::memory::HugePageAllocator;

const KEYS: usize = 1 << 20;
const BATCH: usize = 32;
const LOOKUPS: usize = 16 << 20;

fn main() {
    let eal = Eal::init([
        "-l",
        "0",
        "--no-huge",
        "-m",
        "1024",
        "--no-pci",
        "--no-shconf",
        "--log-level=*:error",
    ])
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let mut rng = Rng::new(0x1e7e_e000);
    let mut keys: Vec<u32> = Vec::with_capacity(KEYS);
    let mut seen = std::collections::HashSet::with_capacity(KEYS * 2);
    while keys.len() < KEYS {
        let k = rng.next_u64() as u32;
        if seen.insert(k) {
            keys.push(k);
        }
    }
    let mut misses: Vec<u32> = Vec::with_capacity(KEYS);
    while misses.len() < KEYS {
        let k = rng.next_u64() as u32;
        if !seen.contains(&k) {
            misses.push(k);
        }
    }

    let mut levee = BlockedHosts::with_capacity(KEYS);
    // Both tables get twice the slots of the keys they hold (levee sizes its table so).
    let mut dpdk = RteHashU32::new(&eal, 2 * KEYS as u32).expect("rte_hash_create");
    for (i, k) in keys.iter().enumerate() {
        levee
            .insert(
                *k,
                BlockEntry {
                    rule_id: i as u32,
                    expires_at_ns: u64::MAX,
                },
            )
            .expect("room");
        dpdk.add(*k).expect("rte_hash_add_key");
    }
    println!(
        "blocklist lookup, {KEYS} random IPv4 keys, batches of {BATCH}, {LOOKUPS} lookups per workload; levee table {} MiB",
        levee.memory_bytes() >> 20
    );
    println!(
        "{:<10} {:>16} {:>16} {:>8}",
        "workload", "levee Mlookup/s", "rte_hash Mlookup/s", "ratio"
    );
    for (name, hit_percent) in [("hit", 100u64), ("mixed", 50), ("miss", 0)] {
        // The same pseudo-random sequence of keys for both tables.
        let mut pick = Rng::new(7);
        let sequence: Vec<u32> = (0..LOOKUPS)
            .map(|_| {
                let i = pick.below(KEYS as u64) as usize;
                if pick.below(100) < hit_percent {
                    keys[i]
                } else {
                    misses[i]
                }
            })
            .collect();
        let be: Vec<[u8; 4]> = sequence.iter().map(|k| k.to_be_bytes()).collect();

        let mut found = 0usize;
        let mut out = [None; BATCH];
        let t = Instant::now();
        for batch in sequence.chunks_exact(BATCH) {
            levee.find_bulk(batch, 0, &mut out);
            found += out.iter().filter(|o| o.is_some()).count();
        }
        let levee_rate = LOOKUPS as f64 / t.elapsed().as_secs_f64() / 1e6;

        let mut dpdk_found = 0usize;
        let mut positions = [0i32; BATCH];
        let t = Instant::now();
        for batch in be.chunks_exact(BATCH) {
            dpdk.lookup_bulk(batch, &mut positions);
            dpdk_found += positions.iter().filter(|p| **p >= 0).count();
        }
        let dpdk_rate = LOOKUPS as f64 / t.elapsed().as_secs_f64() / 1e6;
        assert_eq!(found, dpdk_found, "both tables must find the same keys");
        println!(
            "{name:<10} {levee_rate:>16.1} {dpdk_rate:>16.1} {:>8.2}",
            levee_rate / dpdk_rate
        );
    }
}
