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
        nearest_neighbours(&PackedQuery::from_f32(&a, n, dim, Isa::portable()), cand, m, &mut slow);
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
        nearest_neighbours(&PackedQuery::from_u8(&qu8, n, dim, Isa::portable()), cand, m, &mut slow);
        // uint8 is exact: bit-identical distances, the same neighbours and tie-breaks.
        prop_assert_eq!(&fast.query_arg[..n], &slow.query_arg[..n]);
        prop_assert_eq!(&fast.cand_arg[..m], &slow.cand_arg[..m]);
        prop_assert_eq!(&fast.query_best[..n], &slow.query_best[..n]);
        prop_assert_eq!(&fast.query_second[..n], &slow.query_second[..n]);
        prop_assert_eq!(&fast.cand_best[..m], &slow.cand_best[..m]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The AMX kernel takes whole 64-byte steps: at those dimensions, with few distinct
    /// byte values (many ties) and block tails of every length, it must give the portable
    /// kernel's result bit for bit (elsewhere the VNNI kernel runs).
    #[test]
    fn uint8_kernels_agree_at_whole_64_byte_steps(
        seed in 0u64..10_000, n in 1usize..100, m in 1usize..100, chunks in 1usize..4, levels in 2usize..256
    ) {
        let mut g = Gen::new(seed);
        let dim = 64 * chunks;
        let qu8: Vec<u8> = (0..n * dim).map(|_| (g.below(levels) * 255 / (levels - 1)) as u8).collect();
        let cu8: Vec<u8> = (0..m * dim).map(|_| (g.below(levels) * 255 / (levels - 1)) as u8).collect();
        let mut fast = NnScratch::default();
        let mut slow = NnScratch::default();
        let cand = ilias_rerank_core::kernels::CandidateRows::U8(&cu8);
        nearest_neighbours(&PackedQuery::from_u8(&qu8, n, dim, Isa::detect()), cand, m, &mut fast);
        nearest_neighbours(&PackedQuery::from_u8(&qu8, n, dim, Isa::portable()), cand, m, &mut slow);
        prop_assert_eq!(&fast.query_arg[..n], &slow.query_arg[..n]);
        prop_assert_eq!(&fast.query_best[..n], &slow.query_best[..n]);
        prop_assert_eq!(&fast.query_second[..n], &slow.query_second[..n]);
        prop_assert_eq!(&fast.cand_arg[..m], &slow.cand_arg[..m]);
        prop_assert_eq!(&fast.cand_best[..m], &slow.cand_best[..m]);
        prop_assert_eq!(&fast.cand_norms[..m], &slow.cand_norms[..m]);
    }
}

/// Where the CPU lists AMX-INT8 and Linux grants the tile state, the detected kernel is
/// the AMX one (so the agreement tests above test it), unless `ILIAS_RERANK_NO_AMX` is set.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn the_amx_kernel_runs_where_the_cpu_and_the_os_allow_it() {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let listed = flags.split_whitespace().any(|f| f == "amx_int8");
    let off = std::env::var("ILIAS_RERANK_NO_AMX").is_ok_and(|v| !v.is_empty() && v != "0")
        || std::env::var("ILIAS_RERANK_FORCE_PORTABLE").is_ok_and(|v| !v.is_empty() && v != "0");
    // SAFETY: asks for this process's permission to use the tile state (ARCH_REQ_XCOMP_PERM,
    // XFEATURE_XTILEDATA); no memory is passed.
    let granted = unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1023, 18) } == 0;
    if listed && granted && !off {
        assert_eq!(Isa::detect().name(), "avx512-amx");
    } else {
        assert_ne!(Isa::detect().name(), "avx512-amx");
    }
}

/// Candidate rows read in place (64-byte aligned, whole 16-row steps) and copied
/// (misaligned, or a partial last step) give the portable kernel's result.
#[test]
fn uint8_kernels_agree_on_aligned_and_misaligned_candidates() {
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Line([u8; 64]);
    let mut g = Gen::new(11);
    for dim in [64usize, 128] {
        let n = 70;
        let q: Vec<u8> = (0..n * dim).map(|_| g.below(4) as u8 * 60).collect();
        for m in [16usize, 32, 48, 17] {
            let mut lines = vec![Line([0; 64]); (m * dim).div_ceil(64) + 1];
            // SAFETY: the lines are plain initialised bytes, borrowed mutably once.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), 64 * lines.len())
            };
            for offset in [0usize, 1] {
                let cand = &mut bytes[offset..offset + m * dim];
                for v in cand.iter_mut() {
                    *v = g.below(4) as u8 * 60;
                }
                assert_eq!(
                    cand.as_ptr().align_offset(64),
                    if offset == 0 { 0 } else { 63 }
                );
                let rows = ilias_rerank_core::kernels::CandidateRows::U8(cand);
                let (mut fast, mut slow) = (NnScratch::default(), NnScratch::default());
                nearest_neighbours(
                    &PackedQuery::from_u8(&q, n, dim, Isa::detect()),
                    rows,
                    m,
                    &mut fast,
                );
                nearest_neighbours(
                    &PackedQuery::from_u8(&q, n, dim, Isa::portable()),
                    rows,
                    m,
                    &mut slow,
                );
                assert_eq!(
                    fast.query_arg[..n],
                    slow.query_arg[..n],
                    "dim {dim} m {m} offset {offset}"
                );
                assert_eq!(fast.query_best[..n], slow.query_best[..n]);
                assert_eq!(fast.query_second[..n], slow.query_second[..n]);
                assert_eq!(fast.cand_arg[..m], slow.cand_arg[..m]);
                assert_eq!(fast.cand_best[..m], slow.cand_best[..m]);
            }
        }
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

/// Brute-force mutual nearest neighbours by Hamming distance, with the Lowe ratio on
/// `sqrt(4h)` (binary descriptors read as ±1 vectors); ties keep the lowest index.
fn hamming_mnn(a: &[u64], b: &[u64], words: usize, ratio: f32) -> Vec<(u32, u32)> {
    let h =
        |x: &[u64], y: &[u64]| -> u32 { x.iter().zip(y).map(|(p, q)| (p ^ q).count_ones()).sum() };
    let best_of = |x: &[u64], set: &[u64]| -> (usize, u32, u32) {
        let mut best = (usize::MAX, u32::MAX, u32::MAX);
        for (j, y) in set.chunks_exact(words).enumerate() {
            let d = h(x, y);
            if d < best.1 {
                best = (j, d, best.1);
            } else if d < best.2 {
                best.2 = d;
            }
        }
        best
    };
    let mut out = Vec::new();
    for (i, x) in a.chunks_exact(words).enumerate() {
        let (j, d, second) = best_of(x, b);
        let (back, _, _) = best_of(&b[j * words..(j + 1) * words], a);
        let passes_ratio = second == u32::MAX || (d as f32) <= ratio * ratio * second as f32;
        if back == i && passes_ratio {
            out.push((i as u32, j as u32));
        }
    }
    out
}

proptest! {
    #[test]
    fn binary_matching_is_brute_force_hamming_mnn(
        seed in 0u64..1000, n in 1usize..60, m in 1usize..60, words in 1usize..4,
        flips in 0u32..40,
    ) {
        let mut g = Gen::new(seed);
        let b: Vec<u64> = (0..m * words).map(|_| g.bits()).collect();
        // Queries: noisy copies of candidates (so that matches exist) and random rows.
        let a: Vec<u64> = (0..n)
            .flat_map(|i| {
                let mut row: Vec<u64> = if i % 2 == 0 {
                    b[(i % m) * words..(i % m + 1) * words].to_vec()
                } else {
                    (0..words).map(|_| g.bits()).collect()
                };
                for _ in 0..(flips as usize % (16 * words)) {
                    let bit = (g.bits() % (64 * words as u64)) as usize;
                    row[bit / 64] ^= 1u64 << (bit % 64);
                }
                row
            })
            .collect();
        let (kp_a, kp_b) = (vec![0.0f32; 2 * n], vec![0.0f32; 2 * m]);
        let fa = LocalFeaturesRef { keypoints: &kp_a, descriptors: Descriptors::Binary { data: &a, dim: words }, frames: None, image_size: None };
        let fb = LocalFeaturesRef { keypoints: &kp_b, descriptors: Descriptors::Binary { data: &b, dim: words }, frames: None, image_size: None };
        let cfg = RerankConfig::default();
        let packed = prepare_query(&fa);
        let (mut scratch, mut got) = (NnScratch::default(), Vec::new());
        match_descriptors(&packed, &fb, &cfg, &mut scratch, &mut got);
        let pairs: Vec<(u32, u32)> = got.iter().map(|m| (m.query, m.candidate)).collect();
        prop_assert_eq!(pairs, hamming_mnn(&a, &b, words, cfg.ratio.unwrap()));
        for m in &got {
            let h: u32 = a[m.query as usize * words..][..words].iter()
                .zip(&b[m.candidate as usize * words..][..words])
                .map(|(p, q)| (p ^ q).count_ones()).sum();
            prop_assert_eq!(m.distance, 4.0 * h as f32);
        }
    }
}
