//! A 3x3 projective matrix mapping query pixels to candidate pixels.

/// Row-major `3 x 3` matrix; affine and similarity transforms have last row `[0, 0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform(pub [f64; 9]);

impl Transform {
    pub const NAN: Transform = Transform([f64::NAN; 9]);

    /// Build from the linear part `[a11, a12, a21, a22]` and translation `[tx, ty]`.
    pub fn affine(linear: [f64; 4], t: [f64; 2]) -> Self {
        Transform([
            linear[0], linear[1], t[0], linear[2], linear[3], t[1], 0.0, 0.0, 1.0,
        ])
    }

    /// Map a point; `None` when it lands on (or behind) the line at infinity.
    #[inline]
    pub fn apply(&self, p: [f64; 2]) -> Option<[f64; 2]> {
        let m = &self.0;
        let w = m[6] * p[0] + m[7] * p[1] + m[8];
        if w.abs() < 1e-12 {
            return None;
        }
        Some([
            (m[0] * p[0] + m[1] * p[1] + m[2]) / w,
            (m[3] * p[0] + m[4] * p[1] + m[5]) / w,
        ])
    }

    /// Squared transfer error of a correspondence; +inf when the point cannot be mapped.
    #[inline]
    pub fn error2(&self, p: [f64; 2], q: [f64; 2]) -> f64 {
        match self.apply(p) {
            Some(m) => (m[0] - q[0]).powi(2) + (m[1] - q[1]).powi(2),
            None => f64::INFINITY,
        }
    }

    /// Jacobian `[d x'/d x, d x'/d y, d y'/d x, d y'/d y]` at point `p`.
    pub fn jacobian(&self, p: [f64; 2]) -> [f64; 4] {
        let m = &self.0;
        let w = m[6] * p[0] + m[7] * p[1] + m[8];
        let u = m[0] * p[0] + m[1] * p[1] + m[2];
        let v = m[3] * p[0] + m[4] * p[1] + m[5];
        let w2 = w * w;
        [
            (m[0] * w - u * m[6]) / w2,
            (m[1] * w - u * m[7]) / w2,
            (m[3] * w - v * m[6]) / w2,
            (m[4] * w - v * m[7]) / w2,
        ]
    }

    /// Divide by the bottom-right entry (when it is usable) so equal maps compare equal.
    pub fn normalised(self) -> Self {
        let s = self.0[8];
        if s.abs() > 1e-12 && s.is_finite() {
            Transform(self.0.map(|v| v / s))
        } else {
            self
        }
    }

    pub fn is_finite(&self) -> bool {
        self.0.iter().all(|v| v.is_finite())
    }
}
