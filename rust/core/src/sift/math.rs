//! Vectorisable element-wise functions: `exp` and OpenCV's `fastAtan2` (degrees).

/// `e^x` for `x` in [-87, 0] (clamped below), relative error about 2 ulp: `2^n · p(r)`
/// with `x = n ln 2 + r`, a degree-6 polynomial, written without branches so that the
/// loops calling it vectorise.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = if x < -87.0 { -87.0 } else { x };
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// OpenCV's `fastAtan2(y, x)`: the angle of `(x, y)` in degrees in [0, 360), to about
/// 0.01 degree (a degree-7 polynomial on the octant).
#[inline(always)]
pub(crate) fn atan2_deg(y: f32, x: f32) -> f32 {
    const K: f32 = (180.0 / std::f64::consts::PI) as f32;
    const P1: f32 = 0.999_787_84 * K;
    const P3: f32 = -0.325_808_4 * K;
    const P5: f32 = 0.155_578_65 * K;
    const P7: f32 = -0.044_326_556 * K;
    const EPS: f32 = f64::EPSILON as f32;
    let (ax, ay) = (x.abs(), y.abs());
    let steep = ax < ay;
    let c = if steep {
        ax / (ay + EPS)
    } else {
        ay / (ax + EPS)
    };
    let c2 = c * c;
    let a = (((P7 * c2 + P5) * c2 + P3) * c2 + P1) * c;
    let a = if steep { 90.0 - a } else { a };
    let a = if x < 0.0 { 180.0 - a } else { a };
    if y < 0.0 {
        360.0 - a
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        for i in 0..=20_000 {
            let x = -20.0 * i as f32 / 20_000.0;
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= want * 4e-7, "{x}: {got} vs {want}");
        }
    }

    #[test]
    fn atan2_matches_std() {
        for i in 0..3600 {
            let t = (i as f32 * 0.1).to_radians();
            let (y, x) = (t.sin() * 3.0, t.cos() * 3.0);
            let want = y.atan2(x).to_degrees().rem_euclid(360.0);
            let got = atan2_deg(y, x);
            let diff = (got - want).abs().min(360.0 - (got - want).abs());
            assert!(diff < 0.02, "{i}: {got} vs {want}");
        }
    }
}
