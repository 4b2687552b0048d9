//! Estimation of transforms from point pairs: least squares for similarity and affine,
//! normalised DLT for homographies, and the one-correspondence frame hypothesis.
//! Every function returns `None` for degenerate input (collinear or coincident points,
//! singular frames) instead of a meaningless matrix.

// Dense small-matrix algebra reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use super::eigen::smallest_eigenvector;
use super::Transform;

type Point = [f64; 2];

fn centroid(points: &[Point], idx: &[u32]) -> Point {
    let n = idx.len() as f64;
    let mut c = [0.0, 0.0];
    for &i in idx {
        let p = points[i as usize];
        c[0] += p[0];
        c[1] += p[1];
    }
    [c[0] / n, c[1] / n]
}

/// Least-squares affine map `q -> c` over the pairs `idx` (at least 3, not collinear).
pub fn fit_affine(q: &[Point], c: &[Point], idx: &[u32]) -> Option<Transform> {
    if idx.len() < 3 {
        return None;
    }
    let (qm, cm) = (centroid(q, idx), centroid(c, idx));
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    let (mut ux, mut uy, mut vx, mut vy) = (0.0, 0.0, 0.0, 0.0);
    for &i in idx {
        let (dx, dy) = (q[i as usize][0] - qm[0], q[i as usize][1] - qm[1]);
        let (du, dv) = (c[i as usize][0] - cm[0], c[i as usize][1] - cm[1]);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
        ux += du * dx;
        uy += du * dy;
        vx += dv * dx;
        vy += dv * dy;
    }
    let det = sxx * syy - sxy * sxy;
    let trace = sxx + syy;
    if !(det > 1e-9 * trace * trace) || trace <= 0.0 {
        return None;
    }
    let (i11, i12, i22) = (syy / det, -sxy / det, sxx / det);
    let l = [
        ux * i11 + uy * i12,
        ux * i12 + uy * i22,
        vx * i11 + vy * i12,
        vx * i12 + vy * i22,
    ];
    let t = [
        cm[0] - l[0] * qm[0] - l[1] * qm[1],
        cm[1] - l[2] * qm[0] - l[3] * qm[1],
    ];
    Some(Transform::affine(l, t))
}

/// Least-squares similarity (rotation, uniform scale, translation) over `idx` (at least 2).
pub fn fit_similarity(q: &[Point], c: &[Point], idx: &[u32]) -> Option<Transform> {
    if idx.len() < 2 {
        return None;
    }
    let (qm, cm) = (centroid(q, idx), centroid(c, idx));
    let (mut ss, mut a, mut b) = (0.0, 0.0, 0.0);
    for &i in idx {
        let (dx, dy) = (q[i as usize][0] - qm[0], q[i as usize][1] - qm[1]);
        let (du, dv) = (c[i as usize][0] - cm[0], c[i as usize][1] - cm[1]);
        ss += dx * dx + dy * dy;
        a += dx * du + dy * dv;
        b += dx * dv - dy * du;
    }
    if !(ss > 1e-12) {
        return None;
    }
    let (a, b) = (a / ss, b / ss);
    let l = [a, -b, b, a];
    let t = [
        cm[0] - l[0] * qm[0] - l[1] * qm[1],
        cm[1] - l[2] * qm[0] - l[3] * qm[1],
    ];
    Some(Transform::affine(l, t))
}

/// Hartley normalisation: `[scale, mean_x, mean_y]` so that points have mean distance √2.
fn normaliser(points: &[Point], idx: &[u32]) -> Option<[f64; 3]> {
    let m = centroid(points, idx);
    let mut d = 0.0;
    for &i in idx {
        let p = points[i as usize];
        d += ((p[0] - m[0]).powi(2) + (p[1] - m[1]).powi(2)).sqrt();
    }
    d /= idx.len() as f64;
    if !(d > 1e-9) {
        return None;
    }
    Some([std::f64::consts::SQRT_2 / d, m[0], m[1]])
}

/// Undo the normalisations: `H = T_c⁻¹ · Hn · T_q`.
fn denormalise(hn: [f64; 9], nq: [f64; 3], nc: [f64; 3]) -> Option<Transform> {
    let (sq, qx, qy) = (nq[0], nq[1], nq[2]);
    let (sc, cx, cy) = (nc[0], nc[1], nc[2]);
    // Hn · T_q with T_q = [[sq, 0, -sq qx], [0, sq, -sq qy], [0, 0, 1]].
    let mut a = [0.0; 9];
    for r in 0..3 {
        let (h0, h1, h2) = (hn[3 * r], hn[3 * r + 1], hn[3 * r + 2]);
        a[3 * r] = h0 * sq;
        a[3 * r + 1] = h1 * sq;
        a[3 * r + 2] = h2 - h0 * sq * qx - h1 * sq * qy;
    }
    // T_c⁻¹ = [[1/sc, 0, cx], [0, 1/sc, cy], [0, 0, 1]].
    let mut h = [0.0; 9];
    for col in 0..3 {
        h[col] = a[col] / sc + cx * a[6 + col];
        h[3 + col] = a[3 + col] / sc + cy * a[6 + col];
        h[6 + col] = a[6 + col];
    }
    let t = Transform(h).normalised();
    t.is_finite().then_some(t)
}

/// Homography `q -> c` by the normalised direct linear transform over `idx` (at least 4).
pub fn fit_homography(q: &[Point], c: &[Point], idx: &[u32]) -> Option<Transform> {
    if idx.len() < 4 {
        return None;
    }
    let nq = normaliser(q, idx)?;
    let nc = normaliser(c, idx)?;
    let mut ata = [[0.0f64; 9]; 9];
    for &i in idx {
        let p = q[i as usize];
        let r = c[i as usize];
        let (x, y) = ((p[0] - nq[1]) * nq[0], (p[1] - nq[2]) * nq[0]);
        let (u, v) = ((r[0] - nc[1]) * nc[0], (r[1] - nc[2]) * nc[0]);
        let rows = [
            [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u],
            [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v],
        ];
        for row in &rows {
            for a in 0..9 {
                for b in a..9 {
                    ata[a][b] += row[a] * row[b];
                }
            }
        }
    }
    for a in 0..9 {
        for b in 0..a {
            ata[a][b] = ata[b][a];
        }
    }
    let h = smallest_eigenvector(ata);
    denormalise(h, nq, nc)
}

/// Exact homography through four pairs (normalised, Gaussian elimination with pivoting).
pub fn homography_from_four(q: &[Point], c: &[Point], idx: &[u32; 4]) -> Option<Transform> {
    let nq = normaliser(q, idx)?;
    let nc = normaliser(c, idx)?;
    let mut m = [[0.0f64; 9]; 8];
    for (k, &i) in idx.iter().enumerate() {
        let p = q[i as usize];
        let r = c[i as usize];
        let (x, y) = ((p[0] - nq[1]) * nq[0], (p[1] - nq[2]) * nq[0]);
        let (u, v) = ((r[0] - nc[1]) * nc[0], (r[1] - nc[2]) * nc[0]);
        m[2 * k] = [x, y, 1.0, 0.0, 0.0, 0.0, -x * u, -y * u, u];
        m[2 * k + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -x * v, -y * v, v];
    }
    for col in 0..8 {
        let mut pivot = col;
        for row in col + 1..8 {
            if m[row][col].abs() > m[pivot][col].abs() {
                pivot = row;
            }
        }
        if m[pivot][col].abs() < 1e-10 {
            return None;
        }
        m.swap(col, pivot);
        for row in 0..8 {
            if row != col {
                let f = m[row][col] / m[col][col];
                if f != 0.0 {
                    for k in col..9 {
                        m[row][k] -= f * m[col][k];
                    }
                }
            }
        }
    }
    let mut h = [0.0; 9];
    for k in 0..8 {
        h[k] = m[k][8] / m[k][k];
    }
    h[8] = 1.0;
    denormalise(h, nq, nc)
}

/// The affine map that takes the query keypoint's frame onto the candidate's:
/// `L = A_c · A_q⁻¹`, `t = c - L · q`. `None` when the query frame is singular.
pub fn affine_from_frames(
    q_shape: [f64; 4],
    c_shape: [f64; 4],
    q: Point,
    c: Point,
) -> Option<Transform> {
    let [a, b, cc, d] = q_shape;
    let det = a * d - b * cc;
    if !(det.abs() > 1e-12) || !det.is_finite() {
        return None;
    }
    let inv = [d / det, -b / det, -cc / det, a / det];
    let s = c_shape;
    let l = [
        s[0] * inv[0] + s[1] * inv[2],
        s[0] * inv[1] + s[1] * inv[3],
        s[2] * inv[0] + s[3] * inv[2],
        s[2] * inv[1] + s[3] * inv[3],
    ];
    let t = [
        c[0] - l[0] * q[0] - l[1] * q[1],
        c[1] - l[2] * q[0] - l[3] * q[1],
    ];
    let out = Transform::affine(l, t);
    out.is_finite().then_some(out)
}
