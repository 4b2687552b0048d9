//! Quantised correspondences: the join over words (a hash table of the query's words) agrees with a brute-force
//! reference (same word, Hamming within the threshold, nearest by (distance, row), mutual),
//! the threshold is inclusive, codes of two vocabularies are refused, and a shortlist of
//! codes re-ranks identically on one thread and on several.

use ilias_rerank_core::{
    rerank, rerank_consensus, verify_pair, Descriptors, LocalFeaturesRef, RerankConfig,
};
use proptest::prelude::*;

#[derive(Debug)]
struct Codes {
    kp: Vec<f32>,
    words: Vec<u32>,
    per: usize,
    sigs: Vec<u64>,
}

impl Codes {
    fn view(&self, vocabulary: u64) -> LocalFeaturesRef<'_> {
        LocalFeaturesRef {
            keypoints: &self.kp,
            descriptors: Descriptors::Codes {
                words: &self.words,
                per: self.per,
                signatures: &self.sigs,
                dim: 1,
                vocabulary,
            },
            frames: None,
            image_size: None,
        }
    }
}

fn codes(words: Vec<u32>, per: usize, sigs: Vec<u64>) -> Codes {
    let n = sigs.len();
    let kp = (0..n)
        .flat_map(|i| [i as f32 * 3.0, (i * i % 17) as f32])
        .collect();
    Codes {
        kp,
        words,
        per,
        sigs,
    }
}

/// The reference: for each query row, its nearest candidate row among those whose first
/// word is one of its words and whose Hamming distance is within `tau`; kept when mutual.
fn reference(q: &Codes, c: &Codes, tau: u32, mutual: bool) -> Vec<(u32, u32)> {
    let collide = |i: usize, j: usize| {
        let w = c.words[j * c.per];
        let h = (q.sigs[i] ^ c.sigs[j]).count_ones();
        (q.words[i * q.per..(i + 1) * q.per].contains(&w) && h <= tau).then_some(h)
    };
    let (n, m) = (q.sigs.len(), c.sigs.len());
    let best_q = |i: usize| (0..m).filter_map(|j| collide(i, j).map(|h| (h, j))).min();
    let best_c = |j: usize| (0..n).filter_map(|i| collide(i, j).map(|h| (h, i))).min();
    (0..n)
        .filter_map(|i| {
            let (_, j) = best_q(i)?;
            (!mutual || best_c(j).map(|b| b.1) == Some(i)).then_some((i as u32, j as u32))
        })
        .collect()
}

fn pairs(q: &Codes, c: &Codes, cfg: &RerankConfig) -> Vec<(u32, u32)> {
    let out = verify_pair(&q.view(7), &c.view(7), cfg).expect("valid codes");
    out.matches.iter().map(|m| (m.query, m.candidate)).collect()
}

#[test]
fn threshold_is_inclusive_and_words_must_agree() {
    // query 0: word 5, signature 0; candidate 0: word 5 at distance 3; candidate 1: word 6
    // at distance 0 (another word: never a correspondence).
    let q = codes(vec![5], 1, vec![0]);
    let c = codes(vec![5, 6], 1, vec![0b111, 0]);
    let at = |tau| RerankConfig {
        codes_hamming: tau,
        ..RerankConfig::default()
    };
    assert_eq!(pairs(&q, &c, &at(3)), vec![(0, 0)]);
    assert_eq!(pairs(&q, &c, &at(2)), vec![]);
    // A second word on the query side (multiple assignment) reaches candidate 1.
    let q2 = codes(vec![5, 6], 2, vec![0]);
    assert_eq!(pairs(&q2, &c, &at(3)), vec![(0, 1)]);
}

#[test]
fn mutual_keeps_only_reciprocal_nearest() {
    // Both query rows are nearest to candidate 0; only row 1 (distance 0) is its nearest.
    let q = codes(vec![9, 9], 1, vec![0b1, 0]);
    let c = codes(vec![9], 1, vec![0]);
    let cfg = RerankConfig::default();
    assert_eq!(pairs(&q, &c, &cfg), vec![(1, 0)]);
    let one_way = RerankConfig {
        mutual: false,
        ..cfg
    };
    assert_eq!(pairs(&q, &c, &one_way), vec![(0, 0), (1, 0)]);
}

#[test]
fn codes_of_another_vocabulary_are_refused() {
    let q = codes(vec![1], 1, vec![0]);
    let err = verify_pair(&q.view(1), &q.view(2), &RerankConfig::default()).unwrap_err();
    assert!(err.to_string().contains("vocabulary"), "{err}");
}

#[test]
fn words_of_the_wrong_shape_are_refused() {
    let q = codes(vec![1, 2, 3], 2, vec![0, 0]); // 3 words for 2 features x 2
    let err = verify_pair(&q.view(1), &q.view(1), &RerankConfig::default()).unwrap_err();
    assert!(err.to_string().contains("words"), "{err}");
}

fn arb_codes(per: usize) -> impl Strategy<Value = Codes> {
    (0usize..40).prop_flat_map(move |n| {
        (
            proptest::collection::vec(0u32..6, n * per),
            proptest::collection::vec(any::<u64>().prop_map(|v| v & 0xff), n),
        )
            .prop_map(move |(w, s)| codes(w, per, s))
    })
}

/// Words spread over the whole u32 range, few of them: the query's hash table from words
/// to entries probes past collisions.
fn arb_wide_codes(per: usize) -> impl Strategy<Value = Codes> {
    let wide = vec![
        0u32,
        1,
        1 << 16,
        0x9E37_79B9,
        1 << 31,
        u32::MAX,
        0x1234_5678,
    ];
    (0usize..40).prop_flat_map(move |n| {
        (
            proptest::collection::vec(prop::sample::select(wide.clone()), n * per),
            proptest::collection::vec(any::<u64>().prop_map(|v| v & 0xff), n),
        )
            .prop_map(move |(w, s)| codes(w, per, s))
    })
}

proptest! {
    #[test]
    fn join_matches_brute_force_over_wide_words(
        q in arb_wide_codes(3), c in arb_wide_codes(1), tau in 0u32..9, mutual in any::<bool>()
    ) {
        let cfg = RerankConfig { codes_hamming: tau, mutual, ..RerankConfig::default() };
        prop_assert_eq!(pairs(&q, &c, &cfg), reference(&q, &c, tau, mutual));
    }

    #[test]
    fn join_matches_brute_force(
        q in arb_codes(2), c in arb_codes(1), tau in 0u32..9, mutual in any::<bool>()
    ) {
        let cfg = RerankConfig { codes_hamming: tau, mutual, ..RerankConfig::default() };
        prop_assert_eq!(pairs(&q, &c, &cfg), reference(&q, &c, tau, mutual));
    }
}

#[test]
fn shortlist_is_thread_count_independent() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut make = |n: usize| {
        let words = (0..n).map(|_| (next() % 64) as u32).collect();
        let sigs = (0..n).map(|_| next()).collect();
        codes(words, 1, sigs)
    };
    let q = make(300);
    let cands: Vec<Codes> = (0..12).map(|_| make(300)).collect();
    let views: Vec<_> = cands.iter().map(|c| c.view(3)).collect();
    let run = |threads| {
        let cfg = RerankConfig {
            num_threads: threads,
            codes_hamming: 30,
            ..RerankConfig::default()
        };
        rerank(&q.view(3), &views, None, &cfg).expect("valid")
    };
    assert_eq!(run(1), run(2));
}

/// Codes whose keypoints are those of `codes` (row `i` at the same place on both sides).
fn planted(words: Vec<u32>, bits: u32) -> Codes {
    let n = words.len();
    let sig = if bits == 0 {
        0
    } else {
        u64::MAX >> (64 - bits)
    };
    codes(words, 1, vec![sig; n])
}

#[test]
fn hamming_weights_score_by_summed_inlier_weights() {
    // Candidate 0: 6 correspondences at Hamming 0; candidate 1: 8 at Hamming 20 (within
    // the threshold 24). All verify (the same keypoints on both sides). By count, 8 > 6;
    // with sigma 10 the weights are 1 and exp(-4): 6 > 8 * 0.0183.
    let q = planted((0..8).collect(), 0);
    let near = planted((0..6).collect(), 0);
    let far = planted((0..8).collect(), 20);
    let views = [near.view(7), far.view(7)];
    let count = rerank(&q.view(7), &views, None, &RerankConfig::default()).expect("valid");
    assert_eq!(count.order, vec![1, 0]);
    assert_eq!(count.candidates[1].verification.inliers, 8);
    assert_eq!(count.candidates[1].evidence, 8.0);
    let cfg = RerankConfig {
        codes_sigma: Some(10.0),
        ..RerankConfig::default()
    };
    let weighted = rerank(&q.view(7), &views, None, &cfg).expect("valid");
    assert_eq!(weighted.order, vec![0, 1]);
    assert_eq!(weighted.candidates[0].evidence, 6.0);
    let expected = 8.0 * (-4.0f32).exp();
    assert!((weighted.candidates[1].evidence - expected).abs() < 1e-5);
    // The count still decides min_inliers and is reported as before.
    assert_eq!(weighted.candidates[1].verification.inliers, 8);
    // Lexicographic fusion without global scores: evidence + 1/2.
    assert!((weighted.scores[0] - 6.5).abs() < 1e-9);
    assert!((weighted.scores[1] - (f64::from(expected) + 0.5)).abs() < 1e-5);
}

#[test]
fn consensus_sums_the_weighted_evidence() {
    // Pseudo-query 0 (global top); candidate 1 verifies 6 inliers with it at Hamming 0,
    // candidate 2 verifies 8 at Hamming 20. By count 2 (8) beats 1 (6); with sigma 10,
    // 1 (6) beats 2 (8 exp(-4)).
    let s = planted((0..8).collect(), 0);
    let near = planted((0..6).collect(), 0);
    let far = planted((0..8).collect(), 20);
    let views = [s.view(7), near.view(7), far.view(7)];
    let global = [1.0, 0.5, 0.4];
    let count = rerank_consensus(&views, Some(&global), 1, &RerankConfig::default());
    assert_eq!(count.expect("valid").order, vec![0, 2, 1]);
    let cfg = RerankConfig {
        codes_sigma: Some(10.0),
        ..RerankConfig::default()
    };
    let weighted = rerank_consensus(&views, Some(&global), 1, &cfg).expect("valid");
    assert_eq!(weighted.order, vec![0, 1, 2]);
    // The support reported stays the inlier count.
    assert_eq!(weighted.support[2], 8);
}

#[test]
fn codes_sigma_is_range_checked() {
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY, 257.0] {
        let cfg = RerankConfig {
            codes_sigma: Some(bad),
            ..RerankConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("codes_sigma") && err.contains("expected"),
            "{err}"
        );
    }
}

proptest! {
    #[test]
    fn weighted_evidence_lies_between_zero_and_the_inlier_count(
        q in arb_codes(2), c in arb_codes(1), sigma in 0.5f32..64.0
    ) {
        let views = [c.view(7)];
        let plain = rerank(&q.view(7), &views, None, &RerankConfig {
            codes_hamming: 8, ..RerankConfig::default()
        }).expect("valid");
        let cfg = RerankConfig {
            codes_hamming: 8, codes_sigma: Some(sigma), ..RerankConfig::default()
        };
        let weighted = rerank(&q.view(7), &views, None, &cfg).expect("valid");
        let (p, w) = (plain.candidates[0], weighted.candidates[0]);
        // The weights change the score, never the verification.
        prop_assert_eq!(p.verification.inliers, w.verification.inliers);
        prop_assert_eq!(p.verification.model, w.verification.model);
        prop_assert_eq!(p.evidence, p.verification.inliers as f32);
        prop_assert!(w.evidence >= 0.0);
        prop_assert!(w.evidence <= w.verification.inliers as f32 + 1e-4);
    }
}
