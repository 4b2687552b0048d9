//! Inlier counting and collection under a transform.

use super::Correspondences;
use crate::geometry::Transform;

/// Number of correspondences whose transfer error is below `threshold`.
#[inline]
pub fn count(t: &Transform, corr: &Correspondences, threshold: f64) -> u32 {
    count_in(t, &corr.q, &corr.c, threshold)
}

/// Number of the point pairs `(q[i], c[i])` whose transfer error is below `threshold`.
#[inline]
pub fn count_in(t: &Transform, q: &[[f64; 2]], c: &[[f64; 2]], threshold: f64) -> u32 {
    let t2 = threshold * threshold;
    let m = &t.0;
    if m[6] == 0.0 && m[7] == 0.0 && m[8] == 1.0 {
        // Affine fast path: no division.
        let mut n = 0u32;
        for (p, q) in q.iter().zip(c) {
            let dx = m[0] * p[0] + m[1] * p[1] + m[2] - q[0];
            let dy = m[3] * p[0] + m[4] * p[1] + m[5] - q[1];
            n += u32::from(dx * dx + dy * dy < t2);
        }
        n
    } else {
        q.iter()
            .zip(c)
            .map(|(&p, &q)| u32::from(t.error2(p, q) < t2))
            .sum()
    }
}

/// Collect into `out` the indices of the correspondences below `threshold`.
pub fn collect(t: &Transform, corr: &Correspondences, threshold: f64, out: &mut Vec<u32>) {
    let t2 = threshold * threshold;
    out.clear();
    for (i, (&p, &q)) in corr.q.iter().zip(&corr.c).enumerate() {
        if t.error2(p, q) < t2 {
            out.push(i as u32);
        }
    }
}

/// Inlier count and MSAC cost `Σ min(e² / t², 1)` (lower is better) in one pass. The cost
/// ranks models of equal support by how well they fit it, so a least-squares refit beats
/// the minimal-sample model it came from.
pub fn count_and_cost(t: &Transform, corr: &Correspondences, threshold: f64) -> (u32, f64) {
    let t2 = threshold * threshold;
    let mut n = 0u32;
    let mut cost = 0.0f64;
    for (&p, &q) in corr.q.iter().zip(&corr.c) {
        let e2 = t.error2(p, q);
        if e2 < t2 {
            n += 1;
            cost += e2 / t2;
        } else {
            cost += 1.0;
        }
    }
    (n, cost)
}
