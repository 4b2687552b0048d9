//! Spatial verification of tentative correspondences between a query and a candidate.
//!
//! With keypoint frames on both sides every correspondence proposes an affine hypothesis
//! (Philbin et al. 2007), all of them scored against all correspondences: deterministic,
//! no sampling. Without frames, seeded LO-RANSAC. Either way the best hypotheses are
//! refined by [`local_optimisation`], which may upgrade the model to a homography.

mod correspondences;
mod frame_hypotheses;
mod inliers;
mod local_optimisation;
mod ransac;
mod rng;

pub use correspondences::Correspondences;
pub use frame_hypotheses::hypothesis_support;
pub use rng::PairRng;

use crate::config::{Model, RerankConfig};
use crate::geometry::Transform;

/// The outcome of verifying one image pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verification {
    /// The model that was fitted, or `None` when no plausible model was found.
    pub model: Option<Model>,
    /// Query-to-candidate transform (NaN when `model` is `None`).
    pub transform: Transform,
    /// Correspondences within the threshold of `transform`.
    pub inliers: u32,
}

impl Verification {
    pub const NONE: Verification = Verification {
        model: None,
        transform: Transform::NAN,
        inliers: 0,
    };
}

/// Reusable buffers of the verifier (one per worker thread).
#[derive(Debug, Default, Clone)]
pub struct VerifyScratch {
    pub(crate) hypotheses: Vec<(u32, u32, Transform)>,
    pub(crate) order: Vec<u32>,
    pub(crate) refined: Vec<u32>,
}

/// Verify `corr` with the inlier threshold `threshold` (pixels in the candidate image).
/// `rng` drives RANSAC only; the frame path is deterministic by construction.
pub fn verify(
    corr: &Correspondences,
    threshold: f64,
    cfg: &RerankConfig,
    rng: &mut PairRng,
    scratch: &mut VerifyScratch,
) -> Verification {
    let minimal = match cfg.model {
        Model::Similarity => 2,
        Model::Affine => 3,
        Model::Homography => 3,
    };
    if corr.len() < minimal.max(cfg.min_inliers as usize).max(2) {
        return Verification::NONE;
    }
    if cfg.use_frames && corr.has_frames() {
        let v = frame_hypotheses::verify_with_frames(corr, threshold, cfg, scratch);
        if v.inliers >= cfg.ransac_fallback_below {
            return v;
        }
        // The frame hypotheses found too little: seeded LO-RANSAC over the same
        // correspondences gets its chance (frames can be wrong where the points are not).
        let r = ransac::verify_with_ransac(corr, threshold, cfg, rng, scratch);
        if r.inliers > v.inliers {
            r
        } else {
            v
        }
    } else {
        ransac::verify_with_ransac(corr, threshold, cfg, rng, scratch)
    }
}

/// Indices of the correspondences within `threshold` of `transform`.
pub fn inlier_mask(corr: &Correspondences, v: &Verification, threshold: f64) -> Vec<bool> {
    if v.model.is_none() {
        return vec![false; corr.len()];
    }
    let t2 = threshold * threshold;
    (0..corr.len())
        .map(|i| v.transform.error2(corr.q[i], corr.c[i]) < t2)
        .collect()
}
