//! End to end: one query re-ranks a shortlist of 100 or 1000 candidates, N = 1024 RootSIFT-
//! like features (D = 128, frames), 10 % of the candidates true matches; one thread vs all
//! cores. Throughput in pairs (candidates) per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ilias_rerank_core::{rerank, Descriptors, Frames, LocalFeaturesRef, RerankConfig};

#[path = "../rust/core/tests/common/mod.rs"]
mod common;

struct Owned {
    pts: Vec<f32>,
    desc: Vec<f32>,
    frames: Vec<f32>,
}

impl Owned {
    fn view(&self) -> LocalFeaturesRef<'_> {
        LocalFeaturesRef {
            keypoints: &self.pts,
            descriptors: Descriptors::F32 {
                data: &self.desc,
                dim: 128,
            },
            frames: Some(Frames::ScaleOrientation(&self.frames)),
            image_size: Some((800, 1000)),
        }
    }
}

fn shortlist(c: &mut Criterion) {
    let n = 1024;
    let h = common::example_homography(10.0, 0.9, 5e-5);
    let truth = common::planted_scene_dim(1, n, 0.3, 1.0, h, 128);
    let query = Owned {
        pts: truth.q_pts.clone(),
        desc: truth.q_desc.clone(),
        frames: truth.q_frames.clone(),
    };
    let pool: Vec<Owned> = (0..50u64)
        .map(|k| {
            let ratio = if k % 10 == 0 { 0.3 } else { 0.0 };
            let s = common::planted_scene_dim(1, n, ratio, 1.0, h, 128);
            let o = common::planted_scene_dim(1000 + k, n, 0.0, 1.0, h, 128);
            // True matches share the query's scene; the others are unrelated images.
            if ratio > 0.0 {
                Owned {
                    pts: s.c_pts,
                    desc: s.c_desc,
                    frames: s.c_frames,
                }
            } else {
                Owned {
                    pts: o.c_pts,
                    desc: o.c_desc,
                    frames: o.c_frames,
                }
            }
        })
        .collect();
    let mut group = c.benchmark_group("shortlist_n1024");
    group.sample_size(10);
    for &m in &[100usize, 1000] {
        let cands: Vec<LocalFeaturesRef<'_>> =
            (0..m).map(|j| pool[j % pool.len()].view()).collect();
        group.throughput(Throughput::Elements(m as u64));
        for threads in [1usize, 0] {
            let cfg = RerankConfig {
                num_threads: threads,
                ..Default::default()
            };
            let label = if threads == 1 {
                "1_thread"
            } else {
                "all_cores"
            };
            group.bench_with_input(BenchmarkId::new(label, m), &m, |b, _| {
                b.iter(|| rerank(&query.view(), &cands, None, &cfg))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, shortlist);
criterion_main!(benches);
