//! Seeded LO-RANSAC for correspondences without frames: minimal samples of 2 pairs
//! (similarity) or 3 pairs (affine), adaptive stopping, and local optimisation each time
//! a better model is found. For `Model::Homography` each draw takes 4 pairs and scores two
//! hypotheses: the affine map of the first three (needs only w³ luck at low inlier ratios;
//! local optimisation upgrades it) and the exact homography of all four (robust to strong
//! perspective, where an affine seed covers only part of the plane).

use super::local_optimisation::refine;
use super::{inliers, Correspondences, PairRng, Verification, VerifyScratch};
use crate::config::{Model, RerankConfig};
use crate::geometry::{fit_affine, fit_similarity, homography_from_four, is_plausible};

/// Iterations needed to draw one all-inlier sample with probability `confidence`.
fn iterations_needed(inlier_ratio: f64, sample: usize, confidence: f64) -> u64 {
    let p_good = inlier_ratio.powi(sample as i32).clamp(1e-12, 1.0);
    if p_good >= 1.0 {
        return 1;
    }
    let k = (1.0 - confidence).ln() / (1.0 - p_good).ln();
    if k.is_finite() {
        k.ceil().max(1.0) as u64
    } else {
        u64::MAX
    }
}

fn draw(rng: &mut PairRng, n: usize, out: &mut [u32]) {
    let mut filled = 0;
    while filled < out.len() {
        let v = rng.below(n) as u32;
        if !out[..filled].contains(&v) {
            out[filled] = v;
            filled += 1;
        }
    }
}

pub fn verify_with_ransac(
    corr: &Correspondences,
    threshold: f64,
    cfg: &RerankConfig,
    rng: &mut PairRng,
    scratch: &mut VerifyScratch,
) -> Verification {
    let n = corr.len();
    let max_scale = f64::from(cfg.max_scale_change);
    let (sample_size, drawn) = match cfg.model {
        Model::Similarity => (2, 2),
        Model::Affine => (3, 3),
        Model::Homography => (3, 4),
    };
    if n < drawn {
        return Verification::NONE;
    }
    let mut best = Verification::NONE;
    let mut best_raw = 0u32;
    let mut needed = u64::from(cfg.ransac_max_iterations);
    let mut sample = [0u32; 4];
    let mut it = 0u64;
    while it < needed.min(u64::from(cfg.ransac_max_iterations)) {
        it += 1;
        draw(rng, n, &mut sample[..drawn]);
        let s = &sample[..sample_size];
        let linear = match cfg.model {
            Model::Similarity => fit_similarity(&corr.q, &corr.c, s),
            Model::Affine | Model::Homography => fit_affine(&corr.q, &corr.c, s),
        };
        let projective = if drawn == 4 {
            homography_from_four(&corr.q, &corr.c, &sample)
        } else {
            None
        };
        let at = sample.map(|i| corr.q[i as usize]);
        for (t, kind) in [(linear, Model::Affine), (projective, Model::Homography)] {
            let Some(t) = t else { continue };
            if !is_plausible(&t, &at[..drawn], max_scale) {
                continue;
            }
            let count = inliers::count(&t, corr, threshold);
            if count <= best_raw || (count as usize) < drawn {
                continue;
            }
            best_raw = count;
            let kind = if cfg.model == Model::Similarity {
                Model::Similarity
            } else {
                kind
            };
            let (v, refined_cost) = refine(t, kind, corr, threshold, cfg, scratch);
            let raw_cost = inliers::count_and_cost(&t, corr, threshold).1;
            let v = if v.model.is_some() && refined_cost <= raw_cost {
                v
            } else {
                Verification {
                    model: Some(kind),
                    transform: t.normalised(),
                    inliers: count,
                }
            };
            if v.inliers > best.inliers {
                best = v;
                best_raw = best_raw.max(v.inliers);
                needed = iterations_needed(
                    f64::from(best.inliers) / n as f64,
                    sample_size,
                    cfg.ransac_confidence,
                );
            }
        }
    }
    best
}
