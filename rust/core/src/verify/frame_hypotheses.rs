//! One affine hypothesis per correspondence from its two keypoint frames, every one
//! scored against all correspondences; the best few are refined. Deterministic.

use super::local_optimisation::refine;
use super::{inliers, Correspondences, Verification, VerifyScratch};
use crate::config::{Model, RerankConfig};
use crate::geometry::{affine_from_frames, is_plausible, Transform};

/// The affine map that correspondence `i`'s two frames propose, when it is plausible.
fn hypothesis(corr: &Correspondences, i: usize, max_scale: f64) -> Option<Transform> {
    let t = affine_from_frames(corr.q_shape[i], corr.c_shape[i], corr.q[i], corr.c[i])?;
    is_plausible(&t, &[corr.q[i]], max_scale).then_some(t)
}

/// Threshold at which hypotheses are scored (before refinement), for `threshold`.
fn scoring_threshold(threshold: f64) -> f64 {
    2.0 * threshold
}

/// Support of every correspondence's own frame hypothesis, before any refinement: how
/// many correspondences it maps within the scoring threshold (twice `threshold`); 0 when
/// its frames give no plausible map. A diagnostic of frame conventions: frames whose
/// orientation or scale runs the other way give hypotheses that few pairs support.
pub fn hypothesis_support(corr: &Correspondences, threshold: f64, cfg: &RerankConfig) -> Vec<u32> {
    if !corr.has_frames() {
        return vec![0; corr.len()];
    }
    let max_scale = f64::from(cfg.max_scale_change);
    let scoring = scoring_threshold(threshold);
    (0..corr.len())
        .map(|i| hypothesis(corr, i, max_scale).map_or(0, |t| inliers::count(&t, corr, scoring)))
        .collect()
}

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
    let scoring = scoring_threshold(threshold);
    scratch.hypotheses.clear();
    for &i in &scratch.order {
        let Some(t) = hypothesis(corr, i as usize, max_scale) else {
            continue;
        };
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
