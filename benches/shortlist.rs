//! End to end: one query re-ranks a shortlist of 100 or 1000 candidates, N = 1024 RootSIFT-
//! like features (D = 128, frames), 10 % of the candidates true matches; float32 and uint8
//! descriptors; one thread vs all cores. Throughput in pairs (candidates) per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ilias_rerank_core::{rerank, Descriptors, Frames, LocalFeaturesRef, RerankConfig};

#[path = "../rust/core/tests/common/mod.rs"]
mod common;

struct Owned {
    pts: Vec<f32>,
    desc: Vec<f32>,
    desc_u8: Vec<u8>,
    frames: Vec<f32>,
}

impl Owned {
    fn new(pts: Vec<f32>, desc: Vec<f32>, frames: Vec<f32>) -> Self {
        // Unit vectors mapped to bytes, a stand-in for quantised RootSIFT.
        let desc_u8 = desc.iter().map(|v| ((v + 1.0) * 127.5) as u8).collect();
        Owned {
            pts,
            desc,
            desc_u8,
            frames,
        }
    }

    fn view(&self, uint8: bool) -> LocalFeaturesRef<'_> {
        let descriptors = if uint8 {
            Descriptors::U8 {
                data: &self.desc_u8,
                dim: 128,
            }
        } else {
            Descriptors::F32 {
                data: &self.desc,
                dim: 128,
            }
        };
        LocalFeaturesRef {
            keypoints: &self.pts,
            descriptors,
            frames: Some(Frames::ScaleOrientation(&self.frames)),
            image_size: Some((800, 1000)),
        }
    }
}

fn shortlist(c: &mut Criterion) {
    let n = 1024;
    let h = common::example_homography(10.0, 0.9, 5e-5);
    let truth = common::planted_scene_dim(1, n, 0.3, 1.0, h, 128);
    let query = Owned::new(truth.q_pts, truth.q_desc, truth.q_frames);
    // True matches (every tenth) share the query's scene; the others are unrelated images.
    let pool: Vec<Owned> = (0..50u64)
        .map(|k| {
            let s = if k % 10 == 0 {
                common::planted_scene_dim(1, n, 0.3, 1.0, h, 128)
            } else {
                common::planted_scene_dim(1000 + k, n, 0.0, 1.0, h, 128)
            };
            Owned::new(s.c_pts, s.c_desc, s.c_frames)
        })
        .collect();
    let mut group = c.benchmark_group("shortlist_n1024");
    group.sample_size(10);
    for uint8 in [false, true] {
        let dtype = if uint8 { "u8" } else { "f32" };
        let q = query.view(uint8);
        for &m in &[100usize, 1000] {
            let cands: Vec<LocalFeaturesRef<'_>> =
                (0..m).map(|j| pool[j % pool.len()].view(uint8)).collect();
            group.throughput(Throughput::Elements(m as u64));
            for threads in [1usize, 0] {
                let cfg = RerankConfig {
                    num_threads: threads,
                    ..Default::default()
                };
                let who = if threads == 1 {
                    "1_thread"
                } else {
                    "all_cores"
                };
                group.bench_with_input(
                    BenchmarkId::new(format!("{dtype}_{who}"), m),
                    &m,
                    |b, _| b.iter(|| rerank(&q, &cands, None, &cfg)),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, shortlist);
criterion_main!(benches);
