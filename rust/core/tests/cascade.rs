//! Cascade contract (`cascade_*` in `RerankConfig`): with no second-pass candidates it is
//! exactly the one-pass re-ranker on the prefixes; with every candidate and a prefix that
//! holds every feature it is exactly the one-pass re-ranker; the second pass re-verifies
//! at most `cascade_candidates` candidates, never a certain one, chosen by the first pass
//! in the documented order; a positive whose strong features fail the first pass is found
//! by the second; results never depend on the thread count; bad settings are refused.

mod common;

use common::{example_homography, planted_scene, Scene};
use ilias_rerank_core::{rerank, Descriptors, Frames, LocalFeaturesRef, RerankConfig, RerankError};
use proptest::prelude::*;

const N: usize = 300;
const D: usize = 32;

fn leak<T: Clone>(v: &[T]) -> &'static [T] {
    Box::leak(v.to_vec().into_boxed_slice())
}

/// The rows of a scene side in reverse order: the planted inliers (rows `0..n_in`) come
/// last, so a short prefix holds none of them.
fn reversed(pts: &[f32], desc: &[f32], frames: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = pts.len() / 2;
    let mut p = Vec::new();
    let mut d = Vec::new();
    let mut f = Vec::new();
    for i in (0..n).rev() {
        p.extend_from_slice(&pts[2 * i..2 * i + 2]);
        d.extend_from_slice(&desc[D * i..D * (i + 1)]);
        f.extend_from_slice(&frames[2 * i..2 * i + 2]);
    }
    (p, d, f)
}

fn view(pts: &[f32], desc: &[f32], frames: &[f32]) -> LocalFeaturesRef<'static> {
    LocalFeaturesRef {
        keypoints: leak(pts),
        descriptors: Descriptors::F32 {
            data: leak(desc),
            dim: D,
        },
        frames: Some(Frames::ScaleOrientation(leak(frames))),
        image_size: Some((800, 1000)),
    }
}

/// Query + 12 candidates: 3 is a positive whose inliers sit in its strongest features,
/// 7 a positive whose inliers sit only in its weakest (rows 180..300 of 300), the others
/// random scenes. Both positives are the same planted scene seen from the query.
fn shortlist() -> (LocalFeaturesRef<'static>, Vec<LocalFeaturesRef<'static>>) {
    let truth: Scene = planted_scene(11, N, 0.4, 0.5, example_homography(20.0, 0.8, 1e-4));
    let (qp, qd, qf) = reversed(&truth.q_pts, &truth.q_desc, &truth.q_frames);
    let query = view(&qp, &qd, &qf);
    let (cp, cd, cf) = reversed(&truth.c_pts, &truth.c_desc, &truth.c_frames);
    // Candidate 3: the inliers first, as a strongest-first store would hold them when the
    // strong features repeat; the query's order stays reversed, so the query's prefix must
    // be long enough to reach them.
    let mut cands = Vec::new();
    for j in 0..12u64 {
        if j == 3 {
            cands.push(view(&truth.c_pts, &truth.c_desc, &truth.c_frames));
        } else if j == 7 {
            cands.push(view(&cp, &cd, &cf));
        } else {
            let other = planted_scene(100 + j, N, 0.0, 0.0, example_homography(0.0, 1.0, 0.0));
            cands.push(view(&other.c_pts, &other.c_desc, &other.c_frames));
        }
    }
    (query, cands)
}

/// Everything but `refined`, bit for bit (Debug prints every f64 exactly).
fn ranking(out: &ilias_rerank_core::RerankOutput) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        out.order, out.scores, out.candidates, out.support, out.expansion
    )
}

fn prefixes(
    q: &LocalFeaturesRef<'static>,
    c: &[LocalFeaturesRef<'static>],
    n: usize,
) -> (LocalFeaturesRef<'static>, Vec<LocalFeaturesRef<'static>>) {
    (q.prefix(n), c.iter().map(|f| f.prefix(n)).collect())
}

#[test]
fn no_second_pass_is_the_one_pass_on_the_prefixes() {
    let (q, c) = shortlist();
    let global: Vec<f32> = (0..12).map(|j| 1.0 - j as f32 * 0.01).collect();
    for n in [1, 50, 150, 299] {
        for use_frames in [true, false] {
            let one = RerankConfig {
                use_frames,
                ..Default::default()
            };
            let cascade = RerankConfig {
                cascade_features: n,
                cascade_candidates: 0,
                ..one.clone()
            };
            let (qp, cp) = prefixes(&q, &c, n);
            let expected = rerank(&qp, &cp, Some(&global), &one).unwrap();
            let got = rerank(&q, &c, Some(&global), &cascade).unwrap();
            assert_eq!(ranking(&expected), ranking(&got), "prefix {n}");
            assert!(got.refined.is_empty());
        }
    }
}

#[test]
fn every_candidate_with_every_feature_is_the_one_pass() {
    let (q, c) = shortlist();
    for global in [None, Some(vec![0.5f32; 12])] {
        for use_frames in [true, false] {
            let one = RerankConfig {
                use_frames,
                seed: 3,
                ..Default::default()
            };
            let expected = rerank(&q, &c, global.as_deref(), &one).unwrap();
            for (features, candidates, rich) in [(N, 12, 0), (N + 5, 100, 0), (150, 12, N)] {
                let cfg = RerankConfig {
                    cascade_features: features,
                    cascade_candidates: candidates,
                    cascade_rich_features: rich,
                    ..one.clone()
                };
                let got = rerank(&q, &c, global.as_deref(), &cfg).unwrap();
                assert_eq!(ranking(&expected), ranking(&got), "{features} {candidates}");
                // Only pairs verified again are refined: none when the first pass held
                // every feature (the second pass is skipped).
                let refined = if features >= N { 0 } else { 12 };
                assert_eq!(got.refined.len(), refined, "{features} {candidates}");
            }
        }
    }
}

#[test]
fn the_second_pass_finds_a_positive_the_prefix_misses() {
    let (q, c) = shortlist();
    // The query's prefix of 150 holds none of its inliers (rows 180..300 reversed).
    let cheap = RerankConfig {
        cascade_features: 150,
        cascade_candidates: 0,
        ..Default::default()
    };
    let first = rerank(&q, &c, None, &cheap).unwrap();
    assert!(first.candidates[7].verification.inliers < 4, "{first:?}");
    assert!(first.candidates[3].verification.inliers < 4);
    let full = rerank(&q, &c, None, &RerankConfig::default()).unwrap();
    assert!(full.candidates[7].verification.inliers >= 100);
    assert_eq!(&full.order[..2], &[3, 7]);
    // Every candidate gets the second pass: both positives rise to the top.
    let all = RerankConfig {
        cascade_candidates: 12,
        ..cheap.clone()
    };
    let out = rerank(&q, &c, None, &all).unwrap();
    assert_eq!(&out.order[..2], &[3, 7]);
    assert_eq!(out.candidates[7], full.candidates[7]);
    // A global score that puts 7 first among the unverified: one second-pass pair is
    // enough to find it.
    let mut global = vec![0.1f32; 12];
    global[7] = 0.9;
    let one = RerankConfig {
        cascade_candidates: 1,
        ..cheap
    };
    let chosen_by_inliers = rerank(&q, &c, None, &one).unwrap();
    let out = rerank(&q, &c, Some(&global), &one).unwrap();
    assert_eq!(out.order[0], 7);
    // Without global scores the first pass's own evidence (inliers, then matches) chooses.
    assert_eq!(chosen_by_inliers.refined.len(), 1);
    assert_eq!(out.refined, vec![7]);
}

#[test]
fn certain_candidates_keep_their_first_pass() {
    let (q, c) = shortlist();
    // A first pass one feature short of all: the second pass really runs.
    let cfg = RerankConfig {
        cascade_features: N - 1,
        cascade_candidates: 12,
        cascade_rich_features: 0,
        cascade_certain_inliers: 50,
        ..Default::default()
    };
    let out = rerank(&q, &c, None, &cfg).unwrap();
    assert!(out.candidates[3].verification.inliers >= 50);
    assert!(!out.refined.contains(&3));
    assert!(!out.refined.contains(&7));
    assert_eq!(out.refined.len(), 10);
}

#[test]
fn bad_cascade_settings_are_refused() {
    let (q, c) = shortlist();
    for (cfg, field) in [
        (
            RerankConfig {
                cascade_features: (1 << 20) + 1,
                ..Default::default()
            },
            "cascade_features",
        ),
        (
            RerankConfig {
                cascade_candidates: (1 << 22) + 1,
                ..Default::default()
            },
            "cascade_candidates",
        ),
        (
            RerankConfig {
                cascade_features: 512,
                cascade_rich_features: 256,
                ..Default::default()
            },
            "cascade_rich_features",
        ),
        (
            RerankConfig {
                cascade_certain_inliers: (1 << 20) + 1,
                ..Default::default()
            },
            "cascade_certain_inliers",
        ),
    ] {
        let err = rerank(&q, &c, None, &cfg).unwrap_err();
        assert!(
            matches!(err, RerankError::Config { field: f, .. } if f == field),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("config.{field}: expected ")) && text.contains(", got "),
            "{text}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any cascade settings: the second pass re-verifies at most `cascade_candidates`
    /// distinct candidates, none certain, the first ones of the documented order; the
    /// result is the same on 1, 2 and 5 threads.
    #[test]
    fn the_cascade_is_bounded_ordered_and_deterministic(
        features in 1usize..=320,
        candidates in 0usize..=14,
        rich_extra in 0usize..=200,
        certain in 0u32..=60,
        with_global in any::<bool>(),
        use_frames in any::<bool>(),
    ) {
        let (q, c) = shortlist();
        let global: Vec<f32> = (0..12).map(|j| ((j * 7) % 5) as f32 * 0.1).collect();
        let g = with_global.then_some(global.as_slice());
        let cfg = RerankConfig {
            cascade_features: features,
            cascade_candidates: candidates,
            cascade_rich_features: if rich_extra == 0 { 0 } else { features + rich_extra },
            cascade_certain_inliers: certain,
            use_frames,
            ..Default::default()
        };
        let run = |threads: usize| {
            rerank(&q, &c, g, &RerankConfig { num_threads: threads, ..cfg.clone() }).unwrap()
        };
        let out = run(1);
        for threads in [2, 5] {
            prop_assert_eq!(format!("{out:?}"), format!("{:?}", run(threads)));
        }
        prop_assert!(out.refined.len() <= candidates);
        let mut seen = out.refined.clone();
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), out.refined.len());
        // The first pass alone, to check the choice.
        let first = rerank(&q, &c, g, &RerankConfig { cascade_candidates: 0, ..cfg.clone() })
            .unwrap()
            .candidates;
        let is_certain = |j: usize| certain > 0 && first[j].verification.inliers >= certain;
        let key = |j: usize| {
            (
                std::cmp::Reverse(first[j].verification.inliers),
                // The global scores here are >= 0: their bits order as they do.
                std::cmp::Reverse(g.map_or(0.0f32, |g| g[j]).to_bits()),
                std::cmp::Reverse(first[j].matches),
                j,
            )
        };
        let mut open: Vec<usize> = (0..12).filter(|&j| !is_certain(j)).collect();
        open.sort_by_key(|&j| key(j));
        open.truncate(candidates);
        // Refined: the chosen pairs whose richer prefixes add a feature (the others are
        // not verified again and keep their first outcome).
        let rich_n = if rich_extra == 0 { usize::MAX } else { features + rich_extra };
        let grows = |n: usize| rich_n.min(n) > features.min(n);
        open.retain(|&j| grows(q.len()) || grows(c[j].len()));
        prop_assert_eq!(&out.refined, &open);
        for (j, (got, was)) in out.candidates.iter().zip(&first).enumerate() {
            if !out.refined.contains(&j) {
                // Debug: NaN transforms compare equal there.
                prop_assert_eq!(format!("{got:?}"), format!("{was:?}"));
            }
        }
        prop_assert!(out.scores.windows(2).all(|w| w[0] > w[1]));
    }
}
