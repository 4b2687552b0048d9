//! Re-ranking contract: the planted true candidate rises to the top; scores are strictly
//! decreasing; results are bit-identical for 1 and many threads; invalid input is a
//! typed error naming the candidate; empty inputs are neutral.

mod common;

use common::{example_homography, planted_scene, Scene};
use ilias_rerank_core::{rerank, Descriptors, Frames, LocalFeaturesRef, RerankConfig, RerankError};

fn view(pts: &[f32], desc: &[f32], frames: &[f32]) -> LocalFeaturesRef<'static> {
    // Leak for 'static test convenience (test process only).
    let pts: &'static [f32] = Box::leak(pts.to_vec().into_boxed_slice());
    let desc: &'static [f32] = Box::leak(desc.to_vec().into_boxed_slice());
    let frames: &'static [f32] = Box::leak(frames.to_vec().into_boxed_slice());
    LocalFeaturesRef {
        keypoints: pts,
        descriptors: Descriptors::F32 {
            data: desc,
            dim: 32,
        },
        frames: Some(Frames::ScaleOrientation(frames)),
        image_size: Some((800, 1000)),
    }
}

/// Query + 20 candidates: candidate 13 is the planted match, the others random scenes.
fn shortlist() -> (LocalFeaturesRef<'static>, Vec<LocalFeaturesRef<'static>>) {
    let truth: Scene = planted_scene(11, 300, 0.4, 0.5, example_homography(20.0, 0.8, 1e-4));
    let query = view(&truth.q_pts, &truth.q_desc, &truth.q_frames);
    let mut cands = Vec::new();
    for j in 0..20u64 {
        if j == 13 {
            cands.push(view(&truth.c_pts, &truth.c_desc, &truth.c_frames));
        } else {
            let other = planted_scene(100 + j, 300, 0.0, 0.0, example_homography(0.0, 1.0, 0.0));
            cands.push(view(&other.c_pts, &other.c_desc, &other.c_frames));
        }
    }
    (query, cands)
}

#[test]
fn the_true_candidate_rises_to_the_top() {
    let (q, c) = shortlist();
    let global: Vec<f32> = (0..20).map(|j| 1.0 - j as f32 * 0.01).collect();
    let out = rerank(&q, &c, Some(&global), &RerankConfig::default()).unwrap();
    assert_eq!(out.order[0], 13);
    assert!(out.candidates[13].verification.inliers >= 100);
    assert!(out.scores.windows(2).all(|w| w[0] > w[1]));
    // Unverified candidates keep their global order.
    let rest: Vec<usize> = out.order[1..]
        .iter()
        .copied()
        .filter(|&j| out.candidates[j].verification.inliers < 4)
        .collect();
    assert!(rest.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (q, c) = shortlist();
    for model in ["homography", "affine", "similarity"] {
        for use_frames in [true, false] {
            let base = RerankConfig {
                model: ilias_rerank_core::Model::parse(model).unwrap(),
                use_frames,
                seed: 5,
                ..Default::default()
            };
            let run = |threads: usize| {
                let cfg = RerankConfig {
                    num_threads: threads,
                    ..base.clone()
                };
                // Debug prints every f64 exactly (and NaN == NaN there): bit-identical.
                format!("{:?}", rerank(&q, &c, None, &cfg).unwrap())
            };
            let one = run(1);
            for threads in [2, 3, 7, 8] {
                assert_eq!(
                    one,
                    run(threads),
                    "{model}, frames {use_frames}, {threads} threads"
                );
            }
            assert_eq!(one, run(1), "a second run");
        }
    }
}

#[test]
fn expansion_and_consensus_do_not_depend_on_the_thread_count() {
    let (q, c) = shortlist();
    let global: Vec<f32> = (0..20).map(|j| 1.0 - j as f32 * 0.01).collect();
    for use_frames in [true, false] {
        let run = |threads: usize| {
            let cfg = RerankConfig {
                expansion: 3,
                expansion_min_inliers: 4,
                use_frames,
                num_threads: threads,
                ..Default::default()
            };
            let expanded = rerank(&q, &c, Some(&global), &cfg).unwrap();
            let consensus =
                ilias_rerank_core::rerank_consensus(&c, Some(&global), 4, &cfg).unwrap();
            format!("{expanded:?} {consensus:?}")
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            assert_eq!(one, run(threads), "frames {use_frames}, {threads} threads");
        }
    }
}

#[test]
fn invalid_candidates_are_named() {
    let (q, mut c) = shortlist();
    let bad: &'static [f32] = Box::leak(vec![f32::NAN; 300 * 32].into_boxed_slice());
    c[4].descriptors = Descriptors::F32 { data: bad, dim: 32 };
    let err = rerank(&q, &c, None, &RerankConfig::default()).unwrap_err();
    assert!(matches!(err, RerankError::NonFinite { .. }));
    assert!(
        err.to_string().starts_with("candidate 4 descriptors"),
        "{err}"
    );

    let (q, mut c) = shortlist();
    let short: &'static [f32] = Box::leak(vec![0.1f32; 300 * 16].into_boxed_slice());
    c[2].descriptors = Descriptors::F32 {
        data: short,
        dim: 16,
    };
    let err = rerank(&q, &c, None, &RerankConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            RerankError::DimensionMismatch {
                expected: 32,
                got: 16,
                ..
            }
        ),
        "{err}"
    );

    let (q, c) = shortlist();
    let err = rerank(&q, &c, Some(&[1.0; 3]), &RerankConfig::default()).unwrap_err();
    assert!(matches!(err, RerankError::Shape { .. }));
    let err = rerank(
        &q,
        &c,
        None,
        &RerankConfig {
            ratio: Some(1.5),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, RerankError::Config { field: "ratio", .. }));
}

#[test]
fn empty_inputs_are_neutral() {
    let (q, c) = shortlist();
    let out = rerank(&q, &[], None, &RerankConfig::default()).unwrap();
    assert!(out.order.is_empty());
    let empty = LocalFeaturesRef {
        keypoints: &[],
        descriptors: Descriptors::F32 { data: &[], dim: 32 },
        frames: None,
        image_size: None,
    };
    let out = rerank(&empty, &c, None, &RerankConfig::default()).unwrap();
    assert_eq!(out.order, (0..20).collect::<Vec<_>>());
    assert!(out
        .candidates
        .iter()
        .all(|o| o.verification.inliers == 0 && o.verification.model.is_none()));
}
