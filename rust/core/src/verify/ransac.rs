//! Seeded LO-RANSAC for correspondences without frames: minimal samples of 2 pairs
//! (similarity) or 3 pairs (affine, and also for `Model::Homography`: local optimisation
//! upgrades a good affine hypothesis to a homography), adaptive stopping, and local
//! optimisation each time a better model is found. Three-point samples need far fewer
//! draws than four-point ones at low inlier ratios (w³ vs w⁴) and planar views are
//! locally affine; `homography_from_four` stays available for callers who want it.

use super::local_optimisation::refine;
use super::{inliers, Correspondences, PairRng, Verification, VerifyScratch};
use crate::config::{Model, RerankConfig};
use crate::geometry::{fit_affine, fit_similarity, is_plausible, Transform};

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
    let sample_size = match cfg.model {
        Model::Similarity => 2,
        Model::Affine | Model::Homography => 3,
    };
    if n < sample_size {
        return Verification::NONE;
    }
    let mut best = Verification::NONE;
    let mut best_raw = 0u32;
    let mut needed = u64::from(cfg.ransac_max_iterations);
    let mut sample = [0u32; 3];
    let mut it = 0u64;
    while it < needed.min(u64::from(cfg.ransac_max_iterations)) {
        it += 1;
        draw(rng, n, &mut sample[..sample_size]);
        let s = &sample[..sample_size];
        let fitted: Option<Transform> = match cfg.model {
            Model::Similarity => fit_similarity(&corr.q, &corr.c, s),
            Model::Affine | Model::Homography => fit_affine(&corr.q, &corr.c, s),
        };
        let Some(t) = fitted else { continue };
        let at = sample.map(|i| corr.q[i as usize]);
        if !is_plausible(&t, &at[..sample_size], max_scale) {
            continue;
        }
        let count = inliers::count(&t, corr, threshold);
        if count <= best_raw || (count as usize) < sample_size {
            continue;
        }
        best_raw = count;
        let kind = if cfg.model == Model::Similarity {
            Model::Similarity
        } else {
            Model::Affine
        };
        let v = refine(t, kind, corr, threshold, cfg, scratch);
        let v = if v.inliers >= count {
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
    best
}
