//! The cascade: a cheap first pass over the whole shortlist with a prefix of each image's
//! features (stored strongest first, the prefix is the strongest ones), then a richer
//! second pass (more features) only on the candidates the first pass leaves uncertain.
//!
//! - **First pass**: every candidate, `cascade_features` features of the query and of the
//!   candidate.
//! - **Choice** (deterministic, from the first pass only): candidates below
//!   `cascade_certain_inliers` (all of them when it is 0), by first-pass inliers
//!   (uncounted: 3 beats 0, although both score 0), then global score, then tentative
//!   matches, then input order; the first `cascade_candidates` of them.
//! - **Second pass**: those candidates again with `cascade_rich_features` features (0: all);
//!   their second-pass verification replaces the first-pass one.
//!
//! Bounded cost per query: `M` pairs at `cascade_features` plus at most
//! `cascade_candidates` pairs at `cascade_rich_features`. Both passes derive each pair's
//! random stream from `(seed, query, candidate)` as the one-pass re-ranker does, so with
//! `cascade_candidates >= M` and `cascade_features >=` every image's feature count the
//! cascade returns exactly the one-pass result, and with `cascade_candidates = 0` exactly
//! the one-pass result on the prefixes; neither depends on the thread count.

use rayon::prelude::*;

use crate::config::RerankConfig;
use crate::error::Result;
use crate::features::LocalFeaturesRef;
use crate::matching::prepare;
use crate::pair::{CandidateOutcome, Worker};
use crate::threads;

/// What the cascade found: per candidate (input order) the verification that counts, and
/// the candidates the second pass re-verified, in the order they were chosen.
pub(crate) struct CascadeOutcome {
    pub outcomes: Vec<CandidateOutcome>,
    pub refined: Vec<usize>,
}

/// Verify `candidates` (each given with its index in the shortlist) against `query`, in
/// parallel; outcomes in the order given.
pub(crate) fn verify_each(
    query: &LocalFeaturesRef<'_>,
    candidates: &[(usize, LocalFeaturesRef<'_>)],
    cfg: &RerankConfig,
    query_index: u64,
) -> Result<Vec<CandidateOutcome>> {
    let packed = prepare(query);
    threads::install(cfg.num_threads, || {
        candidates
            .par_iter()
            .map_init(Worker::default, |w, (j, cand)| {
                w.process(&packed, query, cand, (query_index, *j as u64), cfg)
            })
            .collect()
    })
}

/// The candidates the second pass re-verifies, best first (see the module's doc).
pub(crate) fn choose(
    first: &[CandidateOutcome],
    global: Option<&[f32]>,
    cfg: &RerankConfig,
) -> Vec<usize> {
    let certain = |j: usize| {
        cfg.cascade_certain_inliers > 0
            && first[j].verification.inliers >= cfg.cascade_certain_inliers
    };
    let mut open: Vec<usize> = (0..first.len()).filter(|&j| !certain(j)).collect();
    let g = |j: usize| global.map_or(0.0, |g| g[j]);
    open.sort_by(|&a, &b| {
        let (oa, ob) = (&first[a], &first[b]);
        ob.verification
            .inliers
            .cmp(&oa.verification.inliers)
            .then(g(b).total_cmp(&g(a)))
            .then(ob.matches.cmp(&oa.matches))
            .then(a.cmp(&b))
    });
    open.truncate(cfg.cascade_candidates);
    open
}

/// Run both passes for one query (inputs already validated).
pub(crate) fn cascade(
    query: &LocalFeaturesRef<'_>,
    candidates: &[LocalFeaturesRef<'_>],
    global: Option<&[f32]>,
    cfg: &RerankConfig,
    query_index: u64,
) -> Result<CascadeOutcome> {
    let cheap: Vec<(usize, LocalFeaturesRef<'_>)> = candidates
        .iter()
        .enumerate()
        .map(|(j, c)| (j, c.prefix(cfg.cascade_features)))
        .collect();
    let mut outcomes = verify_each(
        &query.prefix(cfg.cascade_features),
        &cheap,
        cfg,
        query_index,
    )?;
    let refined = choose(&outcomes, global, cfg);
    if refined.is_empty() {
        return Ok(CascadeOutcome { outcomes, refined });
    }
    let rich_n = match cfg.cascade_rich_features {
        0 => usize::MAX,
        n => n,
    };
    // A pair whose richer prefixes hold no feature more than the first pass's would be
    // verified again on the same inputs, with the same random stream: same outcome, kept.
    let (rich_query, cheap_query) = (query.prefix(rich_n), query.prefix(cfg.cascade_features));
    let grows = rich_query.len() > cheap_query.len();
    let rich: Vec<(usize, LocalFeaturesRef<'_>)> = refined
        .iter()
        .map(|&j| (j, candidates[j].prefix(rich_n)))
        .filter(|(j, c)| grows || c.len() > cheap[*j].1.len())
        .collect();
    let second = verify_each(&rich_query, &rich, cfg, query_index)?;
    for ((j, _), o) in rich.iter().zip(second) {
        outcomes[*j] = o;
    }
    // Only the pairs verified again are refined (a skipped pair kept its first outcome).
    let refined = rich.iter().map(|(j, _)| *j).collect();
    Ok(CascadeOutcome { outcomes, refined })
}
