//! Tentative correspondences from descriptors: (mutual) nearest neighbours by squared L2
//! distance, with optional Lowe ratio test and cosine-similarity floor, all decided from
//! one pass of the similarity kernel.

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

/// Pack the query descriptors once for matching against many candidates.
pub fn prepare_query(query: &LocalFeaturesRef<'_>) -> PackedQuery {
    let isa = Isa::detect();
    match query.descriptors {
        Descriptors::F32 { data, dim } => PackedQuery::from_f32(data, query.len(), dim, isa),
        Descriptors::U8 { data, dim } => PackedQuery::from_u8(data, query.len(), dim, isa),
        Descriptors::Binary { data, dim } => PackedQuery::from_binary(data, query.len(), dim),
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
    nearest_neighbours(
        query,
        candidate.descriptors.rows(),
        candidate.len(),
        scratch,
    );
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
