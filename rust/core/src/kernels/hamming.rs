//! Nearest neighbours between binary descriptors by Hamming distance, with the same
//! outputs as the float kernels: descriptors are read as ±1 vectors, so `|c|² = bits`,
//! `q·c = bits - 2h` and the reduced distances `|c|² - 2 q·c` are `4h - bits`.
//!
//! Binary sets are small (a compact store keeps a few hundred descriptors of 2 words), so
//! a plain double loop over rows, with `popcnt` where the CPU has it, is enough.

use super::nn_body::reset_outputs;
use super::NnScratch;

/// Fill `scratch` for `query_len` query rows and `cand_len` candidate rows of `words`
/// 64-bit words each. Ties keep the lowest index, as in the float kernels.
pub(crate) fn nn_hamming(
    query: &[u64],
    query_len: usize,
    words: usize,
    cand: &[u64],
    cand_len: usize,
    scratch: &mut NnScratch,
) {
    reset_outputs(scratch, query_len, cand_len);
    if words == 0 || query_len == 0 || cand_len == 0 {
        return;
    }
    let bits = (64 * words) as f32;
    scratch.cand_norms.fill(bits);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU was just checked for `popcnt`.
        unsafe { with_popcnt(query, query_len, words, cand, cand_len, scratch) };
        return;
    }
    body(query, query_len, words, cand, cand_len, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn with_popcnt(
    query: &[u64],
    query_len: usize,
    words: usize,
    cand: &[u64],
    cand_len: usize,
    scratch: &mut NnScratch,
) {
    body(query, query_len, words, cand, cand_len, scratch)
}

#[inline(always)]
fn body(
    query: &[u64],
    query_len: usize,
    words: usize,
    cand: &[u64],
    cand_len: usize,
    scratch: &mut NnScratch,
) {
    let bits = (64 * words) as f32;
    // Integer distances first (exact), converted once per row.
    let mut cand_best = vec![u32::MAX; cand_len];
    for (i, q) in query.chunks_exact(words).take(query_len).enumerate() {
        let (mut best, mut second, mut arg) = (u32::MAX, u32::MAX, u32::MAX);
        for (j, c) in cand.chunks_exact(words).take(cand_len).enumerate() {
            let h: u32 = q.iter().zip(c).map(|(a, b)| (a ^ b).count_ones()).sum();
            if h < best {
                second = best;
                best = h;
                arg = j as u32;
            } else if h < second {
                second = h;
            }
            if h < cand_best[j] {
                cand_best[j] = h;
                scratch.cand_arg[j] = i as u32;
            }
        }
        let reduced = |h: u32| {
            if h == u32::MAX {
                f32::INFINITY
            } else {
                4.0 * h as f32 - bits
            }
        };
        scratch.query_best[i] = reduced(best);
        scratch.query_second[i] = reduced(second);
        scratch.query_arg[i] = arg;
    }
    for (out, &h) in scratch.cand_best.iter_mut().zip(&cand_best) {
        *out = 4.0 * h as f32 - bits;
    }
}
