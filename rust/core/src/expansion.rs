//! Spatially verified expansion (Chum et al. 2007, "Total Recall"), in two forms:
//!
//! - **query expansion** (`rerank::rerank` with `expansion > 0`): after the query's pass,
//!   the best verified candidates (at least `expansion_min_inliers` inliers, at most
//!   `expansion` of them) join the query; every candidate is verified against each of them
//!   and its score adds the inliers it verifies with them. A positive the query crop cannot
//!   verify, but another positive can, is then found.
//! - **consensus** ([`rerank_consensus`]): a shortlist without a query image (a text
//!   query): the top of the global ranking act as pseudo-queries, and each candidate is
//!   scored by the inliers it verifies with them.
//!
//! Bounded cost: `E` expansion images or pseudo-queries verify at most `E x M` more pairs.
//! Deterministic: each pair's random stream derives from `(seed, source, candidate)`, with
//! source ids of their own, so results never depend on the thread count.

use rayon::prelude::*;

use crate::config::RerankConfig;
use crate::error::{RerankError, Result};
use crate::features::LocalFeaturesRef;
use crate::fusion::fuse_evidence;
use crate::matching::prepare;
use crate::pair::{check_global, validate_pair, CandidateOutcome, RerankOutput, Worker};
use crate::threads;

/// Source ids of the expansion pairs' random streams: far from any query index.
const EXPANSION_STREAM: u64 = 1 << 62;

/// Inliers as they count in a score: zero below `min_inliers`.
pub(crate) fn counted(inliers: u32, cfg: &RerankConfig) -> u32 {
    if inliers >= cfg.min_inliers {
        inliers
    } else {
        0
    }
}

/// What the sources verified, per candidate: the summed counted inliers (`support`),
/// the verification with the source that found the most inliers (`best`) and, for a
/// source, the most counted inliers it verified with any candidate (`strongest`).
struct Verified {
    support: Vec<u32>,
    best: Vec<CandidateOutcome>,
    strongest: Vec<u32>,
    /// As `support` and `strongest`, of the evidence (the counts, or with `codes_sigma`
    /// the summed inlier weights): what the scores fuse.
    evidence: Vec<f64>,
    strongest_evidence: Vec<f64>,
}

/// Verify every candidate against each candidate in `sources` (never against itself),
/// one source at a time (each pass parallel over the candidates), so that memory stays
/// O(candidates) whatever the number of sources.
fn verify_against(
    candidates: &[LocalFeaturesRef<'_>],
    sources: &[usize],
    cfg: &RerankConfig,
    stream: u64,
) -> Result<Verified> {
    let none = CandidateOutcome {
        matches: 0,
        verification: crate::verify::Verification::NONE,
        evidence: 0.0,
    };
    let mut acc = Verified {
        support: vec![0; candidates.len()],
        best: vec![none; candidates.len()],
        strongest: vec![0; candidates.len()],
        evidence: vec![0.0; candidates.len()],
        strongest_evidence: vec![0.0; candidates.len()],
    };
    for &e in sources {
        let packed = prepare(&candidates[e]);
        let row: Vec<CandidateOutcome> = threads::install(cfg.num_threads, || {
            candidates
                .par_iter()
                .enumerate()
                .map_init(Worker::default, |w, (j, cand)| {
                    if j == e {
                        return none;
                    }
                    w.process(
                        &packed,
                        &candidates[e],
                        cand,
                        (stream ^ e as u64, j as u64),
                        cfg,
                    )
                })
                .collect()
        })?;
        for (j, o) in row.into_iter().enumerate() {
            let c = counted(o.verification.inliers, cfg);
            acc.strongest[e] = acc.strongest[e].max(c);
            acc.support[j] = acc.support[j].saturating_add(c);
            let v = o.counted_evidence(cfg);
            acc.strongest_evidence[e] = acc.strongest_evidence[e].max(v);
            acc.evidence[j] += v;
            if o.verification.inliers > acc.best[j].verification.inliers {
                acc.best[j] = o;
            }
        }
    }
    Ok(acc)
}

/// Per candidate: the counted inliers it verifies with each expansion image, summed, and
/// the same sum of its evidence (equal without `codes_sigma`).
pub(crate) fn expansion_support(
    candidates: &[LocalFeaturesRef<'_>],
    chosen: &[usize],
    cfg: &RerankConfig,
    query_index: u64,
) -> Result<(Vec<u32>, Vec<f64>)> {
    let stream = EXPANSION_STREAM ^ query_index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let v = verify_against(candidates, chosen, cfg, stream)?;
    Ok((v.support, v.evidence))
}

/// Re-rank a shortlist that has no query image (a text query: ILIAS text-to-image,
/// INQUIRE-Rerank) by verifying its candidates among themselves: the first
/// `pseudo_queries` of the global ranking (`global`, else the input order) act as
/// queries, and each candidate's score is the inliers it verifies with them (each term
/// counted from `min_inliers`), fused with the global score as in `rerank::rerank`. A
/// pseudo-query is scored by the other pseudo-queries plus, in place of itself, its
/// strongest link (the most counted inliers it verifies with any candidate), so that
/// every candidate sums `pseudo_queries` terms (with one pseudo-query, it is not dropped
/// below the candidates it verifies). Per candidate, `candidates` holds
/// its verification with the pseudo-query that supports it most.
pub fn rerank_consensus(
    candidates: &[LocalFeaturesRef<'_>],
    global: Option<&[f32]>,
    pseudo_queries: usize,
    cfg: &RerankConfig,
) -> Result<RerankOutput> {
    cfg.validate()?;
    if !(1..=crate::config::MAX_EXPANSION as usize).contains(&pseudo_queries) {
        return Err(RerankError::Config {
            field: "pseudo_queries",
            expected: "an int in 1..=64",
            got: pseudo_queries.to_string(),
        });
    }
    if candidates.len() > crate::pair::MAX_CANDIDATES {
        return Err(RerankError::TooLarge {
            what: "candidates".into(),
            limit: crate::pair::MAX_CANDIDATES,
            got: candidates.len(),
        });
    }
    if let Some(first) = candidates.first() {
        first.validate().map_err(|e| e.within("candidate 0"))?;
        for (j, cand) in candidates.iter().enumerate().skip(1) {
            validate_pair(first, cand, || format!("candidate {j}"))?;
        }
    }
    check_global(global, candidates.len())?;
    let m = candidates.len();
    // The global ranking: by score (ties in input order), or the input order.
    let mut ranking: Vec<usize> = (0..m).collect();
    if let Some(g) = global {
        ranking.sort_by(|&a, &b| g[b].total_cmp(&g[a]).then(a.cmp(&b)));
    }
    let sources: Vec<usize> = ranking.into_iter().take(pseudo_queries).collect();
    let Verified {
        mut support,
        best,
        strongest,
        mut evidence,
        strongest_evidence,
    } = verify_against(candidates, &sources, cfg, EXPANSION_STREAM - 1)?;
    for &e in &sources {
        support[e] = support[e].saturating_add(strongest[e]);
        evidence[e] += strongest_evidence[e];
    }
    let (order, scores) = fuse_evidence(&evidence, global, cfg);
    Ok(RerankOutput {
        order,
        scores,
        candidates: best,
        expansion: sources,
        support,
        refined: Vec::new(),
    })
}
