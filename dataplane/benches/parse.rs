//! Parsing cost per frame: Ethernet/IPv4/UDP alone, and a realistic mix (small UDP
//! and TCP, reflector responses, VLAN tags, IPv6, fragments, ARP).
//!
//! The frames (a few hundred, ~40 KiB) stay in cache, as they do in a worker that
//! prefetches each burst before parsing it: this measures the parser, not DRAM.
//!
//!   cargo bench -p levee-dataplane --bench parse

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use levee_dataplane::synth;
use levee_dataplane::wire::parse;

fn bench(c: &mut Criterion) {
    let udp: Vec<Vec<u8>> = synth::mixed_small_traffic(1024, 5, 0)
        .into_iter()
        .filter(|(_, k, _)| matches!(k, synth::MixKind::UdpSmall | synth::MixKind::UdpDns))
        .map(|(_, _, f)| f)
        .collect();
    let mut mix: Vec<Vec<u8>> = synth::mixed_small_traffic(384, 6, 0)
        .into_iter()
        .map(|(_, _, f)| f)
        .collect();
    for _ in 0..2 {
        mix.extend(synth::labelled_mix(7).into_iter().map(|(f, _)| f));
    }

    let mut group = c.benchmark_group("parse");
    for (name, frames) in [("eth_ipv4_udp", &udp), ("realistic_mix", &mix)] {
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for f in frames.iter() {
                    let m = parse(black_box(f));
                    acc = acc.wrapping_add(u32::from(m.src_port) ^ m.class.index() as u32);
                }
                acc
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
