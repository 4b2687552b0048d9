//! Seeded generators shared by the integration tests.
#![allow(dead_code)]

use ilias_rerank_core::verify::PairRng;

pub struct Gen(PairRng);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen(PairRng::for_pair(seed, 1, 2))
    }
    #[allow(dead_code)]
    pub fn bits(&mut self) -> u64 {
        self.0.next_u64()
    }
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }
}

/// `n` random unit-norm descriptors of dimension `d`.
pub fn unit_descriptors(g: &mut Gen, n: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let row: Vec<f64> = (0..d).map(|_| g.normal()).collect();
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        out.extend(row.iter().map(|v| (v / norm) as f32));
    }
    out
}

/// Apply a row-major 3x3 homography.
pub fn apply(h: &[f64; 9], p: [f64; 2]) -> [f64; 2] {
    let w = h[6] * p[0] + h[7] * p[1] + h[8];
    [
        (h[0] * p[0] + h[1] * p[1] + h[2]) / w,
        (h[3] * p[0] + h[4] * p[1] + h[5]) / w,
    ]
}

/// A planted scene: query keypoints, a homography, the candidate keypoints (inliers mapped
/// with noise, the rest random), and matching descriptors for the inliers.
pub struct Scene {
    pub q_pts: Vec<f32>,
    pub c_pts: Vec<f32>,
    pub q_desc: Vec<f32>,
    pub c_desc: Vec<f32>,
    pub q_frames: Vec<f32>,
    pub c_frames: Vec<f32>,
    pub h: [f64; 9],
    pub is_inlier: Vec<bool>,
}

/// `n` correspondences of which a fraction `inlier_ratio` follow `h` up to `noise` px.
/// Frames are (scale, orientation in degrees) consistent with the local Jacobian of `h`.
pub fn planted_scene(seed: u64, n: usize, inlier_ratio: f64, noise: f64, h: [f64; 9]) -> Scene {
    planted_scene_dim(seed, n, inlier_ratio, noise, h, 32)
}

/// As [`planted_scene`] with descriptors of dimension `d`.
pub fn planted_scene_dim(
    seed: u64,
    n: usize,
    inlier_ratio: f64,
    noise: f64,
    h: [f64; 9],
    d: usize,
) -> Scene {
    let mut g = Gen::new(seed);
    let mut s = Scene {
        q_pts: vec![],
        c_pts: vec![],
        q_desc: unit_descriptors(&mut g, n, d),
        c_desc: vec![],
        q_frames: vec![],
        c_frames: vec![],
        h,
        is_inlier: vec![],
    };
    let n_in = ((n as f64) * inlier_ratio).round() as usize;
    for i in 0..n {
        let p = [g.range(50.0, 950.0), g.range(50.0, 750.0)];
        let inlier = i < n_in;
        let c = if inlier {
            let m = apply(&h, p);
            [m[0] + noise * g.normal(), m[1] + noise * g.normal()]
        } else {
            [g.range(0.0, 1000.0), g.range(0.0, 800.0)]
        };
        s.q_pts.extend([p[0] as f32, p[1] as f32]);
        s.c_pts.extend([c[0] as f32, c[1] as f32]);
        let scale = g.range(2.0, 10.0);
        let angle = g.range(-180.0, 180.0);
        s.q_frames.extend([scale as f32, angle as f32]);
        if inlier {
            // Local Jacobian of h at p: scale and rotation of its similarity part.
            let e = 1e-3;
            let a = apply(&h, [p[0] + e, p[1]]);
            let b = apply(&h, p);
            let dx = [(a[0] - b[0]) / e, (a[1] - b[1]) / e];
            let local_scale = (dx[0] * dx[0] + dx[1] * dx[1]).sqrt();
            let local_rot = dx[1].atan2(dx[0]).to_degrees();
            // kornia's orientation turns against the matrix rotation angle (its frame is
            // scale * [[cos θ, sin θ], [-sin θ, cos θ]]).
            s.c_frames
                .extend([(scale * local_scale) as f32, (angle - local_rot) as f32]);
        } else {
            s.c_frames
                .extend([g.range(2.0, 10.0) as f32, g.range(-180.0, 180.0) as f32]);
        }
        s.is_inlier.push(inlier);
    }
    // Candidate descriptors: inliers are noisy copies, outliers fresh random vectors.
    let fresh = unit_descriptors(&mut g, n, d);
    for i in 0..n {
        if s.is_inlier[i] {
            let row: Vec<f32> = (0..d)
                .map(|k| s.q_desc[i * d + k] + 0.05 * g.normal() as f32)
                .collect();
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            s.c_desc.extend(row.iter().map(|v| v / norm));
        } else {
            s.c_desc.extend_from_slice(&fresh[i * d..(i + 1) * d]);
        }
    }
    s
}

/// A homography with rotation, scale, shear and mild perspective.
pub fn example_homography(angle_deg: f64, scale: f64, persp: f64) -> [f64; 9] {
    let (s, c) = angle_deg.to_radians().sin_cos();
    [
        scale * c,
        -scale * s + 0.05,
        40.0,
        scale * s,
        scale * c,
        -25.0,
        persp,
        -persp * 0.5,
        1.0,
    ]
}
