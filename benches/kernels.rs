//! Similarity / nearest-neighbour kernels: one query against one candidate, N x N x 128,
//! float32 and uint8, on the detected instruction set and the portable fallback.
//! Throughput is reported in multiply-adds (N·N·D elements) per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ilias_rerank_core::kernels::{nearest_neighbours, CandidateRows, Isa, NnScratch, PackedQuery};

#[path = "../rust/core/tests/common/mod.rs"]
mod common;

fn kernels(c: &mut Criterion) {
    let dim = 128;
    let mut group = c.benchmark_group("nn_kernel");
    for &n in &[256usize, 512, 1024, 2048] {
        let mut g = common::Gen::new(n as u64);
        let a = common::unit_descriptors(&mut g, n, dim);
        let b = common::unit_descriptors(&mut g, n, dim);
        let au8: Vec<u8> = a.iter().map(|v| ((v + 1.0) * 127.5) as u8).collect();
        let bu8: Vec<u8> = b.iter().map(|v| ((v + 1.0) * 127.5) as u8).collect();
        group.throughput(Throughput::Elements((n * n * dim) as u64));
        let mut scratch = NnScratch::default();
        for isa in [Isa::detect(), Isa::portable()] {
            let packed = PackedQuery::from_f32(&a, n, dim, isa);
            group.bench_with_input(
                BenchmarkId::new(format!("f32_{}", isa.name()), n),
                &n,
                |bch, _| {
                    bch.iter(|| {
                        nearest_neighbours(&packed, CandidateRows::F32(&b), n, &mut scratch)
                    })
                },
            );
            let packed = PackedQuery::from_u8(&au8, n, dim, isa);
            group.bench_with_input(
                BenchmarkId::new(format!("u8_{}", isa.name()), n),
                &n,
                |bch, _| {
                    bch.iter(|| {
                        nearest_neighbours(&packed, CandidateRows::U8(&bu8), n, &mut scratch)
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
