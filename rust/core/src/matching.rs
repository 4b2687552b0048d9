//! Tentative correspondences from descriptors: (mutual) nearest neighbours by squared L2
//! distance, with optional Lowe ratio test and cosine-similarity floor, all decided from
//! one pass of the similarity kernel; or, for quantised features, the join of
//! [`crate::codes`].

use crate::codes::{match_codes, CodesQuery, CodesScratch};
use crate::config::RerankConfig;
use crate::features::{Descriptors, LocalFeaturesRef};
use crate::kernels::{nearest_neighbours, Isa, NnScratch, PackedQuery};

/// One tentative correspondence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Row of the query's features.
    pub query: u32,
    /// Row of the candidate's features.
    pub candidate: u32,
    /// Squared L2 distance between the two descriptors.
    pub distance: f32,
    /// Lowe's ratio `best / second best` L2 distance (0 when there is no second):
    /// the lower, the more distinctive. Orders the verification hypotheses.
    pub ratio: f32,
}

/// A query prepared once for matching against many candidates: packed descriptors for
/// the exact kernels, or sorted words for the join of codes.
pub enum PreparedQuery {
    Exact(PackedQuery),
    Codes(CodesQuery),
}

/// Per-thread buffers of either path.
#[derive(Default)]
pub(crate) struct MatchScratch {
    nn: NnScratch,
    codes: CodesScratch,
}

/// Prepare the query once for matching against many candidates (either path).
pub fn prepare(query: &LocalFeaturesRef<'_>) -> PreparedQuery {
    match query.descriptors {
        Descriptors::Codes { .. } => PreparedQuery::Codes(CodesQuery::new(query)),
        _ => PreparedQuery::Exact(prepare_query(query)),
    }
}

/// Pack the query descriptors once for exact matching against many candidates (codes give
/// an empty query here: they are prepared by [`prepare`]).
pub fn prepare_query(query: &LocalFeaturesRef<'_>) -> PackedQuery {
    let isa = Isa::detect();
    match query.descriptors {
        Descriptors::F32 { data, dim } => PackedQuery::from_f32(data, query.len(), dim, isa),
        Descriptors::U8 { data, dim } => PackedQuery::from_u8(data, query.len(), dim, isa),
        Descriptors::Binary { data, dim } => PackedQuery::from_binary(data, query.len(), dim),
        Descriptors::Codes { .. } => PackedQuery::from_binary(&[], 0, 1),
    }
}

/// Match a candidate against a prepared query (validated, compatible); the matches replace
/// `out`'s content, in ascending query row order.
pub(crate) fn match_prepared(
    query: &PreparedQuery,
    candidate: &LocalFeaturesRef<'_>,
    cfg: &RerankConfig,
    scratch: &mut MatchScratch,
    out: &mut Vec<Match>,
) {
    match query {
        PreparedQuery::Exact(q) => match_descriptors(q, candidate, cfg, &mut scratch.nn, out),
        PreparedQuery::Codes(q) => match_codes(q, candidate, cfg, &mut scratch.codes, out),
    }
}

/// Match a candidate against a prepared query; the matches replace `out`'s content,
/// in ascending query row order.
pub fn match_descriptors(
    query: &PackedQuery,
    candidate: &LocalFeaturesRef<'_>,
    cfg: &RerankConfig,
    scratch: &mut NnScratch,
    out: &mut Vec<Match>,
) {
    out.clear();
    if query.is_empty() || candidate.is_empty() {
        return;
    }
    let Some(rows) = candidate.descriptors.rows() else {
        return;
    };
    nearest_neighbours(query, rows, candidate.len(), scratch);
    let ratio2 = cfg.ratio.map(|r| r * r);
    for i in 0..query.len() {
        let j = scratch.query_arg[i];
        if j == u32::MAX {
            continue;
        }
        let qn = query.norm(i);
        let d2 = (scratch.query_best[i] + qn).max(0.0);
        if !d2.is_finite() {
            continue;
        }
        if cfg.mutual && scratch.cand_arg[j as usize] != i as u32 {
            continue;
        }
        let second = (scratch.query_second[i] + qn).max(0.0);
        if let Some(r2) = ratio2 {
            if d2 > r2 * second {
                continue;
            }
        }
        let ratio = if second.is_finite() && second > 0.0 {
            (d2 / second).sqrt()
        } else {
            0.0
        };
        if let Some(min_sim) = cfg.min_similarity {
            let cn = scratch.cand_norms[j as usize];
            let denom = (qn * cn).sqrt();
            let cos = if denom > 0.0 {
                0.5 * (qn + cn - d2) / denom
            } else {
                0.0
            };
            if cos < min_sim {
                continue;
            }
        }
        out.push(Match {
            query: i as u32,
            candidate: j,
            distance: d2,
            ratio,
        });
    }
}
