//! The one generic nearest-neighbour loop. It is `#[inline(always)]` so that each
//! instruction-set entry point in `dispatch.rs` compiles its own vectorised copy.
//!
//! For a block of `MR` candidate rows and a panel of `NR` query columns it accumulates the
//! `MR x NR` dot products in registers, then folds them straight into the reductions:
//! per query column the best and second-best candidate of `|c|² - 2 q·c`, and per
//! candidate row the best query of `|q|² - 2 q·c`. No similarity matrix is stored.

use super::NnScratch;

/// Element-wise arithmetic of one kernel flavour.
pub(crate) trait DotOps {
    /// Element type of the packed panels and of the transposed candidate block.
    type Elem: Copy + Default;
    /// `acc + a * b`.
    fn madd(acc: Self::Elem, a: Self::Elem, b: Self::Elem) -> Self::Elem;
    /// Accumulator to float, for the distance reductions.
    fn to_f32(acc: Self::Elem) -> f32;
    /// Square of one element, as f32 (for norms).
    fn square(v: Self::Elem) -> f32;
    /// The scratch buffer holding the transposed candidate block.
    fn block(scratch: &mut NnScratch) -> &mut Vec<Self::Elem>;
}

/// float32 with fused multiply-add (used only where the CPU has FMA).
pub(crate) struct F32Fused;
/// float32 with separate multiply and add (portable).
pub(crate) struct F32Plain;
/// uint8 descriptors widened to i32 (exact integer dot products).
pub(crate) struct U8Exact;

impl DotOps for F32Fused {
    type Elem = f32;
    #[inline(always)]
    fn madd(acc: f32, a: f32, b: f32) -> f32 {
        a.mul_add(b, acc)
    }
    #[inline(always)]
    fn to_f32(acc: f32) -> f32 {
        acc
    }
    #[inline(always)]
    fn square(v: f32) -> f32 {
        v * v
    }
    fn block(scratch: &mut NnScratch) -> &mut Vec<f32> {
        &mut scratch.block_f32
    }
}

impl DotOps for F32Plain {
    type Elem = f32;
    #[inline(always)]
    fn madd(acc: f32, a: f32, b: f32) -> f32 {
        acc + a * b
    }
    #[inline(always)]
    fn to_f32(acc: f32) -> f32 {
        acc
    }
    #[inline(always)]
    fn square(v: f32) -> f32 {
        v * v
    }
    fn block(scratch: &mut NnScratch) -> &mut Vec<f32> {
        &mut scratch.block_f32
    }
}

impl DotOps for U8Exact {
    type Elem = i32;
    #[inline(always)]
    fn madd(acc: i32, a: i32, b: i32) -> i32 {
        acc.wrapping_add(a.wrapping_mul(b))
    }
    #[inline(always)]
    fn to_f32(acc: i32) -> f32 {
        acc as f32
    }
    #[inline(always)]
    fn square(v: i32) -> f32 {
        (v * v) as f32
    }
    fn block(scratch: &mut NnScratch) -> &mut Vec<i32> {
        &mut scratch.block_i32
    }
}

/// Nearest neighbours in both directions between packed query panels and `cand_len`
/// candidate rows of dimension `dim`. Results land in `scratch` (see [`NnScratch`]).
///
/// Ties keep the lowest index, so the result is a pure function of the inputs.
#[inline(always)]
pub(crate) fn nn_body<K: DotOps, T: Copy + Into<K::Elem>, const MR: usize, const NR: usize>(
    panels: &[K::Elem],
    query_norms: &[f32],
    dim: usize,
    cand: &[T],
    cand_len: usize,
    scratch: &mut NnScratch,
) {
    let padded = query_norms.len();
    scratch.query_best.clear();
    scratch.query_best.resize(padded, f32::INFINITY);
    scratch.query_second.clear();
    scratch.query_second.resize(padded, f32::INFINITY);
    scratch.query_arg.clear();
    scratch.query_arg.resize(padded, u32::MAX);
    scratch.cand_best.clear();
    scratch.cand_best.resize(cand_len, f32::INFINITY);
    scratch.cand_arg.clear();
    scratch.cand_arg.resize(cand_len, u32::MAX);
    scratch.cand_norms.clear();
    scratch.cand_norms.resize(cand_len, 0.0);
    if dim == 0 || cand_len == 0 || padded == 0 {
        return;
    }
    let mut block = std::mem::take(K::block(scratch));
    block.clear();
    block.resize(MR * dim, K::Elem::default());
    let (block_rows, _) = block.as_chunks_mut::<MR>();
    let (panel_rows, _) = panels.as_chunks::<NR>();
    let (norm_groups, _) = query_norms.as_chunks::<NR>();
    let rows_per_panel = dim;

    for (block_index, cand_block) in cand[..cand_len * dim].chunks(MR * dim).enumerate() {
        let first = block_index * MR;
        let rows = cand_block.len() / dim;
        // Transpose the candidate block to k-major; pad missing rows with zeros.
        let mut cand_norm = [f32::INFINITY; MR];
        for row in block_rows.iter_mut() {
            *row = [K::Elem::default(); MR];
        }
        for (r, cand_row) in cand_block.chunks_exact(dim).enumerate() {
            let mut norm = 0.0f32;
            for (k, &v) in cand_row.iter().enumerate() {
                let e: K::Elem = v.into();
                block_rows[k][r] = e;
                norm += K::square(e);
            }
            cand_norm[r] = norm;
            scratch.cand_norms[first + r] = norm;
        }

        let mut cand_best = [[f32::INFINITY; NR]; MR];
        let mut cand_arg = [[u32::MAX; NR]; MR];
        for (p, panel) in panel_rows.chunks_exact(rows_per_panel).enumerate() {
            let mut acc = [[K::Elem::default(); NR]; MR];
            for (a, b) in block_rows.iter().zip(panel.iter()) {
                for r in 0..MR {
                    for w in 0..NR {
                        acc[r][w] = K::madd(acc[r][w], a[r], b[w]);
                    }
                }
            }
            let qn = &norm_groups[p];
            let base = (p * NR) as u32;
            // Candidate side: running minimum per (row, lane), reduced after the panels.
            for r in 0..MR {
                for w in 0..NR {
                    let v = qn[w] - 2.0 * K::to_f32(acc[r][w]);
                    let better = v < cand_best[r][w];
                    cand_best[r][w] = if better { v } else { cand_best[r][w] };
                    cand_arg[r][w] = if better {
                        base + w as u32
                    } else {
                        cand_arg[r][w]
                    };
                }
            }
            // Query side: best and second best candidate per column.
            let lo = p * NR;
            let (best, _) = scratch.query_best[lo..lo + NR].as_chunks_mut::<NR>();
            let (second, _) = scratch.query_second[lo..lo + NR].as_chunks_mut::<NR>();
            let (arg, _) = scratch.query_arg[lo..lo + NR].as_chunks_mut::<NR>();
            let (best, second, arg) = (&mut best[0], &mut second[0], &mut arg[0]);
            for r in 0..rows {
                let cn = cand_norm[r];
                let j = (first + r) as u32;
                for w in 0..NR {
                    let v = cn - 2.0 * K::to_f32(acc[r][w]);
                    let better = v < best[w];
                    let runner_up = v < second[w];
                    second[w] = if better {
                        best[w]
                    } else if runner_up {
                        v
                    } else {
                        second[w]
                    };
                    arg[w] = if better { j } else { arg[w] };
                    best[w] = if better { v } else { best[w] };
                }
            }
        }
        for r in 0..rows {
            let mut best = f32::INFINITY;
            let mut arg = u32::MAX;
            for w in 0..NR {
                let (v, i) = (cand_best[r][w], cand_arg[r][w]);
                if v < best || (v == best && i < arg) {
                    best = v;
                    arg = i;
                }
            }
            scratch.cand_best[first + r] = best;
            scratch.cand_arg[first + r] = arg;
        }
    }
    *K::block(scratch) = block;
}
