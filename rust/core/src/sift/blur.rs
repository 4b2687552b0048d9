//! Separable Gaussian blur with symmetric-tap folding, and the resampling between octaves.
//!
//! One pass per output row (four at a time on AVX-512): the `2r + 1` source rows around it
//! are folded vertically (`k0·c + Σ kᵢ·(upᵢ + downᵢ)`, each tap one add and one fused
//! multiply-add, `kᵢ·(upᵢ + downᵢ) + acc`) into a row buffer with reflected margins, then
//! the same folding runs horizontally into the output row. The source rows of a sliding window stay
//! in L2; no intermediate plane is written. Borders reflect without repeating the edge
//! (OpenCV's `BORDER_REFLECT_101`).

use super::rows::Rows;
use super::simd::multiversion;
use crate::isa::Isa;

/// Lanes processed together by the folded loops (four AVX-512 registers).
const CHUNK: usize = 64;

/// The half kernel `[k0, k1, ..., kr]` of a normalised Gaussian of standard deviation
/// `sigma`, with OpenCV's size for float images (`round(8σ + 1) | 1` taps).
pub(crate) fn gaussian_half_kernel(sigma: f32) -> Vec<f32> {
    let size = (((sigma as f64) * 8.0 + 1.0).round() as usize) | 1;
    let r = size / 2;
    let s2 = -0.5 / ((sigma as f64) * (sigma as f64));
    let full: Vec<f64> = (0..size)
        .map(|i| {
            let x = i as f64 - r as f64;
            (x * x * s2).exp()
        })
        .collect();
    let sum: f64 = full.iter().sum();
    full[r..].iter().map(|v| (v / sum) as f32).collect()
}

/// Index `i` (possibly outside `[0, n)`) reflected into it without repeating the edge.
pub(crate) fn reflect101(mut i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    loop {
        if i < 0 {
            i = -i;
        } else if i >= n {
            i = 2 * n - 2 - i;
        } else {
            return i as usize;
        }
    }
}

/// One pixel of the vertical fold, the scalar form every ISA's vector loop equals:
/// `k[0]·rows[r][x]`, then `k[i]·(rows[r - i][x] + rows[r + i][x]) + acc` for `i = 1..=r`.
#[inline(always)]
fn fold_rows_at(rows: &[&[f32]], k: &[f32], x: usize) -> f32 {
    let r = k.len() - 1;
    let mut a = k[0] * rows[r][x];
    for (i, &ki) in k.iter().enumerate().skip(1) {
        a = ki.mul_add(rows[r - i][x] + rows[r + i][x], a);
    }
    a
}

/// Pixels `from..out.len()` of the horizontal fold over the padded row `p` (radius
/// `k.len() - 1`), in the scalar form every ISA's vector loop equals; with `DOG`, also
/// `dog[x] = out[x] - base[x]`.
#[inline(always)]
fn fold_row_tail<const DOG: bool>(
    p: &[f32],
    k: &[f32],
    out: &mut [f32],
    base: &[f32],
    dog: &mut [f32],
    from: usize,
) {
    let r = k.len() - 1;
    for x in from..out.len() {
        let mut a = k[0] * p[x + r];
        for (i, &ki) in k.iter().enumerate().skip(1) {
            a = ki.mul_add(p[x + r - i] + p[x + r + i], a);
        }
        out[x] = a;
        if DOG {
            dog[x] = a - base[x];
        }
    }
}

/// `out[x] = k[0]·c[x] + Σᵢ k[i]·(up[i][x] + down[i][x])` for the rows of one output
/// row (`rows[r]` is the centre, `rows[r - i]` and `rows[r + i]` the pair of tap `i`).
#[inline(always)]
fn fold_rows_body(rows: &[&[f32]], k: &[f32], out: &mut [f32]) {
    let n = out.len();
    let r = k.len() - 1;
    let centre = &rows[r][..n];
    let mut x = 0;
    while x + CHUNK <= n {
        let mut acc = [0f32; CHUNK];
        for (a, c) in acc.iter_mut().zip(&centre[x..x + CHUNK]) {
            *a = k[0] * c;
        }
        for (i, &ki) in k.iter().enumerate().skip(1) {
            let up = &rows[r - i][x..x + CHUNK];
            let down = &rows[r + i][x..x + CHUNK];
            for l in 0..CHUNK {
                acc[l] = ki.mul_add(up[l] + down[l], acc[l]);
            }
        }
        out[x..x + CHUNK].copy_from_slice(&acc);
        x += CHUNK;
    }
    for (x, o) in out.iter_mut().enumerate().skip(x) {
        *o = fold_rows_at(rows, k, x);
    }
}

/// `out[x] = k[0]·p[x + r] + Σᵢ k[i]·(p[x + r - i] + p[x + r + i])` over a row `p`
/// padded by `r` on each side; with `DOG`, also `dog[x] = out[x] - base[x]` while the
/// sums are still in registers (no second pass over the row).
#[inline(always)]
fn fold_row_impl<const DOG: bool>(
    padded: &[f32],
    k: &[f32],
    out: &mut [f32],
    base: &[f32],
    dog: &mut [f32],
) {
    let n = out.len();
    let r = k.len() - 1;
    let p = &padded[..n + 2 * r];
    let (base, dog) = if DOG {
        (&base[..n], &mut dog[..n])
    } else {
        (base, dog)
    };
    let mut x = 0;
    while x + CHUNK <= n {
        let mut acc = [0f32; CHUNK];
        let c = &p[x + r..x + r + CHUNK];
        for l in 0..CHUNK {
            acc[l] = k[0] * c[l];
        }
        for (i, &ki) in k.iter().enumerate().skip(1) {
            let left = &p[x + r - i..x + r - i + CHUNK];
            let right = &p[x + r + i..x + r + i + CHUNK];
            for l in 0..CHUNK {
                acc[l] = ki.mul_add(left[l] + right[l], acc[l]);
            }
        }
        out[x..x + CHUNK].copy_from_slice(&acc);
        if DOG {
            let b = &base[x..x + CHUNK];
            let d = &mut dog[x..x + CHUNK];
            for l in 0..CHUNK {
                d[l] = acc[l] - b[l];
            }
        }
        x += CHUNK;
    }
    fold_row_tail::<DOG>(p, k, out, base, dog, x);
}

#[inline(always)]
fn fold_row_body(padded: &[f32], k: &[f32], out: &mut [f32]) {
    fold_row_impl::<false>(padded, k, out, &[], &mut []);
}

#[inline(always)]
fn fold_row_dog_body(padded: &[f32], k: &[f32], out: &mut [f32], base: &[f32], dog: &mut [f32]) {
    fold_row_impl::<true>(padded, k, out, base, dog);
}

/// Output rows blurred together by [`fold_rows4`].
const BLOCK: usize = 4;
/// Lanes of one block step (one AVX-512 register a row).
#[cfg(target_arch = "x86_64")]
const LANES: usize = 16;

/// [`fold_rows_body`] for the [`BLOCK`] output rows centred on `rows[r..r + BLOCK]`
/// (`rows` holds `2r + BLOCK` source rows), output row `j` written to
/// `out[j * stride..][..n]`, on AVX-512. The rows of tap `i` of consecutive outputs are
/// neighbours, so a sliding window of registers serves all of them: two loads a tap for
/// the block instead of two a row. Each output row's sums are those of
/// [`fold_rows_body`], in the same order: the same bits.
///
/// # Safety
/// The CPU must have AVX-512 F and FMA (`Isa::has_avx512`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn fold_rows4_avx512(rows: &[&[f32]], k: &[f32], out: &mut [f32], stride: usize, n: usize) {
    use std::arch::x86_64::*;
    let r = k.len() - 1;
    let rows = &rows[..2 * r + BLOCK];
    assert!(rows.iter().all(|row| row.len() >= n));
    assert!(out.len() >= (BLOCK - 1) * stride + n);
    // SAFETY (every load and store below): `x + LANES <= n`, and every row holds at least
    // `n` values, `out` at least `(BLOCK - 1) * stride + n` (asserted above).
    let load = |t: usize, x: usize| unsafe { _mm512_loadu_ps(rows[t].as_ptr().add(x)) };
    let mut x = 0;
    while x + LANES <= n {
        let mut lo = [load(r, x), load(r + 1, x), load(r + 2, x), load(r + 3, x)];
        let mut hi = lo;
        let k0 = _mm512_set1_ps(k[0]);
        let mut acc = [
            _mm512_mul_ps(k0, lo[0]),
            _mm512_mul_ps(k0, lo[1]),
            _mm512_mul_ps(k0, lo[2]),
            _mm512_mul_ps(k0, lo[3]),
        ];
        for (i, &ki) in k.iter().enumerate().skip(1) {
            // lo[j] is row r + j - i, hi[j] row r + j + i.
            lo = [load(r - i, x), lo[0], lo[1], lo[2]];
            hi = [hi[1], hi[2], hi[3], load(r + 3 + i, x)];
            let ki = _mm512_set1_ps(ki);
            for j in 0..BLOCK {
                acc[j] = _mm512_fmadd_ps(ki, _mm512_add_ps(lo[j], hi[j]), acc[j]);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(j * stride + x), *a) };
        }
        x += LANES;
    }
    for x in x..n {
        for j in 0..BLOCK {
            out[j * stride + x] = fold_rows_at(&rows[j..], k, x);
        }
    }
}

/// [`fold_rows4_avx512`] where the CPU has it (`true`), else nothing (`false`: the caller
/// folds one row at a time).
fn fold_rows4(
    isa: Isa,
    rows: &[&[f32]],
    k: &[f32],
    out: &mut [f32],
    stride: usize,
    n: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx512() {
        // SAFETY: `isa` comes from `Isa::detect` (or is below it), which vouches for
        // AVX-512 F/BW/VL and FMA on this CPU.
        unsafe { fold_rows4_avx512(rows, k, out, stride, n) };
        return true;
    }
    let _ = (isa, rows, k, out, stride, n);
    false
}

multiversion! {
    fn fold_rows(rows: &[&[f32]], k: &[f32], out: &mut [f32]) = fold_rows_body;
}
multiversion! {
    fn fold_row(padded: &[f32], k: &[f32], out: &mut [f32]) = fold_row_body;
}
multiversion! {
    fn fold_row_dog(
        padded: &[f32],
        k: &[f32],
        out: &mut [f32],
        base: &[f32],
        dog: &mut [f32],
    ) = fold_row_dog_body;
}

/// Largest kernel radius of the AVX-512 horizontal fold ([`fold_row_avx512`]).
const WIDE_RADIUS: usize = 16;
/// Slack after each padded row: [`fold_row_avx512`] loads three registers a step.
const SLACK: usize = 32;

/// `padded[x + s..x + s + 16]` from the three registers `v = padded[x..x + 48]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn shifted(
    v0: std::arch::x86_64::__m512,
    v1: std::arch::x86_64::__m512,
    v2: std::arch::x86_64::__m512,
    s: usize,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // SAFETY: the callers run with AVX-512 F enabled (casts and `valignd` only).
    unsafe {
        let cast = |v: __m512i| _mm512_castsi512_ps(v);
        let cast_i = |v: __m512| _mm512_castps_si512(v);
        match s {
            0 => v0,
            1 => cast(_mm512_alignr_epi32::<1>(cast_i(v1), cast_i(v0))),
            2 => cast(_mm512_alignr_epi32::<2>(cast_i(v1), cast_i(v0))),
            3 => cast(_mm512_alignr_epi32::<3>(cast_i(v1), cast_i(v0))),
            4 => cast(_mm512_alignr_epi32::<4>(cast_i(v1), cast_i(v0))),
            5 => cast(_mm512_alignr_epi32::<5>(cast_i(v1), cast_i(v0))),
            6 => cast(_mm512_alignr_epi32::<6>(cast_i(v1), cast_i(v0))),
            7 => cast(_mm512_alignr_epi32::<7>(cast_i(v1), cast_i(v0))),
            8 => cast(_mm512_alignr_epi32::<8>(cast_i(v1), cast_i(v0))),
            9 => cast(_mm512_alignr_epi32::<9>(cast_i(v1), cast_i(v0))),
            10 => cast(_mm512_alignr_epi32::<10>(cast_i(v1), cast_i(v0))),
            11 => cast(_mm512_alignr_epi32::<11>(cast_i(v1), cast_i(v0))),
            12 => cast(_mm512_alignr_epi32::<12>(cast_i(v1), cast_i(v0))),
            13 => cast(_mm512_alignr_epi32::<13>(cast_i(v1), cast_i(v0))),
            14 => cast(_mm512_alignr_epi32::<14>(cast_i(v1), cast_i(v0))),
            15 => cast(_mm512_alignr_epi32::<15>(cast_i(v1), cast_i(v0))),
            16 => v1,
            17 => cast(_mm512_alignr_epi32::<1>(cast_i(v2), cast_i(v1))),
            18 => cast(_mm512_alignr_epi32::<2>(cast_i(v2), cast_i(v1))),
            19 => cast(_mm512_alignr_epi32::<3>(cast_i(v2), cast_i(v1))),
            20 => cast(_mm512_alignr_epi32::<4>(cast_i(v2), cast_i(v1))),
            21 => cast(_mm512_alignr_epi32::<5>(cast_i(v2), cast_i(v1))),
            22 => cast(_mm512_alignr_epi32::<6>(cast_i(v2), cast_i(v1))),
            23 => cast(_mm512_alignr_epi32::<7>(cast_i(v2), cast_i(v1))),
            24 => cast(_mm512_alignr_epi32::<8>(cast_i(v2), cast_i(v1))),
            25 => cast(_mm512_alignr_epi32::<9>(cast_i(v2), cast_i(v1))),
            26 => cast(_mm512_alignr_epi32::<10>(cast_i(v2), cast_i(v1))),
            27 => cast(_mm512_alignr_epi32::<11>(cast_i(v2), cast_i(v1))),
            28 => cast(_mm512_alignr_epi32::<12>(cast_i(v2), cast_i(v1))),
            29 => cast(_mm512_alignr_epi32::<13>(cast_i(v2), cast_i(v1))),
            30 => cast(_mm512_alignr_epi32::<14>(cast_i(v2), cast_i(v1))),
            31 => cast(_mm512_alignr_epi32::<15>(cast_i(v2), cast_i(v1))),
            _ => v2,
        }
    }
}

/// [`fold_row_impl`] on AVX-512 for a kernel of radius `R` (at most [`WIDE_RADIUS`]):
/// each step loads `padded[x..x + 48]` once and takes the `2R + 1` shifted vectors the
/// taps need from registers (`valignd`) instead of `2R + 1` unaligned loads. The same
/// operations in the same order as [`fold_row_impl`]: the same bits.
///
/// # Safety
/// The CPU must have AVX-512 F and FMA; `padded` holds `out.len() + 2R + SLACK` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn fold_row_avx512<const R: usize, const DOG: bool>(
    padded: &[f32],
    k: &[f32],
    out: &mut [f32],
    base: &[f32],
    dog: &mut [f32],
) {
    use std::arch::x86_64::*;
    let n = out.len();
    assert!(k.len() == R + 1 && padded.len() >= n + 2 * R + SLACK);
    assert!(!DOG || (base.len() >= n && dog.len() >= n));
    let p = padded.as_ptr();
    let mut kv = [_mm512_setzero_ps(); WIDE_RADIUS + 1];
    for (v, &ki) in kv.iter_mut().zip(k) {
        *v = _mm512_set1_ps(ki);
    }
    let mut x = 0;
    while x + LANES <= n {
        // SAFETY: x + 48 <= n + SLACK + 16 - LANES <= padded.len() (asserted above).
        let (v0, v1, v2) = unsafe {
            (
                _mm512_loadu_ps(p.add(x)),
                _mm512_loadu_ps(p.add(x + 16)),
                _mm512_loadu_ps(p.add(x + 32)),
            )
        };
        let mut acc = _mm512_mul_ps(kv[0], shifted(v0, v1, v2, R));
        // An index loop over a constant range: unrolled, so that every shift is a constant.
        #[allow(clippy::needless_range_loop)]
        for i in 1..=R {
            let pair = _mm512_add_ps(shifted(v0, v1, v2, R - i), shifted(v0, v1, v2, R + i));
            acc = _mm512_fmadd_ps(kv[i], pair, acc);
        }
        // SAFETY: x + LANES <= n <= out.len(), base.len(), dog.len().
        unsafe {
            _mm512_storeu_ps(out.as_mut_ptr().add(x), acc);
            if DOG {
                let b = _mm512_loadu_ps(base.as_ptr().add(x));
                _mm512_storeu_ps(dog.as_mut_ptr().add(x), _mm512_sub_ps(acc, b));
            }
        }
        x += LANES;
    }
    fold_row_tail::<DOG>(padded, k, out, base, dog, x);
}

/// [`fold_row_avx512`] for the kernel `k` where the CPU has AVX-512 and the radius is at
/// most [`WIDE_RADIUS`] (`true`), else nothing (`false`).
fn fold_row_wide<const DOG: bool>(
    isa: Isa,
    padded: &[f32],
    k: &[f32],
    out: &mut [f32],
    base: &[f32],
    dog: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx512() {
        // SAFETY: `isa` vouches for AVX-512 F and FMA; the radius matches `k` and the
        // callers' padded rows carry SLACK (the function asserts both).
        unsafe {
            match k.len() - 1 {
                1 => fold_row_avx512::<1, DOG>(padded, k, out, base, dog),
                2 => fold_row_avx512::<2, DOG>(padded, k, out, base, dog),
                3 => fold_row_avx512::<3, DOG>(padded, k, out, base, dog),
                4 => fold_row_avx512::<4, DOG>(padded, k, out, base, dog),
                5 => fold_row_avx512::<5, DOG>(padded, k, out, base, dog),
                6 => fold_row_avx512::<6, DOG>(padded, k, out, base, dog),
                7 => fold_row_avx512::<7, DOG>(padded, k, out, base, dog),
                8 => fold_row_avx512::<8, DOG>(padded, k, out, base, dog),
                9 => fold_row_avx512::<9, DOG>(padded, k, out, base, dog),
                10 => fold_row_avx512::<10, DOG>(padded, k, out, base, dog),
                11 => fold_row_avx512::<11, DOG>(padded, k, out, base, dog),
                12 => fold_row_avx512::<12, DOG>(padded, k, out, base, dog),
                13 => fold_row_avx512::<13, DOG>(padded, k, out, base, dog),
                14 => fold_row_avx512::<14, DOG>(padded, k, out, base, dog),
                15 => fold_row_avx512::<15, DOG>(padded, k, out, base, dog),
                16 => fold_row_avx512::<16, DOG>(padded, k, out, base, dog),
                _ => return false,
            }
        }
        return true;
    }
    let _ = (isa, padded, k, out, base, dog);
    false
}

/// Work rows of [`gaussian_blur`], kept between calls.
#[derive(Debug, Default)]
pub(crate) struct BlurScratch {
    padded: Vec<f32>,
}

/// `dst = G_σ * src` for a `width x height` plane, with the half kernel `k`; with `dog`,
/// also `dog = dst - src` in the same pass (each DoG row taken while the blurred row is
/// still in L1).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gaussian_blur(
    isa: Isa,
    src: &[f32],
    dst: &mut [f32],
    width: usize,
    height: usize,
    k: &[f32],
    scratch: &mut BlurScratch,
    dog: Option<&mut [f32]>,
) {
    let n = width * height;
    gaussian_blur_rows(
        isa,
        &Rows::whole(&src[..n], width),
        &mut Rows::whole(&mut dst[..n], width),
        width,
        height,
        k,
        scratch,
        dog.map(|d| Rows::whole(&mut d[..n], width)).as_mut(),
        0..height,
    );
}

/// Rows `rows` of [`gaussian_blur`]: only source rows within `k.len() - 1` of them (or
/// their reflections) are read, so a pyramid can compute a level a band of rows behind the
/// level it blurs. `src`, `dst` and `dog` may keep their rows anywhere ([`Rows`]: a whole
/// plane, a ring, a thread's own rows and halo): the caller keeps the source rows this
/// band reads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gaussian_blur_rows(
    isa: Isa,
    src: &Rows<&[f32]>,
    dst: &mut Rows<&mut [f32]>,
    width: usize,
    height: usize,
    k: &[f32],
    scratch: &mut BlurScratch,
    mut dog: Option<&mut Rows<&mut [f32]>>,
    rows_out: std::ops::Range<usize>,
) {
    let r = k.len() - 1;
    let stride = width + 2 * r + SLACK;
    scratch.padded.resize(BLOCK * stride, 0.0);
    let mut rows: Vec<&[f32]> = Vec::with_capacity(2 * r + BLOCK);
    let src_row = |sy: isize| src.row(reflect101(sy, height));
    let mut y = rows_out.start;
    while y < rows_out.end {
        // Vertical folds of up to BLOCK rows into padded rows, then each row's horizontal
        // fold (and DoG).
        let mut block = if rows_out.end - y >= BLOCK { BLOCK } else { 1 };
        rows.clear();
        rows.extend((0..2 * r + block).map(|t| src_row(y as isize + t as isize - r as isize)));
        let padded = &mut scratch.padded;
        if block == 1 || !fold_rows4(isa, &rows, k, &mut padded[r..], stride, width) {
            block = 1;
            rows.truncate(2 * r + 1);
            fold_rows(isa, &rows, k, &mut padded[r..r + width]);
        }
        for (j, padded) in padded.chunks_exact_mut(stride).take(block).enumerate() {
            for t in 0..r {
                padded[r - 1 - t] = padded[r + reflect101(-1 - t as isize, width)];
                padded[r + width + t] = padded[r + reflect101((width + t) as isize, width)];
            }
            let yj = y + j;
            let out = dst.row_mut(yj);
            match dog.as_deref_mut() {
                Some(dog) => {
                    let base = src.row(yj);
                    let dog = dog.row_mut(yj);
                    if !fold_row_wide::<true>(isa, padded, k, out, base, dog) {
                        fold_row_dog(isa, padded, k, out, base, dog);
                    }
                }
                None => {
                    if !fold_row_wide::<false>(isa, padded, k, out, &[], &mut []) {
                        fold_row(isa, padded, k, out);
                    }
                }
            }
        }
        y += block;
    }
}

/// The plane doubled in each direction by OpenCV's bilinear `resize` (pixel centres
/// aligned: output pixel `x` samples the source at `x / 2 - 0.25`, edges replicated), the
/// interpolation OpenCV's SIFT doubles its first octave with: output pixels take
/// `0.25·a + 0.75·b` of their two nearest source pixels in each direction.
/// Here for the source rows `y` in `rows` (output rows `2y` and `2y + 1`, stored at rows
/// `2y % ring` and the next: `dst` is a ring of an even number of rows), so that the
/// doubled image can be made a band at a time.
pub(crate) fn upsample2_rows(
    src: &[f32],
    width: usize,
    height: usize,
    dst: &mut [f32],
    rows: std::ops::Range<usize>,
    ring: usize,
) {
    debug_assert!(ring.is_multiple_of(2) && dst.len() == ring * 2 * width);
    let w2 = 2 * width;
    let hrow = |y: usize, out: &mut [f32]| {
        let s = &src[y * width..(y + 1) * width];
        let out = &mut out[..2 * width];
        // The edge pixels replicate; between them a branch-free (vectorised) loop.
        out[0] = s[0];
        out[2 * width - 1] = s[width - 1];
        for (x, pair) in s.windows(2).enumerate() {
            out[2 * x + 1] = pair[0] * 0.75 + pair[1] * 0.25;
            out[2 * x + 2] = pair[0] * 0.25 + pair[1] * 0.75;
        }
    };
    // Source rows y - 1, y and y + 1, interpolated horizontally.
    let (mut prev, mut cur, mut next) = (vec![0f32; w2], vec![0f32; w2], vec![0f32; w2]);
    if rows.start > 0 {
        hrow(rows.start - 1, &mut prev);
    }
    if rows.start < height {
        hrow(rows.start, &mut cur);
    }
    for y in rows {
        if y + 1 < height {
            hrow(y + 1, &mut next);
        }
        let y2 = (2 * y) % ring;
        let (even, odd) = dst[y2 * w2..(y2 + 2) * w2].split_at_mut(w2);
        if y == 0 {
            even.copy_from_slice(&cur);
        } else {
            for x in 0..w2 {
                even[x] = prev[x] * 0.25 + cur[x] * 0.75;
            }
        }
        if y + 1 == height {
            odd.copy_from_slice(&cur);
        } else {
            for x in 0..w2 {
                odd[x] = cur[x] * 0.75 + next[x] * 0.25;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
        std::mem::swap(&mut cur, &mut next);
    }
}

/// Every second pixel of every second row (OpenCV's `INTER_NEAREST` halving).
pub(crate) fn downsample2(src: &[f32], width: usize, height: usize, dst: &mut [f32]) {
    let (w2, h2) = (width / 2, height / 2);
    for (y, out) in dst.chunks_exact_mut(w2.max(1)).take(h2).enumerate() {
        let row = &src[2 * y * width..(2 * y + 1) * width];
        for (x, o) in out.iter_mut().enumerate() {
            *o = row[2 * x];
        }
    }
}

/// Plain reference of [`gaussian_blur`] (the same folding order, one pixel at a time).
pub fn reference_blur(src: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    let k = gaussian_half_kernel(sigma);
    let r = k.len() as isize - 1;
    let mut tmp = vec![0f32; width * height];
    for y in 0..height {
        for x in 0..width {
            let at = |dy: isize| src[reflect101(y as isize + dy, height) * width + x];
            let mut a = k[0] * at(0);
            for i in 1..=r {
                a = k[i as usize].mul_add(at(-i) + at(i), a);
            }
            tmp[y * width + x] = a;
        }
    }
    let mut out = vec![0f32; width * height];
    for y in 0..height {
        for x in 0..width {
            let at = |dx: isize| tmp[y * width + reflect101(x as isize + dx, width)];
            let mut a = k[0] * at(0);
            for i in 1..=r {
                a = k[i as usize].mul_add(at(-i) + at(i), a);
            }
            out[y * width + x] = a;
        }
    }
    out
}
