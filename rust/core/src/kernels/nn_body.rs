//! The one generic nearest-neighbour loop, parametrised by a [`Tile`] micro-kernel. It is
//! `#[inline(always)]` so that each instruction-set entry point in `dispatch.rs` compiles
//! its own copy.
//!
//! For a block of `MR` candidate rows and a panel of `NR` query columns the tile computes
//! the `MR x NR` dot products, which are folded straight into the reductions: per query
//! column the best and second-best candidate of `|c|² - 2 q·c`, and per candidate row the
//! best query of `|q|² - 2 q·c`. No similarity matrix is stored.

use super::NnScratch;

/// A micro-kernel: how candidate rows are laid out in the k-major block, and how one block
/// meets one packed query panel.
pub(crate) trait Tile<const MR: usize, const NR: usize> {
    /// Element of the block and of the panels (one value, or 4 packed bytes).
    type Elem: Copy + Default;
    /// Candidate input element.
    type In: Copy;
    /// Block rows for descriptors of dimension `dim`.
    fn depth(dim: usize) -> usize;
    /// Write candidate row `row` into column `r` of `block`; return its squared norm and
    /// the correction the tile adds to its dot products.
    fn load_row(row: &[Self::In], r: usize, block: &mut [[Self::Elem; MR]]) -> (f32, i32);
    /// `out[r][w] = dot(candidate r, query w) + correction[r]`.
    fn tile(
        block: &[[Self::Elem; MR]],
        panel: &[[Self::Elem; NR]],
        correction: &[i32; MR],
        out: &mut [[f32; NR]; MR],
    );
    /// The scratch buffer that holds the block.
    fn block(scratch: &mut NnScratch) -> &mut Vec<Self::Elem>;
}

/// Generic scalar tiles (auto-vectorised where the target allows).
pub(crate) struct F32Fused;
pub(crate) struct F32Plain;
pub(crate) struct U8Exact;

macro_rules! generic_f32_tile {
    ($name:ident, $madd:expr) => {
        impl<const MR: usize, const NR: usize> Tile<MR, NR> for $name {
            type Elem = f32;
            type In = f32;
            fn depth(dim: usize) -> usize {
                dim
            }
            #[inline(always)]
            fn load_row(row: &[f32], r: usize, block: &mut [[f32; MR]]) -> (f32, i32) {
                let mut norm = 0.0f32;
                for (k, &v) in row.iter().enumerate() {
                    block[k][r] = v;
                    norm += v * v;
                }
                (norm, 0)
            }
            #[inline(always)]
            fn tile(
                block: &[[f32; MR]],
                panel: &[[f32; NR]],
                _: &[i32; MR],
                out: &mut [[f32; NR]; MR],
            ) {
                let mut acc = [[0.0f32; NR]; MR];
                for (a, b) in block.iter().zip(panel.iter()) {
                    for r in 0..MR {
                        for w in 0..NR {
                            acc[r][w] = $madd(acc[r][w], a[r], b[w]);
                        }
                    }
                }
                *out = acc;
            }
            fn block(scratch: &mut NnScratch) -> &mut Vec<f32> {
                &mut scratch.block_f32
            }
        }
    };
}

generic_f32_tile!(F32Fused, |acc: f32, a: f32, b: f32| a.mul_add(b, acc));
generic_f32_tile!(F32Plain, |acc: f32, a: f32, b: f32| acc + a * b);

impl<const MR: usize, const NR: usize> Tile<MR, NR> for U8Exact {
    type Elem = i32;
    type In = u8;
    fn depth(dim: usize) -> usize {
        dim
    }
    #[inline(always)]
    fn load_row(row: &[u8], r: usize, block: &mut [[i32; MR]]) -> (f32, i32) {
        let mut norm = 0u32;
        for (k, &v) in row.iter().enumerate() {
            block[k][r] = i32::from(v);
            norm += u32::from(v) * u32::from(v);
        }
        (norm as f32, 0)
    }
    #[inline(always)]
    fn tile(block: &[[i32; MR]], panel: &[[i32; NR]], _: &[i32; MR], out: &mut [[f32; NR]; MR]) {
        let mut acc = [[0i32; NR]; MR];
        for (a, b) in block.iter().zip(panel.iter()) {
            for r in 0..MR {
                for w in 0..NR {
                    acc[r][w] = acc[r][w].wrapping_add(a[r].wrapping_mul(b[w]));
                }
            }
        }
        for r in 0..MR {
            for w in 0..NR {
                out[r][w] = acc[r][w] as f32;
            }
        }
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
pub(crate) fn nn_body<K: Tile<MR, NR>, const MR: usize, const NR: usize>(
    panels: &[K::Elem],
    query_norms: &[f32],
    dim: usize,
    cand: &[K::In],
    cand_len: usize,
    scratch: &mut NnScratch,
) {
    let padded = query_norms.len();
    reset_outputs(scratch, padded, cand_len);
    if dim == 0 || cand_len == 0 || padded == 0 {
        return;
    }
    let depth = K::depth(dim);
    let mut block = std::mem::take(K::block(scratch));
    block.clear();
    block.resize(MR * depth, K::Elem::default());
    let (block_rows, _) = block.as_chunks_mut::<MR>();
    let (panel_rows, _) = panels.as_chunks::<NR>();
    let (norm_groups, _) = query_norms.as_chunks::<NR>();
    let mut dots = [[0.0f32; NR]; MR];

    for (block_index, cand_block) in cand[..cand_len * dim].chunks(MR * dim).enumerate() {
        let first = block_index * MR;
        let rows = cand_block.len() / dim;
        let mut cand_norm = [f32::INFINITY; MR];
        let mut correction = [0i32; MR];
        for row in block_rows.iter_mut() {
            *row = [K::Elem::default(); MR];
        }
        for (r, cand_row) in cand_block.chunks_exact(dim).enumerate() {
            let (norm, corr) = K::load_row(cand_row, r, block_rows);
            cand_norm[r] = norm;
            correction[r] = corr;
            scratch.cand_norms[first + r] = norm;
        }

        let mut cand_best = [[f32::INFINITY; NR]; MR];
        let mut cand_arg = [[u32::MAX; NR]; MR];
        for (p, panel) in panel_rows.chunks_exact(depth).enumerate() {
            K::tile(block_rows, panel, &correction, &mut dots);
            let qn = &norm_groups[p];
            let base = (p * NR) as u32;
            // Candidate side: running minimum per (row, lane), reduced after the panels.
            for r in 0..MR {
                for w in 0..NR {
                    let v = qn[w] - 2.0 * dots[r][w];
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
                    let v = cn - 2.0 * dots[r][w];
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

/// Size the outputs for `padded` query columns and `cand_len` candidates, with no
/// neighbour found yet (every `*_arg` is `u32::MAX`).
pub(crate) fn reset_outputs(scratch: &mut NnScratch, padded: usize, cand_len: usize) {
    reset(&mut scratch.query_best, padded, f32::INFINITY);
    reset(&mut scratch.query_second, padded, f32::INFINITY);
    reset(&mut scratch.query_arg, padded, u32::MAX);
    reset(&mut scratch.cand_best, cand_len, f32::INFINITY);
    reset(&mut scratch.cand_arg, cand_len, u32::MAX);
    reset(&mut scratch.cand_norms, cand_len, 0.0);
}

fn reset<T: Copy>(v: &mut Vec<T>, len: usize, value: T) {
    v.clear();
    v.resize(len, value);
}
