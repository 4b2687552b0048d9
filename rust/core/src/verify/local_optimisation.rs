//! Local optimisation of a hypothesis: least-squares refits on its inliers with
//! shrinking thresholds, then (for `Model::Homography`) normalised-DLT refits kept only
//! when they lower the MSAC cost (support and fit together) below the affine model's.

use super::{inliers, Correspondences, Verification, VerifyScratch};
use crate::config::{Model, RerankConfig};
use crate::geometry::{fit_affine, fit_homography, fit_similarity, is_plausible, Transform};

/// Threshold multiplier of LO round `k` of `rounds`: from 2 down to 1.
fn multiplier(k: u32, rounds: u32) -> f64 {
    if rounds <= 1 {
        1.0
    } else {
        2.0 - f64::from(k) / f64::from(rounds - 1)
    }
}

/// Refine `initial` (of kind `kind`); return the verified model and its MSAC cost.
pub fn refine(
    initial: Transform,
    kind: Model,
    corr: &Correspondences,
    threshold: f64,
    cfg: &RerankConfig,
    scratch: &mut VerifyScratch,
) -> (Verification, f64) {
    let max_scale = f64::from(cfg.max_scale_change);
    let rounds = cfg.local_optimisation_rounds;
    let linear = if cfg.model == Model::Similarity {
        Model::Similarity
    } else {
        Model::Affine
    };
    let mut best_t = initial;
    let mut best_kind = kind;
    if kind != Model::Homography {
        best_kind = linear;
        for k in 0..rounds {
            inliers::collect(
                &best_t,
                corr,
                threshold * multiplier(k, rounds),
                &mut scratch.refined,
            );
            let fitted = match linear {
                Model::Similarity => fit_similarity(&corr.q, &corr.c, &scratch.refined),
                _ => fit_affine(&corr.q, &corr.c, &scratch.refined),
            };
            match fitted {
                Some(t) if is_plausible(&t, &corr.query_box(&scratch.refined)[..1], max_scale) => {
                    best_t = t
                }
                _ => break,
            }
        }
    }
    let (mut best_count, mut best_cost) = inliers::count_and_cost(&best_t, corr, threshold);
    if linear == Model::Affine && best_count < cfg.homography_min_inliers {
        // Little support: prefer the simpler similarity when it explains as many
        // correspondences (an affine map fitted to a handful of points shears freely).
        inliers::collect(&best_t, corr, threshold, &mut scratch.refined);
        if let Some(t) = fit_similarity(&corr.q, &corr.c, &scratch.refined) {
            if is_plausible(&t, &corr.query_box(&scratch.refined)[..1], max_scale) {
                let (n, cost) = inliers::count_and_cost(&t, corr, threshold);
                if n >= best_count {
                    (best_t, best_kind, best_count, best_cost) = (t, Model::Similarity, n, cost);
                }
            }
        }
    }
    if cfg.model == Model::Homography && best_count >= cfg.homography_min_inliers {
        // Grow: refit on the inliers at twice the threshold while the set keeps growing
        // (an affine seed may cover only part of a plane seen in perspective), then refit
        // at the final threshold until the set stops growing there too.
        let mut current = best_t;
        let mut multiplier = 2.0;
        let mut last_size = 0usize;
        for _ in 0..8 * rounds.max(1) + 4 {
            inliers::collect(&current, corr, threshold * multiplier, &mut scratch.refined);
            let size = scratch.refined.len();
            if size < cfg.homography_min_inliers as usize {
                break;
            }
            let Some(h) = fit_homography(&corr.q, &corr.c, &scratch.refined) else {
                break;
            };
            if !is_plausible(&h, &corr.query_box(&scratch.refined), max_scale) {
                break;
            }
            let (n, cost) = inliers::count_and_cost(&h, corr, threshold);
            if cost < best_cost {
                best_t = h;
                best_kind = Model::Homography;
                best_count = n;
                best_cost = cost;
            }
            current = h;
            if size <= last_size {
                if multiplier > 1.0 {
                    multiplier = 1.0;
                    last_size = 0;
                    continue;
                }
                break;
            }
            last_size = size;
        }
    }
    if best_count < 2 {
        return (Verification::NONE, f64::INFINITY);
    }
    let verified = Verification {
        model: Some(best_kind),
        transform: best_t.normalised(),
        inliers: best_count,
    };
    (verified, best_cost)
}
