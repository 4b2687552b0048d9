//! Nearest neighbours between binary descriptors by Hamming distance, with the same
//! outputs as the float kernels: descriptors are read as ±1 vectors, so `|c|² = bits`,
//! `q·c = bits - 2h` and the reduced distances `|c|² - 2 q·c` are `4h - bits`.
//!
//! Binary sets are small (a compact store keeps a few hundred descriptors of 2 words), so
//! a plain double loop over rows, with `popcnt` where the CPU has it, is enough.

use super::nn_body::reset_outputs;
use super::NnScratch;

/// Two sets of binary rows of `words` 64-bit words each.
#[derive(Clone, Copy)]
pub(crate) struct BinaryRows<'a> {
    pub query: &'a [u64],
    pub query_len: usize,
    pub cand: &'a [u64],
    pub cand_len: usize,
    pub words: usize,
}

/// Fill `scratch` for the two sets. Ties keep the lowest index, as in the float kernels.
pub(crate) fn nn_hamming(rows: BinaryRows<'_>, scratch: &mut NnScratch) {
    reset_outputs(scratch, rows.query_len, rows.cand_len);
    if rows.words == 0 || rows.query_len == 0 || rows.cand_len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU was just checked for `popcnt`.
        unsafe { with_popcnt(rows, scratch) };
        return;
    }
    body(rows, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn with_popcnt(rows: BinaryRows<'_>, scratch: &mut NnScratch) {
    body(rows, scratch)
}

#[inline(always)]
fn body(rows: BinaryRows<'_>, scratch: &mut NnScratch) {
    let BinaryRows {
        query,
        query_len,
        cand,
        cand_len,
        words,
    } = rows;
    let bits = (64 * words) as f32;
    // Reduced distance of a Hamming distance (exact: h <= 64 * MAX_DIM < 2^24).
    let reduced = |h: u32| 4.0 * h as f32 - bits;
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
            // The candidate side keeps the reduced distance itself (reset to +inf).
            let v = reduced(h);
            if v < scratch.cand_best[j] {
                scratch.cand_best[j] = v;
                scratch.cand_arg[j] = i as u32;
            }
        }
        let finite = |h: u32| {
            if h == u32::MAX {
                f32::INFINITY
            } else {
                reduced(h)
            }
        };
        scratch.query_best[i] = finite(best);
        scratch.query_second[i] = finite(second);
        scratch.query_arg[i] = arg;
    }
    scratch.cand_norms.fill(bits);
}
