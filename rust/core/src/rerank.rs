//! The public entry points: re-rank a shortlist, verify one pair, verify given
//! correspondences. Inputs are validated here, once, before any work starts.

use crate::cascade::{cascade, verify_each, CascadeOutcome};
use crate::config::RerankConfig;
use crate::error::{RerankError, Result};
use crate::expansion::expansion_support;
use crate::features::{Frames, LocalFeaturesRef};
use crate::fusion::{fuse, fuse_evidence};
use crate::matching::prepare;
pub use crate::pair::{
    check_global, pixel_threshold, CandidateOutcome, PairOutcome, RerankOutput, MAX_CANDIDATES,
};
use crate::pair::{validate_pair, Worker};
use crate::verify::{
    hypothesis_support, inlier_mask, verify, Correspondences, PairRng, Verification, VerifyScratch,
};

/// Re-rank `candidates` for `query`. `global[j]`, when given, is candidate `j`'s score
/// from the first stage (higher is better). Empty inputs give a neutral result (zero
/// inliers, global order), never an error.
pub fn rerank(
    query: &LocalFeaturesRef<'_>,
    candidates: &[LocalFeaturesRef<'_>],
    global: Option<&[f32]>,
    cfg: &RerankConfig,
) -> Result<RerankOutput> {
    rerank_query(query, candidates, global, cfg, 0)
}

/// As [`rerank`], with the query's index in a batch (it seeds the per-pair streams).
pub fn rerank_query(
    query: &LocalFeaturesRef<'_>,
    candidates: &[LocalFeaturesRef<'_>],
    global: Option<&[f32]>,
    cfg: &RerankConfig,
    query_index: u64,
) -> Result<RerankOutput> {
    cfg.validate()?;
    query.validate().map_err(|e| e.within("query"))?;
    if candidates.len() > MAX_CANDIDATES {
        return Err(RerankError::TooLarge {
            what: "candidates".into(),
            limit: MAX_CANDIDATES,
            got: candidates.len(),
        });
    }
    for (j, cand) in candidates.iter().enumerate() {
        validate_pair(query, cand, || format!("candidate {j}"))?;
    }
    check_global(global, candidates.len())?;
    let CascadeOutcome { outcomes, refined } = if cfg.cascade_features > 0 {
        cascade(query, candidates, global, cfg, query_index)?
    } else {
        let all: Vec<(usize, LocalFeaturesRef<'_>)> =
            candidates.iter().copied().enumerate().collect();
        CascadeOutcome {
            outcomes: verify_each(query, &all, cfg, query_index)?,
            refined: Vec::new(),
        }
    };
    let inliers: Vec<u32> = outcomes.iter().map(|o| o.verification.inliers).collect();
    if cfg.expansion == 0 {
        let evidence: Vec<f64> = outcomes.iter().map(|o| o.counted_evidence(cfg)).collect();
        let (order, scores) = fuse_evidence(&evidence, global, cfg);
        return Ok(RerankOutput {
            order,
            scores,
            candidates: outcomes,
            expansion: Vec::new(),
            support: vec![0; candidates.len()],
            refined,
        });
    }
    let (first, _) = fuse(&inliers, global, cfg);
    let chosen: Vec<usize> = first
        .into_iter()
        .filter(|&j| inliers[j] >= cfg.expansion_min_inliers.max(cfg.min_inliers))
        .take(cfg.expansion as usize)
        .collect();
    // With the cascade, the expansion pairs use the first pass's features (bounded cost).
    let (support, support_evidence) = if cfg.cascade_features > 0 {
        let cheap: Vec<LocalFeaturesRef<'_>> = candidates
            .iter()
            .map(|c| c.prefix(cfg.cascade_features))
            .collect();
        expansion_support(&cheap, &chosen, cfg, query_index)?
    } else {
        expansion_support(candidates, &chosen, cfg, query_index)?
    };
    let totals: Vec<f64> = (0..candidates.len())
        .map(|j| outcomes[j].counted_evidence(cfg) + support_evidence[j])
        .collect();
    let (order, scores) = fuse_evidence(&totals, global, cfg);
    Ok(RerankOutput {
        order,
        scores,
        candidates: outcomes,
        expansion: chosen,
        support,
        refined,
    })
}

/// Match and verify one pair; returns the matches, which of them are inliers, and the
/// transform mapping `query` pixels to `candidate` pixels.
pub fn verify_pair(
    query: &LocalFeaturesRef<'_>,
    candidate: &LocalFeaturesRef<'_>,
    cfg: &RerankConfig,
) -> Result<PairOutcome> {
    cfg.validate()?;
    query.validate().map_err(|e| e.within("query"))?;
    validate_pair(query, candidate, || "candidate".into())?;
    let packed = prepare(query);
    let mut worker = Worker::default();
    let outcome = worker.process(&packed, query, candidate, (0, 0), cfg);
    let threshold = pixel_threshold(cfg, candidate.image_size);
    let mask = inlier_mask(&worker.corr, &outcome.verification, threshold);
    Ok(PairOutcome {
        matches: worker.matches,
        inlier_mask: mask,
        verification: outcome.verification,
    })
}

/// Given correspondences (row `i` of `query_points` matches row `i` of
/// `candidate_points`, both `K x 2`), with optional frames for both sides, estimate the
/// transform and its inliers.
pub fn verify_correspondences(
    query_points: &[f32],
    candidate_points: &[f32],
    frames: Option<(Frames<'_>, Frames<'_>)>,
    candidate_size: Option<(u32, u32)>,
    cfg: &RerankConfig,
) -> Result<(Verification, Vec<bool>)> {
    cfg.validate()?;
    let corr = given_correspondences(query_points, candidate_points, frames)?;
    let threshold = pixel_threshold(cfg, candidate_size);
    let mut rng = PairRng::for_pair(cfg.seed, 0, 0);
    let v = verify(
        &corr,
        threshold,
        cfg,
        &mut rng,
        &mut VerifyScratch::default(),
    );
    let mask = inlier_mask(&corr, &v, threshold);
    Ok((v, mask))
}

/// For given correspondences with frames on both sides: the support of each one's own
/// frame hypothesis before refinement (see [`crate::verify::hypothesis_support`]).
pub fn frame_hypothesis_support(
    query_points: &[f32],
    candidate_points: &[f32],
    frames: (Frames<'_>, Frames<'_>),
    candidate_size: Option<(u32, u32)>,
    cfg: &RerankConfig,
) -> Result<Vec<u32>> {
    cfg.validate()?;
    let corr = given_correspondences(query_points, candidate_points, Some(frames))?;
    let threshold = pixel_threshold(cfg, candidate_size);
    Ok(hypothesis_support(&corr, threshold, cfg))
}

/// Checked correspondences from two `K x 2` point arrays and optional frames.
fn given_correspondences(
    query_points: &[f32],
    candidate_points: &[f32],
    frames: Option<(Frames<'_>, Frames<'_>)>,
) -> Result<Correspondences> {
    if query_points.len() != candidate_points.len() || !query_points.len().is_multiple_of(2) {
        return Err(RerankError::Shape {
            what: "candidate_points".into(),
            expected: format!("({}, 2) to match query_points", query_points.len() / 2),
            got: format!("{} values", candidate_points.len()),
        });
    }
    for (name, pts) in [
        ("query_points", query_points),
        ("candidate_points", candidate_points),
    ] {
        if let Some(p) = pts.iter().position(|v| !v.is_finite()) {
            return Err(RerankError::NonFinite {
                what: name.into(),
                row: p / 2,
                value: pts[p],
            });
        }
    }
    let k = query_points.len() / 2;
    let mut corr = Correspondences::default();
    for i in 0..k {
        corr.q.push([
            f64::from(query_points[2 * i]),
            f64::from(query_points[2 * i + 1]),
        ]);
        corr.c.push([
            f64::from(candidate_points[2 * i]),
            f64::from(candidate_points[2 * i + 1]),
        ]);
        corr.rank_key.push(i as f32);
    }
    if let Some((fq, fc)) = frames {
        let (qf, cf) = (
            frame_view(fq, k).map_err(|e| e.within("query"))?,
            frame_view(fc, k).map_err(|e| e.within("candidate"))?,
        );
        for i in 0..k {
            corr.q_shape.push(qf.shape(i));
            corr.c_shape.push(cf.shape(i));
        }
    }
    Ok(corr)
}

fn frame_view(frames: Frames<'_>, k: usize) -> Result<Frames<'_>> {
    let (data, stride) = match frames {
        Frames::ScaleOrientation(d) => (d, 2),
        Frames::Affine(d) => (d, 6),
    };
    if data.len() != k * stride {
        return Err(RerankError::Shape {
            what: "frames".into(),
            expected: format!("({k}, {stride})"),
            got: format!("{} values", data.len()),
        });
    }
    if let Some(p) = data.iter().position(|v| !v.is_finite()) {
        return Err(RerankError::NonFinite {
            what: "frames".into(),
            row: p / stride,
            value: data[p],
        });
    }
    Ok(frames)
}
