//! The join of a prepared query's words with a candidate's, and the choice of the
//! correspondences among the collisions.

use super::CodesQuery;
use crate::config::RerankConfig;
use crate::features::{Descriptors, LocalFeaturesRef};
use crate::matching::Match;

const NONE: u64 = u64::MAX;

/// Per-thread buffers of the join.
#[derive(Debug, Default)]
pub(crate) struct CodesScratch {
    /// Per query row: `(hamming << 32) | candidate row` of its nearest, and the second
    /// nearest distance.
    query_best: Vec<u64>,
    query_second: Vec<u32>,
    /// Per candidate row: `(hamming << 32) | query row` of its nearest.
    cand_best: Vec<u64>,
}

#[inline(always)]
fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The correspondences of `candidate` (codes, validated and compatible) with `query`;
/// they replace `out`'s content, in ascending query row order.
pub(crate) fn match_codes(
    query: &CodesQuery,
    candidate: &LocalFeaturesRef<'_>,
    cfg: &RerankConfig,
    s: &mut CodesScratch,
    out: &mut Vec<Match>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU was just checked for `popcnt`.
        unsafe { match_with_popcnt(query, candidate, cfg, s, out) };
        return;
    }
    match_body(query, candidate, cfg, s, out);
}

/// [`match_body`] with the `popcnt` instruction for the Hamming distances (without it
/// `count_ones` is a bit-twiddling sequence); the same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn match_with_popcnt(
    query: &CodesQuery,
    candidate: &LocalFeaturesRef<'_>,
    cfg: &RerankConfig,
    s: &mut CodesScratch,
    out: &mut Vec<Match>,
) {
    match_body(query, candidate, cfg, s, out)
}

#[inline(always)]
fn match_body(
    query: &CodesQuery,
    candidate: &LocalFeaturesRef<'_>,
    cfg: &RerankConfig,
    s: &mut CodesScratch,
    out: &mut Vec<Match>,
) {
    out.clear();
    let Descriptors::Codes {
        words,
        per,
        signatures,
        dim,
        ..
    } = candidate.descriptors
    else {
        return;
    };
    let m = candidate.len();
    if query.is_empty() || m == 0 || dim != query.sig_words {
        return;
    }
    s.query_best.clear();
    s.query_best.resize(query.len, NONE);
    s.query_second.clear();
    s.query_second.resize(query.len, u32::MAX);
    s.cand_best.clear();
    s.cand_best.resize(m, NONE);
    let tau = cfg.codes_hamming;
    // Each candidate feature meets the query's entries of its word. The minima below do
    // not depend on the order the collisions come in (a pair collides at most once: the
    // entries are distinct (word, row)), so neither does the result.
    for j in 0..m {
        let cs = &signatures[j * dim..(j + 1) * dim];
        for &qe in query.entries_of(words[j * per]) {
            let i = (qe & 0xffff_ffff) as usize;
            let h = hamming(&query.signatures[i * dim..(i + 1) * dim], cs);
            if h > tau {
                continue;
            }
            let qk = (u64::from(h) << 32) | j as u64;
            let best = s.query_best[i];
            if qk < best {
                if best != NONE {
                    s.query_second[i] = s.query_second[i].min((best >> 32) as u32);
                }
                s.query_best[i] = qk;
            } else if qk != best {
                s.query_second[i] = s.query_second[i].min(h);
            }
            let ck = (u64::from(h) << 32) | i as u64;
            if ck < s.cand_best[j] {
                s.cand_best[j] = ck;
            }
        }
    }
    let bits = (64 * dim) as f32;
    for (i, &best) in s.query_best.iter().enumerate() {
        if best == NONE {
            continue;
        }
        let j = (best & 0xffff_ffff) as u32;
        if cfg.mutual && s.cand_best[j as usize] & 0xffff_ffff != i as u64 {
            continue;
        }
        let h = (best >> 32) as f32;
        let second = s.query_second[i];
        // As the exact path's ratio: the lower, the more distinctive (0 without a second).
        let ratio = (h + 1.0) / ((second as f32).min(bits) + 1.0);
        if cfg.codes_ratio.is_some_and(|r| ratio > r) {
            continue;
        }
        out.push(Match {
            query: i as u32,
            candidate: j,
            distance: h,
            ratio,
        });
    }
}
