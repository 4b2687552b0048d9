//! Hand-written AVX-512 micro-kernels (8 candidate rows x 32 query columns, 16 zmm
//! accumulators). Only instantiated inside the `#[target_feature]` entry points of
//! `dispatch.rs`, which are called only after the CPU was checked for the features.

use std::arch::x86_64::*;

use super::nn_body::{F32Plain, Tile};
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
        let mut norm = 0u32;
        let mut sum = 0i32;
        for (k4, chunk) in row.chunks(4).enumerate() {
            let mut bytes = [0u8; 4];
            bytes[..chunk.len()].copy_from_slice(chunk);
            block[k4][r] = u32::from_le_bytes(bytes);
            for &v in chunk {
                norm += u32::from(v) * u32::from(v);
                sum += i32::from(v);
            }
        }
        (norm as f32, 128 * sum)
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
}
