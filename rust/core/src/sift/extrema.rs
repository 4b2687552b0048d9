//! Scale-space extrema of the difference of Gaussians: a vectorised 3x3x3 scan with the
//! early contrast threshold, then OpenCV's sub-pixel refinement (up to five Newton steps on
//! the 3-D quadratic), the contrast test and the edge (curvature-ratio) test.

use super::simd::multiversion;
use crate::isa::Isa;

/// Pixels at the plane's border where no extremum is searched (OpenCV's `SIFT_IMG_BORDER`).
pub(crate) const BORDER: usize = 5;
/// Newton steps of the refinement (OpenCV's `SIFT_MAX_INTERP_STEPS`).
const MAX_INTERP_STEPS: usize = 5;

/// One DoG layer of an octave.
#[derive(Clone, Copy)]
pub(crate) struct Plane<'a> {
    pub data: &'a [f32],
    pub width: usize,
    pub height: usize,
}

impl Plane<'_> {
    #[inline]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.width + c]
    }
}

/// `flags[x - BORDER]` for `x` in `BORDER..width - BORDER`: 1 where the centre of the
/// 3x3x3 block is a maximum above `thr` or a minimum below `-thr` (ties allowed, as in
/// OpenCV). `rows` holds the nine rows `[prev, cur, next] x [r - 1, r, r + 1]`.
#[inline(always)]
fn scan_row_body(rows: &[&[f32]; 9], thr: f32, flags: &mut [u8]) {
    const L: usize = 16;
    let n = flags.len();
    let pixel = |x: usize| -> u8 {
        // Column BORDER + x of the plane.
        let v = rows[4][BORDER + x];
        let (mut hi, mut lo) = (v, v);
        for row in rows.iter() {
            for dx in 0..3 {
                let u = row[BORDER + x + dx - 1];
                hi = if u > hi { u } else { hi };
                lo = if u < lo { u } else { lo };
            }
        }
        ((v > thr && v >= hi) | (v < -thr && v <= lo)) as u8
    };
    let mut x0 = 0;
    while x0 + L <= n {
        let centre: &[f32; L] = rows[4][BORDER + x0..BORDER + x0 + L].try_into().unwrap();
        let mut hi = *centre;
        let mut lo = *centre;
        for row in rows.iter() {
            for dx in 0..3 {
                let s: &[f32; L] = row[BORDER - 1 + x0 + dx..BORDER - 1 + x0 + dx + L]
                    .try_into()
                    .unwrap();
                for l in 0..L {
                    hi[l] = if s[l] > hi[l] { s[l] } else { hi[l] };
                    lo[l] = if s[l] < lo[l] { s[l] } else { lo[l] };
                }
            }
        }
        let out: &mut [u8; L] = (&mut flags[x0..x0 + L]).try_into().unwrap();
        for l in 0..L {
            let v = centre[l];
            out[l] = ((v > thr && v >= hi[l]) | (v < -thr && v <= lo[l])) as u8;
        }
        x0 += L;
    }
    for (x, f) in flags.iter_mut().enumerate().skip(x0) {
        *f = pixel(x);
    }
}

multiversion! {
    fn scan_row(rows: &[&[f32]; 9], thr: f32, flags: &mut [u8]) = scan_row_body;
}

/// `(layer, row, col)` of every 3x3x3 extremum of the DoG layers `1..=layers` with
/// `|value| > thr`, in layer, row, column order.
pub(crate) fn scan_extrema<'a>(
    isa: Isa,
    dog: &[Plane<'a>],
    thr: f32,
    out: &mut Vec<(u32, u32, u32)>,
) {
    let (w, h) = (dog[0].width, dog[0].height);
    if w < 2 * BORDER + 1 || h < 2 * BORDER + 1 {
        return;
    }
    let mut flags = vec![0u8; w - 2 * BORDER];
    for layer in 1..dog.len() - 1 {
        for r in BORDER..h - BORDER {
            let (a, b, c) = (dog[layer - 1].data, dog[layer].data, dog[layer + 1].data);
            let row = |p: &'a [f32], rr: usize| -> &'a [f32] { &p[rr * w..(rr + 1) * w] };
            let rows = [
                row(a, r - 1),
                row(a, r),
                row(a, r + 1),
                row(b, r - 1),
                row(b, r),
                row(b, r + 1),
                row(c, r - 1),
                row(c, r),
                row(c, r + 1),
            ];
            // The centre must be rows[4]: the current layer's row r.
            scan_row(isa, &rows, thr, &mut flags);
            for (i, _) in flags.iter().enumerate().filter(|(_, f)| **f != 0) {
                out.push((layer as u32, r as u32, (i + BORDER) as u32));
            }
        }
    }
}

/// A refined extremum, in its octave's pixel grid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refined {
    pub layer: usize,
    pub r: usize,
    pub c: usize,
    pub xc: f32,
    pub xr: f32,
    pub xi: f32,
    /// `|contrast|` of the interpolated extremum (pixel values in [0, 1]).
    pub response: f32,
}

/// Solve `h x = b` by Gaussian elimination with partial pivoting (OpenCV's `LU32f`);
/// `None` when a pivot is below `10 ε`.
fn solve3(mut a: [[f32; 3]; 3], mut b: [f32; 3]) -> Option<[f32; 3]> {
    let eps = f32::EPSILON * 10.0;
    for i in 0..3 {
        let mut k = i;
        for j in i + 1..3 {
            if a[j][i].abs() > a[k][i].abs() {
                k = j;
            }
        }
        if a[k][i].abs() < eps {
            return None;
        }
        if k != i {
            a.swap(i, k);
            b.swap(i, k);
        }
        let d = -1.0 / a[i][i];
        for j in i + 1..3 {
            let alpha = a[j][i] * d;
            for k in i + 1..3 {
                a[j][k] += alpha * a[i][k];
            }
            b[j] += alpha * b[i];
        }
    }
    for i in (0..3).rev() {
        let mut s = b[i];
        for k in i + 1..3 {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    Some(b)
}

/// OpenCV's `adjustLocalExtrema`: refine the extremum at `(layer, r, c)` of an octave's
/// DoG layers (pixel values in [0, 255]); `None` when it moves out, does not converge, has
/// too little contrast or lies on an edge.
pub(crate) fn refine(
    dog: &[Plane],
    mut layer: usize,
    mut r: usize,
    mut c: usize,
    n_layers: usize,
    contrast_threshold: f32,
    edge_threshold: f32,
) -> Option<Refined> {
    let img_scale = 1.0f32 / 255.0;
    let deriv_scale = img_scale * 0.5;
    let second_deriv_scale = img_scale;
    let cross_deriv_scale = img_scale * 0.25;
    let (w, h) = (dog[0].width, dog[0].height);
    let (mut xi, mut xr, mut xc) = (0f32, 0f32, 0f32);
    let mut step = 0;
    while step < MAX_INTERP_STEPS {
        let (img, prv, nxt) = (&dog[layer], &dog[layer - 1], &dog[layer + 1]);
        let d_d = [
            (img.at(r, c + 1) - img.at(r, c - 1)) * deriv_scale,
            (img.at(r + 1, c) - img.at(r - 1, c)) * deriv_scale,
            (nxt.at(r, c) - prv.at(r, c)) * deriv_scale,
        ];
        let v2 = img.at(r, c) * 2.0;
        let dxx = (img.at(r, c + 1) + img.at(r, c - 1) - v2) * second_deriv_scale;
        let dyy = (img.at(r + 1, c) + img.at(r - 1, c) - v2) * second_deriv_scale;
        let dss = (nxt.at(r, c) + prv.at(r, c) - v2) * second_deriv_scale;
        let dxy = (img.at(r + 1, c + 1) - img.at(r + 1, c - 1) - img.at(r - 1, c + 1)
            + img.at(r - 1, c - 1))
            * cross_deriv_scale;
        let dxs = (nxt.at(r, c + 1) - nxt.at(r, c - 1) - prv.at(r, c + 1) + prv.at(r, c - 1))
            * cross_deriv_scale;
        let dys = (nxt.at(r + 1, c) - nxt.at(r - 1, c) - prv.at(r + 1, c) + prv.at(r - 1, c))
            * cross_deriv_scale;
        let hess = [[dxx, dxy, dxs], [dxy, dyy, dys], [dxs, dys, dss]];
        let x = solve3(hess, d_d).unwrap_or([0.0; 3]);
        xi = -x[2];
        xr = -x[1];
        xc = -x[0];
        if xi.abs() < 0.5 && xr.abs() < 0.5 && xc.abs() < 0.5 {
            break;
        }
        let limit = (i32::MAX / 3) as f32;
        if !(xi.abs() <= limit && xr.abs() <= limit && xc.abs() <= limit) {
            return None;
        }
        let nc = c as i64 + xc.round_ties_even() as i64;
        let nr = r as i64 + xr.round_ties_even() as i64;
        let nl = layer as i64 + xi.round_ties_even() as i64;
        if nl < 1
            || nl > n_layers as i64
            || nc < BORDER as i64
            || nc >= (w - BORDER) as i64
            || nr < BORDER as i64
            || nr >= (h - BORDER) as i64
        {
            return None;
        }
        (c, r, layer) = (nc as usize, nr as usize, nl as usize);
        step += 1;
    }
    if step >= MAX_INTERP_STEPS {
        return None;
    }
    let (img, prv, nxt) = (&dog[layer], &dog[layer - 1], &dog[layer + 1]);
    let d_d = [
        (img.at(r, c + 1) - img.at(r, c - 1)) * deriv_scale,
        (img.at(r + 1, c) - img.at(r - 1, c)) * deriv_scale,
        (nxt.at(r, c) - prv.at(r, c)) * deriv_scale,
    ];
    let t = d_d[0] * xc + d_d[1] * xr + d_d[2] * xi;
    let contr = img.at(r, c) * img_scale + t * 0.5;
    if contr.abs() * (n_layers as f32) < contrast_threshold {
        return None;
    }
    let v2 = img.at(r, c) * 2.0;
    let dxx = (img.at(r, c + 1) + img.at(r, c - 1) - v2) * second_deriv_scale;
    let dyy = (img.at(r + 1, c) + img.at(r - 1, c) - v2) * second_deriv_scale;
    let dxy = (img.at(r + 1, c + 1) - img.at(r + 1, c - 1) - img.at(r - 1, c + 1)
        + img.at(r - 1, c - 1))
        * cross_deriv_scale;
    let tr = dxx + dyy;
    let det = dxx * dyy - dxy * dxy;
    if det <= 0.0 || tr * tr * edge_threshold >= (edge_threshold + 1.0).powi(2) * det {
        return None;
    }
    Some(Refined {
        layer,
        r,
        c,
        xc,
        xr,
        xi,
        response: contr.abs(),
    })
}

/// Brute-force reference of [`scan_extrema`]: every pixel against its 26 neighbours.
pub fn reference_extrema(
    dog: &[&[f32]],
    width: usize,
    height: usize,
    thr: f32,
) -> Vec<(u32, u32, u32)> {
    let mut out = vec![];
    if width < 2 * BORDER + 1 || height < 2 * BORDER + 1 {
        return out;
    }
    for layer in 1..dog.len() - 1 {
        for r in BORDER..height - BORDER {
            for c in BORDER..width - BORDER {
                let v = dog[layer][r * width + c];
                let (mut is_max, mut is_min) = (v > thr, v < -thr);
                for dl in 0..3 {
                    for dr in 0..3 {
                        for dc in 0..3 {
                            let u = dog[layer + dl - 1][(r + dr - 1) * width + c + dc - 1];
                            is_max &= v >= u;
                            is_min &= v <= u;
                        }
                    }
                }
                if is_max || is_min {
                    out.push((layer as u32, r as u32, c as u32));
                }
            }
        }
    }
    out
}
