//! Inlier counting and collection under a transform.

use super::Correspondences;
use crate::geometry::Transform;

/// Number of correspondences whose transfer error is below `threshold`.
#[inline]
pub fn count(t: &Transform, corr: &Correspondences, threshold: f64) -> u32 {
    let (q, c) = (&corr.q, &corr.c);
    let t2 = threshold * threshold;
    let m = &t.0;
    if m[6] == 0.0 && m[7] == 0.0 && m[8] == 1.0 {
        // Affine fast path: no division.
        #[cfg(target_arch = "x86_64")]
        if crate::isa::Isa::detect().has_avx2() {
            // SAFETY: `detect` vouches for AVX2 on this CPU.
            return unsafe { affine_count_avx2(m, q, c, t2) };
        }
        affine_count(m, q, c, t2)
    } else {
        q.iter()
            .zip(c)
            .map(|(&p, &q)| u32::from(t.error2(p, q) < t2))
            .sum()
    }
}

/// The affine count compiled for AVX2: the same operations in the same order (no fused
/// multiply-add), so the same bits as [`affine_count`], four pairs a step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn affine_count_avx2(m: &[f64; 9], q: &[[f64; 2]], c: &[[f64; 2]], t2: f64) -> u32 {
    affine_count(m, q, c, t2)
}

#[inline(always)]
fn affine_count(m: &[f64; 9], q: &[[f64; 2]], c: &[[f64; 2]], t2: f64) -> u32 {
    let mut n = 0u32;
    for (p, q) in q.iter().zip(c) {
        let dx = m[0] * p[0] + m[1] * p[1] + m[2] - q[0];
        let dy = m[3] * p[0] + m[4] * p[1] + m[5] - q[1];
        n += u32::from(dx * dx + dy * dy < t2);
    }
    n
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build of the affine count gives the portable one's count, points placed
    /// on and around the threshold included (any rounding difference would flip some).
    #[test]
    fn avx2_affine_count_is_the_portable_count() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let m = [1.1, -0.3, 12.5, 0.27, 0.93, -7.25, 0.0, 0.0, 1.0];
        let t2 = 16.0;
        let (mut q, mut c) = (Vec::new(), Vec::new());
        for k in 0..1003 {
            let p = [1000.0 * next(), 800.0 * next()];
            let x = m[0] * p[0] + m[1] * p[1] + m[2];
            let y = m[3] * p[0] + m[4] * p[1] + m[5];
            // Every third exactly 4 px away along x (on the threshold), else within 8 px.
            let (dx, dy) = if k % 3 == 0 {
                (4.0, 0.0)
            } else {
                (8.0 * next() - 4.0, 8.0 * next() - 4.0)
            };
            q.push(p);
            c.push([x + dx, y + dy]);
        }
        let portable = affine_count(&m, &q, &c, t2);
        assert!(portable > 100 && portable < 1003, "{portable}");
        #[cfg(target_arch = "x86_64")]
        if crate::isa::Isa::detect().has_avx2() {
            for len in [0, 1, 3, 4, 5, 17, 1003] {
                // SAFETY: `detect` vouches for AVX2 on this CPU.
                let simd = unsafe { affine_count_avx2(&m, &q[..len], &c[..len], t2) };
                assert_eq!(simd, affine_count(&m, &q[..len], &c[..len], t2), "{len}");
            }
        }
    }
}
