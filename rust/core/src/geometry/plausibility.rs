//! Rejection of degenerate or implausible transforms: reflections, collapsed or
//! exploded areas, extreme anisotropy, and homographies that fold the query region
//! across the line at infinity.

use super::Transform;

/// Whether `t` is a plausible map between two views of the same object, judged at the
/// query points `at` (e.g. the corners of the query inliers' bounding box).
/// `max_scale` bounds the linear scale change (and, squared, the area change).
pub fn is_plausible(t: &Transform, at: &[[f64; 2]], max_scale: f64) -> bool {
    if !t.is_finite() {
        return false;
    }
    let m = &t.0;
    let max_area = max_scale * max_scale;
    let side = at
        .first()
        .map(|p| (m[6] * p[0] + m[7] * p[1] + m[8]).signum())
        .unwrap_or(1.0);
    for &p in at {
        // All points must stay on one side of the line at infinity.
        let w = side * (m[6] * p[0] + m[7] * p[1] + m[8]);
        if !(w > 1e-9) {
            return false;
        }
        let j = t.jacobian(p);
        let det = j[0] * j[3] - j[1] * j[2];
        if !(det > 1.0 / max_area && det < max_area) {
            return false;
        }
        // Singular values of J: anisotropy ratio bounded by max_scale.
        let fro2 = j.iter().map(|v| v * v).sum::<f64>();
        let disc = (fro2 * fro2 - 4.0 * det * det).max(0.0).sqrt();
        let s1 = ((fro2 + disc) / 2.0).sqrt();
        let s2 = ((fro2 - disc) / 2.0).max(0.0).sqrt();
        if !(s2 > 0.0) || s1 / s2 > max_scale {
            return false;
        }
    }
    true
}
