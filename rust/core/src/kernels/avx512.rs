//! Hand-written AVX-512 micro-kernels (8 candidate rows x 32 query columns, 16 zmm
//! accumulators). Only instantiated inside the `#[target_feature]` entry points of
//! `dispatch.rs`, which are called only after the CPU was checked for the features.

use std::arch::x86_64::*;

use super::nn_body::{F32Plain, Tile, TileState};
use super::packing::u8_squared_norm;
use super::NnScratch;

/// float32, fused multiply-add.
pub(crate) struct F32Avx512;

/// uint8 x uint8, exact, with VNNI: `c·q = Σ c·(q - 128) + 128·Σ c`, the first term by
/// `vpdpbusd` (unsigned x signed bytes, 4 products per 32-bit lane).
pub(crate) struct U8Vnni;

impl Tile<8, 32> for F32Avx512 {
    type Elem = f32;
    type In = f32;

    fn depth(dim: usize) -> usize {
        dim
    }

    #[inline(always)]
    fn load_row(row: &[f32], r: usize, block: &mut [[f32; 8]]) -> (f32, i32) {
        <F32Plain as Tile<8, 32>>::load_row(row, r, block)
    }

    #[inline(always)]
    fn tile(block: &[[f32; 8]], panel: &[[f32; 32]], _: &[i32; 8], out: &mut [[f32; 32]; 8]) {
        // SAFETY: see the module docs (AVX-512F is present); every pointer comes from a
        // fixed-size array reference of sufficient length.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; 8];
            for (a, b) in block.iter().zip(panel.iter()) {
                let b0 = _mm512_loadu_ps(b.as_ptr());
                let b1 = _mm512_loadu_ps(b.as_ptr().add(16));
                for r in 0..8 {
                    let ar = _mm512_set1_ps(a[r]);
                    acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
                }
            }
            for (o, a) in out.iter_mut().zip(acc.iter()) {
                _mm512_storeu_ps(o.as_mut_ptr(), a[0]);
                _mm512_storeu_ps(o.as_mut_ptr().add(16), a[1]);
            }
        }
    }

    fn block(scratch: &mut NnScratch) -> &mut Vec<f32> {
        &mut scratch.block_f32
    }
}

impl Tile<8, 32> for U8Vnni {
    type Elem = u32;
    type In = u8;

    fn depth(dim: usize) -> usize {
        dim.div_ceil(4)
    }

    #[inline(always)]
    fn load_row(row: &[u8], r: usize, block: &mut [[u32; 8]]) -> (f32, i32) {
        // Whole words, then the tail zero-padded; the sums are plain loops the compiler
        // vectorises (once per candidate row, amortised over every query panel).
        let (words, tail) = row.as_chunks::<4>();
        for (dst, word) in block.iter_mut().zip(words) {
            dst[r] = u32::from_le_bytes(*word);
        }
        if !tail.is_empty() {
            let mut bytes = [0u8; 4];
            bytes[..tail.len()].copy_from_slice(tail);
            block[words.len()][r] = u32::from_le_bytes(bytes);
        }
        let sum: u32 = row.iter().map(|&v| u32::from(v)).sum();
        (u8_squared_norm(row), 128 * sum as i32)
    }

    #[inline(always)]
    fn tile(
        block: &[[u32; 8]],
        panel: &[[u32; 32]],
        correction: &[i32; 8],
        out: &mut [[f32; 32]; 8],
    ) {
        // SAFETY: see the module docs (AVX-512F/BW and VNNI are present); every pointer
        // comes from a fixed-size array reference of sufficient length.
        unsafe {
            let acc = vnni_dots(block, panel);
            for r in 0..8 {
                let c = _mm512_set1_epi32(correction[r]);
                let lo = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][0], c));
                let hi = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][1], c));
                _mm512_storeu_ps(out[r].as_mut_ptr(), lo);
                _mm512_storeu_ps(out[r].as_mut_ptr().add(16), hi);
            }
        }
    }

    fn block(scratch: &mut NnScratch) -> &mut Vec<u32> {
        &mut scratch.block_u32
    }

    /// The dot products stay in registers (see [`reduce_dots`]).
    #[inline(always)]
    fn tile_and_reduce(
        block: &[[u32; 8]],
        panel: &[[u32; 32]],
        correction: &[i32; 8],
        state: TileState<'_, 8, 32>,
    ) {
        // SAFETY: as in `tile` (AVX-512F/BW and VNNI are present); every pointer comes
        // from a fixed-size array reference of sufficient length.
        unsafe { reduce_dots(vnni_dots(block, panel), correction, state) }
    }
}

/// An 8 x 32 tile of integer dot products, held in registers (`acc[r][h]`: row `r`,
/// columns `16h..16h + 16`), folded into both reductions at once: each row's two
/// accumulators are converted (exactly: integers below 2^24) with the query-side state
/// held in registers for the whole tile. Same arithmetic as `reduce_tile`: `norm - 2·dot`
/// rounded once, strict `<` so ties keep the first. `correction[r]` is added to row `r`
/// first.
///
/// # Safety
/// Only call where AVX-512F/BW are enabled.
#[inline(always)]
unsafe fn reduce_dots(acc: [[__m512i; 2]; 8], correction: &[i32; 8], state: TileState<'_, 8, 32>) {
    // SAFETY: the caller guarantees AVX-512F/BW; every pointer comes from a fixed-size
    // array reference of sufficient length.
    unsafe {
        let two = _mm512_set1_ps(2.0);
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let qn = [
            _mm512_loadu_ps(state.query_norm.as_ptr()),
            _mm512_loadu_ps(state.query_norm.as_ptr().add(16)),
        ];
        let column = [
            _mm512_add_epi32(_mm512_set1_epi32(state.base as i32), lane),
            _mm512_add_epi32(_mm512_set1_epi32(state.base as i32 + 16), lane),
        ];
        let mut best = [
            _mm512_loadu_ps(state.best.as_ptr()),
            _mm512_loadu_ps(state.best.as_ptr().add(16)),
        ];
        let mut second = [
            _mm512_loadu_ps(state.second.as_ptr()),
            _mm512_loadu_ps(state.second.as_ptr().add(16)),
        ];
        let mut arg = [
            _mm512_loadu_si512(state.arg.as_ptr().cast()),
            _mm512_loadu_si512(state.arg.as_ptr().add(16).cast()),
        ];
        for r in 0..8 {
            let cn = _mm512_set1_ps(state.cand_norm[r]);
            let j = _mm512_set1_epi32((state.first + r as u32) as i32);
            let real_row = r < state.rows;
            for h in 0..2 {
                let c = _mm512_set1_epi32(correction[r]);
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][h], c));
                // Candidate side.
                let cb_ptr = state.cand_best[r].as_mut_ptr().add(16 * h);
                let ca_ptr = state.cand_arg[r].as_mut_ptr().add(16 * h);
                // On a tie `min` returns `v`, the same value as `cb` (exact integers: no
                // -0.0 or NaN arises here), so the stored value is as before.
                let cb = _mm512_loadu_ps(cb_ptr);
                let v = _mm512_fnmadd_ps(two, dot, qn[h]);
                let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, cb);
                _mm512_storeu_ps(cb_ptr, _mm512_min_ps(cb, v));
                let ca = _mm512_loadu_si512(ca_ptr.cast());
                _mm512_storeu_si512(ca_ptr.cast(), _mm512_mask_mov_epi32(ca, m, column[h]));
                // Query side.
                if real_row {
                    let v = _mm512_fnmadd_ps(two, dot, cn);
                    // A new best pushes the old one to second place; otherwise the
                    // smaller of second and `v` (equal values are the same value).
                    let better = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, best[h]);
                    second[h] = _mm512_min_ps(second[h], v);
                    second[h] = _mm512_mask_mov_ps(second[h], better, best[h]);
                    best[h] = _mm512_min_ps(best[h], v);
                    arg[h] = _mm512_mask_mov_epi32(arg[h], better, j);
                }
            }
        }
        for h in 0..2 {
            _mm512_storeu_ps(state.best.as_mut_ptr().add(16 * h), best[h]);
            _mm512_storeu_ps(state.second.as_mut_ptr().add(16 * h), second[h]);
            _mm512_storeu_si512(state.arg.as_mut_ptr().add(16 * h).cast(), arg[h]);
        }
    }
}

/// The 8 x 32 tile of `Σ c·(q - 128)` dot products (4 bytes a lane a step, `vpdpbusd`).
///
/// # Safety
/// Only call where AVX-512F/BW and VNNI are enabled (the `U8Vnni` tile methods).
#[inline(always)]
unsafe fn vnni_dots(block: &[[u32; 8]], panel: &[[u32; 32]]) -> [[__m512i; 2]; 8] {
    // SAFETY: the caller guarantees the CPU features; every pointer comes from a
    // fixed-size array reference of sufficient length.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); 2]; 8];
        for (a, b) in block.iter().zip(panel.iter()) {
            let b0 = _mm512_loadu_si512(b.as_ptr().cast());
            let b1 = _mm512_loadu_si512(b.as_ptr().add(16).cast());
            for r in 0..8 {
                let ar = _mm512_set1_epi32(a[r] as i32);
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], ar, b0);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], ar, b1);
            }
        }
        acc
    }
}
