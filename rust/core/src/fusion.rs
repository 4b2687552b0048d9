//! Fusion of inlier counts with global scores into one distinct, descending score list.

use crate::config::{Fusion, RerankConfig};

/// The order (best first) and the fused scores aligned with it.
///
/// `global[j]` is candidate `j`'s global score; without global scores every candidate
/// gets 0 and the input order (assumed to be the shortlist's) breaks ties. Candidates
/// with fewer than `min_inliers` inliers count as unverified (0 inliers). Ties left after
/// fusion are broken by input order and the scores nudged down by one ulp each, so that
/// scores are strictly decreasing (evaluators such as ILIAS's group tied scores).
pub fn fuse(inliers: &[u32], global: Option<&[f32]>, cfg: &RerankConfig) -> (Vec<usize>, Vec<f64>) {
    let evidence: Vec<f64> = inliers
        .iter()
        .map(|&n| {
            if n >= cfg.min_inliers {
                f64::from(n)
            } else {
                0.0
            }
        })
        .collect();
    fuse_evidence(&evidence, global, cfg)
}

/// As [`fuse`], from each candidate's verification evidence already counted (0 for an
/// unverified candidate; the inliers, or with `codes_sigma` their summed weights).
pub fn fuse_evidence(
    evidence: &[f64],
    global: Option<&[f32]>,
    cfg: &RerankConfig,
) -> (Vec<usize>, Vec<f64>) {
    let verified = |j: usize| -> f64 { evidence[j] };
    let g = |j: usize| -> f64 { global.map_or(0.0, |g| f64::from(g[j])) };
    let raw: Vec<f64> = (0..evidence.len())
        .map(|j| match cfg.fusion {
            // atan squashes any global score into (0, 1) monotonically.
            Fusion::Lexicographic => verified(j) + 0.5 + g(j).atan() / std::f64::consts::PI,
            Fusion::Weighted => {
                let w = f64::from(cfg.fusion_weight);
                let k = f64::from(cfg.inlier_saturation);
                let v = verified(j);
                w * g(j) + (1.0 - w) * v / (v + k)
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..evidence.len()).collect();
    order.sort_by(|&a, &b| raw[b].total_cmp(&raw[a]).then(a.cmp(&b)));
    let mut scores = Vec::with_capacity(order.len());
    let mut previous = f64::INFINITY;
    for &j in &order {
        let mut s = raw[j];
        if s >= previous {
            s = previous.next_down();
        }
        scores.push(s);
        previous = s;
    }
    (order, scores)
}
