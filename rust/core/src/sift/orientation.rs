//! Dominant orientations of a keypoint (OpenCV's `calcOrientationHist` and peak rule):
//! a 36-bin histogram of gradient directions weighted by magnitude and a Gaussian of
//! 1.5 σ over a window of radius 4.5 σ, smoothed, and every peak within 80 % of the
//! highest, parabola-interpolated. Gradients, weights and bins are computed
//! lane-parallel over the window's rows; only the histogram updates stay scalar.

use super::math::{atan2_deg, exp};
use super::simd::multiversion;
use crate::isa::Isa;

pub(crate) const ORI_BINS: usize = 36;
const ORI_SIG_FCTR: f32 = 1.5;
const ORI_RADIUS: f32 = 3.0 * ORI_SIG_FCTR;
const ORI_PEAK_RATIO: f32 = 0.8;

/// Per-sample work arrays, kept between keypoints.
#[derive(Debug, Default)]
pub(crate) struct OriScratch {
    dx: Vec<f32>,
    dy: Vec<f32>,
    w: Vec<f32>,
    bin: Vec<u32>,
}

#[inline(always)]
fn weigh_body(s: &mut OriScratch, n: usize) {
    let (dx, dy, w, bin) = (&s.dx[..n], &s.dy[..n], &mut s.w[..n], &mut s.bin[..n]);
    let nb = ORI_BINS as i32;
    for k in 0..n {
        let weight = exp(w[k]);
        let angle = atan2_deg(dy[k], dx[k]);
        let mag = (dx[k] * dx[k] + dy[k] * dy[k]).sqrt();
        let mut b = ((nb as f32 / 360.0) * angle).round_ties_even() as i32;
        b = if b >= nb { b - nb } else { b };
        b = if b < 0 { b + nb } else { b };
        bin[k] = b as u32;
        w[k] = weight * mag;
    }
}

multiversion! {
    fn weigh(s: &mut OriScratch, n: usize) = weigh_body;
}

/// Gradients and Gaussian exponents of the window of radius `radius` around pixel
/// `(c, r)`, row by row over the rows and columns with both neighbours inside; returns
/// how many samples it wrote.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn window_body(
    img: &[f32],
    width: usize,
    height: usize,
    c: usize,
    r: usize,
    radius: i64,
    expf_scale: f32,
    s: &mut OriScratch,
) -> usize {
    let (w, h) = (width as i64, height as i64);
    let mut n = 0;
    for i in -radius..=radius {
        let y = r as i64 + i;
        if y <= 0 || y >= h - 1 {
            continue;
        }
        let (lo, hi) = ((1 - c as i64).max(-radius), (w - 2 - c as i64).min(radius));
        if lo > hi {
            continue;
        }
        let len = (hi - lo + 1) as usize;
        let first = (y * w + c as i64 + lo) as usize;
        let left = &img[first - 1..first - 1 + len];
        let right = &img[first + 1..first + 1 + len];
        let up = &img[first - width..first - width + len];
        let down = &img[first + width..first + width + len];
        let (dx, dy, ws) = (
            &mut s.dx[n..n + len],
            &mut s.dy[n..n + len],
            &mut s.w[n..n + len],
        );
        for t in 0..len {
            let j = lo + t as i64;
            dx[t] = right[t] - left[t];
            dy[t] = up[t] - down[t];
            ws[t] = ((i * i + j * j) as f32) * expf_scale;
        }
        n += len;
    }
    n
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn window(img: &[f32], width: usize, height: usize, c: usize, r: usize, radius: i64, expf_scale: f32, s: &mut OriScratch) -> usize = window_body;
}

/// The orientations (OpenCV's `KeyPoint.angle`, degrees in [0, 360)) of a keypoint at
/// pixel `(c, r)` of the Gaussian plane `img` with scale `scl` (σ in octave pixels).
#[allow(clippy::too_many_arguments)]
pub(crate) fn orientations(
    isa: Isa,
    img: &[f32],
    width: usize,
    height: usize,
    c: usize,
    r: usize,
    scl: f32,
    s: &mut OriScratch,
    out: &mut Vec<f32>,
) {
    let radius = (ORI_RADIUS * scl).round_ties_even() as i64;
    let sigma = ORI_SIG_FCTR * scl;
    let expf_scale = -1.0 / (2.0 * sigma * sigma);
    let side = (2 * radius + 1) as usize;
    if s.w.len() < side * side {
        for v in [&mut s.dx, &mut s.dy, &mut s.w] {
            v.resize(side * side, 0.0);
        }
        s.bin.resize(side * side, 0);
    }
    let n = window(isa, img, width, height, c, r, radius, expf_scale, s);
    weigh(isa, s, n);
    let mut temp = [0f32; ORI_BINS + 4];
    for (&b, &v) in s.bin[..n].iter().zip(&s.w[..n]) {
        temp[b as usize + 2] += v;
    }
    temp[1] = temp[ORI_BINS + 1];
    temp[0] = temp[ORI_BINS];
    temp[ORI_BINS + 2] = temp[2];
    temp[ORI_BINS + 3] = temp[3];
    let mut hist = [0f32; ORI_BINS];
    for (i, hv) in hist.iter_mut().enumerate() {
        let t = &temp[i..i + 5];
        *hv = (t[0] + t[4]) * (1.0 / 16.0) + (t[1] + t[3]) * (4.0 / 16.0) + t[2] * (6.0 / 16.0);
    }
    let omax = hist.iter().fold(hist[0], |m, &v| if v > m { v } else { m });
    let mag_thr = omax * ORI_PEAK_RATIO;
    for j in 0..ORI_BINS {
        let l = if j > 0 { j - 1 } else { ORI_BINS - 1 };
        let r2 = if j < ORI_BINS - 1 { j + 1 } else { 0 };
        if hist[j] > hist[l] && hist[j] > hist[r2] && hist[j] >= mag_thr {
            let mut bin =
                j as f32 + 0.5 * (hist[l] - hist[r2]) / (hist[l] - 2.0 * hist[j] + hist[r2]);
            if bin < 0.0 {
                bin += ORI_BINS as f32;
            } else if bin >= ORI_BINS as f32 {
                bin -= ORI_BINS as f32;
            }
            let mut angle = 360.0 - (360.0 / ORI_BINS as f32) * bin;
            if (angle - 360.0).abs() < f32::EPSILON {
                angle = 0.0;
            }
            out.push(angle);
        }
    }
}
