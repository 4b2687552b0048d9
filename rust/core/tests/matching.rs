//! Matching contract: mutual nearest neighbours are symmetric (swapping the images swaps
//! the pairs), a subset of the one-directional nearest neighbours, identical across
//! instruction sets, and match brute-force squared-L2 search; ratio and similarity
//! filters only remove matches.

mod common;

use common::{unit_descriptors, Gen};
use ilias_rerank_core::kernels::{nearest_neighbours, Isa, NnScratch, PackedQuery};
use ilias_rerank_core::matching::{match_descriptors, prepare_query};
use ilias_rerank_core::{Descriptors, LocalFeaturesRef, RerankConfig};
use proptest::prelude::*;

fn features<'a>(kp: &'a [f32], desc: &'a [f32], dim: usize) -> LocalFeaturesRef<'a> {
    LocalFeaturesRef {
        keypoints: kp,
        descriptors: Descriptors::F32 { data: desc, dim },
        frames: None,
        image_size: None,
    }
}

fn brute_force_nn(a: &[f32], b: &[f32], dim: usize) -> Vec<usize> {
    a.chunks_exact(dim)
        .map(|x| {
            let mut best = (f64::INFINITY, 0);
            for (j, y) in b.chunks_exact(dim).enumerate() {
                let d: f64 = x.iter().zip(y).map(|(p, q)| f64::from(p - q).powi(2)).sum();
                if d < best.0 {
                    best = (d, j);
                }
            }
            best.1
        })
        .collect()
}

fn mnn_pairs(a: &[f32], b: &[f32], dim: usize, cfg: &RerankConfig) -> Vec<(u32, u32)> {
    let kp_a = vec![0.0f32; 2 * a.len() / dim];
    let kp_b = vec![0.0f32; 2 * b.len() / dim];
    let fa = features(&kp_a, a, dim);
    let fb = features(&kp_b, b, dim);
    let packed = prepare_query(&fa);
    let mut scratch = NnScratch::default();
    let mut out = Vec::new();
    match_descriptors(&packed, &fb, cfg, &mut scratch, &mut out);
    out.iter().map(|m| (m.query, m.candidate)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mnn_is_symmetric_and_a_subset_of_nn(seed in 0u64..10_000, n in 1usize..90, m in 1usize..90, dim in 1usize..70) {
        let mut g = Gen::new(seed);
        let a = unit_descriptors(&mut g, n, dim);
        let b = unit_descriptors(&mut g, m, dim);
        let cfg = RerankConfig { ratio: None, ..Default::default() };
        let ab = mnn_pairs(&a, &b, dim, &cfg);
        let mut ba: Vec<(u32, u32)> = mnn_pairs(&b, &a, dim, &cfg).into_iter().map(|(x, y)| (y, x)).collect();
        ba.sort();
        prop_assert_eq!(&ab, &ba);
        let nn = brute_force_nn(&a, &b, dim);
        for &(i, j) in &ab {
            prop_assert_eq!(nn[i as usize], j as usize);
        }
        // Filters only remove.
        let strict = RerankConfig { ratio: Some(0.8), min_similarity: Some(0.3), ..cfg };
        let filtered = mnn_pairs(&a, &b, dim, &strict);
        prop_assert!(filtered.iter().all(|p| ab.contains(p)));
    }

    #[test]
    fn every_isa_agrees_with_the_portable_kernel(seed in 0u64..10_000, n in 1usize..70, m in 1usize..70, dim in 1usize..140) {
        let mut g = Gen::new(seed);
        let a = unit_descriptors(&mut g, n, dim);
        let b = unit_descriptors(&mut g, m, dim);
        let mut fast = NnScratch::default();
        let mut slow = NnScratch::default();
        let cand = ilias_rerank_core::kernels::CandidateRows::F32(&b);
        nearest_neighbours(&PackedQuery::from_f32(&a, n, dim, Isa::detect()), cand, m, &mut fast);
        nearest_neighbours(&PackedQuery::from_f32(&a, n, dim, Isa::Portable), cand, m, &mut slow);
        for i in 0..n {
            prop_assert!((fast.query_best[i] - slow.query_best[i]).abs() < 1e-4);
        }
        for j in 0..m {
            prop_assert!((fast.cand_best[j] - slow.cand_best[j]).abs() < 1e-4);
        }
        let qu8: Vec<u8> = a.iter().map(|v| ((v + 1.0) * 127.0) as u8).collect();
        let cu8: Vec<u8> = b.iter().map(|v| ((v + 1.0) * 127.0) as u8).collect();
        let cand = ilias_rerank_core::kernels::CandidateRows::U8(&cu8);
        nearest_neighbours(&PackedQuery::from_u8(&qu8, n, dim, Isa::detect()), cand, m, &mut fast);
        nearest_neighbours(&PackedQuery::from_u8(&qu8, n, dim, Isa::Portable), cand, m, &mut slow);
        prop_assert_eq!(&fast.query_arg[..n], &slow.query_arg[..n]);
        prop_assert_eq!(&fast.cand_arg[..m], &slow.cand_arg[..m]);
    }
}

#[test]
fn uint8_matching_finds_exact_copies() {
    let mut g = Gen::new(7);
    let dim = 128;
    let n = 300;
    let a: Vec<u8> = (0..n * dim).map(|_| g.below(256) as u8).collect();
    // Candidate = query rows in reverse order.
    let mut b = Vec::with_capacity(n * dim);
    for i in (0..n).rev() {
        b.extend_from_slice(&a[i * dim..(i + 1) * dim]);
    }
    let kp = vec![0.0f32; 2 * n];
    let fa = LocalFeaturesRef {
        keypoints: &kp,
        descriptors: Descriptors::U8 { data: &a, dim },
        frames: None,
        image_size: None,
    };
    let fb = LocalFeaturesRef {
        descriptors: Descriptors::U8 { data: &b, dim },
        ..fa
    };
    let mut out = Vec::new();
    match_descriptors(
        &prepare_query(&fa),
        &fb,
        &RerankConfig::default(),
        &mut NnScratch::default(),
        &mut out,
    );
    assert_eq!(out.len(), n);
    for m in &out {
        assert_eq!(m.candidate as usize, n - 1 - m.query as usize);
        assert_eq!(m.distance, 0.0);
    }
}

#[test]
fn empty_sides_give_no_matches() {
    let d = vec![0.5f32; 8];
    let kp = vec![0.0f32; 2];
    let one = features(&kp, &d, 8);
    let none = features(&[], &[], 8);
    let mut out = vec![];
    let mut s = NnScratch::default();
    match_descriptors(
        &prepare_query(&none),
        &one,
        &RerankConfig::default(),
        &mut s,
        &mut out,
    );
    assert!(out.is_empty());
    match_descriptors(
        &prepare_query(&one),
        &none,
        &RerankConfig::default(),
        &mut s,
        &mut out,
    );
    assert!(out.is_empty());
}
