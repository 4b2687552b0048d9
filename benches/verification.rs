//! Spatial verification of 500 tentative correspondences at inlier ratios from 5 % to 90 %,
//! with frames (one hypothesis per correspondence) and without (LO-RANSAC).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ilias_rerank_core::{verify_correspondences, Frames, RerankConfig};

#[path = "../rust/core/tests/common/mod.rs"]
mod common;

fn verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_500");
    group.throughput(Throughput::Elements(1));
    for &ratio in &[0.05f64, 0.1, 0.25, 0.5, 0.9] {
        let s = common::planted_scene(
            9,
            500,
            ratio,
            1.0,
            common::example_homography(15.0, 0.9, 1e-4),
        );
        let cfg = RerankConfig::default();
        let pct = (ratio * 100.0) as u32;
        group.bench_with_input(BenchmarkId::new("frames", pct), &ratio, |b, _| {
            b.iter(|| {
                let frames = Some((
                    Frames::ScaleOrientation(&s.q_frames),
                    Frames::ScaleOrientation(&s.c_frames),
                ));
                verify_correspondences(&s.q_pts, &s.c_pts, frames, None, &cfg)
            })
        });
        group.bench_with_input(BenchmarkId::new("ransac", pct), &ratio, |b, _| {
            b.iter(|| verify_correspondences(&s.q_pts, &s.c_pts, None, None, &cfg))
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
