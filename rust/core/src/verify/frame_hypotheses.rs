//! One affine hypothesis per correspondence from its two keypoint frames, every one
//! scored against all correspondences; the best few are refined. Deterministic.

use super::local_optimisation::refine;
use super::{inliers, Correspondences, Verification, VerifyScratch};
use crate::config::{Model, RerankConfig};
use crate::geometry::{affine_from_frames, is_plausible};

/// How many distinct hypotheses are refined (the next one must not be an inlier of a
/// model already refined, so a second consistent cluster gets its chance).
const REFINED_HYPOTHESES: usize = 3;

pub fn verify_with_frames(
    corr: &Correspondences,
    threshold: f64,
    cfg: &RerankConfig,
    scratch: &mut VerifyScratch,
) -> Verification {
    let n = corr.len();
    let max_scale = f64::from(cfg.max_scale_change);
    // The most distinctive pairs (lowest rank key) propose hypotheses.
    scratch.order.clear();
    scratch.order.extend(0..n as u32);
    if n > cfg.max_hypotheses {
        scratch.order.sort_by(|&a, &b| {
            corr.rank_key[a as usize]
                .total_cmp(&corr.rank_key[b as usize])
                .then(a.cmp(&b))
        });
        scratch.order.truncate(cfg.max_hypotheses);
    }
    let scoring = 2.0 * threshold;
    scratch.hypotheses.clear();
    for &i in &scratch.order {
        let i_us = i as usize;
        let Some(t) = affine_from_frames(
            corr.q_shape[i_us],
            corr.c_shape[i_us],
            corr.q[i_us],
            corr.c[i_us],
        ) else {
            continue;
        };
        if !is_plausible(&t, &[corr.q[i_us]], max_scale) {
            continue;
        }
        let count = inliers::count(&t, corr, scoring);
        if count >= 2 {
            scratch.hypotheses.push((count, i, t));
        }
    }
    scratch
        .hypotheses
        .sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut best = Verification::NONE;
    let mut refined = 0;
    let hypotheses = std::mem::take(&mut scratch.hypotheses);
    for &(_, seed, t) in &hypotheses {
        if refined == REFINED_HYPOTHESES {
            break;
        }
        if best.model.is_some()
            && best
                .transform
                .error2(corr.q[seed as usize], corr.c[seed as usize])
                < threshold * threshold
        {
            continue;
        }
        refined += 1;
        let (v, _) = refine(t, Model::Affine, corr, threshold, cfg, scratch);
        if v.inliers > best.inliers {
            best = v;
        }
    }
    scratch.hypotheses = hypotheses;
    best
}
