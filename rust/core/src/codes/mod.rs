//! Quantised correspondences (issue 22): each feature carries visual words and a short
//! binary signature (Hamming Embedding, Jégou, Douze & Schmid, ECCV 2008), computed once
//! by a vocabulary (the Python package's `ilias_rerank.codes`). A pair's tentative
//! correspondences are the same-word feature pairs whose signatures lie within a Hamming
//! threshold, found by looking each candidate feature's word up in a hash table of the
//! query's words (built once per query): linear in the candidate's features (plus the
//! collisions), where exact mutual nearest neighbours are quadratic.
//! Among the collisions, each query feature keeps its nearest candidate feature by Hamming
//! distance and, with `mutual`, only when that candidate feature's nearest is the query
//! feature back (the same rule as the exact path). The correspondences then go to the
//! same spatial verification as the exact path's, ordered by Hamming distance.
//!
//! The join reads all of the query's words (its `per` nearest cells: multiple assignment
//! on the query side) against each candidate's first word only. Everything is sequential
//! per pair and ties break by row, so the result does not depend on threads.

mod join;

pub(crate) use join::{match_codes, CodesScratch};

use crate::matching::Match;
use crate::verify::{Correspondences, Verification};

use crate::error::{RerankError, Result};
use crate::features::{Descriptors, LocalFeaturesRef};

/// The weight of a correspondence at Hamming distance `h`: `exp(-h² / σ²)`, 1 at 0.
#[inline]
pub fn hamming_weight(h: f32, sigma: f32) -> f32 {
    (-(h * h) / (sigma * sigma)).exp()
}

/// The verification evidence of a pair of codes with `codes_sigma` = `sigma`: the summed
/// [`hamming_weight`]s of the correspondences within `threshold` of the verified
/// transform (the inliers `verification` counted; 0 when nothing verified). `matches[k]`
/// made `corr`'s row `k`, its `distance` the Hamming distance. Summed in row order, so
/// the result does not depend on threads.
pub(crate) fn weighted_inliers(
    matches: &[Match],
    corr: &Correspondences,
    verification: &Verification,
    threshold: f64,
    sigma: f32,
) -> f32 {
    if verification.model.is_none() {
        return 0.0;
    }
    let t2 = threshold * threshold;
    matches
        .iter()
        .enumerate()
        .filter(|&(k, _)| verification.transform.error2(corr.q[k], corr.c[k]) < t2)
        .map(|(_, m)| hamming_weight(m.distance, sigma))
        .sum()
}

/// Most words per feature (multiple assignment).
pub const MAX_WORDS_PER_FEATURE: usize = 16;

/// Check the word array of `n` features with `per` words each.
pub(crate) fn validate_words(words: &[u32], per: usize, n: usize) -> Result<()> {
    if per == 0 || per > MAX_WORDS_PER_FEATURE {
        return Err(RerankError::Shape {
            what: "words".into(),
            expected: format!("1..={MAX_WORDS_PER_FEATURE} words per feature"),
            got: format!("{per}"),
        });
    }
    if words.len() != n * per {
        return Err(RerankError::Shape {
            what: "words".into(),
            expected: format!("({n}, {per}) to match {n} keypoints"),
            got: format!("{} values", words.len()),
        });
    }
    Ok(())
}

/// A query's codes prepared once for many candidates: every (word, row) entry sorted by
/// word, then row, and a hash table from each word to its run of entries.
#[derive(Debug, Clone, Default)]
pub struct CodesQuery {
    pub(crate) entries: Vec<u64>,
    /// Open addressing, linear probing: `[word, start, end]` of each word's run in
    /// `entries` (`start == end`: an empty slot); a power of two long, at most half full.
    table: Vec<[u32; 3]>,
    shift: u32,
    pub(crate) signatures: Vec<u64>,
    pub(crate) sig_words: usize,
    pub(crate) len: usize,
}

impl CodesQuery {
    /// Prepare `query`, whose descriptors must be codes (validated).
    pub fn new(query: &LocalFeaturesRef<'_>) -> Self {
        let Descriptors::Codes {
            words,
            per,
            signatures,
            dim,
            ..
        } = query.descriptors
        else {
            return Self::default();
        };
        let n = query.len();
        let mut entries: Vec<u64> = words[..n * per]
            .iter()
            .enumerate()
            .map(|(k, &w)| (u64::from(w) << 32) | (k / per) as u64)
            .collect();
        entries.sort_unstable();
        entries.dedup();
        let distinct = entries
            .windows(2)
            .filter(|p| p[0] >> 32 != p[1] >> 32)
            .count()
            + usize::from(!entries.is_empty());
        let size = (2 * distinct).next_power_of_two().max(16);
        let mut table = vec![[0u32; 3]; size];
        let shift = 32 - size.trailing_zeros();
        let mut start = 0;
        while start < entries.len() {
            let word = (entries[start] >> 32) as u32;
            let end = start + entries[start..].partition_point(|&e| (e >> 32) as u32 == word);
            let mut h = slot(word, shift);
            while table[h][1] != table[h][2] {
                h = (h + 1) & (size - 1);
            }
            table[h] = [word, start as u32, end as u32];
            start = end;
        }
        Self {
            entries,
            table,
            shift,
            signatures: signatures[..n * dim].to_vec(),
            sig_words: dim,
            len: n,
        }
    }

    /// The query's entries of `word` (a run of `entries`; empty when it has none).
    #[inline]
    pub(crate) fn entries_of(&self, word: u32) -> &[u64] {
        if self.table.is_empty() {
            return &[];
        }
        let mask = self.table.len() - 1;
        let mut h = slot(word, self.shift);
        loop {
            let [w, start, end] = self.table[h];
            if start == end {
                return &[];
            }
            if w == word {
                return &self.entries[start as usize..end as usize];
            }
            h = (h + 1) & mask;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The home slot of `word` in a table of `1 << (32 - shift)` slots (Fibonacci hashing).
#[inline]
fn slot(word: u32, shift: u32) -> usize {
    (word.wrapping_mul(0x9E37_79B9) >> shift) as usize
}
