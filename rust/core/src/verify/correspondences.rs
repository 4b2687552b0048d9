//! Tentative correspondences in the form the verifier consumes.

/// Point pairs (query -> candidate), with optional frame shapes and descriptor distances.
#[derive(Debug, Default, Clone)]
pub struct Correspondences {
    pub q: Vec<[f64; 2]>,
    pub c: Vec<[f64; 2]>,
    /// `2 x 2` frame shapes of the query keypoints (empty when there are no frames).
    pub q_shape: Vec<[f64; 4]>,
    /// `2 x 2` frame shapes of the candidate keypoints (empty when there are no frames).
    pub c_shape: Vec<[f64; 4]>,
    /// Confidence rank key of each pair (smaller is better, e.g. Lowe's ratio);
    /// orders the hypotheses.
    pub rank_key: Vec<f32>,
}

impl Correspondences {
    pub fn clear(&mut self) {
        self.q.clear();
        self.c.clear();
        self.q_shape.clear();
        self.c_shape.clear();
        self.rank_key.clear();
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub fn has_frames(&self) -> bool {
        !self.q.is_empty()
            && self.q_shape.len() == self.q.len()
            && self.c_shape.len() == self.c.len()
    }

    /// Corners of the axis-aligned box around the query points `idx`.
    pub fn query_box(&self, idx: &[u32]) -> [[f64; 2]; 4] {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for &i in idx {
            let p = self.q[i as usize];
            x0 = x0.min(p[0]);
            y0 = y0.min(p[1]);
            x1 = x1.max(p[0]);
            y1 = y1.max(p[1]);
        }
        if idx.is_empty() {
            return [[0.0; 2]; 4];
        }
        [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    }
}
