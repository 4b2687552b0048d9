//! The SIFT descriptor (OpenCV's `calcSIFTDescriptor`): 4 x 4 spatial cells x 8
//! orientations, trilinear votes weighted by a Gaussian, clipped at 0.2, scaled to bytes
//! (`512 / |d|`, saturated), then RootSIFT as the package stores it.
//!
//! Vectorised in three passes per keypoint: each window row contributes only the run of
//! samples whose rotated position can fall in the 4 x 4 grid (an interval computed from
//! the rotation, one sample wider on each side; the exact test of OpenCV then masks the
//! edges to weight zero); the gradients, weights, bins and the eight trilinear votes of
//! all samples are computed lane-parallel; only the histogram updates stay scalar.

use super::math::{atan2_deg, exp};
use super::simd::multiversion;
use crate::isa::Isa;

const D: usize = 4;
const N: usize = 8;
const DESCR_SCL_FCTR: f32 = 3.0;
const DESCR_MAG_THR: f32 = 0.2;
const INT_DESCR_FCTR: f32 = 512.0;
pub(crate) const DIM: usize = D * D * N;
const HIST: usize = (D + 2) * (D + 2) * (N + 2);

/// Per-sample work arrays, kept between keypoints.
#[derive(Debug, Default)]
pub(crate) struct DescScratch {
    dx: Vec<f32>,
    dy: Vec<f32>,
    rbin: Vec<f32>,
    cbin: Vec<f32>,
    w: Vec<f32>,
    votes: Vec<[f32; 8]>,
    idx: Vec<u32>,
}

/// Lane-parallel pass: from gradients and positions to histogram index and 8 votes.
#[inline(always)]
fn votes_body(s: &mut DescScratch, n: usize, ori: f32) {
    let bins_per_deg = N as f32 / 360.0;
    let (dx, dy, rb, cb, w) = (
        &s.dx[..n],
        &s.dy[..n],
        &s.rbin[..n],
        &s.cbin[..n],
        &s.w[..n],
    );
    let (votes, idx) = (&mut s.votes[..n], &mut s.idx[..n]);
    for k in 0..n {
        let weight = exp(w[k]);
        let angle = atan2_deg(dy[k], dx[k]);
        let m = (dx[k] * dx[k] + dy[k] * dy[k]).sqrt();
        let (mut rbin, mut cbin) = (rb[k], cb[k]);
        let mut obin = (angle - ori) * bins_per_deg;
        let mag = m * weight;
        let (r0, c0, o0f) = (rbin.floor(), cbin.floor(), obin.floor());
        rbin -= r0;
        cbin -= c0;
        obin -= o0f;
        let mut o0 = o0f as i32;
        o0 = if o0 < 0 { o0 + N as i32 } else { o0 };
        o0 = if o0 >= N as i32 { o0 - N as i32 } else { o0 };
        let v_r1 = mag * rbin;
        let v_r0 = mag - v_r1;
        let v_rc11 = v_r1 * cbin;
        let v_rc10 = v_r1 - v_rc11;
        let v_rc01 = v_r0 * cbin;
        let v_rc00 = v_r0 - v_rc01;
        let v_rco111 = v_rc11 * obin;
        let v_rco110 = v_rc11 - v_rco111;
        let v_rco101 = v_rc10 * obin;
        let v_rco100 = v_rc10 - v_rco101;
        let v_rco011 = v_rc01 * obin;
        let v_rco010 = v_rc01 - v_rco011;
        let v_rco001 = v_rc00 * obin;
        let v_rco000 = v_rc00 - v_rco001;
        votes[k] = [
            v_rco000, v_rco001, v_rco010, v_rco011, v_rco100, v_rco101, v_rco110, v_rco111,
        ];
        idx[k] = (((r0 as i32 + 1) * (D as i32 + 2) + c0 as i32 + 1) * (N as i32 + 2) + o0) as u32;
    }
}

multiversion! {
    fn votes(s: &mut DescScratch, n: usize, ori: f32) = votes_body;
}

/// Samples `n..n + len` from the image row run starting at pixel index `first` (window
/// column `lo`, window row `fi`): gradients, grid position and Gaussian exponent, with
/// OpenCV's exact in-grid test (samples outside get zero gradient, hence zero votes).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gather_body(
    img: &[f32],
    width: usize,
    first: usize,
    lo: i64,
    fi: f32,
    rot: [f32; 3],
    s: &mut DescScratch,
    n: usize,
    len: usize,
) {
    let [cos_t, sin_t, exp_scale] = rot;
    let half = D as f32 / 2.0 - 0.5;
    let left = &img[first - 1..first - 1 + len];
    let right = &img[first + 1..first + 1 + len];
    let up = &img[first - width..first - width + len];
    let down = &img[first + width..first + width + len];
    let dx = &mut s.dx[n..n + len];
    let dy = &mut s.dy[n..n + len];
    let rb = &mut s.rbin[n..n + len];
    let cb = &mut s.cbin[n..n + len];
    let w = &mut s.w[n..n + len];
    for t in 0..len {
        let fj = (lo + t as i64) as f32;
        let c_rot = fj * cos_t - fi * sin_t;
        let r_rot = fj * sin_t + fi * cos_t;
        let rbin = r_rot + half;
        let cbin = c_rot + half;
        let inside = (rbin > -1.0) & (rbin < D as f32) & (cbin > -1.0) & (cbin < D as f32);
        dx[t] = if inside { right[t] - left[t] } else { 0.0 };
        dy[t] = if inside { up[t] - down[t] } else { 0.0 };
        rb[t] = if inside { rbin } else { 0.0 };
        cb[t] = if inside { cbin } else { 0.0 };
        w[t] = (c_rot * c_rot + r_rot * r_rot) * exp_scale;
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn gather(img: &[f32], width: usize, first: usize, lo: i64, fi: f32, rot: [f32; 3], s: &mut DescScratch, n: usize, len: usize) = gather_body;
}

/// The interval of `j` (within `[lo, hi]`) where `a·j + b` can lie in `(-1, D)`, one
/// sample wider on each side than the exact bound (rounding is then left to the mask).
fn run(a: f32, b: f32, lo: i64, hi: i64) -> (i64, i64) {
    if a.abs() < 1e-6 {
        return (lo, hi);
    }
    let (mut t0, mut t1) = ((-1.0 - b) / a, (D as f32 - b) / a);
    if t0 > t1 {
        std::mem::swap(&mut t0, &mut t1);
    }
    let (j0, j1) = (t0.floor() as i64 - 1, t1.ceil() as i64 + 1);
    (j0.max(lo), j1.min(hi))
}

/// The raw SIFT descriptor (OpenCV's bytes, 0..=255) of a keypoint at `(x, y)` of the
/// Gaussian plane `img` (octave pixels), orientation `ori` (degrees, `360 - angle`) and
/// scale `scl` (half the keypoint size in octave pixels).
#[allow(clippy::too_many_arguments)]
pub(crate) fn raw_descriptor(
    isa: Isa,
    img: &[f32],
    width: usize,
    height: usize,
    x: f32,
    y: f32,
    ori: f32,
    scl: f32,
    s: &mut DescScratch,
    out: &mut [u8; DIM],
) {
    out.fill(0);
    if width < 3 || height < 3 {
        return;
    }
    let (px, py) = (x.round_ties_even() as i64, y.round_ties_even() as i64);
    let rad = ori * (std::f64::consts::PI / 180.0) as f32;
    let (mut cos_t, mut sin_t) = (rad.cos(), rad.sin());
    let exp_scale = -1.0 / (D as f32 * D as f32 * 0.5);
    let hist_width = DESCR_SCL_FCTR * scl;
    let mut radius =
        (hist_width * std::f32::consts::SQRT_2 * (D as f32 + 1.0) * 0.5).round_ties_even() as i64;
    let diag = ((width as f64) * (width as f64) + (height as f64) * (height as f64)).sqrt() as i64;
    radius = radius.min(diag);
    cos_t /= hist_width;
    sin_t /= hist_width;
    let (rows, cols) = (height as i64, width as i64);
    let half = D as f32 / 2.0 - 0.5;
    let side = (2 * radius + 1) as usize;
    let cap = side * side;
    for v in [&mut s.dx, &mut s.dy, &mut s.rbin, &mut s.cbin, &mut s.w] {
        if v.len() < cap {
            v.resize(cap, 0.0);
        }
    }
    if s.votes.len() < cap {
        s.votes.resize(cap, [0.0; 8]);
        s.idx.resize(cap, 0);
    }
    let mut n = 0;
    for i in -radius..=radius {
        let r = py + i;
        if r <= 0 || r >= rows - 1 {
            continue;
        }
        let fi = i as f32;
        // Columns inside the image interior, then the run the rotated grid can reach.
        let (lo, hi) = ((1 - px).max(-radius), (cols - 2 - px).min(radius));
        let (lo, hi) = run(sin_t, fi * cos_t + half, lo, hi);
        let (lo, hi) = run(cos_t, -(fi * sin_t) + half, lo, hi);
        if lo > hi {
            continue;
        }
        let first = (r * cols + px + lo) as usize;
        let len = (hi - lo + 1) as usize;
        gather(
            isa,
            img,
            width,
            first,
            lo,
            fi,
            [cos_t, sin_t, exp_scale],
            s,
            n,
            len,
        );
        n += len;
    }
    votes(isa, s, n, ori);
    let mut hist = [0f32; HIST];
    for (v, &i) in s.votes[..n].iter().zip(&s.idx[..n]) {
        let i = i as usize;
        hist[i] += v[0];
        hist[i + 1] += v[1];
        hist[i + (N + 2)] += v[2];
        hist[i + (N + 3)] += v[3];
        hist[i + (D + 2) * (N + 2)] += v[4];
        hist[i + (D + 2) * (N + 2) + 1] += v[5];
        hist[i + (D + 3) * (N + 2)] += v[6];
        hist[i + (D + 3) * (N + 2) + 1] += v[7];
    }
    let mut dst = [0f32; DIM];
    for i in 0..D {
        for j in 0..D {
            let idx = ((i + 1) * (D + 2) + (j + 1)) * (N + 2);
            hist[idx] += hist[idx + N];
            hist[idx + 1] += hist[idx + N + 1];
            for k in 0..N {
                dst[(i * D + j) * N + k] = hist[idx + k];
            }
        }
    }
    let mut nrm2 = 0f32;
    for v in &dst {
        nrm2 += v * v;
    }
    let thr = nrm2.sqrt() * DESCR_MAG_THR;
    nrm2 = 0.0;
    for v in dst.iter_mut() {
        let val = if *v < thr { *v } else { thr };
        *v = val;
        nrm2 += val * val;
    }
    let scale = INT_DESCR_FCTR / nrm2.sqrt().max(f32::EPSILON);
    to_bytes(isa, &dst, scale, out);
}

/// `round(v · scale)` saturated to bytes (vector rounding on AVX2 / AVX-512 instead of
/// one `rintf` call a value; the same IEEE result).
#[inline(always)]
fn to_bytes_body(dst: &[f32; DIM], scale: f32, out: &mut [u8; DIM]) {
    for (o, v) in out.iter_mut().zip(dst) {
        *o = (v * scale).round_ties_even().clamp(0.0, 255.0) as u8;
    }
}

multiversion! {
    fn to_bytes(dst: &[f32; DIM], scale: f32, out: &mut [u8; DIM]) = to_bytes_body;
}

/// RootSIFT bytes of raw SIFT bytes, exactly as the package's Python path computes them
/// (`root_sift` then `rint(d * 512)` clipped to 255, all in float32).
#[inline(always)]
fn root_sift_body(raw: &[u8; DIM], out: &mut [u8]) {
    let mut sum = 0f32;
    for &v in raw {
        sum += v as f32;
    }
    let sum = sum.max(1e-12);
    for (o, &v) in out.iter_mut().zip(raw) {
        let d = (v as f32 / sum).sqrt();
        *o = (d * 512.0).round_ties_even().clamp(0.0, 255.0) as u8;
    }
}

multiversion! {
    pub(crate) fn root_sift(raw: &[u8; DIM], out: &mut [u8]) = root_sift_body;
}
