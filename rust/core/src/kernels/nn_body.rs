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

    /// One tile folded into the reductions (see [`TileState`]). The default computes the
    /// dot products with [`Tile::tile`] and reduces them in plain code; a micro-kernel may
    /// do both in registers, with the same arithmetic (`norm - 2·dot`, rounded once).
    #[inline(always)]
    fn tile_and_reduce(
        block: &[[Self::Elem; MR]],
        panel: &[[Self::Elem; NR]],
        correction: &[i32; MR],
        state: TileState<'_, MR, NR>,
    ) {
        let mut dots = [[0.0f32; NR]; MR];
        Self::tile(block, panel, correction, &mut dots);
        reduce_tile(&dots, state);
    }
}

/// What one tile (candidate rows `first..first + rows` of the block, query columns
/// `base..base + NR`) updates.
pub(crate) struct TileState<'a, const MR: usize, const NR: usize> {
    /// Squared norms of the block's candidate rows (+inf beyond `rows`).
    pub cand_norm: &'a [f32; MR],
    /// Squared norms of the panel's query columns (+inf for padding).
    pub query_norm: &'a [f32; NR],
    /// Index of the panel's first query column.
    pub base: u32,
    /// Index of the block's first candidate row.
    pub first: u32,
    /// Real rows in the block.
    pub rows: usize,
    /// Candidate side, per (row, lane): smallest `|q|² - 2 q·c` so far and its query.
    pub cand_best: &'a mut [[f32; NR]; MR],
    pub cand_arg: &'a mut [[u32; NR]; MR],
    /// Query side, per column: best and second-best `|c|² - 2 q·c` and the best candidate.
    pub best: &'a mut [f32; NR],
    pub second: &'a mut [f32; NR],
    pub arg: &'a mut [u32; NR],
}

/// The reductions of one tile of dot products, in plain code.
#[inline(always)]
pub(crate) fn reduce_tile<const MR: usize, const NR: usize>(
    dots: &[[f32; NR]; MR],
    state: TileState<'_, MR, NR>,
) {
    let TileState {
        cand_norm,
        query_norm: qn,
        base,
        first,
        rows,
        cand_best,
        cand_arg,
        best,
        second,
        arg,
    } = state;
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
    for r in 0..rows {
        let cn = cand_norm[r];
        let j = first + r as u32;
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
            let lo = p * NR;
            let (best, _) = scratch.query_best[lo..lo + NR].as_chunks_mut::<NR>();
            let (second, _) = scratch.query_second[lo..lo + NR].as_chunks_mut::<NR>();
            let (arg, _) = scratch.query_arg[lo..lo + NR].as_chunks_mut::<NR>();
            K::tile_and_reduce(
                block_rows,
                panel,
                &correction,
                TileState {
                    cand_norm: &cand_norm,
                    query_norm: &norm_groups[p],
                    base: lo as u32,
                    first: first as u32,
                    rows,
                    cand_best: &mut cand_best,
                    cand_arg: &mut cand_arg,
                    best: &mut best[0],
                    second: &mut second[0],
                    arg: &mut arg[0],
                },
            );
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
