//! One (query, candidate) pair: what verification found for it, the per-thread worker
//! that matches and verifies it, and the checks of a pair's inputs. The shortlist loops
//! (`rerank`, `cascade`, `expansion`) all build on this module, and it on none of them.

use crate::codes::weighted_inliers;
use crate::config::RerankConfig;
use crate::error::{RerankError, Result};
use crate::features::LocalFeaturesRef;
use crate::matching::{match_prepared, Match, MatchScratch, PreparedQuery};
use crate::verify::{verify, Correspondences, PairRng, Verification, VerifyScratch};

/// Longest shortlist accepted by one call.
pub const MAX_CANDIDATES: usize = 1 << 22;

/// What verification found for one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateOutcome {
    /// Tentative correspondences that went into verification.
    pub matches: u32,
    pub verification: Verification,
    /// The verification's evidence: `verification.inliers`, or with quantised features and
    /// `codes_sigma` the inliers' summed weights (`crate::codes::weighted_inliers`).
    pub evidence: f32,
}

impl CandidateOutcome {
    /// What the candidate's score counts: its evidence, 0 below `min_inliers`.
    pub fn counted_evidence(&self, cfg: &RerankConfig) -> f64 {
        if self.verification.inliers >= cfg.min_inliers {
            f64::from(self.evidence)
        } else {
            0.0
        }
    }
}

/// A re-ranked shortlist.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankOutput {
    /// Indices into the candidates, best first.
    pub order: Vec<usize>,
    /// Fused scores aligned with `order`: strictly decreasing.
    pub scores: Vec<f64>,
    /// Per candidate, in input order: its verification against the query (for
    /// [`crate::rerank_consensus`], against the best-supported pseudo-query).
    pub candidates: Vec<CandidateOutcome>,
    /// The candidates that joined the query (expansion) or acted as pseudo-queries
    /// (consensus), in the order they were chosen; empty without expansion.
    pub expansion: Vec<usize>,
    /// Per candidate, in input order: the verified inliers it adds from the expansion
    /// images (each term counted when it reaches `min_inliers`); zeros without expansion.
    pub support: Vec<u32>,
    /// The candidates the cascade's second pass re-verified (their entries in
    /// `candidates` are the second pass's), in the order they were chosen; empty without
    /// the cascade.
    pub refined: Vec<usize>,
}

/// One pair, verified, with its correspondences.
#[derive(Debug, Clone, PartialEq)]
pub struct PairOutcome {
    pub matches: Vec<Match>,
    pub inlier_mask: Vec<bool>,
    pub verification: Verification,
}

/// The inlier threshold in pixels of an image of size `size`.
pub fn pixel_threshold(cfg: &RerankConfig, size: Option<(u32, u32)>) -> f64 {
    let base = f64::from(cfg.inlier_threshold);
    match size {
        Some((h, w)) if cfg.reference_side > 0.0 => {
            let side = f64::from(h.max(w));
            base * (side / f64::from(cfg.reference_side)).max(1.0)
        }
        _ => base,
    }
}

/// Per-thread buffers, reused across the candidates a worker processes.
#[derive(Default)]
pub(crate) struct Worker {
    nn: MatchScratch,
    pub(crate) matches: Vec<Match>,
    pub(crate) corr: Correspondences,
    verify: VerifyScratch,
}

impl Worker {
    pub(crate) fn process(
        &mut self,
        packed: &PreparedQuery,
        query: &LocalFeaturesRef<'_>,
        cand: &LocalFeaturesRef<'_>,
        pair: (u64, u64),
        cfg: &RerankConfig,
    ) -> CandidateOutcome {
        match_prepared(packed, cand, cfg, &mut self.nn, &mut self.matches);
        fill_correspondences(query, cand, &self.matches, &mut self.corr);
        let mut rng = PairRng::for_pair(cfg.seed, pair.0, pair.1);
        let threshold = pixel_threshold(cfg, cand.image_size);
        let verification = verify(&self.corr, threshold, cfg, &mut rng, &mut self.verify);
        let evidence = match (packed, cfg.codes_sigma) {
            (PreparedQuery::Codes(_), Some(sigma)) => {
                weighted_inliers(&self.matches, &self.corr, &verification, threshold, sigma)
            }
            _ => verification.inliers as f32,
        };
        CandidateOutcome {
            matches: self.matches.len() as u32,
            verification,
            evidence,
        }
    }
}

fn fill_correspondences(
    query: &LocalFeaturesRef<'_>,
    cand: &LocalFeaturesRef<'_>,
    matches: &[Match],
    corr: &mut Correspondences,
) {
    corr.clear();
    let frames = match (&query.frames, &cand.frames) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    for m in matches {
        let (i, j) = (m.query as usize, m.candidate as usize);
        corr.q.push(query.point(i));
        corr.c.push(cand.point(j));
        corr.rank_key.push(m.ratio);
        if let Some((fa, fb)) = frames {
            corr.q_shape.push(fa.shape(i));
            corr.c_shape.push(fb.shape(j));
        }
    }
}

/// Validate a candidate against the query; `place` names it in an error (built only then).
pub(crate) fn validate_pair(
    query: &LocalFeaturesRef<'_>,
    cand: &LocalFeaturesRef<'_>,
    place: impl Fn() -> String,
) -> Result<()> {
    cand.validate()
        .and_then(|()| query.check_compatible(cand))
        .map_err(|e| e.within(&place()))
}

/// Check that `global`, when given, holds one finite first-stage score per candidate.
pub fn check_global(global: Option<&[f32]>, candidates: usize) -> Result<()> {
    if let Some(g) = global {
        if g.len() != candidates {
            return Err(RerankError::Shape {
                what: "global_scores".into(),
                expected: format!("one score per candidate ({candidates})"),
                got: format!("{} scores", g.len()),
            });
        }
        if let Some(row) = g.iter().position(|v| !v.is_finite()) {
            return Err(RerankError::NonFinite {
                what: "global_scores".into(),
                row,
                value: g[row],
            });
        }
    }
    Ok(())
}
