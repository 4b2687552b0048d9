//! Verification contract: a planted homography is recovered under pixel noise and 80 %
//! outliers, with frames (deterministic hypotheses) and without (seeded RANSAC); the
//! inlier set is nearly the planted one; degenerate input gives no model, not an error.
//!
//! Frame hypotheses extrapolate one keypoint's local similarity, so their property is
//! stated for perspective up to 1e-4 (about 10 % scale change across a 1000-px view);
//! RANSAC's covers 2e-4 (about 20 %).

mod common;

use common::{apply, example_homography, planted_scene, Scene};
use ilias_rerank_core::{verify_correspondences, Frames, Model, RerankConfig};
use proptest::prelude::*;

fn check_recovery(s: &Scene, mask: &[bool], t: &[f64; 9]) -> Result<(), TestCaseError> {
    // The estimate maps a grid over the query region close to the truth.
    let mut worst: f64 = 0.0;
    for x in (100..=900).step_by(200) {
        for y in (100..=700).step_by(200) {
            let p = [f64::from(x), f64::from(y)];
            let (a, b) = (apply(&s.h, p), apply(t, p));
            worst = worst.max(((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt());
        }
    }
    prop_assert!(worst < 4.0, "grid error {worst}");
    let planted = s.is_inlier.iter().filter(|&&b| b).count();
    let kept = s
        .is_inlier
        .iter()
        .zip(mask)
        .filter(|(&i, &m)| i && m)
        .count();
    prop_assert!(
        kept as f64 >= 0.9 * planted as f64,
        "kept {kept} of {planted}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn frames_recover_a_planted_homography(seed in 0u64..100_000, angle in -60.0f64..60.0, scale in 0.6f64..1.6, persp in -1e-4f64..1e-4) {
        let h = example_homography(angle, scale, persp);
        let s = planted_scene(seed, 400, 0.2, 0.7, h);
        let cfg = RerankConfig { reference_side: 0.0, inlier_threshold: 4.0, ..Default::default() };
        let frames = Some((Frames::ScaleOrientation(&s.q_frames), Frames::ScaleOrientation(&s.c_frames)));
        let (v, mask) = verify_correspondences(&s.q_pts, &s.c_pts, frames, None, &cfg).unwrap();
        prop_assert_eq!(v.model, Some(Model::Homography));
        check_recovery(&s, &mask, &v.transform.0)?;
    }

    #[test]
    fn ransac_recovers_a_planted_homography(seed in 0u64..100_000, angle in -60.0f64..60.0, scale in 0.6f64..1.6, persp in -2e-4f64..2e-4) {
        let h = example_homography(angle, scale, persp);
        let s = planted_scene(seed, 400, 0.2, 0.7, h);
        let cfg = RerankConfig { reference_side: 0.0, inlier_threshold: 4.0, ransac_max_iterations: 5000, ..Default::default() };
        let (v, mask) = verify_correspondences(&s.q_pts, &s.c_pts, None, None, &cfg).unwrap();
        prop_assert_eq!(v.model, Some(Model::Homography));
        check_recovery(&s, &mask, &v.transform.0)?;
    }
}

#[test]
fn pure_outliers_verify_few_inliers() {
    let s = planted_scene(3, 300, 0.0, 0.0, example_homography(0.0, 1.0, 0.0));
    let frames = Some((
        Frames::ScaleOrientation(&s.q_frames),
        Frames::ScaleOrientation(&s.c_frames),
    ));
    let (v, _) =
        verify_correspondences(&s.q_pts, &s.c_pts, frames, None, &RerankConfig::default()).unwrap();
    assert!(v.inliers < 12, "{} inliers among random points", v.inliers);
}

#[test]
fn too_few_or_degenerate_correspondences_give_no_model() {
    let cfg = RerankConfig::default();
    let (v, mask) = verify_correspondences(&[], &[], None, None, &cfg).unwrap();
    assert_eq!((v.model, v.inliers, mask.len()), (None, 0, 0));
    // Ten copies of one point: no model can be fitted.
    let q = [5.0f32, 5.0].repeat(10);
    let (v, _) = verify_correspondences(&q, &q, None, None, &cfg).unwrap();
    assert_eq!(v.model, None);
}

#[test]
fn non_finite_points_are_an_error() {
    let q = [1.0f32, 2.0, f32::NAN, 4.0];
    let err =
        verify_correspondences(&q, &[0.0; 4], None, None, &RerankConfig::default()).unwrap_err();
    assert!(err.to_string().contains("query_points"), "{err}");
}
