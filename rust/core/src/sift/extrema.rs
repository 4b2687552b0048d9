//! Scale-space extrema of the difference of Gaussians: a vectorised 3x3x3 scan with the
//! early contrast threshold, then OpenCV's sub-pixel refinement (up to five Newton steps on
//! the 3-D quadratic), the contrast test and the edge (curvature-ratio) test.

use super::rows::Rows;
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

impl<'a> Plane<'a> {
    /// The first `width * height` values of each buffer (pool buffers may be longer) as
    /// planes.
    pub(crate) fn all(buffers: &'a [Vec<f32>], width: usize, height: usize) -> Vec<Plane<'a>> {
        buffers
            .iter()
            .map(|d| Plane {
                data: &d[..width * height],
                width,
                height,
            })
            .collect()
    }

    #[inline]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.width + c]
    }
}

/// `hi[x] = max(row[x], row[x + 1], row[x + 2])` and `lo` the min, for `x < row.len() - 2`.
#[inline(always)]
fn h3_body(row: &[f32], hi: &mut [f32], lo: &mut [f32]) {
    let n = hi.len();
    let (a, b, c) = (&row[..n], &row[1..n + 1], &row[2..n + 2]);
    let lo = &mut lo[..n];
    for x in 0..n {
        let m = if a[x] > b[x] { a[x] } else { b[x] };
        hi[x] = if c[x] > m { c[x] } else { m };
        let m = if a[x] < b[x] { a[x] } else { b[x] };
        lo[x] = if c[x] < m { c[x] } else { m };
    }
}

/// Element-wise max (`is_max`) or min of three rows into `out`.
#[inline(always)]
fn v3_body(a: &[f32], b: &[f32], c: &[f32], is_max: bool, out: &mut [f32]) {
    let n = out.len();
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    if is_max {
        for x in 0..n {
            let m = if a[x] > b[x] { a[x] } else { b[x] };
            out[x] = if c[x] > m { c[x] } else { m };
        }
    } else {
        for x in 0..n {
            let m = if a[x] < b[x] { a[x] } else { b[x] };
            out[x] = if c[x] < m { c[x] } else { m };
        }
    }
}

/// `flags[x] = 1` where `v[x]` is above `thr` and at least the 3x3 maxima `hi*` of the
/// three layers, or below `-thr` and at most their minima `lo*` (ties allowed, as in
/// OpenCV).
#[inline(always)]
fn test_body(v: &[f32], hi: [&[f32]; 3], lo: [&[f32]; 3], thr: f32, flags: &mut [u8]) {
    let n = flags.len();
    let v = &v[..n];
    let (h0, h1, h2) = (&hi[0][..n], &hi[1][..n], &hi[2][..n]);
    let (l0, l1, l2) = (&lo[0][..n], &lo[1][..n], &lo[2][..n]);
    for x in 0..n {
        let h = if h0[x] > h1[x] { h0[x] } else { h1[x] };
        let h = if h2[x] > h { h2[x] } else { h };
        let l = if l0[x] < l1[x] { l0[x] } else { l1[x] };
        let l = if l2[x] < l { l2[x] } else { l };
        let is_max = (v[x] > thr) & (v[x] >= h);
        let is_min = (v[x] < -thr) & (v[x] <= l);
        flags[x] = (is_max | is_min) as u8;
    }
}

multiversion! {
    fn h3(row: &[f32], hi: &mut [f32], lo: &mut [f32]) = h3_body;
}
multiversion! {
    fn v3(a: &[f32], b: &[f32], c: &[f32], is_max: bool, out: &mut [f32]) = v3_body;
}
multiversion! {
    fn test(v: &[f32], hi: [&[f32]; 3], lo: [&[f32]; 3], thr: f32, flags: &mut [u8]) = test_body;
}

/// `(layer, row, col)` of every 3x3x3 extremum of the DoG layers `1..dog.len() - 1` with
/// `|value| > thr`.
pub(crate) fn scan_extrema(isa: Isa, dog: &[Plane], thr: f32, out: &mut Vec<(u32, u32, u32)>) {
    let start = out.len();
    let (w, h) = (dog[0].width, dog[0].height);
    let rows: Vec<Rows<&[f32]>> = dog
        .iter()
        .map(|p| Rows::whole(&p.data[..w * h], w))
        .collect();
    let mut scanner = Scanner::new(w, h, dog.len(), 0..h);
    scanner.advance(isa, &rows, h, thr, out);
    out[start..].sort_unstable();
}

/// The extrema scan, row by row as the DoG rows become available.
///
/// Per layer, a ring of the last three rows' horizontal 3-maxima and 3-minima; their
/// vertical combination gives each layer's 3x3 maxima/minima of row `r` once, and the three
/// layers around an interior one are then compared in one pass.
pub(crate) struct Scanner {
    width: usize,
    /// The next row to test.
    next: usize,
    /// The row after the last to test.
    end: usize,
    /// Whether the two rows above `next` (at the start) are in the rings.
    primed: bool,
    ring_hi: Vec<Vec<f32>>,
    ring_lo: Vec<Vec<f32>>,
    box_hi: Vec<Vec<f32>>,
    box_lo: Vec<Vec<f32>>,
    flags: Vec<u8>,
}

impl Scanner {
    /// A scan of the rows `rows` (those at least [`BORDER`] from the edges) of `layers` DoG
    /// layers of `width x height`; it reads the rows `rows` and one on each side.
    pub(crate) fn new(
        width: usize,
        height: usize,
        layers: usize,
        rows: std::ops::Range<usize>,
    ) -> Scanner {
        let hw = width.saturating_sub(2);
        let end = if width < 2 * BORDER + 1 || height < 2 * BORDER + 1 || layers < 3 {
            0
        } else {
            rows.end.min(height - BORDER)
        };
        Scanner {
            width,
            next: rows.start.max(BORDER),
            end,
            primed: false,
            ring_hi: vec![vec![0f32; hw]; 3 * layers],
            ring_lo: vec![vec![0f32; hw]; 3 * layers],
            box_hi: vec![vec![0f32; hw]; layers],
            box_lo: vec![vec![0f32; hw]; layers],
            flags: vec![0u8; width.saturating_sub(2 * BORDER)],
        }
    }

    /// Test every row whose 3x3x3 neighbourhood lies in the first `ready` rows of every
    /// DoG layer (all rows once `ready` is the height), appending to `out`.
    pub(crate) fn advance(
        &mut self,
        isa: Isa,
        dog: &[Rows<&[f32]>],
        ready: usize,
        thr: f32,
        out: &mut Vec<(u32, u32, u32)>,
    ) {
        if self.next >= self.end {
            return;
        }
        let w = self.width;
        let nl = dog.len();
        let row = |l: usize, r: usize| dog[l].row(r);
        if !self.primed {
            if ready <= self.next + 1 {
                return;
            }
            for l in 0..nl {
                for r in self.next - 1..=self.next {
                    let (hi, lo) = (
                        &mut self.ring_hi[3 * l + r % 3],
                        &mut self.ring_lo[3 * l + r % 3],
                    );
                    h3(isa, row(l, r), hi, lo);
                }
            }
            self.primed = true;
        }
        while self.next < self.end && self.next + 1 < ready {
            let r = self.next;
            for l in 0..nl {
                let (hi, lo) = (
                    &mut self.ring_hi[3 * l + (r + 1) % 3],
                    &mut self.ring_lo[3 * l + (r + 1) % 3],
                );
                h3(isa, row(l, r + 1), hi, lo);
                let q = &self.ring_hi[3 * l..3 * l + 3];
                v3(isa, &q[0], &q[1], &q[2], true, &mut self.box_hi[l]);
                let q = &self.ring_lo[3 * l..3 * l + 3];
                v3(isa, &q[0], &q[1], &q[2], false, &mut self.box_lo[l]);
            }
            // Box column x sits at index x - 1; the scan starts at column BORDER.
            let o = BORDER - 1;
            for l in 1..nl - 1 {
                let v = &row(l, r)[BORDER..w - BORDER];
                let (bh, bl) = (&self.box_hi, &self.box_lo);
                let hi = [&bh[l - 1][o..], &bh[l][o..], &bh[l + 1][o..]];
                let lo = [&bl[l - 1][o..], &bl[l][o..], &bl[l + 1][o..]];
                test(isa, v, hi, lo, thr, &mut self.flags);
                // Extrema are sparse: skip eight flags at a time (one 64-bit word, then
                // its set bytes by their trailing zeros).
                for (j, word) in self.flags.chunks(8).enumerate() {
                    let mut bytes = [0u8; 8];
                    bytes[..word.len()].copy_from_slice(word);
                    let mut bits = u64::from_le_bytes(bytes);
                    while bits != 0 {
                        let i = bits.trailing_zeros() as usize / 8;
                        bits &= !(0xffu64 << (8 * i));
                        out.push((l as u32, r as u32, (8 * j + i + BORDER) as u32));
                    }
                }
            }
            self.next += 1;
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
            let pivot_row = a[i];
            for (ajk, aik) in a[j].iter_mut().zip(pivot_row).skip(i + 1) {
                *ajk += alpha * aik;
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
